"""SIPp (Debian package sip-tester) driving the SIP gateway: scenarios are written per
test from small templates (the values a scenario checks are part of its XML), run with
`-m 1` against the server's SIP port, and their message traces read back."""

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests


DOMAIN = "localhost"

HEADER = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'


def free_udp_port() -> int:
    """A port free for UDP (SIPp's socket) and TCP on 127.0.0.1 right now."""
    import socket
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                    t.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def sipp_bin() -> str:
    path = shutil.which("sipp")
    if path is None:
        pytest.fail("sipp is not installed (Debian package sip-tester; scripts/test installs it)")
    return path


def _ok_reply() -> str:
    return """
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]Z[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
"""


def recv_messages(count: int, timeout_ms: int = 10000) -> str:
    """Steps receiving `count` MESSAGE requests and answering each 200."""
    return "".join(
        f'\n  <recv request="MESSAGE" timeout="{timeout_ms}"/>\n' + _ok_reply() for _ in range(count))


def message_step(user: str, to_user: str, body: str, expect: int, cseq: int = 1,
                 auth: bool = False) -> str:
    """A MESSAGE from `user` to `to_user` answered with `expect` (after a digest
    challenge when `auth`)."""
    body = body.replace("]]>", "")
    def send(cseq: int, authorization: bool) -> str:
        # SIPp signs with sip:<remote address> unless run with -auth_uri <to_user>@<domain>.
        auth_line = "\n      [authentication]" if authorization else ""
        return f"""
  <send retrans="500">
    <![CDATA[
      MESSAGE sip:{to_user}@{DOMAIN} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@{DOMAIN}>;tag=[pid]T[call_number]
      To: <sip:{to_user}@{DOMAIN}>
      Call-ID: [call_id]
      CSeq: {cseq} MESSAGE
      Max-Forwards: 70{auth_line}
      Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
      Content-Type: text/plain
      Content-Length: [len]

{body}
    ]]>
  </send>
"""
    steps = ""
    if auth:
        steps += send(cseq, False) + '\n  <recv response="401" auth="true"/>\n'
        cseq += 1
    steps += send(cseq, auth)
    steps += f'\n  <recv response="100" optional="true"/>\n  <recv response="{expect}"/>\n'
    return steps


def register_step(user: str, expires: int = 300, auth: bool = False, expect: int = 200,
                  contact_port: int | None = None) -> str:
    """A REGISTER for `user` whose Contact is this SIPp's port, or `contact_port` (a
    listener's)."""
    contact = f"[local_ip]:{contact_port}" if contact_port else "[local_ip]:[local_port]"
    def send(cseq: int, authorization: bool) -> str:
        auth_line = "\n      [authentication]" if authorization else ""
        return f"""
  <send retrans="500">
    <![CDATA[
      REGISTER sip:{DOMAIN} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@{DOMAIN}>;tag=[pid]R[call_number]
      To: <sip:{user}@{DOMAIN}>
      Call-ID: [call_id]
      CSeq: {cseq} REGISTER
      Max-Forwards: 70{auth_line}
      Contact: <sip:{user}@{contact};transport=[transport]>
      Expires: {expires}
      Content-Length: 0

    ]]>
  </send>
"""
    steps = ""
    cseq = 1
    if auth:
        steps += send(cseq, False) + '\n  <recv response="401" auth="true"/>\n'
        cseq += 1
    steps += send(cseq, auth) + f'\n  <recv response="{expect}"/>\n'
    return steps


def scenario(name: str, steps: str) -> str:
    return f'{HEADER}<scenario name="{name}">\n{steps}\n</scenario>\n'


class Sipp:
    """Runs scenarios against one server; keeps each run's trace."""

    def __init__(self, server, workdir: Path):
        self.server = server
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.runs = 0

    def _cmd(self, xml: str, port: int, transport: str, extra: list) -> tuple[list, Path]:
        self.runs += 1
        sf = self.dir / f"scenario-{self.runs}.xml"
        sf.write_text(xml)
        trace = self.dir / f"messages-{self.runs}.log"
        calls = "1"
        if "-m" in extra:
            i = extra.index("-m")
            calls, extra = extra[i + 1], extra[:i] + extra[i + 2:]
        cmd = [sipp_bin(), f"127.0.0.1:{self.server.sip_port}", "-sf", str(sf), "-m", calls,
               "-i", "127.0.0.1", "-p", str(port), "-t", transport, "-nostdin",
               "-trace_msg", "-message_file", str(trace), "-trace_err",
               "-error_file", str(self.dir / f"errors-{self.runs}.log"),
               "-mp", str(free_udp_port()), "-timeout", "30s", "-timeout_error", *extra]
        return cmd, trace

    def run(self, xml: str, port: int | None = None, transport: str = "u1",
            extra: list | None = None, expect_ok: bool = True) -> str:
        """Runs a scenario to its end; returns the message trace. A port taken between
        choosing it and SIPp binding it is chosen again (when the caller left it to us)."""
        for _attempt in range(5):
            cmd, trace = self._cmd(xml, port or free_udp_port(), transport, extra or [])
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL, cwd=self.dir)
            if port is not None or "Unable to bind" not in (r.stdout + r.stderr):
                break
        text = trace.read_text(errors="replace") if trace.exists() else ""
        if expect_ok:
            assert r.returncode == 0, (
                f"sipp failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}\n"
                f"errors: {self._errors()}\ntrace:\n{text[-4000:]}")
        return text

    def start(self, xml: str, port: int, transport: str = "u1", extra: list | None = None):
        """Starts a scenario in the background (a member waiting for messages)."""
        cmd, trace = self._cmd(xml, port, transport, extra or [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, cwd=self.dir)
        return Background(proc, trace, self)

    def listen(self, count: int, port: int) -> "Background":
        """A SIPp server on `port` answering `count` MESSAGEs 200 (each MESSAGE the
        gateway sends is a transaction of its own, a call to SIPp)."""
        xml = scenario("listen", '\n  <recv request="MESSAGE"/>\n' + _ok_reply())
        return self.start(xml, port, extra=["-m", str(count)])

    def _errors(self) -> str:
        p = self.dir / f"errors-{self.runs}.log"
        return p.read_text(errors="replace")[-2000:] if p.exists() else ""


class User:
    """A SIP user as two SIPp instances: a listener its registration points at (where the
    gateway's MESSAGEs arrive) and one-shot clients sending its requests."""

    def __init__(self, sipp: "Sipp", name: str, notices: int, register: bool = True):
        self.sipp, self.name = sipp, name
        self.port = free_udp_port()
        self.listener = sipp.listen(notices, self.port) if notices else None
        if register:
            sipp.run(scenario(f"{name}-register", register_step(name, contact_port=self.port)))

    def send(self, to_user: str, body: str, expect: int = 200) -> str:
        return self.sipp.run(scenario(f"{self.name}-message", message_step(self.name, to_user, body, expect)))

    def notices(self) -> list[str]:
        return received_bodies(self.listener.wait()) if self.listener else []


class Background:
    def __init__(self, proc, trace: Path, sipp: Sipp):
        self.proc = proc
        self.trace = trace
        self.sipp = sipp

    def wait(self, timeout: float = 45) -> str:
        """Waits for the scenario to end successfully; returns its trace."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        text = self.trace.read_text(errors="replace") if self.trace.exists() else ""
        assert self.proc.returncode == 0, (
            f"background sipp failed ({self.proc.returncode}):\n{out[-2000:]}\n{err[-2000:]}\n"
            f"trace:\n{text[-4000:]}")
        return text

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def received_bodies(trace: str, method: str = "MESSAGE") -> list[str]:
    """Bodies of the `method` requests SIPp received, in order."""
    bodies = []
    for block in re.split(r"-{10,}", trace):
        if "message received" not in block:
            continue
        m = re.search(rf"^{method} sip:", block, re.M)
        if not m:
            continue
        text = block[m.start():]
        parts = re.split(r"\r?\n\r?\n", text, maxsplit=1)
        bodies.append(parts[1].strip() if len(parts) > 1 else "")
    return bodies


def received_statuses(trace: str) -> list[str]:
    """Status lines SIPp received, in order."""
    return re.findall(r"^(SIP/2\.0 \d{3} [^\r\n]*)", trace, re.M)


def rest(server, method, path, token=None, json=None, expect=200):
    """A REST call answered `expect`; its JSON (or text)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.request(method, f"{server.url}{path}", headers=headers, json=json, timeout=30)
    assert r.status_code == expect, f"{method} {path} -> {r.status_code} {r.text}"
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


def admin(server, method, path, json=None, expect=200):
    """A REST call with the admin token."""
    return rest(server, method, path, server.admin_token, json, expect)


def members(server, room) -> dict:
    """Who is present in `room`, by principal (empty when the room does not exist)."""
    r = requests.get(f"{server.url}/rooms/{room}/members", headers=server.admin(), timeout=10)
    return {m["principal"]: m for m in r.json().get("members", [])} if r.status_code == 200 else {}


def wait_for(pred, what: str, timeout: float = 10.0) -> None:
    """Polls `pred` until it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def wait_registrations(server, count: int, timeout: float = 10) -> None:
    """Waits until the gateway holds `count` bindings (its health says)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = requests.get(f"{server.url}/about/health", timeout=2).json()
        if h.get("sources", {}).get("sip", {}).get("registrations", -1) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"the gateway never held {count} registrations")


# ---- raw SIP over sockets (hostile-input tests): exact bytes in, parsed answers out ----

import socket  # noqa: E402
import uuid  # noqa: E402


def new_branch() -> str:
    return "z9hG4bK" + uuid.uuid4().hex


def sip_request(method: str, ruri: str, *, user: str = "mallory", to: str | None = None,
                branch: str | None = None, call_id: str | None = None, cseq: str | None = None,
                via: str | None = None, transport: str = "UDP", sent_by: str = "127.0.0.1:9",
                max_forwards: str = "70", content_type: str | None = None, body: str | bytes = b"",
                extra: list | tuple = (), omit: list | tuple = (),
                content_length: int | str | None = None, from_tag: str = "ft1") -> bytes:
    """The bytes of a request, CRLF-terminated lines; `omit` names headers to leave out,
    `content_length` overrides the real length ("" leaves the header out)."""
    body = body.encode() if isinstance(body, str) else body
    headers = [
        ("Via", via or f"SIP/2.0/{transport} {sent_by};branch={branch or new_branch()}"),
        ("Max-Forwards", max_forwards),
        ("From", f"<sip:{user}@{DOMAIN}>;tag={from_tag}"),
        ("To", to or f"<{ruri}>"),
        ("Call-ID", call_id or uuid.uuid4().hex),
        ("CSeq", cseq or f"1 {method}"),
    ]
    if content_type:
        headers.append(("Content-Type", content_type))
    headers.extend(extra)
    if content_length != "":
        headers.append(("Content-Length", str(len(body) if content_length is None else content_length)))
    lines = [f"{method} {ruri} SIP/2.0"] + [f"{n}: {v}" for n, v in headers if n not in omit]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class SipMessage:
    """A parsed message: start line, headers (lower-cased names, values in order), body."""

    def __init__(self, raw: bytes):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode(errors="replace").split("\r\n")
        self.start = lines[0]
        self.headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())

    @property
    def is_response(self) -> bool:
        return self.start.startswith("SIP/2.0 ")

    @property
    def code(self) -> int:
        return int(self.start.split(" ", 2)[1]) if self.is_response else 0

    @property
    def reason(self) -> str:
        return self.start.split(" ", 2)[2] if self.is_response else ""

    def header(self, name: str) -> str | None:
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def __repr__(self) -> str:
        return f"<{self.start}>"


def ok_for(req: SipMessage) -> bytes:
    """A 200 answering a request the gateway sent us (a notice MESSAGE)."""
    lines = ["SIP/2.0 200 OK"] + [f"Via: {v}" for v in req.headers.get("via", [])]
    lines += [f"From: {req.header('from')}", f"To: {req.header('to')};tag=raw",
              f"Call-ID: {req.header('call-id')}", f"CSeq: {req.header('cseq')}", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawUdp:
    """A UDP socket on 127.0.0.1 talking to the gateway: requests the gateway sends it are
    answered 200 (and kept in `requests`), responses are returned to the caller."""

    def __init__(self, server, source: str = "127.0.0.1"):
        self.server = ("127.0.0.1", server.sip_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((source, 0))
        self.port = self.sock.getsockname()[1]
        self.sent_by = f"{source}:{self.port}"
        self.requests: list[SipMessage] = []

    def request(self, method: str, ruri: str, **kw) -> bytes:
        kw.setdefault("sent_by", self.sent_by)
        return sip_request(method, ruri, **kw)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def recv(self, timeout: float = 5.0) -> SipMessage | None:
        """The next response, or None after `timeout` seconds without one."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except (socket.timeout, ConnectionRefusedError):
                continue
            msg = SipMessage(data)
            if msg.is_response:
                return msg
            self.requests.append(msg)
            self.sock.sendto(ok_for(msg), self.server)

    def final(self, timeout: float = 5.0) -> SipMessage | None:
        """The next final (>= 200) response."""
        deadline = time.monotonic() + timeout
        while (m := self.recv(max(0.0, deadline - time.monotonic()))) is not None:
            if m.code >= 200:
                return m
        return None

    def ask(self, data: bytes, timeout: float = 5.0) -> SipMessage | None:
        self.send(data)
        return self.final(timeout)

    def barrier(self, timeout: float = 5.0) -> list[SipMessage]:
        """Sends an OPTIONS and returns every response that arrived before its 200: the
        gateway handles one socket's datagrams in order, so anything it was going to
        answer to what was sent earlier has been answered by then."""
        # After a burst the answers can overflow this socket's receive buffer: an
        # OPTIONS whose 200 was lost is sent again (a new one; the point still holds).
        before, branches = [], set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            branch = new_branch()
            branches.add(branch)
            self.send(self.request("OPTIONS", f"sip:{DOMAIN}", branch=branch))
            while (m := self.recv(min(1.0, max(0.0, deadline - time.monotonic())))) is not None:
                if m.code == 200 and any(b in (m.header("via") or "") for b in branches):
                    return before
                before.append(m)
        raise AssertionError(f"no answer to the OPTIONS barrier; got {before}")

    def close(self):
        self.sock.close()


class RawTcp:
    """One TCP connection to the gateway, with Content-Length framing of what comes back."""

    def __init__(self, server, nodelay: bool = False):
        self.sock = socket.create_connection(("127.0.0.1", server.sip_port), timeout=5)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = self.sock.getsockname()
        self.sent_by = f"{host}:{port}"
        self.buf = b""
        self.requests: list[SipMessage] = []

    def request(self, method: str, ruri: str, **kw) -> bytes:
        kw.setdefault("sent_by", self.sent_by)
        kw.setdefault("transport", "TCP")
        return sip_request(method, ruri, **kw)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _message(self) -> SipMessage | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = SipMessage(self.buf[:end + 4])
        n = int(head.header("content-length") or head.header("l") or 0)
        if len(self.buf) < end + 4 + n:
            return None
        raw, self.buf = self.buf[:end + 4 + n], self.buf[end + 4 + n:]
        return SipMessage(raw)

    def recv(self, timeout: float = 5.0) -> SipMessage | None:
        """The next response (requests from the gateway are answered 200); None when the
        connection is closed or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while True:
            while (m := self._message()) is not None:
                if m.is_response:
                    return m
                self.requests.append(m)
                self.sock.sendall(ok_for(m))
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return None
            if not data:
                return None
            self.buf += data

    def final(self, timeout: float = 5.0) -> SipMessage | None:
        deadline = time.monotonic() + timeout
        while (m := self.recv(max(0.0, deadline - time.monotonic()))) is not None:
            if m.code >= 200:
                return m
        return None

    def ask(self, data: bytes, timeout: float = 5.0) -> SipMessage | None:
        self.send(data)
        return self.final(timeout)

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """Whether the gateway closes the connection within `timeout` (bytes it sends
        first are kept in the buffer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not data:
                return True
            self.buf += data
        return False

    def close(self):
        self.sock.close()


class RawImUser:
    """A SIP IM user on one raw UDP socket, registered with that socket as its contact:
    its requests go out from it and the gateway's MESSAGEs (notices, chat lines) come
    back to it, answered 200 and kept once per transaction (retransmissions dropped).
    Blocking; from asyncio code, call it through `asyncio.to_thread`."""

    def __init__(self, server, user: str):
        self.user = user
        self.udp = RawUdp(server)
        reg = self.udp.request("REGISTER", f"sip:{DOMAIN}", user=user, to=f"<sip:{user}@{DOMAIN}>",
                               extra=[("Contact", f"<sip:{user}@{self.udp.sent_by}>"),
                                      ("Expires", "300")])
        r = self.udp.ask(reg)
        assert r is not None and r.code == 200, f"REGISTER {user}: {r}"

    def send(self, to_user: str, body: str) -> SipMessage | None:
        """A MESSAGE to `to_user`@domain; its final response (None: none came)."""
        return self.udp.ask(self.udp.request("MESSAGE", f"sip:{to_user}@{DOMAIN}", user=self.user,
                                             content_type="text/plain", body=body))

    def received(self) -> list[SipMessage]:
        """The MESSAGEs the gateway sent, in arrival order, one per Call-ID and CSeq."""
        seen, out = set(), []
        for m in self.udp.requests:
            key = (m.header("call-id"), m.header("cseq"))
            if m.start.startswith("MESSAGE ") and key not in seen:
                seen.add(key)
                out.append(m)
        return out

    def bodies(self) -> list[str]:
        return [m.body.decode() for m in self.received()]

    def wait_message(self, body: str, timeout: float = 10.0) -> SipMessage:
        """The first MESSAGE received whose body is `body`, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.received():
                if m.body.decode() == body:
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.user}: no MESSAGE {body!r}; got {self.bodies()}")
            self.udp.recv(min(left, 0.2))

    def close(self):
        self.udp.close()

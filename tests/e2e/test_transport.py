"""The web listener against the real binary: what a stranger can hold open and for how
long (slowloris heads, slow uploads, idle connections, the connection cap), the client
address behind trusted proxies only, HTTPS with a self-signed certificate or PEM files,
and CORS for configured origins only. Loopback addresses only. Every wait for the server
to hang up reads the socket until it closes, bounded by a generous limit."""

import gc
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest
import requests
import urllib3
from websockets.sync.client import connect as ws_connect

from conftest import Server

# Far longer than any timeout under test: a wait this long has failed.
LIMIT = 20.0

# The self-signed certificate is fetched unverified on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


def start(conclave_bin, tmp_path, **env) -> Server:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    server = Server(conclave_bin, tmp_path / "data", logs, env=env)
    server.start()
    return server


class TlsServer(Server):
    """`conclave serve` with TLS on: https URLs, readiness checked without verification
    (the certificate is self-signed) unless a CA file is given."""

    def __init__(self, *args, verify=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.verify = verify

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = requests.get(f"{self.url}/about/health", timeout=1, verify=self.verify)
                if r.status_code == 200 and r.json().get("status") == "ok":
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

    def stdout(self) -> str:
        return (self.log_dir / f"server-{self.starts}.out").read_text()


def connect(server, source="127.0.0.1") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=LIMIT,
                                 source_address=(source, 0))
    return s


def read_until_closed(s: socket.socket) -> tuple[bytes, float]:
    """Everything until the server hangs up, and how long that took; fails after LIMIT."""
    t0 = time.monotonic()
    s.settimeout(LIMIT)
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            pytest.fail(f"the server kept the connection open for {LIMIT} s")
        if not chunk:
            break
        out += chunk
    return out, time.monotonic() - t0


def read_answer(s: socket.socket) -> bytes:
    """One whole answer (Content-Length framed) on a kept-alive connection."""
    s.settimeout(LIMIT)
    out = b""
    while True:
        head, sep, body = out.partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(body) >= length:
                return out
        chunk = s.recv(65536)
        assert chunk, f"closed before a whole answer: {out!r}"
        out += chunk


def trickle_until_closed(s: socket.socket, data: bytes, pace: float = 0.1) -> tuple[bytes, float]:
    """Sends `data` a byte at a time, waiting up to `pace` between bytes for the server
    to answer or hang up (the wait is a read); returns what came back and when it closed."""
    t0 = time.monotonic()
    got = b""
    s.settimeout(pace)
    i = 0
    while time.monotonic() - t0 < LIMIT:
        try:
            s.send(data[i % len(data):i % len(data) + 1])
            i += 1
        except OSError:
            return got, time.monotonic() - t0
        try:
            chunk = s.recv(65536)
            if not chunk:
                return got, time.monotonic() - t0
            got += chunk
        except socket.timeout:
            pass
        except OSError:
            return got, time.monotonic() - t0
    pytest.fail(f"still open after {LIMIT} s of trickling")


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_slowloris_and_silent_connections_are_closed_after_the_header_timeout(conclave_bin, tmp_path):
    server = start(conclave_bin, tmp_path, CONCLAVE_WEB_HEADER_READ_TIMEOUT_SECS="1")
    try:
        # Connects and says nothing.
        s = connect(server)
        got, took = read_until_closed(s)
        assert got == b"" and 0.8 <= took < 5, (got, took)
        # Sends a head one byte at a time, forever.
        s = connect(server)
        head = b"GET /about/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        got, took = trickle_until_closed(s, head)
        assert got == b"" and 0.8 <= took < 5, (got, took)
        # An honest client is unaffected.
        assert requests.get(f"{server.url}/about/health", timeout=10).status_code == 200
        health = requests.get(f"{server.url}/about/health", timeout=10).json()
        assert health["sources"]["web_transport"]["timeouts"]["header"] >= 2, health
    finally:
        server.stop()


def test_an_idle_connection_is_closed_after_the_idle_timeout(conclave_bin, tmp_path):
    server = start(conclave_bin, tmp_path, CONCLAVE_WEB_HEADER_READ_TIMEOUT_SECS="1",
                   CONCLAVE_WEB_IDLE_TIMEOUT_SECS="3")
    try:
        s = connect(server)
        s.sendall(b"GET /about/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_answer(s)) == 200
        # Longer than the header timeout, shorter than the idle one: still open.
        s.settimeout(1.5)
        with pytest.raises(socket.timeout):
            s.recv(1)
        s.sendall(b"GET /about/health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_answer(s)) == 200
        got, took = read_until_closed(s)
        assert got == b"" and 2.5 <= took < 8, (got, took)
    finally:
        server.stop()


def test_a_slow_upload_is_answered_408_after_the_body_timeout(conclave_bin, tmp_path):
    server = start(conclave_bin, tmp_path, CONCLAVE_WEB_BODY_READ_TIMEOUT_SECS="1")
    try:
        s = connect(server)
        s.sendall(b"POST /rooms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 60000\r\n\r\n{\"room\": \"r\", ")
        got, took = trickle_until_closed(s, b" ")
        assert status_of(got) == 408, got
        answer = json.loads(got.partition(b"\r\n\r\n")[2])
        assert answer["error"]["code"] == "input.timeout", answer
        assert 0.8 <= took < 5, took
        # No room was made of half a body.
        assert requests.get(f"{server.url}/rooms/r", headers=server.admin(), timeout=10).status_code == 404
    finally:
        server.stop()


def test_the_connection_over_the_cap_is_refused(conclave_bin, tmp_path):
    cap = 4
    server = start(conclave_bin, tmp_path, CONCLAVE_WEB_MAX_CONNECTIONS=str(cap))
    try:
        # The fixture's readiness probe may leave a kept-alive connection to be closed by
        # the garbage collector: wait until the server holds none but the asking one.
        deadline = time.monotonic() + LIMIT
        while True:
            gc.collect()
            health = requests.get(f"{server.url}/about/health", headers={"Connection": "close"},
                                  timeout=10).json()
            if health["sources"]["web_transport"]["connections"] == 1:
                break
            assert time.monotonic() < deadline, health
            time.sleep(0.05)
        # Fill the slots with kept-alive connections that have each been answered, so each
        # holds a slot (the health check's own slot is freed as it closes: retry meanwhile).
        held = []
        while len(held) < cap:
            s = connect(server)
            s.sendall(b"GET /about/health HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = read_answer(s)
            except (AssertionError, ConnectionResetError):
                answer = b""
            if answer and status_of(answer) == 200:
                held.append(s)
            else:
                s.close()
                assert time.monotonic() < deadline, "could not fill the slots"
        # One more: refused at once (a 503 if it arrives before the close, else a close).
        extra = connect(server)
        try:
            extra.sendall(b"GET /about/health HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass
        got, took = read_until_closed(extra)
        assert got == b"" or status_of(got) == 503, got
        if got:
            assert b"server.too_many_connections" in got, got
        assert took < 3, took
        # A freed slot serves again, and the refusal was counted.
        held.pop().close()
        deadline = time.monotonic() + LIMIT
        while True:
            try:
                r = requests.get(f"{server.url}/metrics", timeout=5)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the freed slot never served"
            time.sleep(0.05)
        refused = [l for l in r.text.splitlines() if l.startswith("conclave_web_connections_refused_total ")]
        assert refused and int(refused[0].split()[1]) >= 1, r.text
        assert f"conclave_web_connections_max {cap}" in r.text
        for s in held:
            s.close()
    finally:
        server.stop()


def test_event_streams_outlive_the_idle_timeout(conclave_bin, tmp_path):
    server = start(conclave_bin, tmp_path, CONCLAVE_WEB_IDLE_TIMEOUT_SECS="1",
                   CONCLAVE_WEB_HEADER_READ_TIMEOUT_SECS="1")
    try:
        r = requests.post(f"{server.url}/rooms", json={"room": "r", "as": "web:alice"}, timeout=10)
        assert r.status_code == 201, r.text
        bob = requests.post(f"{server.url}/rooms/r/join", json={"as": "web:bob"}, timeout=10).json()
        auth = {"Authorization": f"Bearer {bob['token']}"}
        # SSE, live only: quiet for three idle timeouts, then an event still arrives.
        sse = connect(server)
        sse.sendall(f"GET /rooms/r/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bob['token']}\r\n\r\n".encode())
        sse.settimeout(LIMIT)
        first = sse.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        ws = ws_connect(f"ws://127.0.0.1:{server.port}/rooms/r/ws", additional_headers=auth,
                        open_timeout=LIMIT)
        sse.settimeout(3.0)
        with pytest.raises(socket.timeout):
            sse.recv(65536)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)
        r = requests.post(f"{server.url}/rooms/r/messages", headers=auth, json={"body": "still here"},
                          timeout=10)
        assert r.status_code == 201, r.text
        sse.settimeout(LIMIT)
        data = b""
        while b"chat_message" not in data:
            chunk = sse.recv(65536)
            assert chunk, "the SSE stream was closed"
            data += chunk
        message = json.loads(ws.recv(timeout=LIMIT))
        assert message["event_type"] == "chat_message", message
        ws.close()
        sse.close()
    finally:
        server.stop()


def audit_remote(server, room) -> str:
    entries = requests.get(f"{server.url}/audit?room={room}&type=room_create", headers=server.admin(),
                           timeout=10).json()["entries"]
    assert len(entries) == 1, entries
    return entries[0]["remote_addr"]


def create_room(server, room, source, xff=None) -> int:
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=LIMIT, source_address=(source, 0))
    headers = {"Content-Type": "application/json"}
    if xff is not None:
        headers["X-Forwarded-For"] = xff
    c.request("POST", "/rooms", body=json.dumps({"room": room, "as": f"web:{room}"}), headers=headers)
    status = c.getresponse().status
    c.close()
    return status


def test_x_forwarded_for_is_believed_from_trusted_proxies_only(conclave_bin, tmp_path):
    # 127.0.0.2 plays the reverse proxy; 127.0.0.1 is a stranger.
    server = start(conclave_bin, tmp_path, CONCLAVE_TRUSTED_PROXIES="127.0.0.2",
                   CONCLAVE_OBFUSCATE_IPS="false", CONCLAVE_RATE_ENTRIES_PER_MIN="2")
    try:
        # From a stranger the header is ignored: the journal records the TCP peer.
        assert create_room(server, "direct", "127.0.0.1", xff="203.0.113.7") == 201
        assert audit_remote(server, "direct") == "127.0.0.1"
        # Through the trusted proxy: the right-most untrusted address of the chain.
        assert create_room(server, "proxied", "127.0.0.2", xff="198.51.100.1, 203.0.113.8") == 201
        assert audit_remote(server, "proxied") == "203.0.113.8"
        # A hostile header through the proxy: believed nowhere, the proxy is recorded.
        assert create_room(server, "hostile", "127.0.0.2", xff="203.0.113.9, \"][::, _x") == 201
        assert audit_remote(server, "hostile") == "127.0.0.2"
        # Rate limits follow the client behind the proxy, not the proxy.
        assert create_room(server, "a2", "127.0.0.2", xff="203.0.113.8") == 201
        assert create_room(server, "a3", "127.0.0.2", xff="203.0.113.8") == 429
        assert create_room(server, "b1", "127.0.0.2", xff="203.0.113.20") == 201
        # ...and the stranger cannot escape its own limit with the header.
        assert create_room(server, "d2", "127.0.0.1", xff="203.0.113.30") == 201
        assert create_room(server, "d3", "127.0.0.1", xff="203.0.113.31") == 429
        assert requests.get(f"{server.url}/about/health", timeout=10).status_code == 200
    finally:
        server.stop()


def peer_fingerprint(port: int) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=LIMIT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def test_https_with_a_self_signed_certificate(conclave_bin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    server = TlsServer(conclave_bin, tmp_path / "data", logs,
                       env={"CONCLAVE_TLS_SELF_SIGNED": "true",
                            "CONCLAVE_WEB_HEADER_READ_TIMEOUT_SECS": "1"})
    server.start()
    try:
        r = requests.get(f"{server.url}/about/health", timeout=10, verify=False)
        assert r.status_code == 200
        assert r.json()["sources"]["web_transport"]["tls"] is True
        # The printed fingerprint is the certificate's.
        out = server.stdout()
        assert f"REST API on https://127.0.0.1:{server.port}" in out, out
        printed = out.split("SHA-256 fingerprint ")[1].split()[0]
        assert printed == peer_fingerprint(server.port), (printed, out)
        # A client that opens TCP and never says hello is dropped at the header timeout.
        s = connect(server)
        got, took = read_until_closed(s)
        assert got == b"" and 0.8 <= took < 5, (got, took)
        # A real request with the certificate checked against itself fails (self-signed,
        # unknown issuer): verification is on by default.
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{server.url}/about/health", timeout=10)

        # `conclave admin` reaches it: refused by default (unknown issuer), with the
        # server's own certificate as its CA file, or with --insecure.
        def admin(*extra):
            return server.cli(*extra, "list-rooms")
        refused = admin()
        assert refused.returncode != 0, refused.stdout
        pem = tmp_path / "server.pem"
        pem.write_text(ssl.get_server_certificate(("127.0.0.1", server.port)))
        trusted = admin("--ca-file", str(pem))
        assert trusted.returncode == 0, trusted.stderr
        insecure = admin("--insecure")
        assert insecure.returncode == 0 and "not checked" in insecure.stderr, insecure.stderr
    finally:
        server.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_https_with_pem_files_verified_by_the_client(conclave_bin, tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    logs = tmp_path / "logs"
    logs.mkdir()
    server = TlsServer(conclave_bin, tmp_path / "data", logs, verify=str(cert),
                       env={"CONCLAVE_TLS_CERT": str(cert), "CONCLAVE_TLS_KEY": str(key)})
    server.start()
    try:
        r = requests.get(f"{server.url}/about/health", timeout=10, verify=str(cert))
        assert r.status_code == 200
        fingerprint = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
                                     check=True, capture_output=True, text=True).stdout
        assert fingerprint.strip().split("=")[1] == peer_fingerprint(server.port)
    finally:
        server.stop()


def test_a_bad_key_stops_the_start_with_a_message(conclave_bin, tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    cert.write_text("not a certificate\n")
    key.write_text("not a key\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCLAVE_")}
    r = subprocess.run([conclave_bin, "serve", "--data-dir", str(tmp_path / "data"), "--web-listen",
                        "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key),
                        "--sip-enabled", "false"],
                       capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert "tls_cert" in r.stderr and "server.crt" in r.stderr, r.stderr


def test_cors_headers_only_for_configured_origins(conclave_bin, tmp_path):
    allowed = "https://app.example"
    server = start(conclave_bin, tmp_path, CONCLAVE_CORS_ORIGINS=f"{allowed},http://localhost:3000")
    try:
        r = requests.get(f"{server.url}/about/health", headers={"Origin": allowed}, timeout=10)
        assert r.headers.get("Access-Control-Allow-Origin") == allowed, r.headers
        r = requests.options(f"{server.url}/rooms", timeout=10, headers={
            "Origin": allowed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert r.ok, r.status_code
        assert r.headers.get("Access-Control-Allow-Origin") == allowed, r.headers
        assert "POST" in r.headers.get("Access-Control-Allow-Methods", ""), r.headers
        for origin in ["https://evil.example", "http://app.example", "null"]:
            r = requests.get(f"{server.url}/about/health", headers={"Origin": origin}, timeout=10)
            assert "Access-Control-Allow-Origin" not in r.headers, (origin, r.headers)
    finally:
        server.stop()


def test_no_cors_headers_by_default(server):
    r = requests.get(f"{server.url}/about/health", headers={"Origin": "https://app.example"}, timeout=10)
    assert r.status_code == 200
    assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers

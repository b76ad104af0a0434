"""Malformed and hostile SIP against the real binary (issue 12): each bad request gets its
400 (the reason naming the fault) or is dropped where RFC 3261 says so; semantic refusals
carry their RFC status and headers; a retransmission flood is one engine event; TCP
survives garbage, 1-byte writes and missing Content-Length; CANCEL, BYE and ACK that
match nothing. After each test the server is healthy and no room was half-made.

Raw sockets (sip_support.RawUdp / RawTcp) send exact bytes; a UDP "barrier" (an OPTIONS
whose 200 comes after anything the gateway answers to earlier datagrams on the same
socket) proves a drop without sleeping."""

import socket
import time

import pytest
import requests

from sip_support import (DOMAIN, RawTcp, RawUdp, SipMessage, Sipp, members, message_step,
                         new_branch, received_bodies, received_statuses, register_step, scenario,
                         sip_request, wait_for)

MANAGER = f"sip:chat-manager@{DOMAIN}"


# ---- checks on the server ----

def metric(server, name: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def sip_health(server) -> dict:
    r = requests.get(f"{server.url}/about/health", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["sources"]["sip"]


def room_names(server) -> set:
    r = requests.get(f"{server.url}/rooms", headers=server.admin(), timeout=10)
    assert r.status_code == 200, r.text
    return {x.get("room") or x.get("name") for x in r.json()["rooms"]}


def audit(server, room) -> list:
    r = requests.get(f"{server.url}/audit", params={"room": room}, headers=server.admin(), timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["entries"]


def assert_healthy(server, rooms: set = frozenset()):
    """Health ok, OPTIONS answered over UDP and TCP, no call or TCP connection left
    over, and exactly `rooms` exist."""
    assert server.proc.poll() is None, server.stderr()[-3000:]
    assert sip_health(server)["status"] == "ok"
    udp = RawUdp(server)
    try:
        assert udp.ask(udp.request("OPTIONS", f"sip:{DOMAIN}")).code == 200
    finally:
        udp.close()
    tcp = RawTcp(server)
    try:
        assert tcp.ask(tcp.request("OPTIONS", f"sip:{DOMAIN}")).code == 200
    finally:
        tcp.close()
    wait_for(lambda: sip_health(server)["calls"] == 0, "no call left")
    wait_for(lambda: sip_health(server)["tcp_connections"] == 0, "no TCP connection left")
    assert room_names(server) == set(rooms)
    assert "panicked" not in server.stderr()


# ---- malformed requests over UDP ----

def _msg(name: str, **kw) -> bytes:
    """A MESSAGE to the manager that would create room `evil<name>` if it were accepted."""
    kw.setdefault("content_type", "text/plain")
    kw.setdefault("body", f"#create evil{name}")
    return sip_request("MESSAGE", MANAGER, **kw)


def _replace(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data, (old, data)
    return data.replace(old, new, 1)


def _malformed_cases(sent_by: str):
    """(name, bytes, expected) with expected (code, reason) or None for a silent drop."""
    m = lambda name, **kw: _msg(name, sent_by=sent_by, **kw)  # noqa: E731
    good = m("0")
    long_value = "x" * 9000
    folded = "Subject: start\r\n" + "".join(f" fold{i:04d}{'y' * 20}\r\n" for i in range(400))
    cases = [
        ("start line without version",
         _replace(m("1"), b" SIP/2.0\r\n", b"\r\n"), (400, "Bad Start Line")),
        ("start line of one word", _replace(m("2"), b"MESSAGE " + MANAGER.encode() + b" SIP/2.0",
                                            b"HELLO"), (400, "Bad Start Line")),
        ("SIP/3.0", _replace(m("3"), b" SIP/2.0\r\n", b" SIP/3.0\r\n"), (505, "Version Not Supported")),
        ("missing Max-Forwards", m("4", omit=["Max-Forwards"]), (400, "Missing Max-Forwards Header")),
        ("missing Call-ID", m("5", omit=["Call-ID"]), None),
        ("missing From", m("6", omit=["From"]), None),
        ("missing To", m("7", omit=["To"]), None),
        ("missing CSeq", m("8", omit=["CSeq"]), None),
        ("missing Via", m("9", omit=["Via"]), None),
        ("Content-Length past the datagram", m("10", content_length=len(b"#create evil10") + 40),
         (400, "Bad Content-Length")),
        ("Content-Length not a number", m("11", content_length="ten"), (400, "Bad Content-Length")),
        ("two Content-Lengths that differ", m("12", extra=[("Content-Length", "3")]),
         (400, "Bad Content-Length")),
        ("CSeq method mismatch", m("13", cseq="1 INVITE"), (400, "CSeq Method Mismatch")),
        ("CSeq without a number", m("14", cseq="one MESSAGE"), (400, "Malformed CSeq Header")),
        ("CSeq over 2**31", m("15", cseq="2147483648 MESSAGE"), (400, "Malformed CSeq Header")),
        ("Max-Forwards not a number", m("16", max_forwards="many"),
         (400, "Malformed Max-Forwards Header")),
        ("Max-Forwards over 255", m("17", max_forwards="256"), (400, "Malformed Max-Forwards Header")),
        ("Via without branch", m("18", via=f"SIP/2.0/UDP {sent_by}"), (400, "Missing Via Branch")),
        ("Via unreadable", m("19", via="SIP/2.0/UDP ;;;branch=z9hG4bKx"),
         (400, "Malformed Via Header")),
        ("two Call-IDs that differ", m("20", extra=[("Call-ID", "other")]),
         (400, "Duplicate Call-ID Header")),
        ("two From headers", m("21", extra=[("From", "<sip:eve@localhost>;tag=x")]),
         (400, "Duplicate From Header")),
        ("header line without a colon", _replace(good, b"Max-Forwards: 70\r\n",
                                                 b"Max-Forwards: 70\r\nNoColonHere\r\n"),
         (400, "Malformed Header")),
        ("control byte in a header value", m("22", extra=[("Subject", "a\x01b")]),
         (400, "Malformed Header")),
        ("header value not UTF-8", _replace(m("23"), b"Max-Forwards: 70\r\n",
                                            b"Max-Forwards: 70\r\nSubject: \xff\xfe\r\n"),
         (400, "Malformed Header")),
        ("header name with a space", m("24", extra=[("X Bad", "1")]), (400, "Malformed Header")),
        ("one 9000-byte header", m("25", extra=[("X-Junk", long_value)]), (400, "Header Too Long")),
        ("folded header over 8 KiB", _replace(m("26"), b"Max-Forwards: 70\r\n",
                                              b"Max-Forwards: 70\r\n" + folded.encode()),
         (400, "Header Too Long")),
        ("200 headers", m("27", extra=[(f"X-H{i}", "v") for i in range(200)]),
         (400, "Too Many Headers")),
        ("header block never ends", m("28")[:-40].rstrip(b"\r\n"), None),
        ("binary garbage", bytes(range(256)) * 4, None),
        ("NUL bytes", b"\x00" * 512, None),
        ("unknown method", _replace(_replace(m("29"), b"MESSAGE sip:", b"FROB sip:"),
                                    b"1 MESSAGE", b"1 FROB"), (501, "Not Implemented")),
        ("method in lower case", _replace(_replace(m("30"), b"MESSAGE sip:", b"message sip:"),
                                          b"1 MESSAGE", b"1 message"), (501, "Not Implemented")),
        # Never answered whatever is wrong: an ACK, and a response.
        ("ACK with a bad CSeq", sip_request("ACK", MANAGER, sent_by=sent_by, cseq="x ACK"), None),
        ("response with Content-Length past the datagram",
         b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP " + sent_by.encode() + b";branch=z9hG4bKnothing\r\n"
         b"From: <sip:a@localhost>;tag=1\r\nTo: <sip:b@localhost>;tag=2\r\nCall-ID: c1\r\n"
         b"CSeq: 1 MESSAGE\r\nContent-Length: 99\r\n\r\nshort", None),
        ("response with a bad status code",
         b"SIP/2.0 2000 OK\r\nVia: SIP/2.0/UDP " + sent_by.encode() + b";branch=z9hG4bKnothing2\r\n"
         b"From: <sip:a@localhost>;tag=1\r\nTo: <sip:b@localhost>;tag=2\r\nCall-ID: c2\r\n"
         b"CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n", None),
    ]
    return cases


def test_malformed_udp_requests_get_400_with_the_reason_or_are_dropped(sip_server):
    udp = RawUdp(sip_server)
    before = metric(sip_server, "conclave_sip_malformed_total")
    cases = _malformed_cases(udp.sent_by)
    problems = []
    try:
        for name, data, expected in cases:
            assert len(data) < 65000
            udp.send(data)
            got = udp.barrier()
            if expected is None:
                if got:
                    problems.append(f"{name}: expected a drop, got {got}")
                continue
            if len(got) != 1 or (got[0].code, got[0].reason) != expected:
                problems.append(f"{name}: expected {expected}, got {got}")
                continue
            resp = got[0]
            # A stateless answer still echoes the request's Via, Call-ID, CSeq and adds a To tag.
            req = SipMessage(data)
            assert resp.headers["via"] == req.headers["via"][:len(resp.headers["via"])], name
            assert resp.header("call-id") == req.header("call-id"), name
            assert resp.header("cseq") == req.header("cseq"), name
            assert ";tag=" in resp.header("to"), name
        assert not problems, "\n".join(problems)
        # The good message the cases were cut from is accepted as it is.
        assert udp.ask(_msg("ok", sent_by=udp.sent_by)).code == 200
    finally:
        udp.close()
    # Every one of them counted as malformed (the good one and the barriers not).
    assert metric(sip_server, "conclave_sip_malformed_total") - before == len(cases)
    assert_healthy(sip_server, rooms={"evilok"})


def test_a_request_with_a_short_content_length_is_cut_to_it(sip_server):
    """Content-Length shorter than the datagram: the body is what it says (§18.3), the
    rest of the datagram is discarded."""
    udp = RawUdp(sip_server)
    try:
        assert udp.ask(_msg("x", sent_by=udp.sent_by, body="#create cutroom and more words",
                            content_length=len("#create cutroom"))).code == 200
    finally:
        udp.close()
    assert_healthy(sip_server, rooms={"cutroom"})


# ---- semantic refusals ----

WEBRTC_OFFER = """v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
""".replace("\n", "\r\n")


def ack_for(udp: RawUdp, invite: bytes, resp: SipMessage) -> bytes:
    """The ACK of a non-2xx final response: the INVITE's branch, the response's To."""
    req = SipMessage(invite)
    return sip_request("ACK", req.start.split(" ")[1], sent_by=udp.sent_by,
                       via=req.header("via"), call_id=req.header("call-id"),
                       cseq=req.header("cseq").split(" ")[0] + " ACK", to=resp.header("to"),
                       user=req.header("from").split("sip:")[1].split("@")[0])


def test_semantic_refusals_carry_their_status_and_headers(sip_server):
    udp = RawUdp(sip_server)
    room = f"sip:chat-standup@{DOMAIN}"
    try:
        def ask(method, ruri=MANAGER, **kw):
            if method == "MESSAGE":
                kw.setdefault("content_type", "text/plain")
                kw.setdefault("body", "#create evil")
            r = udp.ask(udp.request(method, ruri, **kw))
            assert r is not None, f"no answer to {method} {ruri} {kw}"
            return r

        for method in ("SUBSCRIBE", "NOTIFY", "PUBLISH", "REFER"):
            r = ask(method, extra=[("Event", "presence")] if method in ("SUBSCRIBE", "NOTIFY") else [])
            assert r.code == 405, (method, r)
            allow = [a.strip() for a in r.header("allow").split(",")]
            assert "MESSAGE" in allow and "INVITE" in allow and method not in allow, allow
        r = ask("MESSAGE", extra=[("Require", "foo")])
        assert r.code == 420 and r.header("unsupported") == "foo", (r, r.headers)
        r = ask("MESSAGE", extra=[("Require", "timer, foo, 100rel")])
        assert r.code == 420 and r.header("unsupported") == "foo, 100rel", (r, r.headers)
        r = ask("MESSAGE", max_forwards="0")
        assert r.code == 483, r
        # OPTIONS with Max-Forwards 0 is for the TU (§11).
        assert ask("OPTIONS", f"sip:{DOMAIN}", max_forwards="0").code == 200
        r = ask("MESSAGE", f"sips:chat-manager@{DOMAIN}")
        assert r.code == 416, r
        r = ask("MESSAGE", "sip:chat-manager@example.org")
        assert r.code == 404, r
        r = ask("MESSAGE", content_type="application/json", body='{"cmd": "#create evil"}')
        assert r.code == 415 and r.header("accept") == "text/plain", (r, r.headers)
        # An INVITE with a WebRTC offer (DTLS-SRTP, ICE): 488, nothing joined or opened.
        invite = udp.request("INVITE", room, content_type="application/sdp", body=WEBRTC_OFFER,
                             extra=[("Contact", f"<sip:mallory@{udp.sent_by}>")])
        r = udp.ask(invite)
        assert r is not None and r.code == 488, r
        udp.send(ack_for(udp, invite, r))
        assert udp.barrier() == []
    finally:
        udp.close()
    assert_healthy(sip_server)


@pytest.mark.parametrize("ruri", [
    f"sips:chat-manager@{DOMAIN}",
    "http://localhost/",
    "tel:+15551234567",
    "urn:service:sos",
    f"im:chat-manager@{DOMAIN}",
    f"xmpp:chat-manager@{DOMAIN}",
    f"chat-manager:x@{DOMAIN}",
])
def test_a_request_uri_of_another_scheme_gets_416(sip_server, ruri):
    """RFC 3261 §8.2.2.1: a Request-URI scheme the UAS does not support gets 416."""
    udp = RawUdp(sip_server)
    try:
        r = udp.ask(udp.request("MESSAGE", ruri, content_type="text/plain", body="#create scheme"))
        assert r is not None and (r.code, r.reason) == (416, "Unsupported URI Scheme"), r
    finally:
        udp.close()
    assert_healthy(sip_server)


def test_a_request_uri_without_a_scheme_is_refused(sip_server):
    """`chat-manager@localhost` is no Request-URI at all (§25.1: SIP-URI / SIPS-URI /
    absoluteURI, each with a scheme): 400 (or 416), never the manager."""
    udp = RawUdp(sip_server)
    try:
        r = udp.ask(udp.request("MESSAGE", f"chat-manager@{DOMAIN}", content_type="text/plain",
                                body="#create noscheme"))
        assert r is not None and r.code in (400, 416), r
    finally:
        udp.close()
    assert_healthy(sip_server)


def test_malformed_requests_with_sipp(sip_server, tmp_path):
    """The same refusals driven by SIPp (what a SIP tool sends, not only Python)."""
    def send(first_line: str, cseq: str, expect: int, extra: str = "", length: str = "[len]",
             body: str = "#create sippevil", max_forwards: str = "\n      Max-Forwards: 70") -> str:
        return f"""
  <send>
    <![CDATA[
      {first_line}
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sippy@{DOMAIN}>;tag=[pid]M[call_number]
      To: <sip:chat-manager@{DOMAIN}>
      Call-ID: [call_id]
      CSeq: {cseq}{max_forwards}{extra}
      Content-Type: text/plain
      Content-Length: {length}

{body}
    ]]>
  </send>
  <recv response="{expect}"/>
"""
    line = f"MESSAGE sip:chat-manager@{DOMAIN} SIP/2.0"
    # (SIPp cannot expect the answer to a CSeq method mismatch: it matches responses
    # by CSeq method; the raw test covers it.)
    steps = (send(line, "1 MESSAGE", 400, max_forwards="")
             + send(line, "2 MESSAGE", 400, length="500")
             + send(f"FROB sip:chat-manager@{DOMAIN} SIP/2.0", "3 FROB", 501)
             + send(f"MESSAGE sip:chat-manager@{DOMAIN} SIP/3.0", "4 MESSAGE", 505)
             + send(line, "5 MESSAGE", 420, extra="\n      Require: foo")
             + send(line, "6 MESSAGE", 400, extra="\n      X-Long: " + "z" * 9000))
    before = metric(sip_server, "conclave_sip_malformed_total")
    sipp = Sipp(sip_server, tmp_path / "sipp")
    trace = sipp.run(scenario("malformed", steps))
    statuses = received_statuses(trace)
    assert statuses == ["SIP/2.0 400 Missing Max-Forwards Header", "SIP/2.0 400 Bad Content-Length",
                        "SIP/2.0 501 Not Implemented", "SIP/2.0 505 Version Not Supported",
                        "SIP/2.0 420 Bad Extension", "SIP/2.0 400 Header Too Long"], statuses
    # The 420 is not a malformed message; the other five are.
    assert metric(sip_server, "conclave_sip_malformed_total") - before == 5
    assert_healthy(sip_server)


# ---- requests and responses that match nothing ----

def test_what_matches_nothing_is_dropped_or_481(sip_server):
    udp = RawUdp(sip_server)
    try:
        # A response to a transaction we never started: dropped.
        stray = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:" + str(sip_server.sip_port).encode()
                 + b";branch=" + new_branch().encode() + b"\r\nFrom: <sip:chat-x@localhost>;tag=1\r\n"
                 b"To: <sip:mallory@localhost>;tag=2\r\nCall-ID: nothing\r\nCSeq: 1 MESSAGE\r\n"
                 b"Content-Length: 0\r\n\r\n")
        udp.send(stray)
        assert udp.barrier() == []
        # An ACK with no INVITE: ignored.
        udp.send(udp.request("ACK", f"sip:chat-conf@{DOMAIN}", to=f"<sip:chat-conf@{DOMAIN}>;tag=abc"))
        assert udp.barrier() == []
        # BYE, re-INVITE, INFO of a dialog that does not exist: 481.
        for method in ("BYE", "INFO", "UPDATE", "INVITE"):
            req = udp.request(method, f"sip:chat-conf@{DOMAIN}",
                              to=f"<sip:chat-conf@{DOMAIN}>;tag=nosuchdialog")
            r = udp.ask(req)
            assert r is not None and r.code == 481, (method, r)
            if method == "INVITE":
                udp.send(ack_for(udp, req, r))  # a non-2xx to an INVITE wants its ACK
        # CANCEL of no INVITE: 481.
        r = udp.ask(udp.request("CANCEL", f"sip:chat-conf@{DOMAIN}"))
        assert r is not None and r.code == 481, r
        assert udp.barrier() == []
    finally:
        udp.close()
    assert_healthy(sip_server)


# ---- a retransmission flood ----

def test_a_flood_of_retransmissions_is_one_event_and_one_answer(sip_server):
    udp = RawUdp(sip_server)
    try:
        assert udp.ask(_msg("", sent_by=udp.sent_by, body="#create flood")).code == 200
        before = metric(sip_server, "conclave_sip_messages_total")
        branch, call_id = new_branch(), "flood-call"
        line = udp.request("MESSAGE", f"sip:chat-flood@{DOMAIN}", branch=branch, call_id=call_id,
                           content_type="text/plain", body="one line, many copies")
        for _ in range(500):
            udp.send(line)
        # The final answer (retransmissions while the line is journaled are absorbed).
        finals = []
        deadline = time.monotonic() + 10
        while not finals and time.monotonic() < deadline:
            r = udp.recv(1)
            if r is not None and branch in r.header("via"):
                finals.append(r)
        assert finals and finals[0].code == 200, finals
        first = finals[0].raw
        # Those the burst drew once answered are the same bytes; so is every later copy.
        extra = [r for r in udp.barrier() if branch in r.header("via")]
        assert all(r.raw == first for r in extra), extra
        for _ in range(50):
            udp.send(line)
        again = udp.barrier()
        assert len(again) == 50 and all(r.raw == first for r in again), (len(again), again[:2])
    finally:
        udp.close()
    chats = [e for e in audit(sip_server, "flood") if e["event_type"] == "chat_message"]
    assert len(chats) == 1, chats
    # One transaction reached the transaction user.
    assert metric(sip_server, "conclave_sip_messages_total") - before == 1
    assert_healthy(sip_server, rooms={"flood"})


def test_a_flood_of_new_transactions_from_one_address_does_not_lock_out_others(conclave_bin,
                                                                              tmp_path):
    """Memory is bounded (`--sip-max-transactions`, then 503 with Retry-After), but the
    bound must not be one sender's to take: a UDP source that opens more OPTIONS
    transactions than its share (`--sip-max-transactions-per-address`) in a few seconds
    gets 503 beyond it, and every other client is still served."""
    from conftest import Server
    logs = tmp_path / "logs"
    logs.mkdir()
    server = Server(conclave_bin, tmp_path / "data", logs,
                    args=["--sip-max-transactions", "2000",
                          "--sip-max-transactions-per-address", "1000"])
    server.start()
    # The flood comes from another loopback address than everyone else's.
    attacker = RawUdp(server, source="127.0.0.2")
    codes = {}
    try:
        for i in range(2_500):
            attacker.send(attacker.request("OPTIONS", f"sip:{DOMAIN}"))
            if i % 20 == 0:  # read the answers as they come, so none is lost here
                while (r := attacker.recv(0.002)) is not None:
                    codes[r.code] = codes.get(r.code, 0) + 1
        while (r := attacker.recv(0.5)) is not None:
            codes[r.code] = codes.get(r.code, 0) + 1
        assert codes.get(503, 0) > 0 and codes.get(200, 0) <= 1000, codes
        bystander = RawUdp(server)
        try:
            r = bystander.ask(bystander.request("OPTIONS", f"sip:{DOMAIN}"))
            assert r is not None and r.code == 200, (
                f"another client is refused after one address's flood: {r}; the flood got {codes}")
        finally:
            bystander.close()
        assert_healthy(server)
    finally:
        attacker.close()
        server.stop()


# ---- TCP ----

def test_an_imc_session_over_tcp_with_sipp(sip_server, tmp_path):
    sipp = Sipp(sip_server, tmp_path / "sipp")
    steps = (register_step("tina")
             + message_step("tina", "chat-manager", "#create tcproom", 200, cseq=2)
             + message_step("tina", "chat-tcproom", "hello over tcp", 200, cseq=3))
    trace = sipp.run(scenario("tcp-imc", steps), transport="t1")
    # The notice came back over the same connection (the binding's contact is its
    # address). SIPp's client cannot put a request with a new Call-ID into the scenario,
    # so it is read from the trace rather than answered.
    notices = received_bodies(trace)
    assert notices == ["*** Room was created"], notices
    assert "sip:tina@localhost" in members(sip_server, "tcproom")
    chats = [e for e in audit(sip_server, "tcproom") if e["event_type"] == "chat_message"]
    assert len(chats) == 1 and chats[0]["actor"] == "sip:tina@localhost", chats
    assert chats[0]["gateway"] == "sip"
    assert_healthy(sip_server, rooms={"tcproom"})


@pytest.mark.parametrize("garbage", [
    b"\x00\xff\x16\x03\x01 this is a TLS hello, not SIP",
    b"HELLO THERE\r\nNo: content length\r\n\r\nand a body",
    b"\r\n\r\n" + b"\x80" * 100,
], ids=["binary", "no-content-length", "keepalive-then-binary"])
def test_garbage_on_tcp_closes_that_connection_only(sip_server, garbage):
    before = metric(sip_server, "conclave_sip_malformed_total")
    good, bad = RawTcp(sip_server), RawTcp(sip_server)
    try:
        assert good.ask(good.request("OPTIONS", f"sip:{DOMAIN}")).code == 200
        wait_for(lambda: sip_health(sip_server)["tcp_connections"] == 2, "two connections")
        bad.send(garbage)
        assert bad.closed_by_peer(), "the gateway kept a connection that sent garbage"
        assert bad.buf == b"", bad.buf
        wait_for(lambda: sip_health(sip_server)["tcp_connections"] == 1, "the bad one closed")
        # The other connection is untouched.
        assert good.ask(good.request("OPTIONS", f"sip:{DOMAIN}")).code == 200
    finally:
        good.close()
        bad.close()
    assert metric(sip_server, "conclave_sip_malformed_total") - before == 1
    assert_healthy(sip_server)


def test_a_tcp_message_in_one_byte_writes_is_parsed(sip_server):
    tcp = RawTcp(sip_server, nodelay=True)
    try:
        data = b"\r\n" + tcp.request("MESSAGE", MANAGER, content_type="text/plain",
                                     body="#create byteroom")
        for i in range(len(data)):
            tcp.send(data[i:i + 1])
        r = tcp.final()
        assert r is not None and r.code == 200, r
        # The notice comes back on the same connection (an unregistered sender).
        deadline = time.monotonic() + 5
        while not tcp.requests and time.monotonic() < deadline:
            tcp.recv(0.1)
        assert any(b"Room was created" in q.body for q in tcp.requests), tcp.requests
        # Two messages in one write are both parsed.
        pair = (tcp.request("OPTIONS", f"sip:{DOMAIN}") + tcp.request("OPTIONS", f"sip:{DOMAIN}"))
        tcp.send(pair)
        assert tcp.final().code == 200 and tcp.final().code == 200
    finally:
        tcp.close()
    assert "sip:mallory@localhost" in members(sip_server, "byteroom")
    assert_healthy(sip_server, rooms={"byteroom"})


def test_a_tcp_message_without_content_length_is_refused_and_closed(sip_server):
    tcp = RawTcp(sip_server)
    try:
        tcp.send(tcp.request("MESSAGE", MANAGER, content_type="text/plain",
                             body="#create nolength", content_length=""))
        r = tcp.recv()
        assert r is not None and (r.code, r.reason) == (400, "Bad Content-Length"), r
        assert tcp.closed_by_peer()
    finally:
        tcp.close()
    assert_healthy(sip_server)


def test_a_framed_but_malformed_tcp_request_gets_400_and_the_connection_stays(sip_server):
    before = metric(sip_server, "conclave_sip_malformed_total")
    tcp = RawTcp(sip_server)
    try:
        r = tcp.ask(tcp.request("MESSAGE", MANAGER, cseq="1 INVITE", content_type="text/plain",
                                body="#create tcpevil"))
        assert r is not None and (r.code, r.reason) == (400, "CSeq Method Mismatch"), r
        r = tcp.ask(tcp.request("FROB", MANAGER))
        assert r is not None and r.code == 501, r
        assert tcp.ask(tcp.request("OPTIONS", f"sip:{DOMAIN}")).code == 200
    finally:
        tcp.close()
    assert metric(sip_server, "conclave_sip_malformed_total") - before == 2
    assert_healthy(sip_server)


@pytest.mark.parametrize("what", ["endless-header", "huge-content-length"])
def test_oversized_tcp_input_closes_the_connection(sip_server, what):
    tcp = RawTcp(sip_server)
    try:
        if what == "endless-header":
            data = tcp.request("OPTIONS", f"sip:{DOMAIN}")[:-2] + b"X-Junk: " + b"y" * 70_000
        else:
            data = tcp.request("MESSAGE", MANAGER, content_type="text/plain",
                               body="#create huge", content_length=100_000)
        try:
            tcp.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert tcp.closed_by_peer()
        assert tcp.buf == b""
    finally:
        tcp.close()
    assert_healthy(sip_server)


def test_the_tcp_connection_cap(conclave_bin, tmp_path):
    """Beyond `--sip-max-tcp-connections`, a new connection is closed at once; those
    already open keep being served."""
    from conftest import Server
    logs = tmp_path / "logs"
    logs.mkdir()
    server = Server(conclave_bin, tmp_path / "data", logs, args=["--sip-max-tcp-connections", "2"])
    server.start()
    try:
        first, second = RawTcp(server), RawTcp(server)
        for c in (first, second):
            assert c.ask(c.request("OPTIONS", f"sip:{DOMAIN}")).code == 200
        wait_for(lambda: sip_health(server)["tcp_connections"] == 2, "two connections")
        third = socket.create_connection(("127.0.0.1", server.sip_port), timeout=5)
        try:
            assert third.recv(1) == b"", "the third connection was not closed"
        finally:
            third.close()
        assert first.ask(first.request("OPTIONS", f"sip:{DOMAIN}")).code == 200
        first.close()
        second.close()
        wait_for(lambda: sip_health(server)["tcp_connections"] == 0, "connections closed")
    finally:
        server.stop()


# ---- CANCEL, BYE, ACK ----

PCMU_OFFER = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=sendrecv
""".replace("\n", "\r\n")


def invite_then_cancel(udp: RawUdp, room_user: str, user: str):
    """An INVITE and its CANCEL in back-to-back datagrams; returns (INVITE's final,
    CANCEL's final, the INVITE bytes)."""
    branch, call_id = new_branch(), f"cancel-{user}"
    ruri = f"sip:{room_user}@{DOMAIN}"
    common = dict(branch=branch, call_id=call_id, user=user)
    invite = udp.request("INVITE", ruri, content_type="application/sdp", body=PCMU_OFFER,
                         extra=[("Contact", f"<sip:{user}@{udp.sent_by}>")], **common)
    cancel = udp.request("CANCEL", ruri, **common)
    udp.send(invite)
    udp.send(cancel)
    finals = {}
    deadline = time.monotonic() + 10
    while len(finals) < 2 and time.monotonic() < deadline:
        r = udp.recv(1)
        if r is not None and r.code >= 200:
            finals.setdefault(r.header("cseq").split()[1], r)
    order = list(finals)
    return finals.get("INVITE"), finals.get("CANCEL"), invite, order


def _finish(udp, invite: bytes, resp: SipMessage):
    """ACK the INVITE's final; for a 200, also BYE (the call was made)."""
    req = SipMessage(invite)
    if resp.code >= 300:
        udp.send(ack_for(udp, invite, resp))
        return
    user = req.header("from").split("sip:")[1].split("@")[0]
    ruri = req.start.split(" ")[1]
    udp.send(sip_request("ACK", ruri, sent_by=udp.sent_by, call_id=req.header("call-id"),
                         cseq="1 ACK", to=resp.header("to"), user=user))
    r = udp.ask(sip_request("BYE", ruri, sent_by=udp.sent_by, call_id=req.header("call-id"),
                            cseq="2 BYE", to=resp.header("to"), user=user))
    assert r is not None and r.code == 200, r


def test_cancel_of_a_pending_invite_to_an_existing_room(sip_server):
    r = requests.post(f"{sip_server.url}/rooms", headers=sip_server.admin(),
                      json={"room": "conf", "owner": "web:olga"}, timeout=10)
    assert r.status_code == 201, r.text
    udp = RawUdp(sip_server)
    outcomes = []
    try:
        for i in range(10):
            inv, can, invite, order = invite_then_cancel(udp, "chat-conf", f"caller{i}")
            assert can is not None and can.code == 200, can
            assert inv is not None, "the INVITE got no final answer"
            outcomes.append((order, inv.code))
            _finish(udp, invite, inv)
        assert udp.barrier() == []
    finally:
        udp.close()
    wait_for(lambda: not any(m.startswith("sip:caller") for m in members(sip_server, "conf")),
             "no caller left in the room")
    # RFC 3261 §9.2: a CANCEL answered 200 before the INVITE had its final response
    # SHOULD end the INVITE with 487, not let it join the room. (A CANCEL that crosses
    # the 200, answered after it, has no effect: that order is fine.)
    lost = [o for o in outcomes if o[0] == ["CANCEL", "INVITE"] and o[1] != 487]
    assert not lost, f"(order of finals, INVITE status) per attempt: {outcomes}"
    assert_healthy(sip_server, rooms={"conf"})


def test_an_invite_retransmitted_100_times_joins_once(sip_server):
    r = requests.post(f"{sip_server.url}/rooms", headers=sip_server.admin(),
                      json={"room": "conf", "owner": "web:olga"}, timeout=10)
    assert r.status_code == 201, r.text
    udp = RawUdp(sip_server)
    try:
        invite = udp.request("INVITE", f"sip:chat-conf@{DOMAIN}", user="repeat",
                             content_type="application/sdp", body=PCMU_OFFER,
                             extra=[("Contact", f"<sip:repeat@{udp.sent_by}>")])
        for _ in range(100):
            udp.send(invite)
        ok = udp.final()
        assert ok is not None and ok.code == 200, ok
        # Retransmissions after the 200 are the transaction user's business (§13.3.1.4):
        # no second call, no second join.
        assert sip_health(sip_server)["calls"] == 1
        _finish(udp, invite, ok)
        udp.barrier()
    finally:
        udp.close()
    joins = [e for e in audit(sip_server, "conf")
             if e["event_type"] == "room_join" and e["actor"] == "sip:repeat@localhost"]
    assert len(joins) == 1, joins
    assert_healthy(sip_server, rooms={"conf"})


def test_cancel_of_an_invite_to_a_missing_room(sip_server):
    udp = RawUdp(sip_server)
    try:
        inv, can, invite, _ = invite_then_cancel(udp, "chat-nowhere", "caller")
        assert can is not None and can.code in (200, 481), can
        assert inv is not None and inv.code in (404, 487), inv
        _finish(udp, invite, inv)
        assert udp.barrier() == []
    finally:
        udp.close()
    assert_healthy(sip_server)

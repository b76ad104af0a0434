"""Audio calls into rooms: SIPp's INVITE/BYE, refusals mapped to SIP statuses, and three
RTP callers whose mix is checked by frequency (each hears the others, never itself; a
caller muted over HTTP is gone from the others' audio within 100 ms)."""

import time

from conftest import Server
from rtp_caller import Caller
from sip_support import (DOMAIN, Sipp, admin, free_udp_port, members, received_statuses, scenario,
                         wait_for)


def invite_scenario(user: str, room_user: str, expect: int, codecs: str = "0 101",
                    rtpmap: str = "a=rtpmap:0 PCMU/8000", hold_ms: int = 1500) -> str:
    """INVITE with an SDP offer; on 200 ACK, stay, BYE; otherwise ACK the failure."""
    invite = f"""
  <send retrans="500">
    <![CDATA[
      INVITE sip:{room_user}@{DOMAIN} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@{DOMAIN}>;tag=[pid]I[call_number]
      To: <sip:{room_user}@{DOMAIN}>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Max-Forwards: 70
      Contact: <sip:{user}@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

v=0
o=- 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP {codecs}
{rtpmap}
a=rtpmap:101 telephone-event/8000
a=sendrecv
    ]]>
  </send>
  <recv response="100" optional="true"/>
"""
    if expect == 200:
        return invite + f"""
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:{room_user}@{DOMAIN} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@{DOMAIN}>;tag=[pid]I[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:{room_user}@{DOMAIN} SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:{user}@{DOMAIN}>;tag=[pid]I[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"""
    return invite + f"""
  <recv response="{expect}"/>
  <send>
    <![CDATA[
      ACK sip:{room_user}@{DOMAIN} SIP/2.0
      [last_Via:]
      From: <sip:{user}@{DOMAIN}>;tag=[pid]I[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""


def test_a_call_joins_the_room_and_bye_leaves_it(sip_server, tmp_path):
    admin(sip_server, "POST", "/rooms", {"room": "conf", "owner": "web:olga"}, expect=201)
    sipp = Sipp(sip_server, tmp_path / "sipp")
    call = sipp.start(scenario("call", invite_scenario("alice", "chat-conf", 200, hold_ms=2500)),
                      free_udp_port())
    wait_for(lambda: "sip:alice@localhost" in members(sip_server, "conf"), "alice in conf")
    call.wait()
    wait_for(lambda: "sip:alice@localhost" not in members(sip_server, "conf"), "alice gone")
    audit = admin(sip_server, "GET", "/audit?room=conf")["entries"]
    joins = [e for e in audit if e["event_type"] == "room_join"]
    assert joins and joins[-1]["gateway"] == "sip" and joins[-1]["actor"] == "sip:alice@localhost"


def test_denials_map_to_sip_statuses(sip_server, tmp_path):
    admin(sip_server, "POST", "/rooms", {"room": "conf", "owner": "web:olga"}, expect=201)
    admin(sip_server, "POST", "/rooms/conf/bans", {"subject": "sip:eve@localhost"}, expect=201)
    sipp = Sipp(sip_server, tmp_path / "sipp")
    # Banned over HTTP: the next INVITE is 403.
    trace = sipp.run(scenario("banned", invite_scenario("eve", "chat-conf", 403)))
    assert any(s.startswith("SIP/2.0 403") for s in received_statuses(trace))
    # No such room: 404. Only G.729 offered: 488.
    sipp.run(scenario("nowhere", invite_scenario("bob", "chat-nowhere", 404)))
    sipp.run(scenario("g729", invite_scenario("bob", "chat-conf", 488, codecs="18",
                                              rtpmap="a=rtpmap:18 G729/8000")))
    # Every denial is journaled with its reason: the engine's (the ban) and the
    # gateway's own (no common codec).
    wait_for(lambda: any(e["event_type"] == "api_action_denied"
                         for e in admin(sip_server, "GET", "/audit?room=conf")["entries"]),
             "the gateway's refusal journaled")
    audit = admin(sip_server, "GET", "/audit?room=conf")["entries"]
    denied = [e for e in audit if e["event_type"] == "join_denied"]
    assert denied and denied[-1]["event"]["data"]["reason"] == "banned", denied
    refused = [e["event"]["data"] for e in audit if e["event_type"] == "api_action_denied"]
    assert {"action": "sip_invite", "code": "sdp.no_common_codec"}.items() <= refused[-1].items(), refused


def _frames_power(caller: Caller, freq: float, since: float):
    from rtp_caller import goertzel
    return [(t, goertzel(f, freq)) for (t, f) in caller.frames_after(since)]


def test_three_callers_hear_each_other_not_themselves_and_a_mute_is_enforced(sip_server):
    admin(sip_server, "POST", "/rooms", {"room": "conf", "owner": "web:olga"}, expect=201)
    tones = {"alice": 500.0, "bob": 1100.0, "carol": 1700.0}
    callers = {u: Caller(u, sip_server.sip_port, tone=f) for u, f in tones.items()}
    try:
        for c in callers.values():
            assert c.invite("chat-conf") == 200
        t0 = time.monotonic()
        time.sleep(1.5)
        for name, c in callers.items():
            own = c.hears(tones[name], t0 + 0.5)
            others = [c.hears(f, t0 + 0.5) for u, f in tones.items() if u != name]
            assert min(others) > 100 * max(own, 1e-9), (name, own, others)
        # A moderator (the admin) mutes Alice over HTTP: gone from the others' audio.
        admin(sip_server, "POST", "/rooms/conf/mute", {"subject": "sip:alice@localhost"})
        t_mute = time.monotonic()
        time.sleep(0.6)
        for name in ("bob", "carol"):
            before = callers[name].hears(tones["alice"], t0 + 0.5, t_mute)
            frames = _frames_power(callers[name], tones["alice"], t_mute)
            gone_at = None
            for i, (t, p) in enumerate(frames):
                rest = [q for (_, q) in frames[i:i + 10]]
                if len(rest) == 10 and max(rest) < before * 0.01:
                    gone_at = t
                    break
            assert gone_at is not None, (name, before, frames[:20])
            assert gone_at - t_mute <= 0.100, (name, gone_at - t_mute)
            # The others still hear each other.
            other = "carol" if name == "bob" else "bob"
            assert callers[name].hears(tones[other], t_mute + 0.2) > before * 0.1
        # Alice still hears the room.
        assert callers["alice"].hears(tones["bob"], t_mute + 0.2) > 0
        for c in callers.values():
            assert c.bye() == 200
    finally:
        for c in callers.values():
            c.close()


def test_a_kick_over_http_sends_bye(sip_server):
    admin(sip_server, "POST", "/rooms", {"room": "conf", "owner": "web:olga"}, expect=201)
    c = Caller("mallory", sip_server.sip_port)
    try:
        assert c.invite("chat-conf") == 200
        admin(sip_server, "POST", "/rooms/conf/kick", {"subject": "sip:mallory@localhost"})
        # The caller's SIP socket gets the BYE (answered 200 by the caller).
        deadline = time.monotonic() + 5
        got_bye = False
        while time.monotonic() < deadline and not got_bye:
            try:
                data, _ = c.sip.recvfrom(65535)
            except OSError:
                continue
            text = data.decode(errors="replace")
            if text.startswith("BYE "):
                c._answer_request(text)
                got_bye = True
        assert got_bye
        assert "sip:mallory@localhost" not in members(sip_server, "conf")
    finally:
        c.close()


def test_keypad_star_six_mutes_oneself(sip_server):
    admin(sip_server, "POST", "/rooms", {"room": "conf", "owner": "web:olga"}, expect=201)
    c = Caller("dan", sip_server.sip_port)
    try:
        assert c.invite("chat-conf") == 200
        for digit in ("*", "6"):
            c.cseq += 1
            body = f"Signal={digit}\r\nDuration=160\r\n"
            req = c._request("INFO", c.ruri, to_tag=c.remote_tag).replace(
                "Content-Length: 0\r\n\r\n",
                f"Content-Type: application/dtmf-relay\r\nContent-Length: {len(body)}\r\n\r\n{body}")
            c._send(req)
            code, _ = c._final()
            assert code == 200
        wait_for(lambda: members(sip_server, "conf").get("sip:dan@localhost", {}).get("audio") == "self_closed",
                 "dan muted by his own keypad")
        c.bye()
    finally:
        c.close()


def test_calls_and_registered_members_outlive_the_session_lease(conclave_bin, tmp_path):
    """The gateway renews what it holds: a call and a registered IM member stay past
    several lease lengths; an unregistered member's session ends with its lease."""
    from sip_support import User
    logs = tmp_path / "logs"
    logs.mkdir()
    s = Server(conclave_bin, tmp_path / "data", logs,
               args=["--sip-open-registration", "true", "--session-lease-secs", "2"])
    s.start()
    try:
        admin(s, "POST", "/rooms", {"room": "conf", "owner": "web:olga"}, expect=201)
        sipp = Sipp(s, tmp_path / "sipp")
        ivy = User(sipp, "ivy", notices=0)           # registered (expires 300)
        ivy.send("chat-conf", "#join")
        joe = User(sipp, "joe", notices=0, register=False)
        joe.send("chat-conf", "#join")
        c = Caller("kim", s.sip_port)
        try:
            assert c.invite("chat-conf") == 200
            wait_for(lambda: "sip:joe@localhost" not in members(s, "conf"), "joe's lease to end",
                     timeout=15)

            def renewals(who):
                return sum(1 for e in admin(s, "GET", "/audit?room=conf")["entries"]
                           if e["event_type"] == "session_renew"
                           and e["event"]["data"]["principal"] == who)
            # Several lease lengths: each renewal moves the lease on by one.
            wait_for(lambda: renewals("sip:kim@localhost") >= 5 and renewals("sip:ivy@localhost") >= 5,
                     "renewals of the call and the registered member", timeout=30)
            present = members(s, "conf")
            assert "sip:kim@localhost" in present and "sip:ivy@localhost" in present, present
            assert not c._stop.is_set(), "the call was ended"
            assert c.bye() == 200
        finally:
            c.close()
        audit = admin(s, "GET", "/audit?room=conf")["entries"]
        leaves = {e["event"]["data"]["principal"]: e["event"]["data"]["reason"]
                  for e in audit if e["event_type"] == "room_leave"}
        assert leaves.get("sip:joe@localhost") == "lease_expired", leaves
    finally:
        s.stop()


def test_a_held_caller_is_not_mixed_and_resumes(sip_server):
    admin(sip_server, "POST", "/rooms", {"room": "conf", "owner": "web:olga"}, expect=201)
    a, b = Caller("amy", sip_server.sip_port, tone=600.0), Caller("ben", sip_server.sip_port, tone=1300.0)
    try:
        assert a.invite("chat-conf") == 200 and b.invite("chat-conf") == 200
        t0 = time.monotonic()
        wait_for(lambda: b.hears(600.0, t0) > 1000, "ben hears amy")
        # Amy holds (a=sendonly): her line (her PBX's music) is not mixed for the room.
        assert a.reinvite("sendonly") == 200
        t_hold = time.monotonic()
        before = b.hears(600.0, t0, t_hold)
        wait_for(lambda: b.frames_after(t_hold + 0.1)
                 and b.hears(600.0, time.monotonic() - 0.2) < before * 0.01, "amy no longer mixed",
                 timeout=3)
        # She resumes: heard again.
        assert a.reinvite("sendrecv") == 200
        t_back = time.monotonic()
        wait_for(lambda: b.hears(600.0, t_back + 0.1) > 1000, "ben hears amy again")
        assert a.bye() == 200 and b.bye() == 200
    finally:
        a.close()
        b.close()


def test_calling_a_rendezvous_account_joins_its_conference(sip_server):
    admin(sip_server, "POST", "/accounts", {"account": "team42"}, expect=201)
    admin(sip_server, "PUT", "/accounts/team42/rendezvous", {"room": "teamroom"})
    c = Caller("liz", sip_server.sip_port)
    try:
        assert c.invite("team42") == 200
        assert "sip:liz@localhost" in members(sip_server, "teamroom")
        assert c.bye() == 200
    finally:
        c.close()


def test_a_caller_alone_hears_the_hold_music_until_someone_joins(conclave_bin, tmp_path):
    import math
    import struct
    import wave
    music = tmp_path / "hold.wav"
    with wave.open(str(music), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 700 * i / 8000)))
                               for i in range(8000)))
    logs = tmp_path / "logs"
    logs.mkdir()
    s = Server(conclave_bin, tmp_path / "data", logs,
               args=["--sip-open-registration", "true", "--media-hold-music", str(music)])
    s.start()
    a, b = Caller("mia", s.sip_port, tone=1500.0), Caller("ned", s.sip_port, tone=400.0)
    try:
        admin(s, "POST", "/rooms", {"room": "conf", "owner": "web:olga"}, expect=201)
        assert a.invite("chat-conf") == 200
        t0 = time.monotonic()
        wait_for(lambda: a.hears(700.0, t0) > 1000, "mia hears the hold music")
        assert b.invite("chat-conf") == 200
        t1 = time.monotonic()
        music = a.hears(700.0, t0, t1)
        # The music stops once she is not alone, and she hears ned.
        wait_for(lambda: a.hears(700.0, time.monotonic() - 0.2) < music * 0.01, "the music to stop",
                 timeout=3)
        assert a.hears(400.0, time.monotonic() - 0.2) > 1000
        assert a.bye() == 200 and b.bye() == 200
    finally:
        a.close()
        b.close()
        s.stop()


def test_keypad_star_one_over_rfc4733_raises_the_hand(sip_server):
    admin(sip_server, "POST", "/rooms", {"room": "conf", "owner": "web:olga"}, expect=201)
    c = Caller("ola", sip_server.sip_port)
    try:
        assert c.invite("chat-conf") == 200
        c.send_dtmf("*")
        c.send_dtmf("1")
        wait_for(lambda: members(sip_server, "conf").get("sip:ola@localhost", {}).get("hand_raised"),
                 "ola's hand raised by her keypad")
        c.send_dtmf("*")
        c.send_dtmf("1")
        wait_for(lambda: members(sip_server, "conf").get("sip:ola@localhost", {}).get("hand_raised")
                 is False, "ola's hand lowered again")
        assert c.bye() == 200
    finally:
        c.close()

"""Kamailio-IMC conferencing over SIP MESSAGE, driven by SIPp users against the real
binary, with chat crossing between SIP and HTTP. Everything runs on 127.0.0.1.

Each SIP user is a SIPp listener its registration points at (the gateway's MESSAGEs
arrive there, each a transaction of its own, as Kamailio sends them) and SIPp clients
sending its requests."""

import requests

from sip_support import (Sipp, User, members, message_step, received_statuses, rest, scenario,
                         wait_for)


def test_imc_commands_and_chat_across_sip_and_http(sip_server, tmp_path):
    sipp = Sipp(sip_server, tmp_path / "sipp")
    # Alice hears: room created, bob joined, bob's line, carol (web) joined, carol's line.
    alice = User(sipp, "alice", notices=5)
    # Bob hears: joined, carol joined, carol's line, two refusals.
    bob = User(sipp, "bob", notices=5)
    alice.send("chat-manager", "#create standup")
    # The room made over SIP is the room REST sees, with Alice as owner.
    assert "sip:alice@localhost" in members(sip_server, "standup")
    room = rest(sip_server, "GET", "/rooms/standup", sip_server.admin_token)
    assert "sip:alice@localhost" in str(room), room

    bob.send("chat-standup", "#join")
    bob.send("chat-standup", "hello from sip")
    # A web participant joins and reads Bob's line, then speaks.
    web = rest(sip_server, "POST", "/rooms/standup/join", json={"as": "web:carol"}, expect=201)
    history = rest(sip_server, "GET", "/rooms/standup/messages", web["token"])
    assert "hello from sip" in str(history), history
    rest(sip_server, "POST", "/rooms/standup/messages", web["token"], {"body": "hello from the web"},
         expect=201)
    # Only the owner may destroy the room or remove its owner: refused with a notice.
    bob.send("chat-standup", "#destroy")
    bob.send("chat-standup", "#remove alice")

    a, b = alice.notices(), bob.notices()
    assert a[0] == "*** Room was created", a
    assert "*** <bob@localhost> has joined the room" in a, a
    assert "<bob@localhost>: hello from sip" in a, a
    assert any(x.endswith(": hello from the web") for x in a), a
    assert b[0] == "*** You have joined the room", b
    assert any(x.endswith(": hello from the web") for x in b), b
    # Bob's own line never came back to him.
    assert not any("hello from sip" in x for x in b), b
    refusals = [x for x in b if x.startswith("***") and "joined" not in x]
    assert len(refusals) == 2, b
    assert any("owner" in x.lower() for x in refusals), b
    assert "sip:alice@localhost" in members(sip_server, "standup")
    # Kamailio's imc MI commands: the SIP room and its members like any other.
    out = sip_server.cli("list-rooms")
    assert "ROOM: standup\n  OWNER: sip:alice@localhost\n" in out.stdout, out
    out = sip_server.cli("list-members", "standup")
    assert "sip:bob@localhost" in out.stdout and "sip:alice@localhost" in out.stdout, out
    metrics = rest(sip_server, "GET", "/metrics")
    assert "conclave_active_rooms 1" in metrics and "conclave_sip_deliveries_total" in metrics


def test_private_room_invite_accept_deny_and_owner_exit(sip_server, tmp_path):
    sipp = Sipp(sip_server, tmp_path / "sipp")
    # Created; dave attempted; carol, dave invited; carol joined; dave declined; destroyed.
    alice = User(sipp, "alice", notices=7)
    carol = User(sipp, "carol", notices=2)   # invitation, joined
    dave = User(sipp, "dave", notices=3)     # refusal, invitation, declined
    alice.send("chat-manager", "#create secret private")
    dave.send("chat-secret", "#join")        # refused: by invitation only
    alice.send("chat-secret", "#invite carol")
    alice.send("chat-secret", "#invite dave")
    wait_for(lambda: len(rest(sip_server, "GET", "/rooms/secret/invitations",
                              sip_server.admin_token)["invitations"]) >= 2, "two invitations")
    carol.send("chat-secret", "#accept")
    dave.send("chat-secret", "#deny")
    c, d = carol.notices(), dave.notices()
    assert any("invites you" in x and "#accept" in x for x in c), c
    assert "*** You have joined the room" in c, c
    assert "invitation" in d[0].lower(), d
    assert any("invites you" in x for x in d), d
    assert "*** You have declined the invitation" in d, d
    assert "sip:carol@localhost" in members(sip_server, "secret")
    assert "sip:dave@localhost" not in members(sip_server, "secret")
    # The owner's #exit destroys the room (the seed's behaviour).
    alice.send("chat-secret", "#exit")
    r = requests.get(f"{sip_server.url}/rooms/secret", headers=sip_server.admin(), timeout=10)
    assert r.status_code == 404
    a = alice.notices()
    assert a[0] == "*** Room was created", a
    assert "*** Room has been destroyed" in a, a


def test_a_ban_over_http_refuses_the_sip_identity(sip_server, tmp_path):
    sipp = Sipp(sip_server, tmp_path / "sipp")
    rest(sip_server, "POST", "/rooms", sip_server.admin_token,
         {"room": "lobby", "owner": "web:olga"}, expect=201)
    rest(sip_server, "POST", "/rooms/lobby/bans", sip_server.admin_token,
         {"subject": "sip:eve@localhost", "reason": "spam"}, expect=201)
    eve = User(sipp, "eve", notices=1)
    eve.send("chat-lobby", "#join")
    assert "banned" in eve.notices()[0].lower()
    assert "sip:eve@localhost" not in members(sip_server, "lobby")
    # A chat line from a non-member is refused with a status, not a notice.
    trace = eve.send("chat-lobby", "let me in", expect=403)
    assert any(s.startswith("SIP/2.0 403") for s in received_statuses(trace))


def test_unknown_command_gets_help_and_unknown_room_404(sip_server, tmp_path):
    sipp = Sipp(sip_server, tmp_path / "sipp")
    zed = User(sipp, "zed", notices=1)
    zed.send("chat-manager", "#dance")
    assert "#help" in zed.notices()[0]
    zed.send("chat-nowhere", "hello", expect=404)
    zed.send("someone-else", "hello", expect=404)
    # Another domain is not ours.
    sipp.run(scenario("other-domain", message_step("zed", "chat-x", "hi", 404).replace(
        "MESSAGE sip:chat-x@localhost", "MESSAGE sip:chat-x@example.org")))

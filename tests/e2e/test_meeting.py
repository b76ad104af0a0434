"""A whole meeting over HTTP against the real binary, then a restart that shows the
state survived. Everything runs on 127.0.0.1."""

import requests


def call(server, method, path, token=None, json=None, expect=200):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.request(method, f"{server.url}{path}", headers=headers, json=json, timeout=30)
    assert r.status_code == expect, f"{method} {path} -> {r.status_code} {r.text}"
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


def test_a_whole_meeting_survives_a_restart(server):
    admin = server.admin_token
    # Create (anonymous, VROOM-style: the creator becomes owner and gets a token).
    created = call(server, "POST", "/rooms", json={"room": "standup", "as": "web:alice", "private": True}, expect=201)
    alice = created["token"]
    assert created["owners"] == ["web:alice"]
    # Reserve with an owner password.
    call(server, "POST", "/rooms/standup/reserve", alice, {"owner_password": "0wner-pw"})
    # Invite Bob; the private room refuses anyone uninvited.
    inv = call(server, "POST", "/rooms/standup/invitations", alice, {"invitee": "web:bob"}, expect=201)
    err = call(server, "POST", "/rooms/standup/join", json={"as": "web:mallory"}, expect=403)
    assert err["error"]["code"] == "membership.not_invited"
    assert err["error"]["correlation_id"]
    # Join with the invitation.
    bob_join = call(server, "POST", "/rooms/standup/join", json={"as": "web:bob", "invitation": inv["invitation"]}, expect=201)
    bob = bob_join["token"]
    assert bob_join["role"] == "member"
    # An email invitation (bearer, single use) brings Carol.
    mail = call(server, "POST", "/rooms/standup/invitations", alice, {"invitee": "mailto:carol@example.org"}, expect=201)
    # Without an SMTP relay the inviter is given the link's secret to hand over.
    carol_join = call(server, "POST", "/rooms/standup/join", json={"as": "web:carol", "invitation_secret": mail["secret"]}, expect=201)
    carol, carol_key = carol_join["token"], carol_join["guest_key"]
    # Promote Bob to moderator (chairman).
    call(server, "POST", "/rooms/standup/roles", alice, {"subject": "web:bob", "role": "moderator"})
    # Bob mutes Carol; Carol cannot mute Bob.
    call(server, "POST", "/rooms/standup/mute", bob, {"subject": "web:carol"})
    err = call(server, "POST", "/rooms/standup/mute", carol, {"subject": "web:bob"}, expect=403)
    assert err["error"]["code"] == "perm.not_moderator"
    members = call(server, "GET", "/rooms/standup/members", carol)["members"]
    assert {m["principal"]: m["audio"] for m in members}["web:carol"] == "moderator"
    # Kick, then ban.
    call(server, "POST", "/rooms/standup/kick", bob, {"subject": "web:carol", "reason": "noise"})
    call(server, "POST", "/rooms/standup/bans", bob, {"subject": "web:carol", "reason": "spam"}, expect=201)
    # The kick ended Carol's session: her token is dead.
    err = call(server, "POST", "/rooms/standup/join", carol, {}, expect=401)
    assert err["error"]["code"] == "auth.token_revoked"
    # Her name is hers alone (it has standing in the room): without its key, refused.
    err = call(server, "POST", "/rooms/standup/join", json={"as": "web:carol"}, expect=403)
    assert err["error"]["code"] == "auth.guest_key_required"
    # With it, the ban answers, with the stable code.
    err = call(server, "POST", "/rooms/standup/join", json={"as": "web:carol", "guest_key": carol_key}, expect=403)
    assert err["error"]["code"] == "membership.banned"

    # The admin surface refuses the unauthenticated, and the admin CLI works.
    assert call(server, "GET", "/accounts", expect=401)["error"]["code"] == "auth.required"
    assert call(server, "GET", "/audit", token="not-the-token", expect=401)["error"]["code"] == "auth.invalid_token"
    call(server, "POST", "/accounts", admin, {"account": "f3345f27", "display_name": "dummy"}, expect=201)
    out = server.cli("add-moderator", "1dbcb0f5", "f3345f27")
    assert out.returncode == 0, out.stderr
    out = server.cli("ban-contact", "2dbcb0f5", "f3345f27")
    assert out.returncode == 0, out.stderr
    out = server.cli("disable-account", "f3345f27")
    assert out.returncode == 0, out.stderr
    out = server.cli("list-accounts")
    assert "f3345f27 (dummy) [disabled]" in out.stdout, out
    out = server.cli("enable-account", "f3345f27")
    assert out.returncode == 0, out.stderr
    out = server.cli("list-account-details")
    assert "Account_username: f3345f27\n" in out.stdout and "Account_enable: true\n" in out.stdout, out
    out = server.cli("list-moderators")
    assert "Moderators for account f3345f27:\n  - account:1dbcb0f5\n" in out.stdout, out
    out = server.cli("list-banned-contacts")
    assert "  - account:2dbcb0f5\n" in out.stdout, out
    out = server.cli("list-contacts")
    assert "anyone" in out.stdout, out
    out = server.cli("list-rooms")
    assert "ROOM: standup\n  OWNER: web:alice\n  MEMBERS: 1\n" in out.stdout, out
    out = server.cli("list-members", "standup")
    assert "MEMBER: web:bob (moderator)" in out.stdout and "web:carol" not in out.stdout, out
    bad = server.cli("list-rooms", "--token", "wrong-token-wrong-token")
    assert bad.returncode != 0 and "auth.invalid_token" in bad.stderr, bad

    # OpenAPI, metrics.
    doc = call(server, "GET", "/openapi.json")
    assert doc["openapi"].startswith("3.1")
    for path in ["/rooms", "/rooms/{room}/join", "/rooms/{room}/bans", "/audit", "/about/health", "/metrics"]:
        assert path in doc["paths"], path
    metrics = call(server, "GET", "/metrics")
    assert "conclave_active_rooms 1" in metrics
    assert 'conclave_rejections_total{code="membership.banned"} 1' in metrics
    assert 'conclave_commands_total{command="join"}' in metrics
    assert "conclave_append_latency_seconds_count" in metrics
    head_before = call(server, "GET", "/about/health")["journal_head"]
    assert head_before > 10

    # Restart: SIGTERM by PID, start again on the same data directory.
    assert server.stop() == 0, server.stderr()
    server.start()
    health = call(server, "GET", "/about/health")
    assert health["journal_head"] == head_before
    room = call(server, "GET", "/rooms/standup", admin)
    assert room["reserved"] is True and room["private"] is True
    assert room["affiliations"]["web:alice"] == "owner"
    assert room["affiliations"]["web:bob"] == "moderator"
    bans = call(server, "GET", "/rooms/standup/bans", admin)["bans"]
    assert [b["subject"] for b in bans] == ["web:carol"]
    invitations = call(server, "GET", "/rooms/standup/invitations", admin)["invitations"]
    assert sorted(i["state"] for i in invitations) == ["used", "used"]
    # Participant tokens survive a restart (signed), and Bob is still present.
    assert call(server, "GET", "/me", alice)["identity"] == "web:alice"
    assert [m["principal"] for m in call(server, "GET", "/rooms/standup/members", bob)["members"]] == ["web:bob"]
    # The ban still holds for the same identity.
    err = call(server, "POST", "/rooms/standup/join", json={"as": "web:carol", "guest_key": carol_key, "invitation": mail["invitation"]}, expect=403)
    assert err["error"]["code"] in ("membership.banned", "invitation.closed", "membership.not_invited")
    err = call(server, "POST", "/rooms/standup/join", admin, {"as": "web:carol"}, expect=403)
    assert err["error"]["code"] == "membership.banned"
    # The owner password of the reserved room brings ownership back; Alice destroys it.
    # The owner password brings ownership back to whoever gives it (here Alice, with her
    # token; a new guest would need another name or Alice's guest key).
    again = call(server, "POST", "/rooms/standup/join", alice, {"owner_password": "0wner-pw"}, expect=201)
    assert again["role"] == "owner"
    call(server, "DELETE", "/rooms/standup", again["token"])
    err = call(server, "GET", "/rooms/standup", admin, expect=404)
    assert err["error"]["code"] == "room.not_found"
    # The audit trail kept everything, the denials included.
    audit = call(server, "GET", "/audit?room=standup&limit=1000", admin)["entries"]
    types = [e["event_type"] for e in audit]
    for t in ["room_create", "room_reserve", "send_invitation", "room_join", "peer_role", "audio_mute", "peer_kick", "ban", "room_delete"]:
        assert t in types, (t, types)
    assert any(e["gateway"] == "web" and e["protocol"] == "http" for e in audit)
    # Obfuscated remote addresses: never the raw loopback address.
    assert all(not (e["remote_addr"] or "").startswith("127.") for e in audit)


def test_garbage_is_refused_politely(server):
    for body in [b"{", b"[]", b"\xff\xfe", b'{"room": 1}', b"null"]:
        r = requests.post(f"{server.url}/rooms", data=body, headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "input.invalid"
    r = requests.get(f"{server.url}/about/health", timeout=10)
    assert r.status_code == 200

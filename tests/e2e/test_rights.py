"""Rights (issue 11), against the real binary: who may invite is a room setting
(moderators and owners by default); an invitation spares the access password only when
its issuer could have let its holder in; the server password gates room creation; guests
creating rooms and guests at all are server settings."""

import requests

from conftest import Server


def post(server, path, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{server.url}{path}", json=body, headers=headers, timeout=30)


def code(r):
    return r.json()["error"]["code"]


def started(conclave_bin, tmp_path, name, **env):
    logs = tmp_path / f"logs-{name}"
    logs.mkdir()
    server = Server(conclave_bin, tmp_path / f"data-{name}", logs, env=env)
    server.start()
    return server


def test_invitations_follow_the_issuers_rights(server):
    # Alice (a guest) creates a room with an access password: she owns it.
    r = post(server, "/rooms", {"room": "club", "as": "web:alice", "password": "door"})
    assert r.status_code == 201, r.text
    alice = r.json()["token"]
    r = post(server, "/rooms/club/join", {"as": "web:bob", "password": "door"})
    assert r.status_code == 201, r.text
    bob = r.json()["token"]

    # A plain member's invitation is refused by default.
    r = post(server, "/rooms/club/invitations", {"invitee": "web:carol"}, bob)
    assert r.status_code == 403, r.text
    assert code(r) == "perm.not_moderator"
    room = requests.get(f"{server.url}/rooms/club", headers={"Authorization": f"Bearer {alice}"},
                        timeout=10).json()
    assert room["invite"] == "moderators", room

    # A moderator's invitation lets its holder in without the password.
    r = post(server, "/rooms/club/roles", {"subject": "web:bob", "role": "moderator"}, alice)
    assert r.status_code == 200, r.text
    r = post(server, "/rooms/club/invitations", {"invitee": "web:carol"}, bob)
    assert r.status_code == 201, r.text
    from_moderator = r.json()["invitation"]
    r = post(server, "/rooms/club/join", {"as": "web:carol", "invitation": from_moderator})
    assert r.status_code == 201, r.text

    # The owner lets members invite; a member's invitation does not skip the password.
    r = requests.patch(f"{server.url}/rooms/club", json={"invite": "members"},
                       headers={"Authorization": f"Bearer {alice}"}, timeout=30)
    assert r.status_code == 200, r.text
    r = post(server, "/rooms/club/join", {"as": "web:dave", "password": "door"})
    assert r.status_code == 201, r.text
    dave = r.json()["token"]
    r = post(server, "/rooms/club/invitations", {"invitee": "web:erin"}, dave)
    assert r.status_code == 201, r.text
    from_member = r.json()["invitation"]
    r = post(server, "/rooms/club/join", {"as": "web:erin", "invitation": from_member})
    assert r.status_code == 401, r.text
    assert code(r) == "auth.password_required"
    r = post(server, "/rooms/club/join", {"as": "web:erin", "invitation": from_member, "password": "wrong"})
    assert r.status_code == 401, r.text
    assert code(r) == "auth.wrong_password"
    r = post(server, "/rooms/club/join", {"as": "web:erin", "invitation": from_member, "password": "door"})
    assert r.status_code == 201, r.text

    # Only the three settings can be chosen.
    r = requests.patch(f"{server.url}/rooms/club", json={"invite": "members_unless_private"},
                       headers={"Authorization": f"Bearer {alice}"}, timeout=30)
    assert r.status_code == 400, r.text


def test_the_server_password_gates_room_creation(conclave_bin, tmp_path):
    server = started(conclave_bin, tmp_path, "srvpw", CONCLAVE_SERVER_PASSWORD="s3rver")
    try:
        r = post(server, "/rooms", {"room": "den", "as": "web:gina"})
        assert r.status_code == 401, r.text
        assert code(r) == "auth.password_required"
        r = post(server, "/rooms", {"room": "den", "as": "web:gina", "server_password": "guess"})
        assert r.status_code == 401, r.text
        assert code(r) == "auth.wrong_password"
        r = post(server, "/rooms", {"room": "den", "as": "web:gina", "server_password": "s3rver"})
        assert r.status_code == 201, r.text
        assert r.json()["owners"] == ["web:gina"]
        # The admin never needs it.
        r = post(server, "/rooms", {"room": "hall", "owner": "web:hugo"}, server.admin_token)
        assert r.status_code == 201, r.text
        # The refusals are in the journal, as refused entries.
        audit = requests.get(f"{server.url}/audit", headers=server.admin(), timeout=10)
        assert audit.status_code == 200, audit.text
        denied = [e for e in audit.json()["entries"] if e["event_type"] == "join_denied"]
        assert len(denied) == 2, denied
    finally:
        server.stop()


def test_guests_may_create_is_a_server_setting(conclave_bin, tmp_path):
    server = started(conclave_bin, tmp_path, "noguests", CONCLAVE_GUESTS_MAY_CREATE="false")
    try:
        policy = requests.get(f"{server.url}/server/policy", headers=server.admin(), timeout=10).json()
        assert policy["guests_may_create"] is False, policy
        assert policy["accounts_only"] is False, policy
        r = post(server, "/rooms", {"room": "den", "as": "web:gina"})
        assert r.status_code == 403, r.text
        assert code(r) == "perm.guests_may_not_create"
        r = post(server, "/rooms", {"room": "den", "owner": "web:gina"}, server.admin_token)
        assert r.status_code == 201, r.text
        # Guests still join.
        r = post(server, "/rooms/den/join", {"as": "web:hugo"})
        assert r.status_code == 201, r.text
    finally:
        server.stop()


def test_accounts_only_admits_only_linked_identities(conclave_bin, tmp_path):
    server = started(conclave_bin, tmp_path, "accounts", CONCLAVE_ACCOUNTS_ONLY="true")
    try:
        admin = server.admin_token
        assert post(server, "/accounts", {"account": "ivy"}, admin).status_code == 201
        r = post(server, "/accounts/ivy/identities", {"address": "sip:ivy@example.org"}, admin)
        assert r.status_code == 200, r.text
        r = post(server, "/rooms", {"room": "den", "owner": "account:ivy"}, admin)
        assert r.status_code == 201, r.text
        r = post(server, "/rooms/den/join", {"as": "web:gina"})
        assert r.status_code == 403, r.text
        assert code(r) == "auth.account_required"
        r = post(server, "/rooms", {"room": "mine", "as": "web:gina"})
        assert r.status_code == 403, r.text
        assert code(r) == "auth.account_required"
        r = post(server, "/rooms/den/join", {"as": "sip:ivy@example.org"}, admin)
        assert r.status_code == 201, r.text
    finally:
        server.stop()

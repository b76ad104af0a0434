"""Bans by address, as Mumble's: a guest banned by a moderator cannot come back under a
new name from the same address, but is admitted from another one; others already in the
room from that address keep their session; moderators never see the address (only its
keyed hash) and cannot name one; the admin bans an IP address server-wide (room
creations from it refused too), lists and lifts it, over REST and `conclave admin`.

Two loopback source addresses (127.0.3.1 and 127.0.3.2) stand for two places."""

import json

import requests

from conftest import session_from

HOME = "127.0.3.1"
ELSEWHERE = "127.0.3.2"


def join(server, http, room, name):
    return http.post(f"{server.url}/rooms/{room}/join", json={"as": f"web:{name}"}, timeout=30)


def members(server, room):
    r = requests.get(f"{server.url}/rooms/{room}/members", headers=server.admin(), timeout=10)
    assert r.status_code == 200, r.text
    return {m["principal"] for m in r.json()["members"]}


def code(r):
    return r.json()["error"]["code"]


def test_a_guest_banned_by_address_is_refused_under_a_new_name_and_admitted_elsewhere(server):
    home, elsewhere = session_from(HOME), session_from(ELSEWHERE)
    r = requests.post(f"{server.url}/rooms", json={"room": "standup", "as": "web:alice"}, timeout=30)
    assert r.status_code == 201, r.text
    alice = {"Authorization": f"Bearer {r.json()['token']}"}

    # Bob and Carol come from the same place (a shared NAT).
    assert join(server, home, "standup", "bob").status_code == 201
    assert join(server, home, "standup", "carol").status_code == 201
    assert {"web:bob", "web:carol"} <= members(server, "standup")

    # A moderator cannot name an address; they ban the address of someone present.
    r = requests.post(f"{server.url}/rooms/standup/address-bans", json={"ip": HOME}, headers=alice, timeout=10)
    assert r.status_code == 403, r.text
    assert code(r) == "perm.not_admin"
    r = requests.post(f"{server.url}/rooms/standup/address-bans",
                      json={"subject": "web:bob", "reason": "spam"}, headers=alice, timeout=10)
    assert r.status_code == 201, r.text
    assert HOME not in r.text, r.text

    # Bob is out; Carol, at the same address, keeps her session.
    present = members(server, "standup")
    assert "web:bob" not in present and "web:carol" in present, present

    # Bob back as "robert" from the same address: refused as banned.
    r = join(server, home, "standup", "robert")
    assert r.status_code == 403, r.text
    assert code(r) == "membership.banned"
    # From another address, he is welcome.
    r = join(server, elsewhere, "standup", "robert")
    assert r.status_code == 201, r.text

    # The moderator's list shows the ban by id and keyed hash, never the address.
    r = requests.get(f"{server.url}/rooms/standup/address-bans", headers=alice, timeout=10)
    assert r.status_code == 200, r.text
    [ban] = r.json()["address_bans"]
    assert ban["address"].startswith("h:"), ban
    assert ban["subject"] == "web:bob", ban
    assert HOME not in r.text, r.text

    # The denial is journaled with the reason, as any banned join.
    r = requests.get(f"{server.url}/audit", params={"room": "standup", "type": "join_denied"},
                     headers=server.admin(), timeout=10)
    assert r.status_code == 200, r.text
    assert '"banned"' in json.dumps(r.json()["entries"]), r.text

    # The moderator lifts it by its id; the address is welcome again.
    r = requests.delete(f"{server.url}/rooms/standup/address-bans/{ban['id']}", headers=alice, timeout=10)
    assert r.status_code == 200, r.text
    assert join(server, home, "standup", "bob").status_code == 201


def test_the_admin_bans_an_ip_address_server_wide(server):
    home, elsewhere = session_from(HOME), session_from(ELSEWHERE)
    assert requests.post(f"{server.url}/rooms", json={"room": "standup", "as": "web:alice"},
                         timeout=30).status_code == 201

    # Not for anyone but the admin.
    r = requests.post(f"{server.url}/address-bans", json={"ip": HOME}, timeout=10)
    assert r.status_code == 401, r.text

    banned = server.cli("ban-address", HOME, "--reason", "flooding", "--duration-secs", "3600")
    assert banned.returncode == 0, banned.stderr
    assert "ADDRESS BAN: " in banned.stdout, banned.stdout

    # Joining and creating rooms from there is refused, under any name.
    r = join(server, home, "standup", "mallory")
    assert r.status_code == 403, r.text
    assert code(r) == "membership.banned"
    r = home.post(f"{server.url}/rooms", json={"room": "elsewhere", "as": "web:mallory2"}, timeout=30)
    assert r.status_code == 403, r.text
    assert code(r) == "membership.banned"
    # Another address is not concerned.
    assert join(server, elsewhere, "standup", "mallory").status_code == 201

    listed = server.cli("list-address-bans")
    assert listed.returncode == 0, listed.stderr
    assert "ADDRESS BAN: " in listed.stdout and "flooding" in listed.stdout, listed.stdout
    r = requests.get(f"{server.url}/address-bans", headers=server.admin(), timeout=10)
    assert r.status_code == 200, r.text
    [ban] = r.json()["address_bans"]
    assert ban["until"] is not None, ban

    # A network cannot be banned while addresses are obfuscated (the default).
    r = requests.post(f"{server.url}/address-bans", json={"ip": "127.0.3.0/24"}, headers=server.admin(),
                      timeout=10)
    assert r.status_code == 409, r.text
    assert code(r) == "ban.network_while_obfuscated"

    # Lifted by the plain IP address, through the CLI.
    lifted = server.cli("unban-address", HOME)
    assert lifted.returncode == 0, lifted.stderr
    assert requests.get(f"{server.url}/address-bans", headers=server.admin(),
                        timeout=10).json()["address_bans"] == []
    assert join(server, home, "standup", "mallory3").status_code == 201

"""Autoban behaves like Mumble's: ten wrong passwords from one address refuse new attempts
from it, but end no one's live session (not the owner's, not a bystander's at the same
address); asking for the password is not a guess; the admin is never autobanned, lists
autobans and lifts them."""

import requests

from conftest import Server


def join(server, room, name, **body):
    return requests.post(f"{server.url}/rooms/{room}/join", json={"as": f"web:{name}", **body}, timeout=30)


def members(server, room):
    r = requests.get(f"{server.url}/rooms/{room}/members", headers=server.admin(), timeout=10)
    assert r.status_code == 200, r.text
    return {m["principal"] for m in r.json()["members"]}


def test_autoban_refuses_new_attempts_and_ends_no_session(conclave_bin, tmp_path):
    server = Server(conclave_bin, tmp_path / "data", tmp_path)
    server.start()
    try:
        r = requests.post(f"{server.url}/rooms", json={"room": "vault", "as": "web:alice", "password": "right"},
                          timeout=30)
        assert r.status_code == 201, r.text
        created = r.json()
        r = requests.post(f"{server.url}/rooms/vault/join", json={},
                          headers={"Authorization": f"Bearer {created['token']}"}, timeout=30)
        assert r.status_code == 201, r.text
        assert join(server, "vault", "dave", password="right").status_code == 201
        present = members(server, "vault")
        assert {"web:alice", "web:dave"} <= present, present

        # Asking for the password (no password given) twelve times is not guessing.
        for _ in range(12):
            r = join(server, "vault", "erin")
            assert r.status_code == 401, r.text
            assert r.json()["error"]["code"] == "auth.password_required"
        autobans = requests.get(f"{server.url}/autobans", headers=server.admin(), timeout=10)
        assert autobans.status_code == 200, autobans.text
        assert autobans.json()["autobans"] == []

        # Ten wrong passwords from this address: autoban.
        codes = [join(server, "vault", "mallory", password=f"guess{i}").json()["error"]["code"]
                 for i in range(10)]
        assert codes == ["auth.wrong_password"] * 10, codes
        listed = requests.get(f"{server.url}/autobans", headers=server.admin(), timeout=10).json()["autobans"]
        kinds = {a["kind"] for a in listed}
        assert kinds == {"identity", "remote"}, listed

        # Nobody already in the room was thrown out...
        assert {"web:alice", "web:dave"} <= members(server, "vault")
        # ...but a new attempt from the address is refused, even with the right password.
        r = join(server, "vault", "frank", password="right")
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "membership.banned"

        # The admin, from the same address, is not autobanned, and lifts the address's one
        # by its plain IP address.
        r = requests.delete(f"{server.url}/autobans/remote/127.0.0.1", headers=server.admin(), timeout=10)
        assert r.status_code == 200, r.text
        listed = requests.get(f"{server.url}/autobans", headers=server.admin(), timeout=10).json()["autobans"]
        assert [a["kind"] for a in listed] == ["identity"], listed
        assert join(server, "vault", "frank", password="right").status_code == 201
        # Mallory's own name stays autobanned until lifted by name.
        assert join(server, "vault", "mallory", password="right").status_code == 403
        # The same through `conclave admin`.
        listed = server.cli("list-autobans")
        assert listed.returncode == 0, listed.stderr
        assert "AUTOBAN: identity web:mallory until " in listed.stdout, listed.stdout
        lifted = server.cli("lift-autoban", "identity", "web:mallory")
        assert lifted.returncode == 0, lifted.stderr
        assert requests.get(f"{server.url}/autobans", headers=server.admin(), timeout=10).json()["autobans"] == []

        # Not for anyone else.
        r = requests.get(f"{server.url}/autobans", timeout=10)
        assert r.status_code == 401, r.text
    finally:
        server.stop()

"""Per-address rate limits: a stranger repeating room entries or chat from one address is
told to slow down (429 rate.limited with Retry-After); the admin is not limited."""

import requests

from conftest import Server, session_from


def start(conclave_bin, tmp_path, **env):
    server = Server(conclave_bin, tmp_path / "data", tmp_path, env=env)
    server.start()
    return server


def test_entries_beyond_the_limit_are_refused_with_retry_after(conclave_bin, tmp_path):
    server = start(conclave_bin, tmp_path, CONCLAVE_RATE_ENTRIES_PER_MIN="5")
    try:
        answers = [requests.post(f"{server.url}/rooms", json={"room": f"r{i}", "as": f"web:g{i}"},
                                 timeout=10) for i in range(6)]
        assert [a.status_code for a in answers] == [201] * 5 + [429], [a.text for a in answers]
        assert answers[-1].json()["error"]["code"] == "rate.limited"
        assert int(answers[-1].headers["Retry-After"]) >= 1
        # The admin is not limited.
        r = requests.post(f"{server.url}/rooms", headers=server.admin(), json={"room": "admin-room", "owner": "web:owner"},
                          timeout=10)
        assert r.status_code == 201, r.text
    finally:
        server.stop()


def test_chat_beyond_the_limit_is_refused(conclave_bin, tmp_path):
    server = start(conclave_bin, tmp_path, CONCLAVE_RATE_CHAT_PER_MIN="3")
    try:
        requests.post(f"{server.url}/rooms", json={"room": "r", "as": "web:alice"}, timeout=10)
        bob = requests.post(f"{server.url}/rooms/r/join", json={"as": "web:bob"}, timeout=10).json()
        auth = {"Authorization": f"Bearer {bob['token']}"}
        codes = [requests.post(f"{server.url}/rooms/r/messages", headers=auth, json={"body": f"m{i}"},
                               timeout=10).status_code for i in range(4)]
        assert codes == [201, 201, 201, 429], codes
    finally:
        server.stop()


def test_one_identity_is_limited_across_addresses(conclave_bin, tmp_path):
    server = start(conclave_bin, tmp_path, CONCLAVE_RATE_ENTRIES_PER_MIN="3")
    try:
        for i in range(4):
            r = requests.post(f"{server.url}/rooms", headers=server.admin(),
                              json={"room": f"r{i}", "owner": "web:owner"}, timeout=10)
            assert r.status_code == 201, r.text
        first = session_from("127.0.4.1").post(f"{server.url}/rooms/r0/join", json={"as": "web:bob"}, timeout=10)
        assert first.status_code == 201, first.text
        auth = {"Authorization": f"Bearer {first.json()['token']}"}
        codes = [session_from(f"127.0.4.{2 + i}").post(f"{server.url}/rooms/r{1 + i}/join", headers=auth, json={},
                                                 timeout=10) for i in range(3)]
        # Each address entered once (under its limit of 3); the identity's fourth entry
        # in the minute is refused wherever it comes from.
        assert [c.status_code for c in codes] == [201, 201, 429], [c.text for c in codes]
        assert "this identity" in codes[-1].json()["error"]["message"]
        # Another identity at the same address is not held by bob's limit.
        r = session_from("127.0.4.4").post(f"{server.url}/rooms/r3/join", json={"as": "web:carol"}, timeout=10)
        assert r.status_code == 201, r.text
    finally:
        server.stop()

"""Scoped, time-limited operator credentials for automation: the master admin token mints
one for some API areas; it acts as the admin there and nowhere else, read-only ones only
read, it cannot mint another, and what it does is journaled as authorized by it."""

import requests

from conftest import Server


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def mint(server, **body):
    return requests.post(f"{server.url}/credentials", headers=server.admin(), json=body, timeout=10)


def test_a_credential_acts_as_the_admin_in_its_areas_only(conclave_bin, tmp_path):
    server = Server(conclave_bin, tmp_path / "data", tmp_path)
    server.start()
    try:
        r = mint(server, label="ci-bot", scopes=["moderation"], ttl_secs=600)
        assert r.status_code == 201, r.text
        ci = r.json()
        assert ci["credential"].startswith("ca1.") and ci["scopes"] == ["moderation"]
        auth = bearer(ci["credential"])

        # In its area: it bans like the admin, and the journal says it did.
        r = requests.post(f"{server.url}/bans", headers=auth, json={"subject": "web:mallory", "reason": "spam"},
                          timeout=10)
        assert r.status_code == 201, r.text
        assert requests.get(f"{server.url}/autobans", headers=auth, timeout=10).status_code == 200
        entries = requests.get(f"{server.url}/audit?type=ban", headers=server.admin(), timeout=10).json()["entries"]
        assert [e["authorized_by"] for e in entries] == [f"credential:ci-bot/{ci['id']}"], entries

        # Outside it: refused, and it cannot mint another credential.
        r = requests.get(f"{server.url}/server/policy", headers=auth, timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "auth.out_of_scope", r.text
        r = requests.get(f"{server.url}/audit", headers=auth, timeout=10)
        assert r.status_code == 403, r.text
        r = requests.post(f"{server.url}/credentials", headers=auth, json={"label": "x", "scopes": ["moderation"]},
                          timeout=10)
        assert r.status_code == 403, r.text

        # A read-only credential reads and does not write.
        ro = bearer(mint(server, label="dashboard", scopes=["moderation"], read_only=True).json()["credential"])
        assert requests.get(f"{server.url}/bans", headers=ro, timeout=10).status_code == 200
        r = requests.delete(f"{server.url}/bans/web:mallory", headers=ro, timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "auth.out_of_scope", r.text

        # Altered, anonymous, or badly asked for: refused.
        forged = ci["credential"][:-1] + ("0" if ci["credential"][-1] != "0" else "1")
        r = requests.get(f"{server.url}/bans", headers=bearer(forged), timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "auth.invalid_token", r.text
        r = requests.post(f"{server.url}/credentials", json={"label": "x", "scopes": ["moderation"]}, timeout=10)
        assert r.status_code == 401, r.text
        assert mint(server, label="x", scopes=["everything"]).status_code == 400
        assert mint(server, label="x", scopes=["moderation"], ttl_secs=31 * 86400).status_code == 400
        assert mint(server, label="bad label", scopes=["moderation"]).status_code == 400

        # It survives a restart (signed with the data directory's key).
        server.stop()
        server.start()
        assert requests.get(f"{server.url}/bans", headers=auth, timeout=10).status_code == 200
    finally:
        server.stop()

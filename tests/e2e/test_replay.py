"""Replay against the real binary: a short meeting over HTTP, then point-in-time state,
an XLSX report read back with openpyxl, an export bundle checked by the offline
`conclave verify-bundle`, an erasure through the running engine, and the offline CLI
(`journal verify`, `replay state`, `report --format html`) on the stopped server's data."""

import json
import subprocess

import openpyxl
import requests

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def ok(resp: requests.Response) -> requests.Response:
    assert resp.ok, f"{resp.request.method} {resp.url} -> {resp.status_code}: {resp.text}"
    return resp


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def run(binary: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert p.returncode == 0, f"conclave {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def meeting(server) -> str:
    """alice opens standup, bob joins and chats; (mark) bob leaves, carol joins."""
    u = server.url
    alice = ok(requests.post(f"{u}/rooms", json={"room": "standup", "as": "web:alice"}, timeout=10)).json()["token"]
    ok(requests.post(f"{u}/rooms/standup/join", headers=bearer(alice), json={}, timeout=10))
    bob = ok(requests.post(f"{u}/rooms/standup/join", json={"as": "web:bob"}, timeout=10)).json()["token"]
    ok(requests.post(f"{u}/rooms/standup/messages", headers=bearer(bob),
                     json={"body": "bob's secret plan"}, timeout=10))
    # The mark is the server's own time of bob's message (no waiting to separate clocks):
    # the state at it holds bob, and his leaving comes after it.
    chat = ok(requests.get(f"{u}/rooms/standup/messages", headers=bearer(bob), timeout=10)).json()
    mark = chat["messages"][-1]["at"]
    ok(requests.post(f"{u}/rooms/standup/leave", headers=bearer(bob), json={}, timeout=10))
    ok(requests.post(f"{u}/rooms/standup/join", json={"as": "web:carol"}, timeout=10))
    return mark


def principals(members) -> list:
    return sorted(m["principal"] for m in members)


def test_replay_over_http_then_offline(server, conclave_bin, tmp_path):
    u, admin = server.url, server.admin()
    mark = meeting(server)

    # Replay routes are admin only.
    assert requests.get(f"{u}/replay/state", timeout=10).status_code == 401

    # Who was present at the mark, and now.
    then = ok(requests.get(f"{u}/replay/state", params={"room": "standup", "at": mark},
                           headers=admin, timeout=30)).json()
    assert principals(then["members"]) == ["web:alice", "web:bob"]
    who = ok(requests.get(f"{u}/replay/who-was-there", params={"room": "standup", "at": mark},
                          headers=admin, timeout=30)).json()
    assert who["exists"] and principals(who["members"]) == ["web:alice", "web:bob"]
    assert who["members"][0]["sessions"][0]["address"].startswith("web:")
    now = ok(requests.get(f"{u}/replay/state", params={"room": "standup"}, headers=admin, timeout=30)).json()
    assert principals(now["members"]) == ["web:alice", "web:carol"]

    # The XLSX report, read back with openpyxl.
    r = ok(requests.get(f"{u}/replay/report", params={"format": "xlsx"}, headers=admin, timeout=60))
    assert r.headers["content-type"] == XLSX
    assert r.headers["content-disposition"].startswith('attachment; filename="conclave-report-')
    path = tmp_path / "report.xlsx"
    path.write_bytes(r.content)
    wb = openpyxl.load_workbook(path, read_only=True)
    assert "Attendance" in wb.sheetnames and "Event log" in wb.sheetnames
    rows = list(wb["Attendance"].iter_rows(values_only=True))
    header, body = rows[0], rows[1:]
    person = header.index(next(h for h in header if h and h.lower() == "person"))
    assert sorted({row[person] for row in body}) == ["web:alice", "web:bob", "web:carol"]
    log = [row for row in wb["Event log"].iter_rows(values_only=True)]
    assert any("bob's secret plan" in str(cell) for row in log for cell in row)
    wb.close()

    # An export bundle, verified by the offline CLI (no server involved).
    r = ok(requests.get(f"{u}/replay/bundle", headers=admin, timeout=60))
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["x-conclave-chain-ok"] == "true"
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_bytes(r.content)
    checked = json.loads(run(conclave_bin, "verify-bundle", str(bundle)).stdout)
    assert checked["ok"] is True

    # Offline erasure refuses while the server holds the journal, and says what to do.
    p = run(conclave_bin, "journal", "erase", "--data", str(server.data_dir), "--person", "web:bob",
            check=False)
    assert p.returncode != 0 and "--server" in p.stderr, p.stderr

    # Erasure over HTTP, through the engine.
    head_before = ok(requests.get(f"{u}/about/health", timeout=10)).json()["committed_head"]
    out = ok(requests.post(f"{u}/replay/erasure", json={"person": "web:bob"}, headers=admin, timeout=60)).json()
    assert out["action"] == "erasure" and out["records_purged"] == 1
    assert out["journaled_seq"] == head_before + 1
    report = ok(requests.get(f"{u}/replay/report", headers=admin, timeout=60)).json()
    text = json.dumps(report["events"])
    assert "[purged]" in text and "bob's secret plan" not in text
    assert report["retention"][0]["action"] == "erasure"
    # The CLI's --server form reaches the same route (nothing left to erase now).
    again = json.loads(run(conclave_bin, "journal", "erase", "--data", str(server.data_dir),
                           "--person", "web:bob", "--server", u).stdout)
    assert again["records_purged"] == 0 and again["journaled_seq"] is None

    assert server.stop() == 0

    # Offline, on the stopped server's data: the chain still verifies.
    v = json.loads(run(conclave_bin, "journal", "verify", "--data", str(server.data_dir / "journal")).stdout)
    assert v["ok"] is True and v["purged_content"] == 1
    # Point-in-time state from the CLI agrees with what HTTP said.
    state = json.loads(run(conclave_bin, "replay", "state", "--data", str(server.data_dir),
                           "--room", "standup", "--at", mark).stdout)
    assert principals(state["members"]) == ["web:alice", "web:bob"]
    html = tmp_path / "report.html"
    run(conclave_bin, "report", "--data", str(server.data_dir), "--format", "html", "--out", str(html))
    page = html.read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "<svg" in page
    assert "[purged]" in page and "bob&#39;s secret plan" not in page and "bob's secret plan" not in page

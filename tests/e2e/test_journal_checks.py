"""The journal checks itself, and the verifier never touches the evidence.

Against the real binary:
- `serve` refuses a journal deleted with its directory (naming the directory, the expected
  and the found head, non-zero exit), and starts again once the operator ran
  `conclave journal accept-loss`;
- `serve` refuses a journal with a flipped byte in sled's data in the middle (naming the
  first bad record), starts read-only only after `conclave journal allow-read-only` for
  exactly that record, and then says degraded in /about/health and /metrics and refuses
  commands;
- `conclave journal verify` leaves every file byte for byte unchanged (a good journal, a
  damaged one, a read-only copy), exits 1 naming the sequence, and fails clearly where
  there is no journal.

Servers run on free loopback ports and are stopped by PID.
"""

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import Server, free_port

# Enough chat to take the journal past sled's first 8 MiB log segment, so that a damaged
# page in it is off sled's recovery path (the server opens; only reading that page fails).
BIG_ENV = {
    "CONCLAVE_RATE_CHAT_PER_MIN": "1000000",
    "CONCLAVE_RATE_ENTRIES_PER_MIN": "1000000",
    "CONCLAVE_TEXT_MESSAGE_LENGTH": "12000",
}
MESSAGES = 1000
MESSAGE_CHARS = 11000


def run(binary: str, *args: str, user: int | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": tempfile.gettempdir()}
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=300,
                          env=env, user=user, group=user)


def tree(root: Path) -> dict:
    """Every file and directory under root: relative path -> sha256 (or 'dir')."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def serve_expecting_refusal(binary: str, data: Path, logs: Path, name: str,
                            timeout: float = 60) -> subprocess.CompletedProcess:
    """Starts `conclave serve`, which must exit by itself; killed by PID if it does not."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCLAVE_")}
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    with open(out, "w") as o, open(err, "w") as e:
        proc = subprocess.Popen(
            [binary, "serve", "--data-dir", str(data), "--web-listen",
             f"127.0.0.1:{free_port()}", "--sip-enabled", "false"],
            stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"serve did not refuse to start within {timeout} s:\n{err.read_text()}")
    return subprocess.CompletedProcess(proc.args, rc, out.read_text(), err.read_text())


class DegradedServer(Server):
    """A server that starts degraded: ready once /about/health answers, whatever it says."""

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                requests.get(f"{self.url}/about/health", timeout=1)
                return True
            except requests.RequestException:
                time.sleep(0.05)
        return False


def ok(resp: requests.Response) -> requests.Response:
    assert resp.ok, f"{resp.request.method} {resp.url} -> {resp.status_code}: {resp.text}"
    return resp


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_serve_refuses_a_deleted_journal_until_the_loss_is_accepted(conclave_bin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    data = tmp_path / "data"
    s = Server(conclave_bin, data, logs)
    s.start()
    try:
        for i in range(3):
            ok(requests.post(f"{s.url}/rooms", json={"room": f"r{i}", "as": f"web:owner{i}"},
                             timeout=10))
    finally:
        assert s.stop() == 0
    head = int(run(conclave_bin, "journal", "head", "--data", str(data / "journal")).stdout)
    assert head >= 3

    shutil.rmtree(data / "journal")
    p = serve_expecting_refusal(conclave_bin, data, logs, "deleted")
    assert p.returncode != 0, p.stderr
    assert str(data / "journal") in p.stderr, p.stderr
    assert f"expected_head={head}" in p.stderr and "found_head=0" in p.stderr, p.stderr
    assert f"expected head: at least {head}" in p.stderr and "found head: 0" in p.stderr
    assert "accept-loss" in p.stderr
    assert not (data / "journal").exists(), "no empty journal created in its place"

    # verify says the same, without touching anything.
    before = tree(data)
    v = run(conclave_bin, "journal", "verify", "--data", str(data))
    assert v.returncode == 1, v.stdout + v.stderr
    report = json.loads(v.stdout)
    assert report["ok"] is False
    assert report["first_failure"]["seq"] == 1
    assert report["first_failure"]["code"] == "journal.truncated"
    assert report["evidence"]["head_witness"]["seq"] == head
    assert tree(data) == before

    # The operator accepts the loss: the evidence is moved aside, never deleted.
    a = run(conclave_bin, "journal", "accept-loss", "--data", str(data))
    assert a.returncode == 0, a.stderr
    moved = json.loads(a.stdout)["moved"]
    assert {Path(m["from"]).name for m in moved} == {"journal-head", "projections"}
    assert all(Path(m["to"]).exists() for m in moved)
    s.start()
    try:
        health = ok(requests.get(f"{s.url}/about/health", timeout=10)).json()
        assert health["journal_head"] == 0
        assert health["sources"]["journal"]["status"] == "ok"
    finally:
        assert s.stop() == 0


def fill_big_journal(s: Server) -> str:
    """Rooms, then a room with a unique name (the record to damage), more rooms, and
    enough chat to pass sled's first log segment. Returns the unique name."""
    u = s.url
    for i in range(40):
        ok(requests.post(f"{u}/rooms", json={"room": f"before{i}", "as": f"web:before{i}"},
                         timeout=10))
    needle = f"needle{os.getpid()}x{int(time.time())}"
    ok(requests.post(f"{u}/rooms", json={"room": needle, "as": "web:needle"}, timeout=10))
    for i in range(20):
        ok(requests.post(f"{u}/rooms", json={"room": f"after{i}", "as": f"web:after{i}"},
                         timeout=10))
    token = ok(requests.post(f"{u}/rooms", json={"room": "bulk", "as": "web:bob"},
                             timeout=10)).json()["token"]
    ok(requests.post(f"{u}/rooms/bulk/join", headers=bearer(token), json={}, timeout=10))
    errors = []

    def post(n: int) -> None:
        with requests.Session() as http:
            for i in range(n):
                body = (f"{i:06d} " * (MESSAGE_CHARS // 7 + 1))[:MESSAGE_CHARS]
                r = http.post(f"{u}/rooms/bulk/messages", headers=bearer(token),
                              json={"body": body}, timeout=30)
                if not r.ok:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    return

    threads = [threading.Thread(target=post, args=(MESSAGES // 8,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    return needle


def find_mid_journal_damage(binary: str, data: Path, needle: bytes, scratch: Path):
    """Tries a flipped byte in each copy of the needle's bytes in sled's log (sled keeps
    older copies of a page, and moves live ones) on a scratch copy of the data directory,
    checked with `journal verify`; returns (offset, first bad record) of one the server
    can open but that verification names, or None. Also checks that verify leaves each
    scratch copy as it was."""
    db = data / "journal" / "db"
    raw = db.read_bytes()
    spots, at = [], raw.find(needle)
    while at >= 0:
        spots.append(at)
        at = raw.find(needle, at + 1)
    assert spots, "the needle room's name is in sled's log"
    for spot in spots:
        if scratch.exists():
            shutil.rmtree(scratch)
        shutil.copytree(data, scratch)
        damaged = bytearray(raw)
        damaged[spot + 3] ^= 0x01
        (scratch / "journal" / "db").write_bytes(bytes(damaged))
        before = tree(scratch)
        v = run(binary, "journal", "verify", "--data", str(scratch))
        assert tree(scratch) == before, "verify changed the files"
        if v.returncode == 0:
            continue  # a dead copy of the page
        assert v.returncode == 1, v.stderr
        report = json.loads(v.stdout)
        failure = report.get("first_failure")
        if "error" in report or not failure or failure["code"] != "journal.storage":
            continue  # on sled's recovery path: the journal does not even open
        if failure["seq"] > 1:
            return spot, failure["seq"], report
    return None


def test_serve_refuses_a_flipped_byte_then_serves_read_only_and_degraded(conclave_bin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    data = tmp_path / "data"
    s = Server(conclave_bin, data, logs, env=BIG_ENV)
    found = None
    for _round in range(3):
        s.start()
        try:
            needle = fill_big_journal(s)
        finally:
            assert s.stop() == 0
        # A second start and stop: sled's recovery snapshot now covers all of it.
        s.start()
        assert s.stop() == 0
        found = find_mid_journal_damage(conclave_bin, data, needle.encode(), tmp_path / "scratch")
        if found:
            break
    assert found, "no copy of the damaged page was off sled's recovery path in 3 rounds"
    spot, bad, report = found
    print(f"flipped byte {spot + 3} of journal/db: first bad record {bad} "
          f"of {report['head']}, after {_round + 1} round(s)")
    assert report["ok"] is False and report["first_failure"]["seq"] == bad
    assert "checksum" in report["first_failure"]["problem"]

    raw = bytearray((data / "journal" / "db").read_bytes())
    raw[spot + 3] ^= 0x01
    (data / "journal" / "db").write_bytes(bytes(raw))

    # Refused, naming the record.
    p = serve_expecting_refusal(conclave_bin, data, logs, "damaged")
    print(p.stderr)
    assert p.returncode != 0, p.stderr
    assert f"record {bad}" in p.stderr and f"first_bad={bad}" in p.stderr, p.stderr
    assert "allow-read-only" in p.stderr

    # The operator's decision must name this damage.
    wrong = run(conclave_bin, "journal", "allow-read-only", "--data", str(data), "--seq",
                str(bad + 1))
    assert wrong.returncode != 0 and f"first bad record is {bad}" in wrong.stderr, wrong.stderr
    allowed = run(conclave_bin, "journal", "allow-read-only", "--data", str(data), "--seq",
                  str(bad))
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["serves_state_as_of"] == bad - 1

    d = DegradedServer(conclave_bin, data, logs)
    d.start()
    try:
        r = requests.get(f"{d.url}/about/health", timeout=10)
        assert r.status_code == 503, r.text
        health = r.json()
        assert health["status"] == "unhealthy"
        journal = health["sources"]["journal"]
        assert journal["status"] == "degraded" and journal["read_only"] is True, journal
        assert journal["first_bad_seq"] == bad
        assert health["committed_head"] == bad - 1
        assert health["journal_head"] > bad
        metrics = requests.get(f"{d.url}/metrics", timeout=10).text
        assert "conclave_journal_degraded 1" in metrics
        assert "conclave_journal_read_only 1" in metrics
        assert f"conclave_journal_first_bad_seq {bad}" in metrics
        assert "conclave_up 0" in metrics
        refused = requests.post(f"{d.url}/rooms", json={"room": "new", "as": "web:alice"},
                                timeout=10)
        assert refused.status_code == 503, refused.text
        assert "journal.poisoned" in refused.text
    finally:
        assert d.stop() == 0


def test_verify_leaves_every_file_unchanged_and_exits_1_with_the_sequence(conclave_bin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    data = tmp_path / "data"
    s = Server(conclave_bin, data, logs)
    s.start()
    try:
        for i in range(30):
            ok(requests.post(f"{s.url}/rooms",
                             json={"room": f"room{i:03d}", "as": f"web:owner{i}"}, timeout=10))
    finally:
        assert s.stop() == 0

    # A good journal: exit 0, nothing changed, whichever way --data names it.
    before = tree(data)
    for target in (data, data / "journal"):
        v = run(conclave_bin, "journal", "verify", "--data", str(target))
        assert v.returncode == 0, v.stdout + v.stderr
        assert json.loads(v.stdout)["ok"] is True
    assert tree(data) == before

    # A flipped byte in sled's log, on its recovery path (the journal is one segment):
    # opening in place would zero everything after it. verify works on a copy, leaves
    # the files as they are, exits 1 and names the first record lost.
    db = data / "journal" / "db"
    raw = bytearray(db.read_bytes())
    at = raw.find(b"room015")
    assert at >= 0
    raw[at + 4] ^= 0x01
    db.write_bytes(bytes(raw))
    damaged = tree(data)
    v = run(conclave_bin, "journal", "verify", "--data", str(data))
    assert v.returncode == 1, v.stdout + v.stderr
    report = json.loads(v.stdout)
    assert report["ok"] is False
    if report.get("error") is None:
        failure = report["first_failure"]
        assert failure["seq"] >= 1 and failure["code"] in ("journal.truncated", "journal.storage",
                                                             "journal.corrupt"), failure
        assert f"record {failure['seq']}" in failure["problem"]
    else:
        assert report["error"]["code"] == "journal.open_failed", report
    assert tree(data) == damaged, "verify changed the damaged journal"

    # Nothing there: a clear error, not "ok": true.
    empty = tmp_path / "empty"
    empty.mkdir()
    for target in (empty, tmp_path / "missing"):
        v = run(conclave_bin, "journal", "verify", "--data", str(target))
        assert v.returncode == 2, v.stdout + v.stderr
        assert "no journal at" in v.stderr
        assert '"ok"' not in v.stdout
    assert list(empty.iterdir()) == [] and not (tmp_path / "missing").exists()

    # The same on a read-only copy (chmod -R a-w). As root, write protection does not
    # bind, so verify then runs as nobody on a copy nobody can read but not write.
    ro_root = Path(tempfile.mkdtemp(prefix="conclave-ro-"))
    try:
        os.chmod(ro_root, 0o755)
        ro = ro_root / "data"
        shutil.copytree(data, ro)
        for p in [ro, *ro.rglob("*")]:
            mode = p.stat().st_mode
            os.chmod(p, (mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
                         | (0o111 if p.is_dir() else 0)) & ~0o222)
        user = 65534 if os.geteuid() == 0 else None
        if user is None:
            with pytest.raises(PermissionError):
                (ro / "probe").write_text("x")
        elif run(conclave_bin, "--version", user=user).returncode != 0:
            pytest.skip("running as root, where chmod -R a-w does not bind, and the binary "
                        "cannot be run as nobody to check a read-only copy")
        before_ro = tree(ro)
        v = run(conclave_bin, "journal", "verify", "--data", str(ro), user=user)
        assert v.returncode == 1, v.stdout + v.stderr
        ro_report = json.loads(v.stdout)
        assert ro_report["journal"] == str(ro / "journal")
        assert (ro_report["ok"], ro_report["first_failure"]) == (False, report["first_failure"])
        assert tree(ro) == before_ro
    finally:
        for p in [ro_root, *ro_root.rglob("*")]:
            os.chmod(p, p.stat().st_mode | 0o700)
        shutil.rmtree(ro_root)

"""Power cuts under load: acknowledged writes must survive them.

The real binary runs under the durashim layer (powercut/README.md) while 8 threads create
rooms through the REST API as the admin; a room counts once its creation was answered
2xx. At a random moment the power is cut (SIGKILL, then ROOT is replaced by what was
durable, with torn writes) and the server is started again on what is left. It must
start (a journal refused as truncated is a failure), keep every acknowledged room, the
admin token, a chain that verifies and a head marker naming a record the journal has,
and acknowledge a new command; then the load goes on until the next cut.

With `--journal-sync none` the same run must lose acknowledged rooms: that shows the
test can fail. POWERCUT_SEED and POWERCUT_CUTS override the seed (printed) and the
number of cuts; run with -s to see the figures.
"""

import json
import os
import random
import subprocess
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from conftest import Server, free_port
from powercut import powercut as pc

THREADS = 8
CUTS = int(os.environ.get("POWERCUT_CUTS", "10"))
# When the cut falls, after the load started (seconds).
CUT_AFTER = (0.2, 1.5)
OWNER = "web:powercut-owner"


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    return pc.build_shim(tmp_path_factory.getbasetemp() / "durashim")


class ShimServer(Server):
    """conftest's Server started under the shim, with a chosen journal sync mode."""

    def __init__(self, binary, root, shadow, log_dir, so, sync):
        super().__init__(binary, root / "data", log_dir, sync=sync,
                         env=pc.shim_env(so, root, shadow, base={}))
        self.root, self.shadow, self.so = root, shadow, so

    def start(self, timeout: float = 60.0) -> None:
        # Whatever is under ROOT now is the durable state the shim starts from.
        pc.prepare(self.root, self.shadow)
        super().start(timeout)


@dataclass
class Run:
    """Figures of one run, and every broken promise found."""

    sync: str
    seed: int
    cuts: int = 0
    acknowledged: int = 0
    lost: set = field(default_factory=set)
    refused_starts: int = 0
    pages_torn: int = 0
    files_lost: int = 0
    files_rolled_back: int = 0
    load_errors: int = 0
    problems: list = field(default_factory=list)

    def summary(self) -> str:
        return (f"power cuts, --journal-sync {self.sync}, seed {self.seed}: {self.cuts} cuts, "
                f"{self.acknowledged} acknowledged, {len(self.lost)} lost, "
                f"{self.refused_starts} refused restarts, {self.pages_torn} pages torn in, "
                f"{self.files_rolled_back} files rolled back, {self.files_lost} files lost, "
                f"{self.load_errors} non-2xx answers under load")


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def load_then_cut(server: ShimServer, token: str, rng: random.Random, label: str, run: Run):
    """Creates rooms from THREADS threads and cuts the power at a random moment; returns
    the names whose creation was acknowledged, and the cut's report."""
    stop = threading.Event()
    acked = [[] for _ in range(THREADS)]
    errors = [0] * THREADS

    def worker(i: int) -> None:
        with requests.Session() as s:
            k = 0
            while not stop.is_set():
                name = f"pc-{label}-{i}-{k}"
                k += 1
                try:
                    r = s.post(f"{server.url}/rooms", json={"room": name, "owner": OWNER},
                               headers=bearer(token), timeout=30)
                except requests.RequestException:
                    return  # cut while in flight: unknown outcome, not counted
                if 200 <= r.status_code < 300:
                    acked[i].append(name)
                else:
                    errors[i] += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(rng.uniform(*CUT_AFTER))  # the random moment of the cut, not a wait
    report = pc.cut(server.proc, server.root, server.shadow, rng, torn=True)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    run.load_errors += sum(errors)
    return [n for names in acked for n in names], report


def read_marker(path):
    """(seq, hash) of the head marker, None if absent; malformed raises."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    assert len(lines) == 3 and lines[0] == "conclave-journal-head v1", f"bad marker {lines!r}"
    return int(lines[1].removeprefix("seq ")), lines[2].removeprefix("hash ")


def record_hash(server: ShimServer, token: str, seq: int):
    """The hash of journal record seq, from an export bundle starting there."""
    r = requests.get(f"{server.url}/replay/bundle", params={"from_seq": seq, "force": "true"},
                     headers=bearer(token), timeout=120)
    if r.status_code != 200:
        return None
    for line in r.text.splitlines():
        rec = json.loads(line)
        if rec.get("seq") == seq and "hash" in rec:
            return rec["hash"]
    return None


def check_after_restart(server, token, marker, acked, run: Run, label: str) -> str:
    """Checks the restarted server; returns the admin token to go on with."""
    u = server.url
    now = server.admin_token
    if now != token:
        run.problems.append(f"{label}: the admin token changed (the data directory was lost)")
        token = now
    r = requests.get(f"{u}/rooms", headers=bearer(token), timeout=120)
    assert r.status_code == 200, r.text
    present = {room["room"] for room in r.json()["rooms"]}
    missing = acked - present - run.lost
    if missing:
        run.problems.append(f"{label}: {len(missing)} acknowledged rooms lost, e.g. "
                            f"{sorted(missing)[:3]}")
        run.lost |= missing
    v = requests.get(f"{u}/replay/verify", headers=bearer(token), timeout=120)
    if v.status_code != 200 or not v.json().get("ok"):
        run.problems.append(f"{label}: the chain does not verify: {v.status_code} {v.text[:500]}")
    if marker is not None and marker[0] > 0:
        found = record_hash(server, token, marker[0])
        if found != marker[1]:
            run.problems.append(f"{label}: the head marker names record {marker[0]} with hash "
                                f"{marker[1]}, the journal has {found}")
    probe = f"probe-{label}"
    p = requests.post(f"{u}/rooms", json={"room": probe, "owner": OWNER},
                      headers=bearer(token), timeout=30)
    if p.status_code == 201:
        acked.add(probe)
        run.acknowledged += 1
    else:
        run.problems.append(f"{label}: a new command was not acknowledged: {p.status_code} "
                            f"{p.text[:300]}")
    return token


def power_cut_run(binary, so, tmp_path, sync: str) -> Run:
    seed = int(os.environ.get("POWERCUT_SEED", random.randrange(1 << 32)))
    rng = random.Random(seed)
    run = Run(sync=sync, seed=seed)
    root, logs = tmp_path / "root", tmp_path / "logs"
    root.mkdir()
    logs.mkdir()
    server = ShimServer(binary, root, tmp_path / "shadow", logs, so, sync)
    server.start()
    token = server.admin_token
    acked = set()
    try:
        for n in range(CUTS):
            label = f"{sync}-{n}"
            names, report = load_then_cut(server, token, rng, f"{n}", run)
            acked.update(names)
            run.acknowledged += len(names)
            run.cuts += 1
            run.pages_torn += report.pages_torn
            run.files_lost += len(report.files_lost)
            run.files_rolled_back += report.files_rolled_back
            marker = read_marker(server.data_dir / "journal" / "conclave-head")
            print(f"cut {label}: {len(names)} acknowledged, head marker {marker and marker[0]}; "
                  f"{report.summary()}")
            try:
                server.start()
            except RuntimeError as e:
                run.refused_starts += 1
                run.lost |= acked
                run.problems.append(f"{label}: the server did not start again: "
                                    f"{str(e).strip().splitlines()[-1][:500]}")
                break
            token = check_after_restart(server, token, marker, acked, run, label)
    finally:
        server.stop()
    print(run.summary())
    for p in run.problems:
        print("  ", p)
    return run


def test_acknowledged_writes_survive_power_cuts(conclave_bin, shim, tmp_path):
    run = power_cut_run(conclave_bin, shim, tmp_path, "always")
    assert run.cuts == CUTS and not run.problems, (
        f"{run.summary()}\n" + "\n".join(run.problems))


def test_without_sync_power_cuts_lose_writes(conclave_bin, shim, tmp_path):
    """The control: the same test must see losses when nothing is flushed."""
    run = power_cut_run(conclave_bin, shim, tmp_path, "none")
    assert len(run.lost) > 0, run.summary()

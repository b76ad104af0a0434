"""SIGTERM stops the server within a bounded time, whatever its clients and its NATS
server do: an event stream left open, a NATS server gone."""

import os
import resource
import signal
import subprocess
import time

import pytest
import requests

from conftest import Server
from nats_support import Conclave, NatsServer, nats_server_binary

# The web gateway's grace for in-flight requests is 5 s, each NATS stop step 3 s.
BOUND = 15.0


def sigterm_and_time(proc: subprocess.Popen) -> tuple[int, float]:
    """SIGTERM by PID; (exit status, seconds until exit). Fails after twice the bound."""
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    try:
        rc = proc.wait(timeout=2 * BOUND)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"conclave still running {2 * BOUND} s after SIGTERM")
    return rc, time.monotonic() - t0


def test_an_open_event_stream_does_not_hold_the_server(server):
    r = requests.post(f"{server.url}/rooms", json={"room": "r", "as": "web:alice"}, timeout=10)
    assert r.status_code == 201, r.text
    stream = requests.get(f"{server.url}/events?from=1", headers=server.admin(), stream=True,
                          timeout=10)
    assert stream.status_code == 200
    # The stream is live: the room's creation arrives.
    for line in stream.iter_lines():
        if line.startswith(b"data:"):
            break
    rc, took = sigterm_and_time(server.proc)
    assert rc == 0, server.stderr()
    assert took < BOUND, took
    stream.close()


@pytest.mark.skipif(nats_server_binary() is None, reason="nats-server is not installed")
def test_a_vanished_nats_server_does_not_hold_the_server(conclave_bin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    ns = NatsServer(tmp_path / "nats-store", logs)
    ns.start()
    c = Conclave(conclave_bin, tmp_path / "data", logs, ns.url)
    c.setup_stream()
    c.start()
    try:
        requests.post(f"{c.url}/rooms", json={"room": "r", "as": "web:alice"}, timeout=10)
        ns.kill()
        c.wait_nats(lambda h: not h["connected"])
        rc, took = sigterm_and_time(c.proc)
        assert rc == 0, (logs / "conclave.err").read_text()
        assert took < BOUND, took
    finally:
        c.stop()
        ns.kill()


def test_the_open_file_limit_is_raised_to_the_hard_limit(conclave_bin, tmp_path):
    # Start it with a low soft limit, as many systems do (1024), inherited from here.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    server = Server(conclave_bin, tmp_path / "data", tmp_path)
    try:
        server.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        limits = open(f"/proc/{server.proc.pid}/limits").read()
        line = next(l for l in limits.splitlines() if l.startswith("Max open files"))
        got_soft, got_hard = line.split()[3:5]
        assert got_soft == got_hard, line
    finally:
        server.stop()

"""Shared fixtures: the real `conclave` binary on a free loopback port with a temporary
data directory, ready once /about/health answers (polled, no fixed sleeps)."""

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import requests.adapters

ROOT = Path(__file__).resolve().parents[2]


class SourceAdapter(requests.adapters.HTTPAdapter):
    """Sends from a given loopback address (any of 127.0.0.0/8 works on Linux), so tests
    can be several clients without leaving the loopback."""

    def __init__(self, source: str, **kw):
        self.source = source
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kw)


def session_from(source: str) -> requests.Session:
    """A requests session whose connections come from `source` (a 127.x.y.z address)."""
    s = requests.Session()
    s.mount("http://", SourceAdapter(source))
    return s


def free_port() -> int:
    """Asks the OS for a free loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `conclave serve` process; can be stopped and started again on the same data."""

    def __init__(self, binary: str, data_dir: Path, log_dir: Path, sync: str = "always",
                 env: dict | None = None, args: list | None = None):
        self.binary = binary
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.sync = sync
        # Extra environment for the server process (the power-cut shim uses it).
        self.env = env or {}
        # Extra `serve` flags (the SIP tests open registration, for example).
        self.args = list(args or [])
        self.proc = None
        self.port = None
        # The SIP gateway's port (UDP and TCP) and the media node's RTP port range.
        self.sip_port = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def admin(self) -> dict:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def start(self, timeout: float = 60.0) -> None:
        for _attempt in range(5):
            self.port = free_port()
            self.sip_port = free_port()
            # Below Linux's ephemeral range (32768-60999), where test clients' ports come from.
            media_lo = random.randrange(10000, 32000, 2)
            self.starts += 1
            out = open(self.log_dir / f"server-{self.starts}.out", "w")
            err = open(self.log_dir / f"server-{self.starts}.err", "w")
            env = {k: v for k, v in os.environ.items() if not k.startswith("CONCLAVE_")}
            env["CONCLAVE_LOG"] = "info"
            env.update(self.env)
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--data-dir", str(self.data_dir),
                 "--web-listen", f"127.0.0.1:{self.port}", "--journal-sync", self.sync,
                 "--sip-listen", f"127.0.0.1:{self.sip_port}",
                 "--media-ports", f"{media_lo}-{media_lo + 399}",
                 "--webrtc-ports", f"{media_lo + 400}-{media_lo + 599}", *self.args],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
            )
            if self._wait_ready(timeout):
                return
            self.stop()
            if "binding the REST API" not in self.stderr() and "binding SIP" not in self.stderr():
                break
        raise RuntimeError(f"conclave did not become ready:\n{self.stderr()}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                r = requests.get(f"{self.url}/about/health", timeout=1)
                if r.status_code == 200 and r.json().get("status") == "ok":
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

    def stderr(self) -> str:
        p = self.log_dir / f"server-{self.starts}.err"
        return p.read_text() if p.exists() else ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM by PID; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def cli(self, *args: str, token: bool = True) -> subprocess.CompletedProcess:
        """Runs `conclave admin ...` against this server."""
        cmd = [self.binary, "admin", "--server", self.url, "--data-dir", str(self.data_dir), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONCLAVE_")}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="session")
def conclave_bin() -> str:
    binary = os.environ.get("CONCLAVE_BIN", str(ROOT / "target" / "debug" / "conclave"))
    if not Path(binary).is_file():
        pytest.fail(f"no conclave binary at {binary}: build it first (cargo build)")
    return binary


@pytest.fixture
def server(conclave_bin, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    s = Server(conclave_bin, tmp_path / "data", logs)
    s.start()
    yield s
    s.stop()


@pytest.fixture
def sip_server(conclave_bin, tmp_path):
    """A server whose SIP gateway lets guests of its domain in (open registration)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    s = Server(conclave_bin, tmp_path / "data", logs, args=["--sip-open-registration", "true"])
    s.start()
    yield s
    s.stop()


@pytest.fixture
def browsers(tmp_path):
    """Headless Chromium pages (browser_support), closed after the test."""
    from browser_support import Browsers
    b = Browsers(tmp_path)
    yield b
    b.close()


@pytest.fixture(scope="module")
def prosody(tmp_path_factory):
    """One prosody (tests/e2e/xmpp_support.py) per test module, on free loopback ports."""
    import secrets
    from xmpp_support import Prosody
    p = Prosody(tmp_path_factory.mktemp("prosody"), free_port(), free_port(),
                secrets.token_hex(16))
    p.start()
    yield p
    p.stop()

"""Helpers for the NATS end-to-end tests: a real nats-server (JetStream, store dir,
loopback, killed by PID) and a `conclave serve` process wired to it."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

TOKEN = "e2e-service-token-0123456789"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nats_server_binary():
    """The nats-server binary, or None (scripts/test installs the Debian package)."""
    return os.environ.get("NATS_SERVER_BIN") or shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").is_file() else None)


class NatsServer:
    """nats-server -js -sd STORE -a 127.0.0.1 -p PORT; restartable on the same port/store.

    With `config` (the text of a nats-server configuration file, which then sets the
    JetStream store itself) it runs `nats-server -c FILE -a 127.0.0.1 -p PORT` instead,
    with `env` added to its environment (for `$VARIABLES` in the file)."""

    def __init__(self, store: Path, log_dir: Path, config: str | None = None,
                 env: dict | None = None):
        self.store = store
        self.log_dir = log_dir
        self.port = free_port()
        self.proc = None
        self.starts = 0
        self.config = config
        self.env = env or {}

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def log(self) -> str:
        p = self.log_dir / f"nats-{self.starts}.log"
        return p.read_text() if p.exists() else ""

    def start(self, timeout: float = 15.0) -> None:
        self.starts += 1
        log = open(self.log_dir / f"nats-{self.starts}.log", "w")
        if self.config is None:
            args = ["-js", "-sd", str(self.store)]
        else:
            conf = self.log_dir / f"nats-{self.starts}.conf"
            conf.write_text(self.config)
            args = ["-c", str(conf)]
        self.proc = subprocess.Popen(
            [nats_server_binary(), *args, "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nats-server exited")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nats-server did not become ready")

    def kill(self) -> None:
        """SIGKILL by PID: an abrupt outage."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


class Conclave:
    """`conclave serve` with the NATS gateway on.

    `extra_args` go to `serve` only; `extra_env` to the environment of `serve` and
    `nats setup`."""

    def __init__(self, binary: str, data_dir: Path, log_dir: Path, nats_url: str,
                 extra_args: list | None = None, extra_env: dict | None = None):
        self.binary = binary
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.nats_url = nats_url
        self.extra_args = list(extra_args or [])
        self.extra_env = dict(extra_env or {})
        self.port = None
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def admin(self) -> dict:
        token = (self.data_dir / "admin-token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONCLAVE_")}
        return {**env, **self.extra_env}

    def run_setup(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, "nats", "setup", "--url", self.nats_url, *args],
            capture_output=True, text=True, timeout=60, env=self.env())

    def setup_stream(self, *args: str) -> dict:
        import json
        out = self.run_setup(*args)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def stderr(self) -> str:
        p = self.log_dir / "conclave.err"
        return p.read_text() if p.exists() else ""

    def start(self, timeout: float = 60.0, wait_connected: bool = True) -> None:
        """Ready when /about/health answers and (if `wait_connected`) NATS is connected."""
        self.port = free_port()
        err = open(self.log_dir / "conclave.err", "a")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", str(self.data_dir),
             "--web-listen", f"127.0.0.1:{self.port}",
             "--nats-url", self.nats_url, "--nats-server-id", "e2e",
             "--nats-service-name", "e2e-bot", "--nats-service-token", TOKEN,
             "--nats-service-may-act-as", "true", "--sip-enabled", "false", *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
            env={**self.env(), "CONCLAVE_LOG": "info"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.stderr())
            try:
                r = requests.get(f"{self.url}/about/health", timeout=1)
                if r.status_code == 200 and (
                        not wait_connected or r.json()["sources"]["nats"]["connected"]):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"conclave did not become ready:\n{self.stderr()}")

    def nats_health(self) -> dict:
        return requests.get(f"{self.url}/about/health", timeout=5).json()["sources"]["nats"]

    def wait_nats(self, pred, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            h = self.nats_health()
            if pred(h):
                return h
            if time.monotonic() > deadline:
                raise AssertionError(f"NATS status never matched: {h}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

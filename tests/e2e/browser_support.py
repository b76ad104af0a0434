"""Headless Chromium for the page tests, driven through chromedriver's W3C WebDriver HTTP
API directly (no client library): Debian's `chromium` and `chromium-driver`, fake media
devices, loopback only, a fresh profile per browser, processes stopped by PID."""

import base64
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import requests

from conftest import free_port

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
    "--disable-dev-shm-usage", "--window-size=1280,900",
]


def available() -> str | None:
    """Why browsers cannot run here, or None when they can."""
    for p in (CHROMIUM, CHROMEDRIVER):
        if not Path(p).is_file():
            return f"{p} is missing (Debian packages chromium and chromium-driver)"
    return None


class WebDriverError(RuntimeError):
    pass


class Browser:
    """One Chromium session."""

    def __init__(self, driver: "Driver", profile: Path):
        self.driver = driver
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM,
                                   "args": FLAGS + [f"--user-data-dir={profile}"]},
        }}}
        v = driver.call("POST", "/session", caps)
        self.id = v["sessionId"]

    def call(self, method, path, body=None):
        return self.driver.call(method, f"/session/{self.id}{path}", body)

    def open(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    def js(self, script: str, *args):
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def js_async(self, script: str, *args):
        """Runs `script` whose last argument is the callback to call with the result."""
        return self.call("POST", "/execute/async", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        return self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css: str, text: str) -> None:
        self.call("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        self.call("POST", f"/element/{self.find(css)}/click", {})

    def wait(self, script: str, *args, timeout: float = 20.0, what: str = ""):
        """Polls `script` (returning a value) until it is truthy; returns it."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.js(script, *args)
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what or script}; last value {last!r}; "
                             f"status line: {self.text('#status')!r}")

    def text(self, css: str) -> str:
        return self.js("const e = document.querySelector(arguments[0]);"
                       "return e ? e.textContent : null;", css)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.call("GET", "/screenshot")))

    def join(self, name: str, password: str | None = None) -> None:
        self.wait("return document.readyState === 'complete' && !!document.getElementById('name');",
                  what="the join form")
        self.type("#name", name)
        if password:
            self.type("#password", password)
        self.click("#join-button")
        self.wait("return !document.getElementById('conference').hidden "
                  "|| document.getElementById('join-error').textContent;", what="the join")
        err = self.text("#join-error")
        assert not err, f"join as {name} failed: {err}"

    def close(self) -> None:
        try:
            self.driver.call("DELETE", f"/session/{self.id}")
        except (WebDriverError, requests.RequestException):
            pass


class Driver:
    """One chromedriver process on a free loopback port."""

    def __init__(self, log_dir: Path):
        self.port = free_port()
        self.log = open(log_dir / f"chromedriver-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chromedriver exited at start")
            try:
                if requests.get(f"{self.url}/status", timeout=1).json()["value"]["ready"]:
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.05)
        raise RuntimeError("chromedriver did not become ready")

    def call(self, method, path, body=None):
        r = requests.request(method, self.url + path, json=body, timeout=60)
        v = r.json().get("value") if r.content else None
        if r.status_code != 200:
            raise WebDriverError(f"{method} {path}: {r.status_code} {v}")
        return v

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class Browsers:
    """Opens browsers on one chromedriver and closes them all at the end."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.driver = Driver(tmp)
        self.open: list[Browser] = []

    def new(self) -> Browser:
        profile = self.tmp / f"profile-{len(self.open)}"
        profile.mkdir()
        b = Browser(self.driver, profile)
        self.open.append(b)
        return b

    def close(self) -> None:
        for b in self.open:
            b.close()
        self.driver.stop()


def require_media_plane(server):
    """The server, or a skip when it runs no media plane (/about/health media.enabled)."""
    import pytest
    import requests
    health = requests.get(f"{server.url}/about/health", timeout=10).json()
    if not health.get("media", {}).get("enabled"):
        pytest.skip("the server reports no media plane (/about/health media.enabled false)")
    return server

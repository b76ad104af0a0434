"""A real prosody (Debian package) on loopback for the XMPP gateway tests, and a
slixmpp (PyPI) client that logs in and asks service discovery questions."""

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

DOMAIN = "localhost"
COMPONENT = "conference.localhost"
USER, PASSWORD = "alice", "alice-password"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Prosody:
    """One prosody in the foreground (`-F`), configured in `root`: loopback only, c2s
    and component ports given, no s2s, no HTTP, data and pidfile in `root`, a test
    user stored by `internal_plain`. Started and stopped by PID; restartable."""

    def __init__(self, root: Path, c2s_port: int, component_port: int, secret: str):
        self.root = root
        self.c2s_port = c2s_port
        self.component_port = component_port
        self.secret = secret
        self.proc = None
        self.starts = 0
        self.config = root / "prosody.cfg.lua"
        (root / "data").mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.config_text())
        # internal_plain keeps accounts as Lua tables: `<data>/<host>/accounts/<user>.dat`.
        accounts = root / "data" / DOMAIN / "accounts"
        accounts.mkdir(parents=True, exist_ok=True)
        (accounts / f"{USER}.dat").write_text(f'return {{\n\t["password"] = "{PASSWORD}";\n}};\n')

    def config_text(self) -> str:
        run_as_root = "true" if os.geteuid() == 0 else "false"
        return f"""-- Written by tests/e2e/xmpp_support.py (also shown in docs/xmpp.md).
run_as_root = {run_as_root}
pidfile = "{self.root}/prosody.pid"
data_path = "{self.root}/data"
plugin_paths = {{}}
interfaces = {{ "127.0.0.1" }}
local_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.c2s_port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
http_ports = {{}}
https_ports = {{}}
component_ports = {{ {self.component_port} }}
component_interface = "127.0.0.1"
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "posix" }}
modules_disabled = {{ "s2s"; "tls"; "offline"; "c2s_direct_tls" }}
authentication = "internal_plain"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{self.root}/prosody.log" }} }}

VirtualHost "{DOMAIN}"

Component "{COMPONENT}"
    component_secret = "{self.secret}"
"""

    def start(self, timeout: float = 20.0) -> None:
        self.starts += 1
        out = open(self.root / f"prosody-{self.starts}.out", "w")
        self.proc = subprocess.Popen(
            ["prosody", "--config", str(self.config), "-F"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prosody exited:\n{self.log()}")
            if port_open(self.component_port) and port_open(self.c2s_port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"prosody did not open its ports:\n{self.log()}")

    def log(self) -> str:
        parts = []
        for p in sorted(self.root.glob("prosody*.out")) + [self.root / "prosody.log"]:
            if p.exists():
                parts.append(p.read_text()[-4000:])
        return "\n".join(parts)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID, SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


async def _discover(c2s_port: int, target: str, room_presence_to: str | None) -> dict:
    client = slixmpp.ClientXMPP(f"{USER}@{DOMAIN}/test", PASSWORD)
    # Loopback test server without certificates: plain connection, SCRAM over it.
    client.enable_starttls = False
    client.enable_direct_tls = False
    client.enable_plaintext = True
    # SCRAM over the plain loopback connection (slixmpp refuses it by default).
    client.plugin["feature_mechanisms"].unencrypted_scram = True
    client.register_plugin("xep_0030")
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    presence_error = loop.create_future()

    def on_start(_event):
        if not ready.done():
            ready.set_result(True)

    def on_failed(_event):
        if not ready.done():
            ready.set_exception(RuntimeError("authentication failed"))

    def on_presence_error(p):
        if not presence_error.done():
            presence_error.set_result(p)

    client.add_event_handler("session_start", on_start)
    client.add_event_handler("failed_auth", on_failed)
    client.add_event_handler("presence_error", on_presence_error)
    client.connect("127.0.0.1", c2s_port)
    try:
        await asyncio.wait_for(ready, 15)
        info = await client.plugin["xep_0030"].get_info(jid=target, timeout=10)
        items = await client.plugin["xep_0030"].get_items(jid=target, timeout=10)
        out = {
            "identities": sorted((i[0], i[1], i[3]) for i in info["disco_info"]["identities"]),
            "features": sorted(info["disco_info"]["features"]),
            "items": sorted((str(i[0]), i[2]) for i in items["disco_items"]["items"]),
        }
        try:
            await client.plugin["xep_0030"].get_info(jid=f"somewhere@{target}", timeout=10)
            out["room_info_error"] = None
        except IqError as e:
            out["room_info_error"] = (e.iq["error"]["type"], e.iq["error"]["condition"])
        if room_presence_to:
            client.send_presence(pto=room_presence_to)
            p = await asyncio.wait_for(presence_error, 10)
            out["presence_error"] = (p["error"]["type"], p["error"]["condition"], p["error"]["text"])
        return out
    except IqTimeout as e:
        raise RuntimeError("no answer from the component") from e
    finally:
        client.disconnect()


def discover(c2s_port: int, target: str = COMPONENT, room_presence_to: str | None = None) -> dict:
    """Logs in as the test user and returns disco#info and disco#items of `target`."""
    return asyncio.run(asyncio.wait_for(_discover(c2s_port, target, room_presence_to), 40))

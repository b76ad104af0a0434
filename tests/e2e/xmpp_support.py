"""A real prosody (Debian package) on loopback for the XMPP gateway tests, and slixmpp
(PyPI) clients: one that asks service discovery questions, and `MucClient`, a
multi-user chat (XEP-0045) occupant used by tests/e2e/test_xmpp_muc.py and
scripts/bench-xmpp.

The prosody has two MUC services: Conclave's external component (`conference.localhost`,
XEP-0114) and prosody's own built-in MUC (`muc.localhost`), the reference the MUC tests
and the benchmark run against first."""

import asyncio
import functools
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests
import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from conftest import Server

DOMAIN = "localhost"
COMPONENT = "conference.localhost"
# Prosody's own multi-user chat, the XEP-0045 reference the MUC tests also run against.
PROSODY_MUC = "muc.localhost"
USER, PASSWORD = "alice", "alice-password"
# Accounts every prosody here has; more (bench0, bench1, ...) with `Prosody.add_user`.
USERS = ("alice", "bob", "carol", "dave", "eve")
PROSODY_MODULES = Path("/usr/lib/prosody/modules")
# Debian's prosody 0.12 ships mod_muc_mam (XEP-0313 on rooms); load it only if present.
HAS_MUC_MAM = (PROSODY_MODULES / "mod_muc_mam.lua").exists()


def password_of(user: str) -> str:
    return f"{user}-password"


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
        for user in USERS:
            self.add_user(user)

    def add_user(self, user: str, password: str | None = None) -> str:
        """Creates (or resets) an account; works while prosody runs, since internal_plain
        reads `<data>/<host>/accounts/<user>.dat` (a Lua table) at each login. The user
        part is stored escaped the way prosody's datamanager does: keep it [a-z0-9]."""
        assert user.isalnum() and user.islower(), user
        accounts = self.root / "data" / DOMAIN / "accounts"
        accounts.mkdir(parents=True, exist_ok=True)
        password = password or password_of(user)
        (accounts / f"{user}.dat").write_text(f'return {{\n\t["password"] = "{password}";\n}};\n')
        return password

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

-- Prosody's built-in XEP-0045 service: the reference Conclave's component is held to.
Component "{PROSODY_MUC}" "muc"
    name = "Prosody MUC"
    modules_enabled = {{ {'"muc_mam"' if HAS_MUC_MAM else ''} }}
    restrict_room_creation = false
    muc_room_locking = true
    muc_room_default_history_length = 20
    max_archive_query_results = 100
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


def start_conclave(binary: str, root: Path, prosody: Prosody, args=()) -> Server:
    """A `conclave serve` (data and logs in `root`) whose XMPP gateway is `prosody`'s
    component COMPONENT, the secret in a file; returns once the component is connected."""
    root.mkdir(parents=True, exist_ok=True)
    secret_file = root / "component-secret"
    secret_file.write_text(prosody.secret + "\n")
    (root / "logs").mkdir(exist_ok=True)
    server = Server(binary, root / "data", root / "logs", args=[
        "--xmpp-component-domain", COMPONENT,
        "--xmpp-server", f"127.0.0.1:{prosody.component_port}",
        "--xmpp-component-secret-file", str(secret_file),
        *args,
    ])
    server.start()
    try:
        wait_xmpp_connected(server)
    except BaseException:
        server.stop()
        raise
    return server


def xmpp_health(server) -> dict:
    """`sources.xmpp` of the server's /about/health."""
    return requests.get(f"{server.url}/about/health", timeout=5).json()["sources"]["xmpp"]


def wait_xmpp_connected(server, connected: bool = True, timeout: float = 30.0) -> dict:
    """Polls /about/health until `sources.xmpp.connected` is `connected`; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        h = xmpp_health(server)
        if h["connected"] is connected:
            return h
        if time.monotonic() >= deadline:
            raise AssertionError(f"the XMPP component never became connected={connected}: {h}")
        time.sleep(0.05)


def async_test(fn):
    """Runs an async test body in a fresh event loop, bounded in time."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 90))
    return wrapper


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


# ------------------------------------------------------------------ multi-user chat

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
NS_DELAY = "urn:xmpp:delay"
NS_MAM = "urn:xmpp:mam:2"


class StanzaError(Exception):
    """An error stanza (presence, message or IQ) as (type, condition, text)."""

    def __init__(self, stanza):
        self.stanza = stanza
        err = stanza["error"]
        self.type, self.condition, self.text = err["type"], err["condition"], err["text"]
        super().__init__(f"{stanza.name} error {self.type}/{self.condition} {self.text!r}: {stanza}")


def muc_user_x(stanza):
    """The `<x xmlns='…muc#user'/>` child of a presence or message, or None."""
    return stanza.xml.find(f"{{{NS_MUC_USER}}}x")


def status_codes(stanza) -> set[int]:
    x = muc_user_x(stanza)
    if x is None:
        return set()
    return {int(s.get("code")) for s in x.findall(f"{{{NS_MUC_USER}}}status")}


def muc_item(stanza) -> dict:
    """The attributes of the muc#user `<item/>` (affiliation, role, jid, nick) plus its
    `reason` and `actor` children, or {}."""
    x = muc_user_x(stanza)
    item = None if x is None else x.find(f"{{{NS_MUC_USER}}}item")
    if item is None:
        return {}
    out = dict(item.attrib)
    reason = item.find(f"{{{NS_MUC_USER}}}reason")
    if reason is not None:
        out["reason"] = reason.text or ""
    actor = item.find(f"{{{NS_MUC_USER}}}actor")
    if actor is not None:
        out["actor"] = dict(actor.attrib)
    return out


def delay_stamp(stanza) -> str | None:
    d = stanza.xml.find(f"{{{NS_DELAY}}}delay")
    return None if d is None else d.get("stamp")


def room_jid(service: str, name: str) -> str:
    return f"{name}@{service}"


class JoinResult:
    """What a join brought, in the order XEP-0045 §7.2 sends it: the other occupants'
    presences, our own presence (status 110), the discussion history, then the subject."""

    def __init__(self):
        self.occupants = []     # presences of the others, in arrival order
        self.self_presence = None
        self.history = []       # groupchat messages with a body, before the subject
        self.subject = None     # the subject message (may be empty)
        self.order = []         # ("occupant"|"self"|"history"|"subject", nick)

    @property
    def codes(self) -> set[int]:
        return status_codes(self.self_presence)

    @property
    def item(self) -> dict:
        return muc_item(self.self_presence)


class MucClient:
    """One XMPP user (c2s over plain loopback, SCRAM) as a multi-user chat occupant.

    Every presence and message the client receives is appended to `inbox`; the `wait_*`
    methods take (remove) the first stanza matching a predicate, waiting for it up to a
    timeout: tests wait for what they expect, never for a fixed time. To show that a
    stanza did NOT arrive, send something after it on the same path and wait for that
    (a barrier), then look at `inbox` (`seen`)."""

    def __init__(self, c2s_port: int, user: str, resource: str = "muc",
                 password: str | None = None):
        self.c2s_port = c2s_port
        self.user = user
        self.jid = f"{user}@{DOMAIN}"
        self.full_jid = f"{self.jid}/{resource}"
        x = slixmpp.ClientXMPP(self.full_jid, password or password_of(user))
        x.enable_starttls = False
        x.enable_direct_tls = False
        x.enable_plaintext = True
        x.plugin["feature_mechanisms"].unencrypted_scram = True
        for plugin in ("xep_0030", "xep_0004", "xep_0045", "xep_0059", "xep_0297",
                       "xep_0313", "xep_0203"):
            x.register_plugin(plugin)
        self.xmpp = x
        self.inbox = []
        self._arrived = None
        self._closed = None
        x.register_handler(Callback("inbox-presence", MatchXPath("{jabber:client}presence"),
                                    self._collect))
        x.register_handler(Callback("inbox-message", MatchXPath("{jabber:client}message"),
                                    self._collect))

    @property
    def muc(self):
        return self.xmpp.plugin["xep_0045"]

    def _collect(self, stanza):
        self.inbox.append(stanza)
        if self._arrived is not None:
            self._arrived.set()

    # -- session

    async def connect(self, timeout: float = 20, presence: bool = True) -> "MucClient":
        """Logs in; with `presence`, sends initial presence (needed for stanzas to the
        bare JID, invitations for example) and waits until the server has taken it."""
        loop = asyncio.get_running_loop()
        self._arrived = asyncio.Event()
        self._closed = loop.create_future()
        ready = loop.create_future()

        def on_start(_e):
            if not ready.done():
                ready.set_result(True)

        def on_failed(_e):
            if not ready.done():
                ready.set_exception(RuntimeError(f"{self.jid}: authentication failed"))

        def on_disconnected(_e):
            if not self._closed.done():
                self._closed.set_result(True)

        self.xmpp.add_event_handler("session_start", on_start)
        self.xmpp.add_event_handler("failed_auth", on_failed)
        self.xmpp.add_event_handler("disconnected", on_disconnected)
        self.xmpp.connect("127.0.0.1", self.c2s_port)
        await asyncio.wait_for(ready, timeout)
        if presence:
            self.xmpp.send_presence()
            await self.sync()
        return self

    async def sync(self, timeout: float = 10) -> None:
        """A round trip to our own server: everything sent before has been processed."""
        await self.xmpp.plugin["xep_0030"].get_info(jid=DOMAIN, timeout=timeout)

    async def wait_disconnected(self, timeout: float = 10) -> None:
        """Waits until the connection is gone (the server closed it, for example)."""
        await asyncio.wait_for(asyncio.shield(self._closed), timeout)

    async def close(self, timeout: float = 5) -> None:
        if self._closed is None or self._closed.done():
            return
        self.xmpp.disconnect()
        try:
            await asyncio.wait_for(asyncio.shield(self._closed), timeout)
        except asyncio.TimeoutError:
            self.xmpp.abort()

    # -- waiting for stanzas

    async def wait(self, pred, what: str, timeout: float = 10):
        """Takes the first stanza in `inbox` for which `pred` is true, waiting for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, st in enumerate(self.inbox):
                if pred(st):
                    return self.inbox.pop(i)
            left = deadline - loop.time()
            if left <= 0:
                shown = "\n  ".join(str(s)[:300] for s in self.inbox[-8:])
                raise AssertionError(f"{self.user}: timed out after {timeout}s waiting for {what};"
                                     f" last in inbox:\n  {shown}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    def seen(self, pred) -> list:
        """Stanzas already received (and not taken) matching `pred`."""
        return [s for s in self.inbox if pred(s)]

    async def wait_presence(self, frm: str, *, type_: str | None = None, codes=(),
                            pred=None, timeout: float = 10, what: str = ""):
        """Takes a presence from `frm` (a full room/nick JID, or a bare room JID meaning
        any nick of it), of `type_` ('unavailable', 'error', None = available), carrying
        at least the status `codes` (and matching `pred`, if given)."""
        codes = set(codes)

        def match(p):
            if p.name != "presence" or not _from_matches(p, frm):
                return False
            t = p["type"]
            if type_ is None and t in ("unavailable", "error"):
                return False
            if type_ is not None and t != type_:
                return False
            return codes <= status_codes(p) and (pred is None or pred(p))
        return await self.wait(match, what or f"presence {type_ or 'available'} from {frm}"
                               f" with codes {sorted(codes)}", timeout)

    async def wait_message(self, frm: str, *, type_: str | None = None, body: str | None = None,
                           id_: str | None = None, pred=None, timeout: float = 10, what: str = ""):
        def match(m):
            if m.name != "message" or not _from_matches(m, frm):
                return False
            if type_ is not None and m["type"] != type_:
                return False
            if body is not None and m["body"] != body:
                return False
            if id_ is not None and m["id"] != id_:
                return False
            return pred is None or pred(m)
        return await self.wait(match, what or f"message from {frm} type {type_} body {body!r}",
                               timeout)

    async def wait_error(self, frm: str, kind: str = "message", timeout: float = 10) -> StanzaError:
        """Takes an error `kind` stanza (message/presence) from `frm` and returns it."""
        st = await self.wait(lambda s: s.name == kind and s["type"] == "error"
                             and _from_matches(s, frm),
                             f"{kind} error from {frm}", timeout)
        return StanzaError(st)

    # -- occupant actions

    def send_join(self, room: str, nick: str, password: str | None = None,
                  maxstanzas: int | None = None, since=None) -> None:
        p = self.muc.make_join_stanza(room, nick, password=password, maxstanzas=maxstanzas,
                                      since=since)
        p.send()

    async def join(self, room: str, nick: str, password: str | None = None,
                   maxstanzas: int | None = None, timeout: float = 10,
                   until_subject: bool = True) -> JoinResult:
        """Joins and returns the join's stanzas (XEP-0045 §7.2). Raises StanzaError when
        the room refuses us. Waits for the subject unless `until_subject` is false (a room
        just created by this join, for example, before it is configured)."""
        self.send_join(room, nick, password, maxstanzas)
        own = f"{room}/{nick}"
        res = JoinResult()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def pred(s):
            if not _from_matches(s, room):
                return False
            if s.name == "presence":
                return s["type"] != "unavailable" and (s["type"] != "error" or _from_matches(s, own))
            return s["type"] == "groupchat" and (bool(s["body"]) or _has_subject(s))
        while True:
            st = await self.wait(pred, f"the join of {own}", max(0.01, deadline - loop.time()))
            if st["type"] == "error":
                raise StanzaError(st)
            if st.name == "presence":
                if 110 in status_codes(st) or str(st["from"]) == own:
                    res.self_presence = st
                    res.order.append(("self", st["from"].resource))
                    if not until_subject:
                        return res
                else:
                    res.occupants.append(st)
                    res.order.append(("occupant", st["from"].resource))
            elif _has_subject(st) and not st["body"]:
                res.subject = st
                res.order.append(("subject", st["from"].resource))
                return res
            else:
                res.history.append(st)
                res.order.append(("history", st["from"].resource))

    async def leave(self, room: str, nick: str, timeout: float = 10):
        self.xmpp.make_presence(pto=f"{room}/{nick}", ptype="unavailable").send()
        return await self.wait_presence(f"{room}/{nick}", type_="unavailable", codes={110},
                                        timeout=timeout)

    def send_groupchat(self, room: str, body: str, id_: str | None = None) -> str:
        m = self.xmpp.make_message(mto=room, mbody=body, mtype="groupchat")
        if id_:
            m["id"] = id_
        elif not m["id"]:
            m["id"] = self.xmpp.new_id()
        m.send()
        return m["id"]

    def send_private(self, room: str, nick: str, body: str) -> str:
        """A private message to an occupant (XEP-0045 §7.5), type chat, with the
        muc#user marker clients add."""
        m = self.xmpp.make_message(mto=f"{room}/{nick}", mbody=body, mtype="chat")
        m["id"] = self.xmpp.new_id()
        m.append(slixmpp.xmlstream.ET.Element(f"{{{NS_MUC_USER}}}x"))
        m.send()
        return m["id"]

    def set_subject(self, room: str, subject: str) -> None:
        self.muc.set_subject(room, subject)

    async def change_nick(self, room: str, new_nick: str) -> None:
        p = self.xmpp.make_presence(pto=f"{room}/{new_nick}")
        p.send()

    # -- owner and admin (XEP-0045 §9, §10); IQ errors raise StanzaError

    async def _iq(self, coro):
        try:
            return await coro
        except IqError as e:
            raise StanzaError(e.iq) from None

    async def config_form(self, room: str):
        return await self._iq(self.muc.get_room_config(room, timeout=10))

    async def submit_instant(self, room: str) -> None:
        """Accepts the default configuration: an empty submit form (§10.1.2)."""
        form = self.xmpp.plugin["xep_0004"].make_form(ftype="submit")
        await self._iq(self.muc.set_room_config(room, form, timeout=10))

    async def configure(self, room: str, values: dict, optional=()) -> dict:
        """Asks for the configuration form and submits FORM_TYPE plus `values` (var ->
        value; bools become 0/1). Every var must be offered by the form except those
        in `optional`, which are left out when it does not offer them. Returns the
        form's fields (var -> type) as offered."""
        form = await self.config_form(room)
        offered = {var: f["type"] for var, f in form.get_fields().items()}
        out = self.xmpp.plugin["xep_0004"].make_form(ftype="submit")
        out.add_field(var="FORM_TYPE", ftype="hidden", value=NS_ROOMCONFIG)
        for var, value in values.items():
            if var not in offered:
                if var in optional:
                    continue
                raise AssertionError(f"the configuration form of {room} has no {var}:"
                                     f" {sorted(offered)}")
            if isinstance(value, bool):
                value = "1" if value else "0"
            out.add_field(var=var, ftype=offered[var], value=value)
        await self._iq(self.muc.set_room_config(room, out, timeout=10))
        return offered

    async def set_role(self, room: str, nick: str, role: str, reason: str = "") -> None:
        await self._iq(self.muc.set_role(room, nick, role, reason=reason, timeout=10))

    async def set_affiliation(self, room: str, jid: str, affiliation: str,
                              reason: str = "") -> None:
        await self._iq(self.muc.set_affiliation(room, affiliation, jid=jid, reason=reason,
                                                timeout=10))

    async def affiliation_list(self, room: str, affiliation: str) -> list[str]:
        return sorted(str(j) for j in
                      await self._iq(self.muc.get_affiliation_list(room, affiliation, timeout=10)))

    async def role_list(self, room: str, role: str) -> list[str]:
        return sorted(await self._iq(self.muc.get_roles_list(room, role, timeout=10)))

    def invite(self, room: str, jid: str, reason: str = "") -> None:
        self.muc.invite(room, jid, reason)

    def decline(self, room: str, inviter: str, reason: str = "") -> None:
        self.muc.decline(room, inviter, reason)

    async def destroy(self, room: str, reason: str = "", altroom: str | None = None) -> None:
        await self._iq(self.muc.destroy(room, reason, altroom, timeout=10))

    async def disco_info(self, jid: str) -> dict:
        info = await self._iq(self.xmpp.plugin["xep_0030"].get_info(jid=jid, timeout=10))
        di = info["disco_info"]
        return {"identities": [(i[0], i[1], i[3]) for i in di["identities"]],
                "features": set(di["features"]),
                "form": di.get_plugin("form", check=True)}

    async def mam_query(self, room: str, max_items: int = 50) -> list:
        """XEP-0313 query on the room's archive; returns the archived messages (the
        forwarded stanzas), oldest first, each with its delay stamp on the forward."""
        iq = await self._iq(self.xmpp.plugin["xep_0313"].retrieve(
            jid=room, rsm={"max": max_items}, timeout=10))
        out = []
        for msg in iq["mam"]["results"]:
            fwd = msg["mam_result"]["forwarded"]
            out.append({"stanza": fwd["stanza"], "stamp": fwd["delay"]["stamp"],
                        "id": msg["mam_result"]["id"]})
        # The result messages are in the inbox too: drop them.
        ids = {id(m) for m in iq["mam"]["results"]}
        self.inbox = [s for s in self.inbox if s.xml.find(f"{{{NS_MAM}}}result") is None
                      and id(s) not in ids]
        return out


def _has_subject(message) -> bool:
    return message.xml.find("{jabber:client}subject") is not None


def _from_matches(stanza, frm: str) -> bool:
    f = stanza["from"]
    if "/" in frm:
        return str(f) == frm
    return f.bare == frm


async def connect_all(c2s_port: int, users, resource: str = "muc") -> list[MucClient]:
    clients = [MucClient(c2s_port, u, resource) for u in users]
    await asyncio.gather(*(c.connect() for c in clients))
    return clients


async def close_all(clients) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

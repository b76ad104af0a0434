"""The XMPP component against a real prosody (Debian) and a real client (slixmpp,
PyPI): it connects, answers service discovery with the engine's public rooms, refuses
a stranger's join of a private room visibly, and reconnects when prosody restarts.
Multi-user chat itself is test_xmpp_muc.py's."""

import secrets
import time

import pytest
import requests

from conftest import Server, free_port
from xmpp_support import COMPONENT, Prosody, discover


def health(server) -> dict:
    r = requests.get(f"{server.url}/about/health", timeout=5)
    return r.json()["sources"]["xmpp"]


def wait_for(predicate, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def metric(server, name: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture
def xmpp_stack(conclave_bin, tmp_path):
    secret = secrets.token_hex(16)
    prosody = Prosody(tmp_path / "prosody", free_port(), free_port(), secret)
    prosody.start()
    secret_file = tmp_path / "component-secret"
    secret_file.write_text(secret + "\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    server = Server(conclave_bin, tmp_path / "data", logs, args=[
        "--xmpp-component-domain", COMPONENT,
        "--xmpp-server", f"127.0.0.1:{prosody.component_port}",
        "--xmpp-component-secret-file", str(secret_file),
    ])
    try:
        server.start()
        yield prosody, server
    finally:
        server.stop()
        prosody.stop()


def test_component_answers_disco_and_reconnects_after_a_prosody_restart(xmpp_stack):
    prosody, server = xmpp_stack
    wait_for(lambda: health(server)["connected"], "the component to connect")
    h = health(server)
    assert h["state"] == "connected" and h["component_domain"] == COMPONENT
    # The secret is nowhere in what the server shows.
    assert prosody.secret not in str(h)
    assert prosody.secret not in server.stderr()

    for i, (room, private) in enumerate([("lobby", False), ("Team Room", False),
                                         ("secret-plans", True)]):
        r = requests.post(f"{server.url}/rooms",
                          json={"room": room, "as": f"web:owner{i}", "private": private},
                          timeout=30)
        assert r.status_code == 201, r.text

    out = discover(prosody.c2s_port, room_presence_to=f"secret-plans@{COMPONENT}/alice")
    assert out["identities"] == [("conference", "text", "Conclave rooms")]
    assert out["features"] == sorted([
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "http://jabber.org/protocol/muc",
    ])
    # Public rooms only, as room JIDs (XEP-0106 escaped) with their names.
    assert out["items"] == [
        (f"lobby@{COMPONENT}", "lobby"),
        (f"team\\20room@{COMPONENT}", "Team Room"),
    ]
    # A room that does not exist has no disco#info; a private (members-only) room
    # refuses a stranger's join visibly (XEP-0045 §7.2.6), never with silence.
    assert out["room_info_error"] == ("cancel", "item-not-found")
    assert out["presence_error"][:2] == ("auth", "registration-required")
    assert metric(server, "conclave_xmpp_connected") == 1
    assert metric(server, "conclave_xmpp_stanzas_in_total") >= 4
    assert metric(server, "conclave_xmpp_stanzas_out_total") >= 4
    reconnects = health(server)["reconnects"]

    # Prosody goes away: the component notices and says so.
    prosody.stop()
    wait_for(lambda: not health(server)["connected"], "the component to notice")
    assert health(server)["state"] == "connecting"
    assert metric(server, "conclave_xmpp_connected") == 0

    # Prosody comes back on the same ports: the component reconnects by itself.
    prosody.start()
    wait_for(lambda: health(server)["connected"], "the component to reconnect")
    h = health(server)
    assert h["reconnects"] > reconnects
    assert h["last_error"]["code"] in ("xmpp.closed", "xmpp.io")
    assert metric(server, "conclave_xmpp_reconnects_total") == h["reconnects"]
    out = discover(prosody.c2s_port)
    assert [j for j, _ in out["items"]] == [f"lobby@{COMPONENT}", f"team\\20room@{COMPONENT}"]

"""The browser page at /r/{room}, end to end in headless Chromium (browser_support.py):

- the page loads (with its content security policy), joins a room through the REST API
  (the first guest creates it and owns it), and lists the other participants, browser
  and not, with their roles and protocols from the room details and the event stream;
- chat typed in one page appears in the other and in the journal (/audit), sent over the
  room's WebSocket with the participant as actor;
- a moderator's control on the page mutes another participant, and the muted page follows
  the server's state;
- media (each page decodes the others' video; a muted participant's audio stops reaching
  the others) needs the media plane: skipped with the reason while /about/health says
  the server has none.

Every wait polls with a deadline; nothing sleeps a fixed time."""

import os
import time
from pathlib import Path

import pytest
import requests

import browser_support

WAIT = 20.0

pytestmark = pytest.mark.skipif(browser_support.available() is not None,
                                reason=browser_support.available() or "")


def principals(page) -> list[str]:
    return page.js("return [...document.querySelectorAll('#participants li')]"
                   ".map(li => li.dataset.principal);")


def wait_principals(page, expected: set[str]):
    page.wait("const got = [...document.querySelectorAll('#participants li')]"
              ".map(li => li.dataset.principal);"
              "return arguments[0].every(p => got.includes(p));", sorted(expected),
              what=f"participants {sorted(expected)}")


def test_page_is_served_with_its_assets_and_checks_the_room_name(server):
    r = requests.get(f"{server.url}/r/daily-sync", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert '<form id="join-form">' in r.text
    for asset, kind in (("/assets/room.js", "text/javascript"), ("/assets/room.css", "text/css")):
        a = requests.get(server.url + asset, timeout=10)
        assert a.status_code == 200 and a.headers["content-type"].startswith(kind), asset
    bad = requests.get(f"{server.url}/r/%00nul", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "input.invalid"


def test_pages_join_list_participants_and_carry_chat(server, browsers):
    room = "webpage"
    alice = browsers.new()
    alice.open(f"{server.url}/r/{room}")
    alice.join("alice")
    wait_principals(alice, {"web:alice"})
    # The creator owns the room: the page shows it and offers moderator controls.
    alice.wait("return document.getElementById('my-role').textContent === 'owner';",
               what="alice's role")
    assert alice.js("return document.getElementById('moderation').hidden;") is False

    # Media is off on a server without a media plane; the page says so.
    health = requests.get(f"{server.url}/about/health", timeout=10).json()
    if not health["media"]["enabled"]:
        alice.wait("return document.getElementById('media-state').textContent"
                   ".includes('not available');", what="the no-media notice")

    # A participant who is not a browser (REST), then Bob's page.
    r = requests.post(f"{server.url}/rooms/{room}/join", json={"as": "web:carol"}, timeout=10)
    assert r.status_code == 201, r.text
    bob = browsers.new()
    bob.open(f"{server.url}/r/{room}")
    bob.join("bob")
    wait_principals(bob, {"web:alice", "web:bob", "web:carol"})
    wait_principals(alice, {"web:alice", "web:bob", "web:carol"})
    facts = bob.text("#participants li[data-principal='web:alice'] .facts")
    assert "owner" in facts and "browser" in facts, facts
    # Bob is no moderator: no controls.
    assert bob.js("return document.getElementById('moderation').hidden;") is True
    assert bob.js("return document.querySelectorAll('#participants .actions').length;") == 0

    # Chat typed in one page appears in the other.
    alice.type("#chat-input", "hello from alice")
    alice.click("#chat-form button[type=submit]")
    bob.wait("return [...document.querySelectorAll('#messages li')]"
             ".some(li => li.textContent === 'web:alice: hello from alice');",
             what="alice's message on bob's page")
    bob.type("#chat-input", "hi alice")
    bob.click("#chat-form button[type=submit]")
    alice.wait("return [...document.querySelectorAll('#messages li')]"
               ".some(li => li.textContent === 'web:bob: hi alice');",
               what="bob's message on alice's page")
    # ... and in the journal, as commands of each participant over the socket.
    audit = requests.get(f"{server.url}/audit?room={room}&type=chat_message",
                         headers=server.admin(), timeout=10).json()["entries"]
    said = [(e["actor"], e["protocol"], e["event"]["data"]["body"]) for e in audit]
    assert said == [("web:alice", "websocket", "hello from alice"),
                    ("web:bob", "websocket", "hi alice")], said

    # Alice mutes Bob from her page; the server holds it and Bob's page follows.
    alice.click("#participants li[data-principal='web:bob'] button[aria-label='Mute web:bob']")
    deadline = time.monotonic() + WAIT
    while True:
        members = requests.get(f"{server.url}/rooms/{room}/members", headers=server.admin(),
                               timeout=10).json()["members"]
        if {m["principal"]: m["audio"] for m in members}.get("web:bob") == "moderator":
            break
        assert time.monotonic() < deadline, members
        time.sleep(0.1)
    bob.wait("return document.getElementById('mute').getAttribute('aria-pressed') === 'true';",
             what="bob's mute button showing the moderator's mute")
    bob.wait("return document.querySelector(\"#participants li[data-principal='web:bob'] .facts\")"
             ".textContent.includes('muted by a moderator');", what="bob's own entry")

    # Alice kicks Bob: his page's socket closes with 4001.
    alice.click("#participants li[data-principal='web:bob'] button[aria-label='Kick web:bob']")
    bob.wait("return document.body.dataset.ended === '4001';", what="bob's page ending")


def inbound_stats(page) -> dict:
    """Per remote stream id: frames decoded and audio energy received so far."""
    return page.js_async("""
        const done = arguments[arguments.length - 1];
        const pc = window.conclave && window.conclave.pc;
        if (!pc) { done({}); return; }
        const byTrack = {};
        for (const r of pc.getReceivers()) {
          const v = document.querySelector('#tiles .tile[data-session] video');
          byTrack[r.track.id] = r;
        }
        const streams = {};
        for (const t of pc.getTransceivers()) {
          const tile = [...document.querySelectorAll('#tiles .tile[data-session]')]
            .find(el => el.querySelector('video').srcObject &&
                  el.querySelector('video').srcObject.getTracks().includes(t.receiver.track));
          if (tile) streams[t.receiver.track.id] = tile.dataset.session;
        }
        pc.getStats().then(report => {
          const out = {};
          report.forEach(s => {
            if (s.type !== 'inbound-rtp') return;
            const who = streams[s.trackIdentifier] || '?';
            out[who] = out[who] || {frames: 0, energy: 0};
            if (s.kind === 'video') out[who].frames += s.framesDecoded || 0;
            if (s.kind === 'audio') out[who].energy += s.totalAudioEnergy || 0;
          });
          done(out);
        });
    """)


def test_three_pages_decode_each_others_media(server, browsers, tmp_path):
    health = requests.get(f"{server.url}/about/health", timeout=10).json()
    if not health.get("media", {}).get("enabled"):
        pytest.skip("the server reports no media plane (/about/health media.enabled is false): "
                    "this test runs once the SFU is wired into `conclave serve`")
    room = "webmedia"
    pages = {}
    for name in ("alice", "bob", "carol"):
        p = browsers.new()
        p.open(f"{server.url}/r/{room}")
        p.join(name)
        pages[name] = p
    for name, p in pages.items():
        p.wait("return document.querySelectorAll('#tiles .tile[data-session]').length >= 2;",
               timeout=30, what=f"two remote tiles on {name}'s page")
    sessions = {name: p.js("return window.conclave.session;") for name, p in pages.items()}
    for name, p in pages.items():
        others = {sessions[o] for o in pages if o != name}
        deadline = time.monotonic() + 30
        while True:
            st = inbound_stats(p)
            if all(st.get(s, {}).get("frames", 0) > 0 and st.get(s, {}).get("energy", 0) > 0
                   for s in others):
                break
            assert time.monotonic() < deadline, f"{name} decodes too little: {st}"
            time.sleep(0.2)
    artifacts = Path(os.environ.get("CONCLAVE_E2E_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    pages["alice"].screenshot(artifacts / "web-page-three-tiles.png")

    # Alice (the owner) mutes Bob: the others' inbound audio from Bob stops growing while
    # Bob's page keeps sending (its page is made to ignore the mute, as a hostile client
    # would: the track's `enabled` is shadowed so the page's own code cannot turn it off).
    pages["bob"].js("for (const t of window.conclave.local.getAudioTracks())"
                    "  Object.defineProperty(t, 'enabled', {get() { return true; }, set(_) {}});")
    pages["alice"].click("#participants li[data-principal='web:bob'] "
                         "button[aria-label='Mute web:bob']")
    bob = sessions["bob"]
    deadline = time.monotonic() + 10
    while True:
        a = inbound_stats(pages["carol"]).get(bob, {}).get("energy", 0)
        time.sleep(1.0)
        b = inbound_stats(pages["carol"]).get(bob, {}).get("energy", 0)
        if b - a < 1e-6:
            break
        assert time.monotonic() < deadline, "bob's audio still reaches carol after the mute"
    sent = """
        const done = arguments[arguments.length - 1];
        window.conclave.pc.getStats().then(r => { let n = 0; r.forEach(s => {
          if (s.type === 'outbound-rtp' && s.kind === 'audio') n += s.packetsSent || 0; });
          done(n); });
    """
    before = pages["bob"].js_async(sent)
    pages["bob"].wait("return true;")
    deadline = time.monotonic() + 10
    while pages["bob"].js_async(sent) <= before:
        assert time.monotonic() < deadline, "bob's page stopped sending audio"
        time.sleep(0.2)

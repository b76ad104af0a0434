"""Moderation and media of the browser page at /r/{room}, end to end in headless Chromium
(browser_support.py; fake camera, microphone and screen; loopback only) against the SFU
in `conclave serve` (issue 14, "Proof"):

- a kick closes the kicked page's socket and, on the server, its peer connection (even
  when the page keeps its own open); its tiles leave the others' pages, who keep their
  media;
- a banned page closes its connection and stops its devices; the banned identity cannot
  come back: the page shows the refusal and starts no media;
- a screen share (Chromium's fake screen) arrives at the others as one more video track
  that decodes frames, in a tile of its own; stopping it stops that track's frames;
- a knocking browser is admitted from the lobby by a moderator's click and gets media;
- a moderator's video pause stops the others' inbound video frames from that person
  while their page keeps sending (server-enforced), and resuming brings them back.

Every test is skipped while /about/health reports no media plane. Every wait polls with
a deadline; nothing sleeps a fixed time."""

import time

import pytest
import requests

import browser_support
from test_web_page import wait_principals

WAIT = 30.0

pytestmark = pytest.mark.skipif(browser_support.available() is not None,
                                reason=browser_support.available() or "")


@pytest.fixture
def media_server(server):
    return browser_support.require_media_plane(server)


# Per inbound video or audio track: the publisher's session (the remote stream's id, as
# the page's tiles use it), the track's kind, frames decoded, audio energy, and whether
# the track is live and unmuted.
TRACKS = """
    const done = arguments[arguments.length - 1];
    const pc = window.conclave && window.conclave.pc;
    if (!pc) { done(null); return; }
    const owner = {};
    for (const tile of document.querySelectorAll('#tiles .tile[data-session]')) {
      const s = tile.querySelector('video').srcObject;
      if (s) for (const t of s.getTracks()) owner[t.id] = tile.dataset.session;
    }
    const live = {};
    for (const r of pc.getReceivers()) {
      if (r.track) live[r.track.id] = r.track.readyState === 'live' && !r.track.muted;
    }
    pc.getStats().then((report) => {
      const out = [];
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        out.push({session: owner[s.trackIdentifier] || null, kind: s.kind,
                  track: s.trackIdentifier, live: !!live[s.trackIdentifier],
                  frames: s.framesDecoded || 0, energy: s.totalAudioEnergy || 0});
      });
      done(out);
    });
"""


def tracks(page) -> list[dict]:
    return page.js_async(TRACKS) or []


def frames_from(page, session: str) -> int:
    return sum(t["frames"] for t in tracks(page) if t["session"] == session)


def poll(check, what: str, timeout: float = WAIT, every: float = 0.2):
    """Calls `check` until it returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last {last!r}")


def decodes(page, session: str, audio: bool = True) -> None:
    """Waits until `page` decodes video (and hears audio) from `session`."""
    def ok():
        got = [t for t in tracks(page) if t["session"] == session]
        v = any(t["kind"] == "video" and t["frames"] > 0 for t in got)
        a = any(t["kind"] == "audio" and t["energy"] > 0 for t in got)
        return v and (a or not audio)
    poll(ok, f"media from {session}")


def grows(page, session: str, timeout: float = WAIT) -> None:
    """Waits until the frames decoded from `session` grow."""
    start = frames_from(page, session)
    poll(lambda: frames_from(page, session) > start, f"more frames from {session}", timeout)


def stalls(page, session: str, window: float = 1.0, timeout: float = 15.0) -> None:
    """Waits until the frames decoded from `session` stop growing for `window` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        a = frames_from(page, session)
        time.sleep(window)
        b = frames_from(page, session)
        if b == a:
            return
        assert time.monotonic() < deadline, f"frames from {session} still grow ({a} -> {b})"


def sent(page, kind: str) -> int:
    return page.js_async("""
        const done = arguments[arguments.length - 1];
        window.conclave.pc.getStats().then((r) => { let n = 0; r.forEach((s) => {
          if (s.type === 'outbound-rtp' && s.kind === arguments[0]) n += s.packetsSent || 0; });
          done(n); });
    """, kind)


def keeps_sending(page, kind: str) -> None:
    before = sent(page, kind)
    poll(lambda: sent(page, kind) > before, f"the page sending {kind}")


def make_hostile(page, kind: str) -> None:
    """The page's own code can no longer turn its local `kind` track off, as a hostile
    client would: what the others receive is then up to the server."""
    page.js("for (const t of window.conclave.local.getTracks()) if (t.kind === arguments[0])"
            "  Object.defineProperty(t, 'enabled', {get() { return true; }, set(_) {}});", kind)


def open_pages(server, browsers, room: str, names: list[str]) -> dict:
    """Joins `names` (the first creates the room) and waits until everyone decodes
    everyone; returns {name: (page, session)}."""
    pages = {}
    for name in names:
        p = browsers.new()
        p.open(f"{server.url}/r/{room}")
        p.join(name)
        pages[name] = (p, p.js("return window.conclave.session;"))
    for name, (p, _) in pages.items():
        for other, (_, s) in pages.items():
            if other != name:
                decodes(p, s)
    return pages


def tile_sessions(page) -> list[str]:
    return page.js("return [...document.querySelectorAll('#tiles .tile[data-session]')]"
                   ".map(t => t.dataset.session);")


def sfu_sessions(server) -> set[str]:
    """Sessions the media plane has a peer connection for (GET /debug/media, admin)."""
    r = requests.get(f"{server.url}/debug/media", headers=server.admin(), timeout=10)
    r.raise_for_status()
    stats = r.json()
    stats = stats.get("stats", stats)
    out = set()
    for room in (stats.get("rooms") or {}).values():
        out.update((room.get("participants") or {}).keys())
    return out


def test_kick_closes_the_kicked_pages_connection_and_the_others_keep_media(media_server,
                                                                           browsers):
    server = media_server
    pages = open_pages(server, browsers, "webkick", ["alice", "bob", "carol"])
    (alice, _), (bob, b_sess), (carol, c_sess) = pages["alice"], pages["bob"], pages["carol"]
    assert b_sess in sfu_sessions(server)
    # Bob's page keeps its peer connection open whatever happens: the server closes it.
    bob.js("window.keptPc = window.conclave.pc; window.keptPc.close = () => {};")

    alice.click("#participants li[data-principal='web:bob'] button[aria-label='Kick web:bob']")
    bob.wait("return document.body.dataset.ended === '4001';", what="bob's socket closing")
    assert bob.js("return window.conclave.ws;") is None
    poll(lambda: b_sess not in sfu_sessions(server), "the media plane dropping bob")
    for name, page in (("alice", alice), ("carol", carol)):
        page.wait("return !document.querySelector"
                  "(`#tiles .tile[data-session=\"${arguments[0]}\"]`);", b_sess,
                  what=f"bob's tile leaving {name}'s page")
    grows(alice, c_sess)
    grows(carol, pages["alice"][1])
    # The server no longer answers bob's browser (ICE consent checks fail: Chromium says
    # `disconnected` after about 6 s, `failed` after about 17 s; no DTLS close it acts on).
    bob.wait("return ['disconnected', 'failed', 'closed'].includes(window.keptPc.connectionState);",
             timeout=WAIT, what="bob's peer connection losing the server")


def test_banned_identity_cannot_rejoin(media_server, browsers):
    server = media_server
    room = "webban"
    pages = open_pages(server, browsers, room, ["alice", "bob"])
    (alice, _), (bob, b_sess) = pages["alice"], pages["bob"]

    bob.js("window.keptPc = window.conclave.pc;")
    alice.click("#participants li[data-principal='web:bob'] button[aria-label='Ban web:bob']")
    bob.wait("return document.body.dataset.ended === '4001';", what="bob's page ending")
    # The page closes its own connection and stops its camera and microphone.
    assert bob.js("return window.keptPc.connectionState;") == "closed"
    assert bob.js("return window.conclave.local.getTracks().every(t => t.readyState === 'ended');")
    alice.wait("return !document.querySelector"
               "(`#tiles .tile[data-session=\"${arguments[0]}\"]`);", b_sess,
               what="bob's tile leaving alice's page")

    # Bob reloads the page and tries again under the same name (his guest key is kept).
    bob.open(f"{server.url}/r/{room}")
    bob.wait("return document.readyState === 'complete' && !!document.getElementById('name');",
             what="the join form")
    bob.type("#name", "bob")
    bob.click("#join-button")
    err = bob.wait("return document.getElementById('join-error').textContent;",
                   what="the refusal")
    assert "membership.banned" in err, err
    assert bob.js("return document.getElementById('conference').hidden;") is True
    assert bob.js("return window.conclave.pc === null && window.conclave.local === null;")
    members = requests.get(f"{server.url}/rooms/{room}/members", headers=server.admin(),
                           timeout=10).json()["members"]
    assert "web:bob" not in {m["principal"] for m in members if m.get("sessions")}, members
    assert len(sfu_sessions(server)) == 1


def test_screen_share_arrives_as_an_extra_video_track(media_server, browsers):
    server = media_server
    pages = open_pages(server, browsers, "webscreen", ["alice", "bob"])
    (alice, _), (bob, b_sess) = pages["alice"], pages["bob"]

    # Headless Chromium's fake UI picks its fake screen for getDisplayMedia.
    bob.click("#screen")
    bob.wait("return document.getElementById('screen').getAttribute('aria-pressed') === 'true';",
             what="bob sharing his screen")
    assert "screen" in bob.js("return window.conclave.screen.getVideoTracks()[0].label;")

    def two_videos():
        got = [t for t in tracks(alice)
               if t["session"] == b_sess and t["kind"] == "video" and t["frames"] > 0]
        return got if len(got) == 2 else None
    videos = poll(two_videos, "two decoding video tracks from bob on alice's page")
    # The screen is shown in a tile of its own.
    alice.wait("return document.querySelectorAll(`#tiles .tile[data-session=\"${arguments[0]}\"]"
               " video`).length === 2;", b_sess, what="the screen's tile")
    camera = alice.js("return document.querySelector(`#tiles .tile[data-session='${arguments[0]}']"
                      ":not([data-track]) video`).srcObject.getVideoTracks()[0].id;", b_sess)
    screen = [t["track"] for t in videos if t["track"] != camera]
    assert len(screen) == 1, (camera, videos)

    # Stopping the share stops that track's frames at alice's; bob's camera keeps coming.
    # (The SFU keeps the ended publication's section open: see docs/media.md.)
    bob.click("#screen")
    bob.wait("return document.getElementById('screen').getAttribute('aria-pressed') === 'false';",
             what="bob's share stopping")

    def frames_of(track):
        return sum(t["frames"] for t in tracks(alice) if t["track"] == track)
    deadline = time.monotonic() + 15
    while True:
        a, c = frames_of(screen[0]), frames_of(camera)
        time.sleep(1.0)
        if frames_of(screen[0]) == a and frames_of(camera) > c:
            break
        assert time.monotonic() < deadline, "the screen's frames still grow after the share"


def test_lobby_knock_is_admitted_by_a_click_and_gets_media(media_server, browsers):
    server = media_server
    room = "weblobby"
    alice = browsers.new()
    alice.open(f"{server.url}/r/{room}")
    alice.join("alice")
    token = alice.js("return window.conclave.token;")
    r = requests.patch(f"{server.url}/rooms/{room}", json={"lobby": True},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text

    dave = browsers.new()
    dave.open(f"{server.url}/r/{room}")
    dave.join("dave")
    assert dave.text("#my-role") == "waiting in the lobby"
    assert dave.js("return window.conclave.pc;") is None

    alice.wait("return !!document.querySelector(\"#lobby button[aria-label='Admit web:dave']\");",
               what="dave in alice's lobby list")
    alice.click("#lobby button[aria-label='Admit web:dave']")
    dave.wait("return document.getElementById('my-role').textContent !== 'waiting in the lobby'"
              " && !!window.conclave.pc;", what="dave admitted with media")
    wait_principals(dave, {"web:alice", "web:dave"})
    a_sess = alice.js("return window.conclave.session;")
    d_sess = dave.js("return window.conclave.session;")
    decodes(dave, a_sess)
    decodes(alice, d_sess)


def test_moderators_video_pause_stops_forwarding_while_the_page_sends(media_server, browsers):
    server = media_server
    pages = open_pages(server, browsers, "webpause", ["alice", "bob"])
    (alice, _), (bob, b_sess) = pages["alice"], pages["bob"]
    make_hostile(bob, "video")

    alice.click("#participants li[data-principal='web:bob'] "
                "button[aria-label='Pause video web:bob']")
    bob.wait("return document.getElementById('camera').getAttribute('aria-pressed') === 'true';",
             what="bob's page following the pause")
    stalls(alice, b_sess)
    keeps_sending(bob, "video")
    assert bob.js("return window.conclave.local.getVideoTracks()[0].enabled;") is True

    # Resuming asks bob's browser for a keyframe: frames flow again at once.
    alice.click("#participants li[data-principal='web:bob'] "
                "button[aria-label='Resume video web:bob']")
    grows(alice, b_sess, timeout=10)

"""Simulcast end to end in headless Chromium (browser_support.py; fake camera at
1280x720, loopback only) against the SFU in `conclave serve`:

- the page publishes its camera as three simulcast layers (rids q, h, f): the
  publisher's getStats shows three outbound video streams with those rids;
- the other page receives ONE video track from it, decoding frames at the top layer's
  width once the publisher's bandwidth estimate lets it send that layer;
- after the subscriber's page says `media.layer` max `q` for that track (the page's
  own function), its inbound frame width drops to the q layer's (about a quarter)
  while frames keep decoding; the SFU's statistics and metrics count the switch.

Skipped while /about/health reports no media plane. Every wait polls with a deadline."""

import requests

from test_web_media import (decodes, grows, media_server,  # noqa: F401 (fixtures)
                            open_pages, poll, pytestmark)

WAIT = 60.0

OUTBOUND = """
    const done = arguments[arguments.length - 1];
    window.conclave.pc.getStats().then((report) => {
      const out = [];
      report.forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') {
          out.push({rid: s.rid || null, width: s.frameWidth || 0, frames: s.framesEncoded || 0,
                    active: s.active !== false});
        }
      });
      done(out);
    });
"""

# The inbound video from `session`: its frame width and frames decoded.
INBOUND = """
    const session = arguments[0];
    const done = arguments[arguments.length - 1];
    const tile = document.querySelector(`#tiles .tile[data-session="${session}"]:not([data-track])`);
    const stream = tile && tile.querySelector('video').srcObject;
    const track = stream && stream.getVideoTracks()[0];
    if (!track) { done(null); return; }
    window.conclave.pc.getStats(track).then((report) => {
      let out = null;
      report.forEach((s) => {
        if (s.type === 'inbound-rtp') out = {width: s.frameWidth || 0, frames: s.framesDecoded || 0};
      });
      done(out);
    });
"""


def inbound(page, session):
    return page.js_async(INBOUND, session) or {"width": 0, "frames": 0}


def video_tracks_from(page, session) -> int:
    return page.js("const t = document.querySelector(`#tiles .tile[data-session=\"${arguments[0]}\"]"
                   ":not([data-track])`); const s = t && t.querySelector('video').srcObject;"
                   "return s ? s.getVideoTracks().length : 0;", session)


def subscriber_stats(server, publisher: str, subscriber: str) -> dict:
    r = requests.get(f"{server.url}/debug/media", headers=server.admin(), timeout=10)
    r.raise_for_status()
    stats = r.json().get("stats", {})
    for room in (stats.get("rooms") or {}).values():
        p = (room.get("participants") or {}).get(publisher)
        for track in (p or {}).get("published", []):
            if track.get("kind") == "video":
                return {"track": track, "subscriber": track["subscribers"].get(subscriber)}
    return {}


def test_the_camera_is_simulcast_and_a_viewer_can_ask_for_the_small_layer(media_server,
                                                                          browsers):
    server = media_server
    pages = open_pages(server, browsers, "websimulcast", ["alice", "bob"])
    (alice, a_sess), (bob, b_sess) = pages["alice"], pages["bob"]

    # Alice's camera goes out as three layers, each a fraction of the full width.
    def three_layers():
        out = alice.js_async(OUTBOUND) or []
        with_rid = [s for s in out if s["rid"] and s["frames"] > 0 and s["width"] > 0]
        return sorted(with_rid, key=lambda s: s["width"]) if len(with_rid) == 3 else None
    layers = poll(three_layers, "three simulcast layers at alice", WAIT)
    assert [s["rid"] for s in layers] == ["q", "h", "f"], layers
    full = layers[2]["width"]
    assert full >= 1280, f"the fake camera at 1280x720: {layers}"

    # Bob gets one video track from her, at the top layer's width.
    assert video_tracks_from(bob, a_sess) == 1
    poll(lambda: inbound(bob, a_sess)["width"] >= full, f"bob decoding {full} wide", WAIT)
    s = subscriber_stats(server, a_sess, b_sess)
    assert s["track"]["simulcast"] is True, s
    assert s["subscriber"]["layer"] == "f", s

    # Bob's page asks for the small layer for alice's camera.
    bob.js("const t = document.querySelector(`#tiles .tile[data-session=\"${arguments[0]}\"]"
           ":not([data-track])`).querySelector('video').srcObject.getVideoTracks()[0];"
           "window.conclave.setLayer(t, 'q', true);", a_sess)
    small = layers[0]["width"]
    poll(lambda: 0 < inbound(bob, a_sess)["width"] <= small,
         f"bob decoding the q layer ({small} wide)", WAIT)
    assert small * 3 <= full, layers
    grows(bob, a_sess)
    assert video_tracks_from(bob, a_sess) == 1
    s = subscriber_stats(server, a_sess, b_sess)
    assert s["subscriber"]["layer"] == "q" and s["subscriber"]["max_layer"] == "q", s
    assert s["subscriber"]["layer_switches"] >= 2, s
    # Alice still gets bob's camera at full size: the preference was bob's alone.
    decodes(alice, b_sess, audio=False)
    metrics = requests.get(f"{server.url}/metrics", headers=server.admin(), timeout=10).text
    line = [x for x in metrics.splitlines() if x.startswith("conclave_media_layer_switches_total ")]
    assert line and int(line[0].split()[1]) >= 2, line

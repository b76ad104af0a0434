"""A room recording end to end (issue 15, "Proof"): a moderator starts it over HTTP, a
browser (fake microphone: 1000 Hz) and a SIP caller (600 Hz) talk for about 4 s, the
moderator stops it; the media node closes the Ogg/Opus file and journals its length and
blake3 hash. Then:

- the page showed "this meeting is being recorded" from the committed event, a page
  that came in during the recording showed it too, and both hide it after the stop;
- a participant who is no moderator cannot start one (403, `perm.not_moderator`);
- the file exists under `<data>/recordings/`, `opusinfo` gives a length within 1 s of
  start to stop (and of the journaled `duration_ms`), and decoding it (`opusdec`, then
  Goertzel here) finds both tones;
- its blake3 (PyPI `blake3`) and its length equal the journaled ones;
- `conclave verify-recording` on it exits 0, and on a copy with one changed byte exits 1.

Needs Debian's opus-tools and Chromium; skipped while /about/health reports no media
plane. Every wait polls with a deadline; the talking time is the one fixed wait, and it
is the content, not a readiness guess."""

import json
import re
import shutil
import subprocess
import time
import wave

import pytest
import requests

import browser_support
from test_bridge import (BROWSER_TONE, CALLER_TONE, QUIET, WAIT, bridge_server,  # noqa: F401
                         goertzel, http, open_bridge)

TALK = 4.0
NOTICE_SHOWN = ("const n = document.getElementById('recording');"
                "return !n.hidden && n.textContent.includes('being recorded')"
                " && document.body.dataset.recording === 'true';")

pytestmark = [
    pytest.mark.skipif(browser_support.available() is not None,
                       reason=browser_support.available() or ""),
    pytest.mark.skipif(not (shutil.which("opusinfo") and shutil.which("opusdec")),
                       reason="opusinfo/opusdec missing (Debian package opus-tools)"),
]


def recordings(server, room: str, token: str) -> list[dict]:
    v = http(server, "GET", f"/rooms/{room}/recordings", token)
    return v if isinstance(v, list) else v.get("recordings", [])


def wait_files(server, room: str, token: str, rec: str, timeout: float = WAIT) -> dict:
    """Polls the room's recordings until `rec` is stopped and has its files."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = next((r for r in recordings(server, room, token) if r["id"] == rec), None)
        if last and last.get("stopped_at") and last.get("files"):
            return last
        time.sleep(0.2)
    raise AssertionError(f"recording {rec} never listed its files; last {last!r}")


def opus_length(path) -> float:
    out = subprocess.run(["opusinfo", str(path)], capture_output=True, text=True, timeout=60)
    m = re.search(r"Playback length:\s*(\d+)m:(\d+(?:\.\d+)?)s", out.stdout)
    assert out.returncode == 0 and m, f"opusinfo {path}: {out.returncode} {out.stdout} {out.stderr}"
    return int(m.group(1)) * 60 + float(m.group(2))


def decode(path, out) -> tuple[list[int], int]:
    """The file decoded at 48 kHz, mixed to mono: (samples, rate)."""
    r = subprocess.run(["opusdec", "--quiet", "--rate", "48000", str(path), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"opusdec: {r.returncode} {r.stderr}"
    with wave.open(str(out)) as w:
        ch, rate, width = w.getnchannels(), w.getframerate(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    assert width == 2, width
    import array
    a = array.array("h")
    a.frombytes(raw)
    mono = [sum(a[i:i + ch]) // ch for i in range(0, len(a), ch)] if ch > 1 else a.tolist()
    return mono, rate


def verify(server, path, name: str | None = None) -> tuple[int, str]:
    """`conclave verify-recording` on `path` (against the journaled file `name`, if given)."""
    cmd = [server.binary, "verify-recording", "--data", str(server.data_dir), str(path)]
    if name:
        cmd += ["--name", name]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def test_a_recording_holds_both_sides_and_the_journal_vouches_for_it(bridge_server, browsers,
                                                                   tmp_path):
    import blake3
    server, room = bridge_server, "recorded"
    page, p_sess, token, caller, c_sess, _ = open_bridge(server, browsers, tmp_path, room)
    try:
        # Someone who is no moderator cannot start a recording.
        r = requests.post(f"{server.url}/rooms/{room}/join", json={"as": "web:vic"}, timeout=10)
        assert r.status_code == 201, r.text
        vic = r.json()["token"]
        r = requests.post(f"{server.url}/rooms/{room}/recording", json={"video": False},
                          headers={"Authorization": f"Bearer {vic}"}, timeout=10)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "perm.not_moderator", r.text
        assert page.js("return document.getElementById('recording').hidden;") is True

        # Start, talk, stop.
        t_start = time.monotonic()
        rec = http(server, "POST", f"/rooms/{room}/recording", token, {"video": False},
                   expect=201)["recording"]
        t_started = time.monotonic()
        page.wait(NOTICE_SHOWN, what="the recording notice on the page")
        # Someone who comes in during the recording is told too (from the room's
        # recordings at entry). Without a microphone: the recording's content stays the
        # two tones.
        late = browsers.new()
        late.open(f"{server.url}/r/{room}")
        late.wait("return document.readyState === 'complete';", what="the page")
        late.js("navigator.mediaDevices.getUserMedia = () => Promise.reject(new Error('none'));")
        late.join("lena")
        late.wait(NOTICE_SHOWN, what="the recording notice on the late page")
        # The talking time is the recording's content, not a wait for readiness.
        time.sleep(max(0.0, TALK - (time.monotonic() - t_started)))
        t_stop = time.monotonic()
        http(server, "DELETE", f"/rooms/{room}/recording", token)
        t_stopped = time.monotonic()
        for p in (page, late):
            p.wait("return document.getElementById('recording').hidden;",
                   what="the recording notice leaving the pages")
        length = (t_stop + t_stopped) / 2 - (t_start + t_started) / 2
    finally:
        caller.close()

    facts = wait_files(server, room, token, rec)
    audio = [f for f in facts["files"] if f["kind"] == "audio"]
    assert len(audio) == 1, facts
    f = audio[0]
    path = server.data_dir / "recordings" / f["name"]
    assert path.is_file(), f"{path} missing; facts {facts}"
    assert f["name"].endswith(".ogg"), f

    # Length: opusinfo, the journal and the wall clock agree.
    played = opus_length(path)
    print(f"recording {rec}: start to stop {length:.2f} s, opusinfo {played:.3f} s, "
          f"journaled {f['duration_ms']} ms, {f['bytes']} bytes")
    assert abs(played - length) <= 1.0, (played, length)
    assert abs(played - f["duration_ms"] / 1000) <= 0.1, (played, f["duration_ms"])

    # Both tones are in it (the middle seconds, away from the edges).
    samples, rate = decode(path, tmp_path / "recording.wav")
    mid = samples[len(samples) // 4: len(samples) * 3 // 4]
    assert len(mid) >= rate, f"only {len(samples)} samples decoded"
    power = {fr: goertzel(mid, fr, rate) for fr in (CALLER_TONE, BROWSER_TONE, QUIET)}
    print(f"tones in the recording (Goertzel power): {power}")
    for fr in (CALLER_TONE, BROWSER_TONE):
        assert power[fr] > 1e4 and power[fr] > 100 * max(power[QUIET], 1.0), power

    # The journal's hash and length are the file's.
    data = path.read_bytes()
    assert len(data) == f["bytes"], (len(data), f)
    assert blake3.blake3(data).hexdigest() == f["blake3"], f

    # verify-recording: the file matches (found by its hash, and by its name); a copy
    # with one changed byte does not match the journaled file of that name.
    for name in (None, f["name"]):
        code, out = verify(server, path, name)
        assert code == 0, f"verify-recording (name {name}): exit {code}: {out}"
        line = json.loads(out.strip().splitlines()[0])
        assert line["status"] == "match" and line.get("recording") == rec, line
    bad = tmp_path / "tampered.ogg"
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0x01
    bad.write_bytes(bytes(changed))
    code, out = verify(server, bad, f["name"])
    assert code == 1, f"a changed byte: exit {code}: {out}"
    assert json.loads(out.strip().splitlines()[0])["status"] == "mismatch", out


def camera_flowing(server, room: str, session: str, timeout: float = WAIT) -> None:
    """Waits until the SFU receives video packets from `session` (GET /debug/media)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        stats = requests.get(f"{server.url}/debug/media", headers=server.admin(), timeout=10).json()
        sfu = stats.get("stats") or {}
        me = sfu.get("rooms", {}).get(room, {}).get("participants", {}).get(session, {})
        last = [(t.get("kind"), t.get("packets_in")) for t in me.get("published", [])]
        if any(kind == "video" and (n or 0) > 50 for kind, n in last):
            return
        time.sleep(0.2)
    raise AssertionError(f"no video from {session} at the SFU; last {last!r}")


def test_a_video_recording_keeps_each_camera_as_it_arrived(bridge_server, browsers, tmp_path):
    """With `video`, each forwarded camera is written as it arrived (VP8, no transcoding)
    to a WebM file of its own, journaled like the audio."""
    server, room = bridge_server, "recordedvideo"
    page, p_sess, token, caller, c_sess, _ = open_bridge(server, browsers, tmp_path, room)
    try:
        # The camera must be flowing into the SFU before the recording starts (on a
        # loaded machine video can start seconds after audio).
        camera_flowing(server, room, p_sess)
        rec = http(server, "POST", f"/rooms/{room}/recording", token, {"video": True},
                   expect=201)["recording"]
        t_started = time.monotonic()
        page.wait(NOTICE_SHOWN, what="the recording notice on the page")
        time.sleep(max(0.0, TALK - (time.monotonic() - t_started)))
        http(server, "DELETE", f"/rooms/{room}/recording", token)
    finally:
        caller.close()
    facts = wait_files(server, room, token, rec)
    video = [f for f in facts["files"] if f["kind"] == "video"]
    assert len(video) == 1, f"one camera in the room: {facts}"
    f = video[0]
    assert f["name"].endswith(".webm") and f["track"], f
    assert f["name"].startswith(f"{rec}/video-{p_sess}-video-"), f
    path = server.data_dir / "recordings" / f["name"]
    data = path.read_bytes()
    print(f"video recording {rec}: {f['name']}, {f['bytes']} bytes, {f['duration_ms']} ms")
    # A WebM file: the EBML magic, the webm doctype, at least one Cluster of frames.
    assert data[:4] == b"\x1a\x45\xdf\xa3", data[:16]
    assert b"webm" in data[:64], data[:64]
    assert b"\x1f\x43\xb6\x75" in data, "no Cluster"
    assert f["duration_ms"] >= 1000, f
    assert len(data) == f["bytes"] and f["bytes"] > 10_000, f
    code, out = verify(server, path)
    assert code == 0, f"verify-recording: exit {code}: {out}"

//! The SIP ↔ browser bridge: one room, every client.
//!
//! Browsers are in the SFU (Opus, forwarded undecoded); SIP callers are in the G.711
//! mixer. The bridge joins them inside the media node, per room:
//!
//! - **Browser → SIP** (`inbound.rs`): the SFU's [`MediaTap`] hands the bridge every
//!   browser's forwarded Opus packet (after moderation: a muted browser's audio never
//!   arrives). It is decoded, resampled to 8 kHz and queued; on each 20 ms tick the
//!   mixer mixes one frame of each browser into what every caller hears.
//! - **SIP → browser** (`outbound.rs`): on each tick the mixer hands back each talking,
//!   unmuted caller's own frame ([`Output::Captured`](crate::conference::Output)); it
//!   is resampled to 48 kHz, encoded as Opus and published into the SFU as one audio
//!   track per caller ([`LocalTrack`]), under the caller's session id, with its RFC
//!   6464 level. Browsers subscribe to it like to any other track.
//! - **Recording** (`record.rs`): while a room records, the same 48 kHz frames (both
//!   directions) are mixed into its Ogg/Opus file, and video packets go to WebM files.
//!
//! Nothing is decoded or encoded for a room that has no SIP caller and no recording.
//! The bridge never decides: the engine's committed events reach it through the
//! gateways (mute, kick) and the recording commands.
//!
//! Threads: the tap runs on the SFU's forwarding tasks (decode, queue); the tick runs
//! on the mixer thread ([`Bridge::plan`], [`Bridge::after_tick`]); lock order is
//! rooms → one input, and callers → one recording; never a room lock while a caller
//! lock is held.

mod inbound;
mod outbound;
mod record;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use crate::audio::{AudioError, FRAME_NARROW, FRAME_WIDE};
use crate::conference::{BridgeInput, LegId};
use crate::sfu::{MediaKind, MediaTap, Sfu, VideoPacket};

use inbound::{BrowserInput, InputCounters};
use outbound::CallerOutput;
use record::RoomRecording;
pub use record::{Closed, FailedFile, RecordedFile};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Cheap to clone; every clone is the same bridge.
#[derive(Clone, Default)]
pub struct Bridge {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    sfu: OnceLock<Sfu>,
    rooms: Mutex<HashMap<String, Room>>,
    callers: Mutex<HashMap<LegId, Caller>>,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    inputs_retired: Mutex<InputCounters>,
    caller_frames: AtomicU64,
    encode_errors: AtomicU64,
    setup_errors: AtomicU64,
}

/// What the bridge holds for a room.
#[derive(Default)]
struct Room {
    /// SIP legs in the room.
    callers: usize,
    /// Browsers' audio inputs by publication id (only while the room has callers or
    /// records).
    inputs: HashMap<u64, Arc<Mutex<BrowserInput>>>,
    recording: Option<SharedRecording>,
}

impl Room {
    fn wanted(&self) -> bool {
        self.callers > 0 || self.recording.is_some()
    }
}

struct Caller {
    room: String,
    participant: String,
    /// Created on the caller's first captured frame.
    output: Option<CallerOutput>,
}

/// A room's recording in one tick's plan, with the browsers' 48 kHz frames of that
/// tick.
type PlannedRecording = (String, SharedRecording, Vec<Box<[i16; FRAME_WIDE]>>);

/// A recording the mixer thread may hold for the tick in flight while it is stopped.
type SharedRecording = Arc<Mutex<Option<RoomRecording>>>;

/// One tick's work, from [`Bridge::plan`] to [`Bridge::after_tick`].
#[derive(Default)]
pub struct TickPlan {
    /// The bridge's input for each conference that has callers.
    pub inputs: Vec<(String, BridgeInput)>,
    /// Rooms with browsers present (their callers' tracks are published).
    peers: HashMap<String, bool>,
    /// Recording rooms, with the browsers' 48 kHz frames of this tick.
    recordings: Vec<PlannedRecording>,
}

/// The bridge's figures for /metrics and /debug/media.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BridgeStats {
    pub rooms: u64,
    pub callers: u64,
    pub browser_inputs: u64,
    pub recordings: u64,
    pub browser_packets: u64,
    pub decode_errors: u64,
    pub concealed: u64,
    pub late: u64,
    pub underruns: u64,
    pub dropped: u64,
    /// Browser packets not decoded: beyond the per-input budget (a flood).
    pub throttled: u64,
    pub caller_frames: u64,
    pub encode_errors: u64,
    pub setup_errors: u64,
}

impl Bridge {
    pub fn new() -> Self {
        Bridge::default()
    }

    /// Connects the bridge to the SFU: browsers' media reach it from now on.
    pub fn attach(&self, sfu: &Sfu) {
        if self.shared.sfu.set(sfu.clone()).is_ok() {
            sfu.set_tap(Arc::new(Tap(Arc::downgrade(&self.shared))));
        }
    }

    /// A SIP leg joined `room` as `participant` (its session id).
    pub fn leg_opened(&self, leg: LegId, room: &str, participant: &str) {
        let previous = lock(&self.shared.callers).insert(
            leg,
            Caller {
                room: room.to_owned(),
                participant: participant.to_owned(),
                output: None,
            },
        );
        let mut rooms = lock(&self.shared.rooms);
        if let Some(old) = previous {
            release(&mut rooms, &old.room, &self.shared.counters);
        }
        rooms.entry(room.to_owned()).or_default().callers += 1;
    }

    /// A SIP leg ended: its track ends for every browser.
    pub fn leg_closed(&self, leg: LegId) {
        let Some(caller) = lock(&self.shared.callers).remove(&leg) else {
            return;
        };
        // Dropping the output drops its LocalTrack: the publication ends.
        if let Some(o) = caller.output {
            let c = &self.shared.counters;
            c.caller_frames
                .fetch_add(o.counters.frames, Ordering::Relaxed);
            c.encode_errors
                .fetch_add(o.counters.encode_errors, Ordering::Relaxed);
        }
        let mut rooms = lock(&self.shared.rooms);
        release(&mut rooms, &caller.room, &self.shared.counters);
    }

    /// Starts recording `room` into `<dir>/<recording>/` (creates the audio file:
    /// blocking I/O, call it off the mixer thread). Starting the recording the room
    /// already makes is a no-op; a different one replaces it, and the replaced one is
    /// closed and returned, so that its files can still be journaled.
    pub fn start_recording(
        &self,
        dir: &Path,
        room: &str,
        recording: &str,
        video: bool,
    ) -> Result<Option<Closed>, AudioError> {
        let running = lock(&self.shared.rooms)
            .get(room)
            .and_then(|r| r.recording.clone());
        if let Some(rec) = &running {
            if lock(rec).as_ref().is_some_and(|r| r.id() == recording) {
                return Ok(None);
            }
        }
        let rec = RoomRecording::start(dir, room, recording, video)?;
        let previous = lock(&self.shared.rooms)
            .entry(room.to_owned())
            .or_default()
            .recording
            .replace(Arc::new(Mutex::new(Some(rec))));
        Ok(previous.and_then(|old| {
            tracing::warn!(room, "a recording replaced another; the first is closed");
            finish(old)
        }))
    }

    /// Stops `room`'s recording and closes its files (flushed, fsynced, hashed):
    /// blocking, run it on a blocking thread. `None` if the room was not recording.
    pub fn stop_recording(&self, room: &str) -> Option<Closed> {
        let rec = {
            let mut rooms = lock(&self.shared.rooms);
            let r = rooms.get_mut(room)?;
            let rec = r.recording.take();
            if !r.wanted() {
                if let Some(r) = rooms.remove(room) {
                    retire(r, &self.shared.counters);
                }
            }
            rec
        }?;
        finish(rec)
    }

    /// Rooms recording now.
    pub fn recording_rooms(&self) -> Vec<String> {
        lock(&self.shared.rooms)
            .iter()
            .filter(|(_, r)| r.recording.is_some())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// First half of a tick (mixer thread): one frame from each browser of every room
    /// that has callers or records.
    pub fn plan(&self) -> TickPlan {
        let mut plan = TickPlan::default();
        let rooms = lock(&self.shared.rooms);
        if !rooms.values().any(Room::wanted) {
            return plan;
        }
        // Lock order: the bridge's rooms, then the SFU's state (never the reverse).
        let with_browsers = self
            .shared
            .sfu
            .get()
            .map(Sfu::rooms_with_participants)
            .unwrap_or_default();
        for (name, room) in rooms.iter() {
            if !room.wanted() {
                continue;
            }
            let mut frames = Vec::with_capacity(room.inputs.len());
            let mut wide = Vec::new();
            for input in room.inputs.values() {
                if let Some(frame) = lock(input).pop() {
                    frames.push(frame.narrow);
                    if room.recording.is_some() {
                        wide.push(frame.wide);
                    }
                }
            }
            let peers = with_browsers.contains(name);
            plan.peers.insert(name.clone(), peers);
            if room.callers > 0 {
                plan.inputs.push((
                    name.clone(),
                    BridgeInput {
                        frames,
                        peers,
                        capture: peers || room.recording.is_some(),
                    },
                ));
            }
            if let Some(rec) = &room.recording {
                plan.recordings.push((name.clone(), rec.clone(), wide));
            }
        }
        plan
    }

    /// Second half of a tick (mixer thread): each captured caller frame to the
    /// browsers and the recording; every recording gets this tick's mix.
    pub fn after_tick(&self, plan: TickPlan, captured: &[(LegId, [i16; FRAME_NARROW])]) {
        let shared = &self.shared;
        let mut callers = lock(&shared.callers);
        for (leg, caller) in callers.iter_mut() {
            let frame = captured.iter().find(|(l, _)| l == leg).map(|(_, pcm)| pcm);
            let peers = plan.peers.get(&caller.room).copied().unwrap_or(false);
            let Some(pcm) = frame else {
                if let Some(out) = caller.output.as_mut() {
                    out.skip();
                }
                continue;
            };
            if caller.output.is_none() {
                match CallerOutput::new() {
                    Ok(o) => caller.output = Some(o),
                    Err(e) => {
                        shared.counters.setup_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "bridge output not created");
                        continue;
                    }
                }
            }
            let Some(out) = caller.output.as_mut() else {
                continue;
            };
            if out.upsample(pcm).is_err() {
                shared
                    .counters
                    .encode_errors
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if peers {
                if out.track.is_none() {
                    if let Some(sfu) = shared.sfu.get() {
                        out.track =
                            Some(sfu.publish_local_audio(&caller.room, &caller.participant));
                    }
                }
                out.send();
            }
            if let Some((_, rec, _)) = plan.recordings.iter().find(|(r, _, _)| *r == caller.room) {
                if let Some(r) = lock(rec).as_mut() {
                    r.add(&out.wide);
                }
            }
        }
        drop(callers);
        for (_, rec, wide) in &plan.recordings {
            if let Some(rec) = lock(rec).as_mut() {
                for frame in wide {
                    rec.add(frame);
                }
                rec.write_tick();
            }
        }
    }

    pub fn stats(&self) -> BridgeStats {
        let shared = &self.shared;
        let mut s = BridgeStats::default();
        let mut totals = *lock(&shared.counters.inputs_retired);
        {
            let rooms = lock(&shared.rooms);
            s.rooms = rooms.values().filter(|r| r.wanted()).count() as u64;
            s.recordings = rooms.values().filter(|r| r.recording.is_some()).count() as u64;
            for room in rooms.values() {
                for input in room.inputs.values() {
                    add(&mut totals, &lock(input).counters);
                    s.browser_inputs += 1;
                }
            }
        }
        {
            let callers = lock(&shared.callers);
            s.callers = callers.len() as u64;
            for c in callers.values() {
                if let Some(o) = &c.output {
                    s.caller_frames += o.counters.frames;
                    s.encode_errors += o.counters.encode_errors;
                }
            }
        }
        s.caller_frames += shared.counters.caller_frames.load(Ordering::Relaxed);
        s.encode_errors += shared.counters.encode_errors.load(Ordering::Relaxed);
        s.setup_errors = shared.counters.setup_errors.load(Ordering::Relaxed);
        s.browser_packets = totals.packets;
        s.decode_errors = totals.decode_errors;
        s.concealed = totals.concealed;
        s.late = totals.late;
        s.underruns = totals.underruns;
        s.dropped = totals.dropped;
        s.throttled = totals.throttled;
        s
    }
}

fn add(t: &mut InputCounters, c: &InputCounters) {
    t.packets += c.packets;
    t.decode_errors += c.decode_errors;
    t.concealed += c.concealed;
    t.late += c.late;
    t.underruns += c.underruns;
    t.dropped += c.dropped;
    t.throttled += c.throttled;
}

/// One caller fewer in `room`; a room nobody needs is dropped with its inputs.
fn release(rooms: &mut HashMap<String, Room>, room: &str, counters: &Counters) {
    let Some(r) = rooms.get_mut(room) else {
        return;
    };
    r.callers = r.callers.saturating_sub(1);
    if !r.wanted() {
        if let Some(r) = rooms.remove(room) {
            retire(r, counters);
        }
    }
}

fn retire(room: Room, counters: &Counters) {
    let mut total = lock(&counters.inputs_retired);
    for input in room.inputs.values() {
        add(&mut total, &lock(input).counters);
    }
}

/// Closes a recording's files. The mixer thread may still hold a clone of it for the
/// tick in flight: the recording is taken from under the lock, and that tick writes
/// nothing more.
fn finish(rec: SharedRecording) -> Option<Closed> {
    let taken = lock(&rec).take();
    taken.map(RoomRecording::finish)
}

/// The SFU's handle on the bridge (weak: the SFU must not keep the bridge alive).
struct Tap(Weak<Shared>);

impl MediaTap for Tap {
    fn audio(&self, room: &str, _publisher: &str, publication: u64, sequence: u16, payload: &[u8]) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        let input = {
            let mut rooms = lock(&shared.rooms);
            let Some(r) = rooms.get_mut(room).filter(|r| r.wanted()) else {
                return;
            };
            match r.inputs.get(&publication) {
                Some(i) => i.clone(),
                None => match BrowserInput::new() {
                    Ok(i) => {
                        let i = Arc::new(Mutex::new(i));
                        r.inputs.insert(publication, i.clone());
                        i
                    }
                    Err(e) => {
                        shared.counters.setup_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "bridge input not created");
                        return;
                    }
                },
            }
        };
        lock(&input).push(sequence, payload);
    }

    fn video(&self, room: &str, track: &str, packet: VideoPacket<'_>) -> bool {
        let Some(shared) = self.0.upgrade() else {
            return false;
        };
        let rec = lock(&shared.rooms)
            .get(room)
            .and_then(|r| r.recording.clone());
        let Some(rec) = rec else {
            return false;
        };
        let mut guard = lock(&rec);
        guard.as_mut().is_some_and(|r| r.video(track, packet))
    }

    fn ended(&self, room: &str, _publisher: &str, publication: u64, kind: MediaKind) {
        if kind != MediaKind::Audio {
            return;
        }
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        let removed = lock(&shared.rooms)
            .get_mut(room)
            .and_then(|r| r.inputs.remove(&publication));
        if let Some(input) = removed {
            add(
                &mut lock(&shared.counters.inputs_retired),
                &lock(&input).counters,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::audio::{goertzel, OpusDecoder, RATE_NARROW, RATE_WIDE};
    use crate::recording::hash_file;

    fn tone(freq: f64, n: usize) -> [i16; FRAME_NARROW] {
        let mut out = [0i16; FRAME_NARROW];
        for (i, s) in out.iter_mut().enumerate() {
            let t = (n * FRAME_NARROW + i) as f64 / f64::from(RATE_NARROW);
            *s = (10_000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16;
        }
        out
    }

    /// Decodes an Ogg/Opus file (headers skipped) into 48 kHz samples.
    fn decode(path: &Path) -> Vec<i16> {
        let mut reader = ogg::reading::PacketReader::new(std::fs::File::open(path).unwrap());
        let mut dec = OpusDecoder::new().unwrap();
        let mut pcm = Vec::new();
        let mut frame = [0i16; FRAME_WIDE];
        let mut n = 0;
        while let Some(p) = reader.read_packet().unwrap() {
            n += 1;
            if n > 2 {
                dec.decode(&p.data, &mut frame).unwrap();
                pcm.extend_from_slice(&frame);
            }
        }
        pcm
    }

    #[test]
    fn a_recording_holds_the_callers_voice_and_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = Bridge::new();
        bridge.leg_opened(LegId(1), "room", "caller");
        bridge
            .start_recording(dir.path(), "room", "rec-1", false)
            .unwrap();
        assert_eq!(bridge.recording_rooms(), vec!["room".to_owned()]);
        for n in 0..100 {
            let plan = bridge.plan();
            assert_eq!(
                plan.inputs.len(),
                1,
                "the room's conference gets the bridge input"
            );
            assert!(
                plan.inputs[0].1.capture,
                "a recording room captures its callers"
            );
            bridge.after_tick(plan, &[(LegId(1), tone(600.0, n))]);
        }
        let closed = bridge.stop_recording("room").unwrap();
        assert_eq!(closed.recording, "rec-1");
        assert!(closed.failed.is_empty(), "{:?}", closed.failed);
        let files = closed.files;
        assert_eq!(files.len(), 1);
        let f = &files[0];
        assert_eq!(f.name, "rec-1/audio.ogg");
        assert_eq!(f.duration_ms, 2_000);
        let (bytes, hash) = hash_file(&dir.path().join(&f.name)).unwrap();
        assert_eq!((bytes, hash.as_str()), (f.bytes, f.blake3.as_str()));
        let pcm = decode(&dir.path().join(&f.name));
        let tail = &pcm[pcm.len() - 9600..];
        let (on, off) = (
            goertzel(tail, RATE_WIDE, 600.0),
            goertzel(tail, RATE_WIDE, 1700.0),
        );
        assert!(on > 20.0 * off, "600 Hz {on} vs 1.7 kHz {off}");
        assert!(bridge.stop_recording("room").is_none(), "stopped once");
    }

    #[test]
    fn a_muted_or_silent_caller_is_not_recorded_and_the_timeline_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = Bridge::new();
        bridge.leg_opened(LegId(1), "room", "caller");
        bridge
            .start_recording(dir.path(), "room", "rec-2", false)
            .unwrap();
        for _ in 0..50 {
            let plan = bridge.plan();
            bridge.after_tick(plan, &[]);
        }
        let files = bridge.stop_recording("room").unwrap().files;
        assert_eq!(files[0].duration_ms, 1_000);
        let pcm = decode(&dir.path().join(&files[0].name));
        assert!(pcm.iter().all(|s| s.unsigned_abs() < 64), "silence only");
    }

    #[test]
    fn a_recording_resumed_after_a_restart_writes_a_new_part() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = Bridge::new();
        bridge
            .start_recording(dir.path(), "room", "rec-3", false)
            .unwrap();
        let first = bridge.stop_recording("room").unwrap();
        bridge
            .start_recording(dir.path(), "room", "rec-3", false)
            .unwrap();
        let second = bridge.stop_recording("room").unwrap();
        assert_eq!(first.files[0].name, "rec-3/audio.ogg");
        assert_eq!(second.files[0].name, "rec-3/audio-2.ogg");
        let (bytes, hash) = hash_file(&dir.path().join("rec-3/audio.ogg")).unwrap();
        assert_eq!(
            (bytes, hash),
            (first.files[0].bytes, first.files[0].blake3.clone())
        );
    }

    #[test]
    fn a_video_recording_asks_for_a_keyframe_until_it_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = Bridge::new();
        bridge
            .start_recording(dir.path(), "room", "rec-4", true)
            .unwrap();
        let tap = Tap(Arc::downgrade(&bridge.shared));
        let packet = |sequence: u16, payload: &'static [u8]| VideoPacket {
            sequence,
            timestamp: u32::from(sequence) * 3000,
            marker: true,
            payload,
        };
        // A VP8 descriptor (S=1) and an inter frame (frame tag bit 0 set).
        let inter: &[u8] = &[0x10, 0x01, 0x02, 0x00, 1, 2, 3];
        // A keyframe of 640x480: tag, start code, width and height.
        let key: &[u8] = &[
            0x10, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01, 0,
        ];
        assert!(
            tap.video("room", "p-video-1", packet(1, inter)),
            "no keyframe yet"
        );
        assert!(
            !tap.video("room", "p-video-1", packet(2, key)),
            "recording from the keyframe"
        );
        assert!(
            !tap.video("other", "p-video-1", packet(3, inter)),
            "not recording there"
        );
        let closed = bridge.stop_recording("room").unwrap();
        let video: Vec<_> = closed.files.iter().filter(|f| f.track.is_some()).collect();
        assert_eq!(video.len(), 1, "{:?}", closed.files);
        assert_eq!(video[0].name, "rec-4/video-p-video-1.webm");
    }

    #[test]
    fn a_recording_id_that_is_not_a_file_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bridge = Bridge::new();
        for bad in ["../x", "", ".hidden", "a/b"] {
            assert!(
                bridge
                    .start_recording(dir.path(), "room", bad, false)
                    .is_err(),
                "{bad}"
            );
        }
        assert!(bridge.recording_rooms().is_empty());
    }

    #[test]
    fn rooms_without_callers_or_recordings_cost_nothing() {
        let bridge = Bridge::new();
        bridge.leg_opened(LegId(1), "room", "caller");
        bridge.leg_closed(LegId(1));
        assert!(bridge.plan().inputs.is_empty());
        assert_eq!(bridge.stats().rooms, 0);
    }
}

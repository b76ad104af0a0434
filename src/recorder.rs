//! Room recordings, wired: the engine decides (a moderator's `start_recording` /
//! `stop_recording`), the media node's bridge writes, and every file it closes is
//! journaled (`record_recording_file`, as the `media` service) with its length,
//! duration and blake3, so `conclave verify-recording` can vouch for it later.
//!
//! A recording that reaches the longest allowed (`media.recording_max_minutes`) is
//! stopped by the media service itself (`stop_recording`, journaled like a moderator's),
//! so a forgotten recording does not fill the disk.
//!
//! Follows the committed feed like the other gateways. Recordings the state says are
//! running when the server starts (it stopped mid-recording) resume into a new part
//! (`audio-2.ogg`); a graceful stop closes and journals every open file first
//! ([`close_all`]). After a crash, the interrupted part is journaled as found when the
//! server starts again ([`adopt_orphans`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use conclave_engine::context::{Actor, Origin};
use conclave_engine::recording::{RecordingFile, RecordingKind};
use conclave_engine::service::{Engine, EngineError, FeedFilter, Request};
use conclave_engine::{Command, EventKind, RecordingId, RoomName};
use conclave_media::bridge::{Bridge, Closed};
use conclave_media::recording::found_file;

/// The service the media node acts as when it journals a file.
const SERVICE: &str = "media";

/// Where recordings live under the data directory.
pub fn recordings_dir(data: &Path) -> PathBuf {
    data.join("recordings")
}

/// Starts following the feed; the task ends when the engine stops. `max`: the longest
/// recording.
pub fn spawn(engine: Engine, bridge: Bridge, max: Option<Duration>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(engine, bridge, max))
}

async fn run(engine: Engine, bridge: Bridge, max: Option<Duration>) {
    let dir = recordings_dir(engine.data_dir());
    // Subscribe first, then read what runs: a recording started in between is seen
    // twice, and starting a running recording again changes nothing.
    let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());
    let running: Vec<(RoomName, RecordingId, bool)> = engine.read(|st| {
        st.rooms
            .iter()
            .filter_map(|(name, room)| {
                room.recording
                    .as_ref()
                    .map(|r| (name.clone(), r.id.clone(), r.video))
            })
            .collect()
    });
    adopt_orphans(&engine, &dir).await;
    for (room, recording, video) in running {
        tracing::info!(%room, recording = %recording.as_str(), "resuming a recording after a restart");
        start(&engine, &bridge, &dir, max, room, recording, video).await;
    }
    while let Some(e) = feed.follow("the recorder").await {
        match &e.event.kind {
            EventKind::RecordingStarted {
                room,
                recording,
                video,
                ..
            } => {
                let (room, recording) = (room.clone(), recording.clone());
                start(&engine, &bridge, &dir, max, room, recording, *video).await;
            }
            EventKind::RecordingStopped { room, .. } => {
                stop(&engine, &bridge, room.clone()).await;
            }
            _ => {}
        }
    }
}

/// Starts writing `recording` and holds it to `max` (every recording, resumed or new).
async fn start(
    engine: &Engine,
    bridge: &Bridge,
    dir: &Path,
    max: Option<Duration>,
    room: RoomName,
    recording: RecordingId,
    video: bool,
) {
    limit(engine, max, room.clone(), recording.clone());
    let (b, d, r, id) = (
        bridge.clone(),
        dir.to_owned(),
        room.clone(),
        recording.clone(),
    );
    let started =
        tokio::task::spawn_blocking(move || b.start_recording(&d, r.as_str(), id.as_str(), video))
            .await;
    match started {
        Ok(Ok(replaced)) => {
            tracing::info!(%room, recording = %recording.as_str(), video, "recording");
            if let Some(closed) = replaced {
                journal(engine, &room, closed).await;
            }
        }
        Ok(Err(e)) => {
            // Nothing is written: say so in the journal rather than let everyone see a
            // recording that is not happening.
            tracing::error!(%room, recording = %recording.as_str(), code = e.code(), error = %e, "the recording could not start; stopping it");
            submit(
                engine,
                Command::StopRecording { room },
                "(stop: not writable)",
            )
            .await;
        }
        Err(e) => tracing::error!(error = %e, "the recording task failed"),
    }
}

/// Journals the files an interrupted run left unjournaled (the server was killed
/// before it closed them): each file under a known, not erased recording's directory
/// that the journal does not name is hashed as found and stated like a closed one
/// (an Ogg file's duration up to its last complete page, a WebM file's 0), so no
/// recording file on disk is one the journal cannot vouch for.
async fn adopt_orphans(engine: &Engine, dir: &Path) {
    let known: Vec<(RoomName, RecordingId, Vec<String>)> = engine.read(|st| {
        st.recordings
            .iter()
            .filter(|(_, r)| r.erased.is_none())
            .map(|(id, r)| {
                let names = r.files.iter().map(|f| f.name.clone()).collect();
                (r.room.clone(), id.clone(), names)
            })
            .collect()
    });
    for (room, id, names) in known {
        let Ok(entries) = std::fs::read_dir(dir.join(id.as_str())) else {
            continue;
        };
        let mut found: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .map(|f| format!("{}/{f}", id.as_str()))
            .filter(|name| !names.contains(name))
            .collect();
        found.sort();
        for name in found {
            let path = dir.join(&name);
            let read = tokio::task::spawn_blocking(move || found_file(&path)).await;
            let Ok(Ok(c)) = read else {
                tracing::warn!(
                    file = name,
                    "an unjournaled recording file could not be read"
                );
                continue;
            };
            let stem = name.rsplit('/').next().unwrap_or_default();
            let track = stem
                .strip_prefix("video-")
                .and_then(|t| t.strip_suffix(".webm"))
                .map(str::to_owned);
            tracing::warn!(
                file = name,
                bytes = c.bytes,
                "journaling a recording file an interrupted run left"
            );
            let file = RecordingFile {
                kind: if track.is_some() {
                    RecordingKind::Video
                } else {
                    RecordingKind::Audio
                },
                name: name.clone(),
                track,
                bytes: c.bytes,
                duration_ms: c.duration_ms,
                blake3: c.blake3,
            };
            let command = Command::RecordRecordingFile {
                room: room.clone(),
                recording: id.clone(),
                file,
            };
            submit(engine, command, &name).await;
        }
    }
}

/// Stops `recording` once it has run for `max` (counted from its start in the
/// journal, so a restart does not extend it), unless it has stopped by then.
fn limit(engine: &Engine, max: Option<Duration>, room: RoomName, recording: RecordingId) {
    let Some(max) = max else {
        return;
    };
    let engine = engine.clone();
    tokio::spawn(async move {
        let started = engine.read(|st| st.recordings.get(&recording).map(|r| r.started_at));
        let Some(started) = started else {
            return;
        };
        let ran = (chrono::Utc::now() - started).to_std().unwrap_or_default();
        tokio::time::sleep(max.saturating_sub(ran)).await;
        let running = engine.read(|st| {
            st.rooms
                .get(&room)
                .and_then(|r| r.recording.as_ref())
                .is_some_and(|r| r.id == recording)
        });
        if running {
            tracing::info!(%room, recording = %recording.as_str(), minutes = max.as_secs() / 60, "recording reached its longest; stopping it");
            submit(
                &engine,
                Command::StopRecording { room },
                "(stop at the limit)",
            )
            .await;
        }
    });
}

async fn stop(engine: &Engine, bridge: &Bridge, room: RoomName) {
    let (b, r) = (bridge.clone(), room.clone());
    match tokio::task::spawn_blocking(move || b.stop_recording(r.as_str())).await {
        Ok(Some(closed)) => journal(engine, &room, closed).await,
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "closing a recording failed"),
    }
}

/// Closes and journals every running recording (a graceful shutdown, before the
/// engine stops). The recordings stay running in the engine's state: the next start
/// resumes them into a new part.
pub async fn close_all(engine: &Engine, bridge: &Bridge) {
    for room in bridge.recording_rooms() {
        match RoomName::lookup(&room) {
            Ok(name) => stop(engine, bridge, name).await,
            Err(_) => {
                let b = bridge.clone();
                let _ = tokio::task::spawn_blocking(move || b.stop_recording(&room)).await;
            }
        }
    }
}

/// Journals each closed file; failures are logged (the operator sees them; the
/// engine is told only what exists).
async fn journal(engine: &Engine, room: &RoomName, closed: Closed) {
    let Closed {
        recording,
        files,
        failed,
    } = closed;
    for f in failed {
        tracing::error!(%room, recording, file = f.name, code = f.error.code(), error = %f.error, "a recording file could not be completed");
    }
    let id = RecordingId::from_stored(recording);
    for f in files {
        let file = RecordingFile {
            kind: if f.track.is_some() {
                RecordingKind::Video
            } else {
                RecordingKind::Audio
            },
            name: f.name,
            track: f.track,
            bytes: f.bytes,
            duration_ms: f.duration_ms,
            blake3: f.blake3,
        };
        let command = Command::RecordRecordingFile {
            room: room.clone(),
            recording: id.clone(),
            file: file.clone(),
        };
        submit(engine, command, &file.name).await;
    }
}

/// Submits as the media service, retrying a few times while the engine is busy.
async fn submit(engine: &Engine, command: Command, name: &str) {
    let origin = Origin {
        gateway: SERVICE.to_owned(),
        protocol: "media".to_owned(),
        remote_addr: None,
    };
    for attempt in 0..5u32 {
        let req = Request::new(
            command.clone(),
            Actor::Service(SERVICE.to_owned()),
            origin.clone(),
        );
        match engine.execute(req).await {
            Ok(_) => {
                tracing::info!(what = name, "journaled by the media service");
                return;
            }
            Err(EngineError::Rejected { rejection, .. }) => {
                tracing::error!(
                    file = name,
                    code = rejection.code(),
                    "recording file refused"
                );
                return;
            }
            Err(EngineError::Stopped) => return,
            Err(e) => {
                tracing::warn!(what = name, attempt, error = %e, "not journaled yet");
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
        }
    }
    tracing::error!(what = name, "not journaled: gave up");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use conclave_engine::service::EngineConfig;
    use conclave_engine::Principal;

    async fn run(engine: &Engine, command: Command) -> Vec<EventKind> {
        let req = Request::new(command, Actor::Admin, Origin::default());
        let out = engine.execute(req).await.unwrap();
        out.events.into_iter().map(|a| a.event.kind).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_recording_is_stopped_by_the_media_service_at_its_longest() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        let room = RoomName::lookup("board").unwrap();
        run(&engine, create_room()).await;
        let started = run(
            &engine,
            Command::StartRecording {
                room: room.clone(),
                video: false,
            },
        )
        .await;
        let Some(EventKind::RecordingStarted { recording, .. }) = started.first().cloned() else {
            panic!("no recording_started: {started:?}");
        };
        let stopped =
            |e: &Engine| e.read(|st| st.recordings.get(&recording).and_then(|r| r.stopped_at));
        limit(
            &engine,
            Some(Duration::from_secs(3600)),
            room.clone(),
            recording.clone(),
        );
        // Not before its time (the paused clock moves only when everything waits).
        tokio::time::sleep(Duration::from_secs(3500)).await;
        assert!(stopped(&engine).is_none(), "stopped too early");
        // Then the stop is journaled, by the media service (the feed is followed, not
        // polled: the paused clock would race ahead of the engine's thread).
        let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());
        tokio::time::sleep(Duration::from_secs(200)).await;
        tokio::time::resume();
        let e = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("no stop journaled")
            .unwrap();
        assert!(
            matches!(e.event.kind, EventKind::RecordingStopped { .. }),
            "{:?}",
            e.event.kind
        );
        assert_eq!(e.event.actor, Actor::Service(SERVICE.to_owned()));
        assert!(stopped(&engine).is_some());
        engine.shutdown();
    }

    fn create_room() -> Command {
        Command::create_room(
            RoomName::lookup("board").unwrap(),
            Some(Principal::parse("sip:chair@example.org").unwrap()),
        )
    }

    #[tokio::test]
    async fn a_recording_that_cannot_be_written_is_stopped_not_shown_as_running() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        // The recordings directory cannot be made: a file is in its place.
        std::fs::write(recordings_dir(engine.data_dir()), b"not a directory").unwrap();
        spawn(engine.clone(), Bridge::new(), None);
        run(&engine, create_room()).await;
        let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());
        let room = RoomName::lookup("board").unwrap();
        run(&engine, Command::StartRecording { room, video: false }).await;
        let stopped = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let e = feed.next().await.unwrap();
                if matches!(e.event.kind, EventKind::RecordingStopped { .. }) {
                    return e;
                }
            }
        })
        .await
        .expect("the failed recording was not stopped");
        assert_eq!(stopped.event.actor, Actor::Service(SERVICE.to_owned()));
        engine.shutdown();
    }

    #[tokio::test]
    async fn files_an_interrupted_run_left_are_journaled_as_found_at_the_next_start() {
        // Given a recording that ran while the server was killed: its file is on disk,
        // torn, and the journal does not name it.
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        run(&engine, create_room()).await;
        let room = RoomName::lookup("board").unwrap();
        let started = run(&engine, Command::StartRecording { room, video: false }).await;
        let Some(EventKind::RecordingStarted { recording, .. }) = started.first().cloned() else {
            panic!("no recording_started: {started:?}");
        };
        let path = recordings_dir(engine.data_dir())
            .join(recording.as_str())
            .join("audio.ogg");
        let mut w = conclave_media::recording::OggOpusWriter::create(&path, "board").unwrap();
        for _ in 0..120 {
            w.write_frame(&[0; 960]).unwrap();
        }
        w.finish().unwrap();
        let whole = std::fs::read(&path).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 10]).unwrap();
        let (bytes, hash) = conclave_media::recording::hash_file(&path).unwrap();
        let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());

        // When the recorder starts
        spawn(engine.clone(), Bridge::new(), None);

        // Then the file is journaled as found, by the media service, before the
        // recording resumes into a new part
        let e = tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("nothing journaled")
            .unwrap();
        let EventKind::RecordingFileClosed { file, .. } = &e.event.kind else {
            panic!("{:?}", e.event.kind);
        };
        assert_eq!(file.name, format!("{}/audio.ogg", recording.as_str()));
        assert_eq!((file.bytes, file.blake3.as_str()), (bytes, hash.as_str()));
        assert!((1_900..=2_000).contains(&file.duration_ms), "{file:?}");
        assert_eq!(e.event.actor, Actor::Service(SERVICE.to_owned()));
        engine.shutdown();
    }

    #[tokio::test]
    async fn a_recording_started_through_the_feed_is_held_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        spawn(
            engine.clone(),
            Bridge::new(),
            Some(Duration::from_millis(300)),
        );
        run(&engine, create_room()).await;
        let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());
        let room = RoomName::lookup("board").unwrap();
        run(&engine, Command::StartRecording { room, video: false }).await;
        let stopped = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let e = feed.next().await.unwrap();
                if matches!(e.event.kind, EventKind::RecordingStopped { .. }) {
                    return e;
                }
            }
        })
        .await
        .expect("a recording started by a moderator ran past the limit");
        assert_eq!(stopped.event.actor, Actor::Service(SERVICE.to_owned()));
        engine.shutdown();
    }
}

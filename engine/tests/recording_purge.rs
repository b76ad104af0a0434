//! Recordings are content: a person's erasure deletes the files of the recordings they
//! took part in, log-days retention those that stopped before the cut-off; each is
//! journaled (`recording_erased`) before its files go, and the hashes stay journaled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use conclave_engine::service::{Engine, EngineConfig, Request};
use conclave_engine::{
    Actor, Command, Credentials, EventKind, Origin, Principal, PurgeScope, RecordingErasure,
    RecordingFile, RecordingId, RecordingKind, RoomName, SessionId,
};

fn room() -> RoomName {
    RoomName::lookup("board").unwrap()
}

fn person(a: &str) -> Actor {
    Actor::Identity(conclave_engine::Address::parse(a).unwrap())
}

async fn run(engine: &Engine, actor: Actor, command: Command) -> Vec<EventKind> {
    engine
        .execute(Request::new(command, actor, Origin::default()))
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|a| a.event.kind)
        .collect()
}

/// Starts and stops a recording, writes its audio file under `<data>/recordings/` and
/// journals it as the media node would.
async fn record(engine: &Engine, data: &Path) -> (RecordingId, PathBuf) {
    let started = run(
        engine,
        Actor::Admin,
        Command::StartRecording {
            room: room(),
            video: false,
        },
    )
    .await;
    let Some(EventKind::RecordingStarted { recording, .. }) = started.first().cloned() else {
        panic!("{started:?}");
    };
    run(
        engine,
        Actor::Admin,
        Command::StopRecording { room: room() },
    )
    .await;
    let name = format!("{recording}/audio.ogg");
    let path = data.join("recordings").join(&name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"OggS....").unwrap();
    run(
        engine,
        Actor::Service("media".into()),
        Command::RecordRecordingFile {
            room: room(),
            recording: recording.clone(),
            file: RecordingFile {
                name,
                kind: RecordingKind::Audio,
                track: None,
                bytes: 8,
                duration_ms: 10,
                blake3: fake_hash(b"OggS...."),
            },
        },
    )
    .await;
    (recording, path)
}

/// A well-formed digest (the engine does not hash files: the media node states it).
fn fake_hash(b: &[u8]) -> String {
    let mut s = String::new();
    for byte in b.iter().cycle().take(32) {
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_and_retention_delete_recording_files_after_journaling_it() {
    // Given a room where carol took part in a first recording but not in a second
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let engine = Engine::open(EngineConfig::new(&data)).unwrap();
    run(
        &engine,
        Actor::Admin,
        Command::create_room(
            room(),
            Some(Principal::parse("sip:chair@example.org").unwrap()),
        ),
    )
    .await;
    run(
        &engine,
        person("web:carol"),
        Command::Join {
            room: room(),
            session: SessionId::parse("c1").unwrap(),
            credentials: Credentials::default(),
        },
    )
    .await;
    let (first, first_file) = record(&engine, &data).await;
    run(
        &engine,
        person("web:carol"),
        Command::Leave {
            room: room(),
            session: SessionId::parse("c1").unwrap(),
        },
    )
    .await;
    let (second, second_file) = record(&engine, &data).await;

    // When carol is erased
    let out = engine
        .purge_content(
            PurgeScope::Person(Principal::parse("web:carol").unwrap()),
            Actor::Admin,
            Origin::default(),
            None,
        )
        .await
        .unwrap();

    // Then the first recording's file is gone, journaled first, and the second stays
    let erased: Vec<_> = out.recordings_erased.iter().map(|r| &r.recording).collect();
    assert_eq!(erased, vec![&first]);
    assert_eq!(out.recording_files_removed, 1);
    assert!(!first_file.exists());
    assert!(
        !first_file.parent().unwrap().exists(),
        "its directory goes too"
    );
    assert!(second_file.exists());
    let facts: Vec<String> = engine
        .journal()
        .iter_from(1)
        .map(|r| r.unwrap().event_type)
        .collect();
    let erased_at = facts.iter().position(|t| t == "recording_erased").unwrap();
    assert_eq!(
        facts
            .iter()
            .filter(|t| *t == "recording_file_closed")
            .count(),
        2,
        "the hashes stay journaled"
    );
    assert!(
        erased_at
            > facts
                .iter()
                .rposition(|t| t == "recording_file_closed")
                .unwrap()
    );
    let why = engine.read(|s| s.recordings[&first].erased);
    assert_eq!(why, Some(RecordingErasure::Erasure));

    // And retention with a cut-off after both erases the second (the first is done)
    let out = engine
        .purge_content(
            PurgeScope::Before(engine.now()),
            Actor::Admin,
            Origin::default(),
            None,
        )
        .await
        .unwrap();
    let erased: Vec<_> = out.recordings_erased.iter().map(|r| &r.recording).collect();
    assert_eq!(erased, vec![&second]);
    assert!(!second_file.exists());
    let why = engine.read(|s| s.recordings[&second].erased);
    assert_eq!(why, Some(RecordingErasure::Retention));

    // And a participant cannot run a purge at all
    let refused = engine
        .purge_content(
            PurgeScope::Before(engine.now()),
            person("web:carol"),
            Origin::default(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "perm.not_admin");
    engine.shutdown();
}

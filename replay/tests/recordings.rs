//! Recordings in compliance reports, and offline erasure of their files: the report
//! lists each recording with its files (name, bytes, duration, blake3) and whether and
//! why it was erased; erasing journals `recording_erased`, deletes the files, and keeps
//! the `recording_file_closed` facts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use conclave_engine::service::{Engine, EngineConfig, Request};
use conclave_engine::{
    Actor, Address, Command, Credentials, EventKind, Origin, Principal, PurgeScope, RecordingFile,
    RecordingKind, RoomName, SessionId,
};
use conclave_journal::{Journal, JournalConfig};
use conclave_replay::report::{self, ReportQuery};
use conclave_replay::{retention, IndexConfig, ReplayIndex};

fn exec(engine: &Engine, actor: Actor, command: Command) -> Vec<EventKind> {
    engine
        .execute_blocking(Request::new(command, actor, Origin::default()))
        .unwrap()
        .events
        .into_iter()
        .map(|a| a.event.kind)
        .collect()
}

fn full_report(j: &Journal) -> report::Report {
    let index = ReplayIndex::build(j, IndexConfig::default()).unwrap();
    report::build(
        j,
        &index,
        &ReportQuery {
            from: DateTime::<Utc>::MIN_UTC,
            to: Utc::now(),
            room: Some("board".into()),
        },
    )
    .unwrap()
}

#[test]
fn a_report_lists_recordings_and_an_offline_erasure_deletes_their_files() {
    // Given a data directory where carol took part in a recording with one audio file
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let room = RoomName::lookup("board").unwrap();
    let engine = Engine::open(EngineConfig::new(&data)).unwrap();
    exec(
        &engine,
        Actor::Admin,
        Command::create_room(
            room.clone(),
            Some(Principal::parse("sip:chair@example.org").unwrap()),
        ),
    );
    exec(
        &engine,
        Actor::Identity(Address::parse("web:carol").unwrap()),
        Command::Join {
            room: room.clone(),
            session: SessionId::parse("c1").unwrap(),
            credentials: Credentials::default(),
        },
    );
    let started = exec(
        &engine,
        Actor::Admin,
        Command::StartRecording {
            room: room.clone(),
            video: true,
        },
    );
    let Some(EventKind::RecordingStarted { recording, .. }) = started.first().cloned() else {
        panic!("{started:?}");
    };
    exec(
        &engine,
        Actor::Admin,
        Command::StopRecording { room: room.clone() },
    );
    let name = format!("{recording}/audio.ogg");
    let path = data.join("recordings").join(&name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"audio").unwrap();
    let hash = blake3::hash(b"audio").to_hex().to_string();
    exec(
        &engine,
        Actor::Service("media".into()),
        Command::RecordRecordingFile {
            room: room.clone(),
            recording: recording.clone(),
            file: RecordingFile {
                name: name.clone(),
                kind: RecordingKind::Audio,
                track: None,
                bytes: 5,
                duration_ms: 1200,
                blake3: hash.clone(),
            },
        },
    );
    engine.shutdown();
    drop(engine);
    let j = Journal::open(data.join("journal"), JournalConfig::default()).unwrap();

    // When the report is made, it lists the recording and its file
    let r = full_report(&j);
    assert_eq!(r.recordings.len(), 1, "{:#?}", r.recordings);
    let rec = &r.recordings[0];
    assert_eq!(
        (rec.room.as_str(), rec.recording.as_str(), rec.video),
        ("board", recording.as_str(), true)
    );
    assert!(rec.stopped_at.is_some());
    assert_eq!(rec.erased, None);
    assert_eq!(
        (
            rec.files[0].name.as_str(),
            rec.files[0].bytes,
            rec.files[0].duration_ms,
            rec.files[0].blake3.as_str()
        ),
        (name.as_str(), 5, 1200, hash.as_str())
    );
    let table = r
        .tables()
        .into_iter()
        .find(|t| t.name == "recordings")
        .unwrap();
    assert_eq!(table.rows.len(), 1);

    // When carol is erased offline
    let scope = PurgeScope::Person(Principal::parse("web:carol").unwrap());
    let erased =
        retention::erase_recordings(&j, &data, Some(&scope), Utc::now(), &Actor::Admin).unwrap();

    // Then the file is gone, the fact says which files went and why, the report says
    // the recording was erased by an erasure and still lists the file's hash
    assert_eq!(erased.len(), 1);
    assert!(!path.exists());
    let last = j.get(j.head()).unwrap().unwrap();
    assert_eq!(last.event_type, "recording_erased");
    let r = full_report(&j);
    assert_eq!(r.recordings[0].erased.as_deref(), Some("erasure"));
    assert_eq!(r.recordings[0].files[0].blake3, hash);
    assert!(r
        .events
        .iter()
        .any(|e| e.event_type == "recording_erased" && e.summary.contains("erasure")));

    // And running it again erases nothing more
    let again =
        retention::erase_recordings(&j, &data, Some(&scope), Utc::now(), &Actor::Admin).unwrap();
    assert!(again.is_empty());
}

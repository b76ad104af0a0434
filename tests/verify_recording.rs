//! `conclave verify-recording` as a user runs it: against a data directory whose journal
//! holds a closed recording file, a faithful copy matches (exit 0), a copy with one byte
//! changed does not (exit 1), and a file the journal never saw is unknown (exit 2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command as Process;

use conclave_engine::service::{Engine, EngineConfig, Request};
use conclave_engine::{
    Actor, Command, EventKind, Origin, Principal, RecordingFile, RecordingKind, RoomName,
};
use serde_json::Value;

fn run(engine: &Engine, actor: Actor, command: Command) -> Vec<EventKind> {
    engine
        .execute_blocking(Request::new(command, actor, Origin::default()))
        .unwrap()
        .events
        .into_iter()
        .map(|a| a.event.kind)
        .collect()
}

/// A data directory whose journal records `content` as `<recording>/audio.ogg`, written
/// under `<data>/recordings/` as the media node would; returns the file's path.
fn recorded(data: &Path, content: &[u8]) -> std::path::PathBuf {
    let engine = Engine::open(EngineConfig::new(data)).unwrap();
    let room = RoomName::lookup("board").unwrap();
    run(
        &engine,
        Actor::Admin,
        Command::create_room(
            room.clone(),
            Some(Principal::parse("sip:chair@example.org").unwrap()),
        ),
    );
    let started = run(
        &engine,
        Actor::Admin,
        Command::StartRecording {
            room: room.clone(),
            video: false,
        },
    );
    let Some(EventKind::RecordingStarted { recording, .. }) = started.first() else {
        panic!("no recording_started: {started:?}");
    };
    run(
        &engine,
        Actor::Admin,
        Command::StopRecording { room: room.clone() },
    );
    let name = format!("{recording}/audio.ogg");
    let path = data.join("recordings").join(&name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    run(
        &engine,
        Actor::Service("media".into()),
        Command::RecordRecordingFile {
            room,
            recording: recording.clone(),
            file: RecordingFile {
                name,
                kind: RecordingKind::Audio,
                track: None,
                bytes: content.len() as u64,
                duration_ms: 2000,
                blake3: blake3::hash(content).to_hex().to_string(),
            },
        },
    );
    engine.shutdown();
    path
}

/// Runs the binary; its exit code and the JSON line it printed.
fn verify(data: &Path, file: &Path, name: Option<&str>) -> (i32, Value) {
    let mut cmd = Process::new(env!("CARGO_BIN_EXE_conclave"));
    cmd.arg("verify-recording")
        .arg("--data")
        .arg(data)
        .arg(file);
    if let Some(n) = name {
        cmd.arg("--name").arg(n);
    }
    let out = cmd.env_remove("CONCLAVE_DATA").output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(line.trim()).unwrap_or_else(|_| {
        panic!(
            "not one JSON line: {line:?} (stderr {:?})",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn a_recording_matches_its_journal_and_a_changed_byte_does_not() {
    // Given a data directory with a journaled recording file (300 kB of "audio")
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = recorded(&data, &content);
    let hash = blake3::hash(&content).to_hex().to_string();

    // When the file itself is checked, it matches (found by its hash)
    let (code, v) = verify(&data, &file, None);
    assert_eq!((code, v["status"].as_str()), (0, Some("match")), "{v}");
    assert_eq!(v["room"], "board");
    assert_eq!(v["journaled_blake3"], hash.as_str());
    assert_eq!(v["file_blake3"], hash.as_str());
    assert_eq!(v["bytes"], content.len() as u64);
    assert!(v["seq"].as_u64().is_some_and(|s| s > 0), "{v}");
    let name = v["name"].as_str().unwrap().to_owned();
    assert!(name.ends_with("/audio.ogg"), "{name}");

    // When one byte of a copy handed to an auditor is changed, it is a mismatch, named
    // or found by its path
    let copy = dir.path().join("copy.ogg");
    let mut changed = content.clone();
    changed[150_000] ^= 1;
    std::fs::write(&copy, &changed).unwrap();
    let (code, v) = verify(&data, &copy, Some(&name));
    assert_eq!((code, v["status"].as_str()), (1, Some("mismatch")), "{v}");
    assert_eq!(v["journaled_blake3"], hash.as_str());
    assert_ne!(v["file_blake3"], hash.as_str());
    std::fs::write(&file, &changed).unwrap();
    let (code, v) = verify(&data, &file, None);
    assert_eq!((code, v["status"].as_str()), (1, Some("mismatch")), "{v}");

    // When a file the journal never saw is checked, it is unknown
    let other = dir.path().join("other.ogg");
    std::fs::write(&other, b"not a recording").unwrap();
    let (code, v) = verify(&data, &other, None);
    assert_eq!((code, v["status"].as_str()), (2, Some("unknown")), "{v}");
    assert_eq!(v["seq"], Value::Null);
    let (code, v) = verify(&data, &other, Some("nope/audio.ogg"));
    assert_eq!((code, v["status"].as_str()), (2, Some("unknown")), "{v}");
}

/// Runs the binary with `args`; its exit code, stdout and stderr.
fn conclave(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_conclave"))
        .args(args)
        .env_remove("CONCLAVE_DATA")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bundle_carries_its_recordings_beside_it_and_checks_them() {
    // Given a data directory with a journaled recording file
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let content: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let file = recorded(&data, &content);
    let (bundle, beside) = (dir.path().join("bundle.jsonl"), dir.path().join("rec"));

    // When it is exported with its recordings, the file is copied beside the bundle
    let (code, _, err) = conclave(&[
        "journal".as_ref(),
        "export-bundle".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
        "--out".as_ref(),
        bundle.as_os_str(),
        "--recordings".as_ref(),
        beside.as_os_str(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("\"match\""), "{err}");
    let name = file.strip_prefix(data.join("recordings")).unwrap();
    assert_eq!(std::fs::read(beside.join(name)).unwrap(), content);

    // Then the bundle and its recordings verify together
    let verify_bundle = || {
        let (code, out, _) = conclave(&[
            "verify-bundle".as_ref(),
            bundle.as_os_str(),
            "--recordings".as_ref(),
            beside.as_os_str(),
        ]);
        (code, serde_json::from_str::<Value>(&out).unwrap())
    };
    let (code, v) = verify_bundle();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["recordings"][0]["status"], "match", "{v}");
    assert_eq!(v["bundle"]["ok"], true);

    // And a changed byte in the handed-over copy fails the check
    let mut changed = content.clone();
    changed[7] ^= 0x80;
    std::fs::write(beside.join(name), &changed).unwrap();
    let (code, v) = verify_bundle();
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["recordings"][0]["status"], "mismatch", "{v}");

    // And a missing file (never erased) fails too
    std::fs::remove_file(beside.join(name)).unwrap();
    let (code, v) = verify_bundle();
    assert_eq!(
        (code, v["recordings"][0]["status"].as_str()),
        (1, Some("missing")),
        "{v}"
    );
}

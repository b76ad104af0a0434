//! Room recordings: who may start and stop one, the files the media node states, and
//! that a room which goes ends its recording.

use crate::common::*;
use conclave_engine::state::Recording;
use conclave_engine::*;

fn start(r: &str, video: bool) -> Command {
    Command::StartRecording {
        room: room(r),
        video,
    }
}

fn stop(r: &str) -> Command {
    Command::StopRecording { room: room(r) }
}

fn file(recording: &RecordingId, name: &str, hash: &str) -> RecordingFile {
    RecordingFile {
        name: format!("{recording}/{name}"),
        kind: RecordingKind::Audio,
        track: None,
        bytes: 4096,
        duration_ms: 1500,
        blake3: hash.into(),
    }
}

fn record_file(r: &str, recording: &RecordingId, f: RecordingFile) -> Command {
    Command::RecordRecordingFile {
        room: room(r),
        recording: recording.clone(),
        file: f,
    }
}

fn media() -> Actor {
    Actor::Service("media".into())
}

const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A room `r` owned by alice, with bob a present moderator and carol present without
/// moderator rights.
fn meeting(r: &str) -> World {
    let mut w = World::new();
    w.run(&user("alice"), create_room(r));
    w.run(&user("alice"), grant(r, who("bob"), Role::Moderator));
    w.run(&user("bob"), join(r, "b"));
    w.run(&user("carol"), join(r, "c"));
    w
}

/// The recording a start event names.
fn started(events: &[Event]) -> RecordingId {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::RecordingStarted { recording, .. } => Some(recording.clone()),
            _ => None,
        })
        .expect("a recording_started event")
}

fn recording<'a>(w: &'a World, id: &RecordingId) -> &'a Recording {
    &w.state.recordings[id]
}

#[test]
fn a_moderator_starts_a_recording_everyone_sees() {
    // given a room where bob moderates
    let mut w = meeting("standup");
    // when he starts a recording with video
    let events = w
        .when(&user("bob"), start("standup", true))
        .ok(&["recording_started"]);
    // then the room's stream says so, naming him, and the room records
    let id = started(&events);
    assert_eq!(events[0].stream(), StreamId::Room(room("standup")));
    assert_eq!(
        events[0].kind,
        EventKind::RecordingStarted {
            room: room("standup"),
            recording: id.clone(),
            video: true,
            by: Some(who("bob")),
        }
    );
    let active = w.state.rooms[&room("standup")].recording.clone().unwrap();
    assert_eq!((active.id.clone(), active.video), (id.clone(), true));
    // and everyone present takes part in it
    let rec = recording(&w, &id);
    assert!(rec.participants.contains(&who("bob")));
    assert!(rec.participants.contains(&who("carol")));
    assert_eq!(rec.stopped_at, None);
    w.assert_replays(Policy::default());
}

#[test]
fn someone_without_moderator_rights_may_not_start_one() {
    // given carol, present without moderator rights
    let mut w = meeting("standup");
    // when she tries to start a recording
    w.when(&user("carol"), start("standup", false))
        // then it is refused as any moderator action is, and journaled as a denial
        .err("perm.not_moderator", &["api_action_denied"]);
    assert!(w.state.rooms[&room("standup")].recording.is_none());
    assert!(w.state.recordings.is_empty());
}

#[test]
fn a_second_start_is_refused_while_one_runs() {
    // given a running recording
    let mut w = meeting("standup");
    w.run(&user("bob"), start("standup", false));
    // when alice (the owner) starts another
    w.when(&user("alice"), start("standup", true))
        // then it is refused with its own code, nothing journaled
        .err("recording.already_active", &[]);
    assert_eq!(w.state.recordings.len(), 1);
}

#[test]
fn a_stop_without_a_recording_is_refused() {
    let mut w = meeting("standup");
    w.when(&user("bob"), stop("standup"))
        .err("recording.not_active", &[]);
}

#[test]
fn a_file_closed_after_the_stop_is_journaled() {
    // given a recording bob started and stopped
    let mut w = meeting("standup");
    let id = started(&w.run(&user("bob"), start("standup", false)));
    w.advance(60);
    w.when(&user("bob"), stop("standup"))
        .ok(&["recording_stopped"]);
    assert!(w.state.rooms[&room("standup")].recording.is_none());
    // when the media node states the audio file it closed afterwards
    w.advance(1);
    let f = file(&id, "audio.ogg", HASH);
    let events = w
        .when(&media(), record_file("standup", &id, f.clone()))
        .ok(&["recording_file_closed"]);
    // then the fact carries the name, length and hash, and the recording lists it
    assert_eq!(
        events[0].kind,
        EventKind::RecordingFileClosed {
            room: room("standup"),
            recording: id.clone(),
            file: f.clone(),
        }
    );
    let rec = recording(&w, &id);
    assert_eq!(rec.files, vec![f.clone()]);
    assert_eq!(rec.stopped_at, Some(t0() + chrono::Duration::seconds(60)));
    // and stating it again changes nothing
    w.when(&media(), record_file("standup", &id, f.clone()))
        .ok(&[]);
    // and another hash under the same name is refused: a name has one hash
    let mut changed = f;
    changed.blake3 = HASH.replace('0', "f");
    w.when(&media(), record_file("standup", &id, changed))
        .err("recording.invalid_file", &[]);
    assert_eq!(recording(&w, &id).files.len(), 1);
    w.assert_replays(Policy::default());
}

#[test]
fn malformed_files_and_strangers_are_refused() {
    let mut w = meeting("standup");
    let id = started(&w.run(&user("bob"), start("standup", false)));
    // a hash that is not 64 lowercase hex digits
    w.when(
        &media(),
        record_file("standup", &id, file(&id, "audio.ogg", &HASH.to_uppercase())),
    )
    .err("recording.invalid_file", &[]);
    // a name that climbs out of the recordings directory
    w.when(
        &media(),
        record_file("standup", &id, file(&id, "../x.ogg", HASH)),
    )
    .err("recording.invalid_file", &[]);
    // a name outside the recording's own directory
    let mut other = file(&id, "audio.ogg", HASH);
    other.name = "elsewhere/audio.ogg".into();
    w.when(&media(), record_file("standup", &id, other))
        .err("recording.invalid_file", &[]);
    // a recording never started in that room
    let ghost = RecordingId::parse("0000").unwrap();
    w.when(
        &media(),
        record_file("standup", &ghost, file(&ghost, "audio.ogg", HASH)),
    )
    .err("recording.not_found", &[]);
    // a person may not state files at all
    w.when(
        &user("bob"),
        record_file("standup", &id, file(&id, "audio.ogg", HASH)),
    )
    .err("perm.not_admin", &["api_action_denied"]);
    assert!(recording(&w, &id).files.is_empty());
}

#[test]
fn destroying_a_room_ends_its_recording_first() {
    // given a recording running in a room
    let mut w = meeting("standup");
    let id = started(&w.run(&user("bob"), start("standup", true)));
    w.advance(30);
    // when alice destroys the room
    w.when(
        &user("alice"),
        Command::DestroyRoom {
            room: room("standup"),
        },
    )
    // then the recording stops before the room goes
    .ok(&["recording_stopped", "room_delete"]);
    let rec = recording(&w, &id);
    assert_eq!(rec.stopped_at, Some(t0() + chrono::Duration::seconds(30)));
    // and files closing afterwards are still journaled against it
    w.when(
        &media(),
        record_file("standup", &id, file(&id, "audio.ogg", HASH)),
    )
    .ok(&["recording_file_closed"]);
    w.assert_replays(Policy::default());
}

#[test]
fn an_erased_recording_keeps_its_hashes_in_the_journal() {
    // given a stopped recording with one file
    let mut w = meeting("standup");
    let id = started(&w.run(&user("bob"), start("standup", false)));
    let erase = |w: &mut World| {
        w.when(
            &admin(),
            Command::EraseRecording {
                room: room("standup"),
                recording: id.clone(),
                reason: RecordingErasure::Retention,
            },
        )
    };
    // a running recording is not erased
    erase(&mut w).err("recording.already_active", &[]);
    w.run(&user("bob"), stop("standup"));
    w.run(
        &media(),
        record_file("standup", &id, file(&id, "audio.ogg", HASH)),
    );
    // when retention erases it
    let events = erase(&mut w).ok(&["recording_erased"]);
    // then the fact names its files, the state says why, and the file fact stays
    assert_eq!(
        events[0].kind,
        EventKind::RecordingErased {
            room: room("standup"),
            recording: id.clone(),
            names: vec![format!("{id}/audio.ogg")],
            action: RecordingErasure::Retention,
        }
    );
    assert_eq!(recording(&w, &id).erased, Some(RecordingErasure::Retention));
    assert_eq!(recording(&w, &id).files.len(), 1);
    // and erasing it again journals nothing
    erase(&mut w).ok(&[]);
}

#[test]
fn the_state_after_replay_equals_the_state_decided_live() {
    // given a story: start, a late joiner, a file, a stop, another start, a destroy
    let mut w = meeting("standup");
    let first = started(&w.run(&user("bob"), start("standup", true)));
    w.advance(5);
    w.run(&user("dave"), join("standup", "d"));
    w.run(
        &media(),
        record_file("standup", &first, file(&first, "audio.ogg", HASH)),
    );
    w.advance(5);
    w.run(&user("bob"), stop("standup"));
    w.run(&user("carol"), leave("standup", "c"));
    w.advance(5);
    let second = started(&w.run(&user("alice"), start("standup", false)));
    w.run(
        &user("alice"),
        Command::DestroyRoom {
            room: room("standup"),
        },
    );
    // then the late joiner took part in both, carol (gone before the second) in the
    // first only, and the destroy stopped the second
    assert!(recording(&w, &first).participants.contains(&who("dave")));
    assert!(recording(&w, &second).participants.contains(&who("dave")));
    assert!(recording(&w, &first).participants.contains(&who("carol")));
    assert!(!recording(&w, &second).participants.contains(&who("carol")));
    assert!(recording(&w, &second).stopped_at.is_some());
    // and folding the journal from scratch gives the same state
    w.assert_replays(Policy::default());
    // and every event round-trips through the journal codec
    for e in &w.journal {
        let enc = codec::encode(e).unwrap();
        let back = codec::decode(
            enc.event_type,
            enc.schema_version,
            &enc.payload,
            enc.personal_content.as_deref(),
        )
        .unwrap();
        assert_eq!(&back, e);
    }
}

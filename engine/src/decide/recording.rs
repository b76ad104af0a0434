//! Room recordings: a moderator starts and stops one (the same right as muting others);
//! the media node states each file it closed; the purge erases a recording's files.
//! The files themselves are the media node's; the journal keeps their names, lengths
//! and blake3, so a recording can be verified, and still accounted for once erased.

use super::{Cx, Decision};
use crate::event::EventKind;
use crate::ids::{RecordingId, RoomName};
use crate::recording::{RecordingErasure, RecordingFile, MAX_RECORDING_FILES};
use crate::rejection::Rejection;
use crate::state::Recording;

pub(super) fn start(cx: &Cx<'_>, room: &RoomName, video: bool) -> Decision {
    let r = cx.room(room)?;
    cx.require_moderator(room, r)?;
    if r.recording.is_some() {
        return Err(Rejection::RecordingActive.into());
    }
    let recording = RecordingId::from_stored(cx.ctx.ids.derive("recording", 0));
    if cx.state.recordings.contains_key(&recording) {
        // Only happens if the caller reuses a seed: refuse rather than overwrite.
        return Err(Rejection::InvalidInput {
            field: "recording",
            reason: "id seed already used".into(),
        }
        .into());
    }
    Ok(vec![cx.event(EventKind::RecordingStarted {
        room: room.clone(),
        recording,
        video,
        by: cx.actor_principal(),
    })])
}

pub(super) fn stop(cx: &Cx<'_>, room: &RoomName) -> Decision {
    let r = cx.room(room)?;
    cx.require_moderator(room, r)?;
    let Some(active) = &r.recording else {
        return Err(Rejection::RecordingNotActive.into());
    };
    Ok(vec![cx.event(EventKind::RecordingStopped {
        room: room.clone(),
        recording: active.id.clone(),
    })])
}

/// The recording `id`, if it was started in `room` (whether the room still exists or
/// not: files close after a destroy too).
fn recording_in<'a>(
    cx: &Cx<'a>,
    room: &RoomName,
    id: &RecordingId,
) -> Result<&'a Recording, Rejection> {
    cx.state
        .recordings
        .get(id)
        .filter(|r| &r.room == room)
        .ok_or(Rejection::RecordingNotFound)
}

pub(super) fn record_file(
    cx: &Cx<'_>,
    room: &RoomName,
    id: &RecordingId,
    file: &RecordingFile,
) -> Decision {
    cx.require_operator()?;
    file.check()
        .map_err(|e| Rejection::RecordingFileInvalid(e.to_string()))?;
    // A recording's files live in its own directory, so erasing one never touches
    // another's.
    let dir = format!("{id}/");
    if !file.name.starts_with(&dir) {
        return Err(
            Rejection::RecordingFileInvalid(format!("file name must start with {dir:?}")).into(),
        );
    }
    let rec = recording_in(cx, room, id)?;
    if rec.erased.is_some() {
        // Nothing may be added to a recording whose files were deleted.
        return Err(Rejection::RecordingNotFound.into());
    }
    if let Some(known) = rec.files.iter().find(|f| f.name == file.name) {
        // A closed file does not change: the same fact again is a repeat; another
        // length or hash under the same name is refused, so a name has one hash.
        if known == file {
            return Ok(vec![]);
        }
        return Err(Rejection::RecordingFileInvalid(format!(
            "{} is already journaled with another length or hash",
            file.name
        ))
        .into());
    } else if rec.files.len() >= MAX_RECORDING_FILES {
        return Err(Rejection::RecordingFileInvalid(format!(
            "at most {MAX_RECORDING_FILES} files per recording"
        ))
        .into());
    }
    Ok(vec![cx.event(EventKind::RecordingFileClosed {
        room: room.clone(),
        recording: id.clone(),
        file: file.clone(),
    })])
}

pub(super) fn erase(
    cx: &Cx<'_>,
    room: &RoomName,
    id: &RecordingId,
    action: RecordingErasure,
) -> Decision {
    cx.require_operator()?;
    let rec = recording_in(cx, room, id)?;
    if rec.erased.is_some() {
        return Ok(vec![]);
    }
    // A running recording is still being written: stop it first.
    if rec.stopped_at.is_none() {
        return Err(Rejection::RecordingActive.into());
    }
    Ok(vec![cx.event(EventKind::RecordingErased {
        room: room.clone(),
        recording: id.clone(),
        names: rec.files.iter().map(|f| f.name.clone()).collect(),
        action,
    })])
}

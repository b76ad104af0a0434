//! Room recordings as the journal knows them: the files a media node closed (name,
//! kind, length, duration, blake3), and why a recording's files were erased.
//!
//! The journal never holds the media, only these facts, so that `conclave
//! verify-recording` can tell whether a file handed to an auditor is the one made, and
//! an erased recording still shows what existed and what its hash was.

use serde::{Deserialize, Serialize};

/// The longest file name (a path relative to `<data>/recordings/`).
pub const MAX_RECORDING_NAME_LEN: usize = 200;

/// Most files one recording may list (an audio file and one per video track; a
/// bound so a misbehaving media node cannot grow the state without limit).
pub const MAX_RECORDING_FILES: usize = 64;

/// What a recording file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingKind {
    /// The room's mixed audio (Ogg/Opus).
    Audio,
    /// One forwarded video track as it arrived (WebM).
    Video,
}

impl RecordingKind {
    /// Stable name (`audio`, `video`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingKind::Audio => "audio",
            RecordingKind::Video => "video",
        }
    }
}

/// One closed recording file, as the media node states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingFile {
    /// Path relative to `<data>/recordings/` (`<recording>/audio.ogg`): see
    /// [`check_name`].
    pub name: String,
    /// Audio or video.
    pub kind: RecordingKind,
    /// The forwarded track id, for video.
    pub track: Option<String>,
    /// Length in bytes.
    pub bytes: u64,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// blake3 of the whole file, 64 lowercase hex digits.
    pub blake3: String,
}

/// Why a recording's files were erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingErasure {
    /// Log-days retention: the recording stopped before the cut-off.
    Retention,
    /// Erasure of a person who took part in it.
    Erasure,
}

impl RecordingErasure {
    /// Stable name (`retention`, `erasure`), as reports and the event say it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingErasure::Retention => "retention",
            RecordingErasure::Erasure => "erasure",
        }
    }
}

/// Why a recording file's description is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingFileError {
    /// The name is empty, too long, holds a character outside `[A-Za-z0-9._/-]`, is
    /// absolute, or has an empty, `.` or `..` segment.
    #[error("file name {0:?} is not a relative path of [A-Za-z0-9._/-], at most 200 bytes, without '..'")]
    Name(String),
    /// The hash is not 64 lowercase hex digits.
    #[error("blake3 must be 64 lowercase hex digits")]
    Hash,
    /// The track id is empty, too long or not `[A-Za-z0-9._-]`.
    #[error("track id must be 1..=128 characters of [A-Za-z0-9._-]")]
    Track,
}

/// A file name a media node may state and a reader may open under
/// `<data>/recordings/`: 1..=200 bytes of `[A-Za-z0-9._/-]`, relative, and no segment
/// empty, `.` or `..` (so it never leaves that directory).
pub fn check_name(name: &str) -> Result<(), RecordingFileError> {
    let bad = || RecordingFileError::Name(name.chars().take(64).collect());
    if name.is_empty() || name.len() > MAX_RECORDING_NAME_LEN {
        return Err(bad());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'))
    {
        return Err(bad());
    }
    if name
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(bad());
    }
    Ok(())
}

/// Whether `h` is a blake3 digest as the journal keeps it: 64 lowercase hex digits.
pub fn is_blake3_hex(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl RecordingFile {
    /// Checks the name, the hash and the track id.
    pub fn check(&self) -> Result<(), RecordingFileError> {
        check_name(&self.name)?;
        if !is_blake3_hex(&self.blake3) {
            return Err(RecordingFileError::Hash);
        }
        if let Some(t) = &self.track {
            if t.is_empty()
                || t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(RecordingFileError::Track);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_under_the_recordings_directory() {
        assert!(check_name("0123abcd/audio.ogg").is_ok());
        assert!(check_name("r1/video-t_1.webm").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a/./b",
            "a b",
            "a\\b",
            "é",
            "a/",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"a".repeat(201)).is_err());
        assert!(check_name(&"a".repeat(200)).is_ok());
    }

    #[test]
    fn hashes_are_lowercase_hex_of_64() {
        assert!(is_blake3_hex(&"a".repeat(64)));
        assert!(!is_blake3_hex(&"A".repeat(64)));
        assert!(!is_blake3_hex(&"a".repeat(63)));
        assert!(!is_blake3_hex(&"g".repeat(64)));
    }
}

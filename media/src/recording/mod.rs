//! Recording files: the room's mixed audio as Ogg/Opus ([`OggOpusWriter`]) and each
//! video track as it arrived as WebM ([`WebmVideoWriter`]). Closing a file fsyncs it
//! and hashes it, and the [`ClosedFile`] is what the engine journals, so a recording
//! handed to an auditor can be checked against the journal byte for byte.
//!
//! Files are created with `create_new`: a recording never overwrites another one.

pub mod found;
pub mod ogg_opus;
pub mod webm;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::audio::AudioError;

pub use self::found::found_file;
pub use self::ogg_opus::OggOpusWriter;
pub use self::webm::{WebmStats, WebmVideoWriter};

/// What a closed recording file was: what the engine journals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedFile {
    pub path: PathBuf,
    pub bytes: u64,
    pub duration_ms: u64,
    /// 64 lowercase hex digits.
    pub blake3: String,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AudioError + '_ {
    move |source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates the parent directories and a new file (never an existing one).
fn create_file(path: &Path) -> Result<BufWriter<File>, AudioError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err(path))?;
    }
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .open(path)
        .map_err(io_err(path))?;
    Ok(BufWriter::new(file))
}

/// Flushes and fsyncs the file (and its directory entry), then hashes what is on disk.
fn close_file(
    path: &Path,
    writer: BufWriter<File>,
    duration_ms: u64,
) -> Result<ClosedFile, AudioError> {
    let mut writer = writer;
    writer.flush().map_err(io_err(path))?;
    let file = writer
        .into_inner()
        .map_err(|e| io_err(path)(e.into_error()))?;
    file.sync_all().map_err(io_err(path))?;
    drop(file);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(io_err(path))?;
    }
    let (bytes, blake3) = hash_file(path)?;
    Ok(ClosedFile {
        path: path.to_path_buf(),
        bytes,
        duration_ms,
        blake3,
    })
}

/// Length and blake3 (lowercase hex) of a file, streamed: what `verify-recording`
/// compares with the journal.
pub fn hash_file(path: &Path) -> Result<(u64, String), AudioError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(std::io::BufReader::with_capacity(1 << 16, file))
        .map_err(io_err(path))?;
    let bytes = hasher.count();
    Ok((bytes, hasher.finalize().to_hex().to_string()))
}

//! Opening a journal directory for offline queries without disturbing a running server.
//!
//! sled holds an exclusive lock on a database that a server has open. Queries are
//! read-only, so when the lock is taken the directory is copied to a temporary one and
//! the copy is opened instead; the original is only ever read. The durable-head marker
//! is copied *first*: it is written after the data it names is flushed, so a copy taken
//! while the server appends holds at least what the marker claims (otherwise opening the
//! copy would report a truncation that did not happen).

use std::path::{Path, PathBuf};

use conclave_journal::{Journal, JournalConfig, JournalError, SyncMode};

use crate::error::{ReplayError, Result};

/// The durable-head marker the journal keeps beside its database.
const HEAD_MARKER: &str = "conclave-head";

/// Where a data directory keeps what replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPaths {
    /// The data directory (`--data`): the signing key lives here.
    pub data_dir: PathBuf,
    /// The journal's sled directory (`<data>/journal`, or `<data>` itself if it is one).
    pub journal_dir: PathBuf,
}

impl DataPaths {
    /// Resolves `--data`: a server data directory holding `journal/`, or a journal
    /// directory itself. Refuses a path that is neither, so that nothing is created.
    pub fn resolve(data: &Path) -> Result<Self> {
        let nested = data.join("journal");
        if nested.is_dir() {
            return Ok(DataPaths {
                data_dir: data.to_path_buf(),
                journal_dir: nested,
            });
        }
        if data.join("conf").is_file() || data.join("db").is_file() {
            return Ok(DataPaths {
                data_dir: data.to_path_buf(),
                journal_dir: data.to_path_buf(),
            });
        }
        Err(ReplayError::NoJournal {
            path: data.display().to_string(),
        })
    }
}

/// A journal opened for reading, possibly from a private copy.
pub struct OfflineJournal {
    pub journal: Journal,
    pub paths: DataPaths,
    /// Set when the original was locked and a copy is being read.
    pub copy: Option<PathBuf>,
    // Dropped after `journal` (field order), removing the copy.
    _tmp: Option<tempfile::TempDir>,
}

fn config() -> JournalConfig {
    JournalConfig {
        // Nothing is appended; a small cache is enough for a sequential scan.
        sync: SyncMode::None,
        cache_capacity: 32 * 1024 * 1024,
        ..JournalConfig::default()
    }
}

/// Whether an open failure is sled's lock held by another process.
fn is_locked(e: &JournalError) -> bool {
    match e {
        JournalError::Open { reason, .. } | JournalError::Storage(reason) => {
            let r = reason.to_ascii_lowercase();
            r.contains("lock") || r.contains("temporarily unavailable")
        }
        _ => false,
    }
}

/// Opens `data` for queries; copies it first if a server holds it.
pub fn open_read(data: &Path) -> Result<OfflineJournal> {
    let paths = DataPaths::resolve(data)?;
    match Journal::open(&paths.journal_dir, config()) {
        Ok(journal) => Ok(OfflineJournal {
            journal,
            paths,
            copy: None,
            _tmp: None,
        }),
        Err(e) if is_locked(&e) => {
            let tmp = tempfile::Builder::new()
                .prefix("conclave-replay-")
                .tempdir()
                .map_err(|e| ReplayError::io(Path::new("temporary directory"), e))?;
            let copy = tmp.path().join("journal");
            copy_journal(&paths.journal_dir, &copy)?;
            let journal = Journal::open(&copy, config())?;
            Ok(OfflineJournal {
                journal,
                paths,
                copy: Some(copy),
                _tmp: Some(tmp),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Opens `data` for a write (retention); never on a copy, refused while a server runs.
pub fn open_write(data: &Path) -> Result<(Journal, DataPaths)> {
    let paths = DataPaths::resolve(data)?;
    let journal_config = JournalConfig::default();
    match Journal::open(&paths.journal_dir, journal_config) {
        Ok(j) => Ok((j, paths)),
        Err(e) if is_locked(&e) => Err(ReplayError::Locked {
            path: paths.journal_dir.display().to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Copies a journal directory: the head marker first, then everything else.
pub fn copy_journal(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| ReplayError::io(to, e))?;
    let marker = from.join(HEAD_MARKER);
    if marker.is_file() {
        std::fs::copy(&marker, to.join(HEAD_MARKER)).map_err(|e| ReplayError::io(&marker, e))?;
    }
    copy_tree(from, to, true)
}

fn copy_tree(from: &Path, to: &Path, top: bool) -> Result<()> {
    let entries = std::fs::read_dir(from).map_err(|e| ReplayError::io(from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| ReplayError::io(from, e))?;
        let name = entry.file_name();
        if top && name == HEAD_MARKER {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        let kind = entry.file_type().map_err(|e| ReplayError::io(&src, e))?;
        if kind.is_dir() {
            std::fs::create_dir_all(&dst).map_err(|e| ReplayError::io(&dst, e))?;
            copy_tree(&src, &dst, false)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| ReplayError::io(&src, e))?;
        }
    }
    Ok(())
}

//! Reading a journal without touching it: open a private copy of its directory.
//!
//! Opening a sled database is not a read. sled's recovery rewrites the log: it zeroes
//! everything after the first damaged spot it meets (and grows the file to a whole
//! segment), writes a snapshot, and creates a new database where there is none; on a
//! read-only file system it fails. The journal then stamps its layout version and
//! catches up its stream index. A tool that inspects a journal (verification, replay,
//! reports) must leave the evidence as it found it, so it copies the directory to a
//! private temporary one (mode 0700, under `TMPDIR`) and opens the copy; the original is
//! only ever read. The copy costs the journal's size in temporary space and one read of
//! it, and is removed when the [`JournalCopy`] is dropped.
//!
//! The durable-head marker is copied first: a running server writes it only after the
//! data it names is flushed, so a copy taken while it appends holds at least what the
//! marker claims.

use std::path::{Path, PathBuf};

use crate::config::JournalConfig;
use crate::error::{JournalError, Result};
use crate::head::HEAD_MARKER;
use crate::journal::{hex, Journal};

/// A journal opened from a private copy of its directory. Dereferences to the
/// [`Journal`]; dropping it closes the journal and removes the copy, so do not keep
/// clones of the journal beyond it.
pub struct JournalCopy {
    // Dropped before `dir` (field order): the journal is closed before its files go.
    journal: Journal,
    dir: PrivateCopy,
}

impl JournalCopy {
    /// Copies the journal directory `original` and opens the copy with `config` (minus
    /// any head witness, which belongs to the original's data directory and would be
    /// written on close). Errors name `original`, never the copy.
    pub fn open(original: &Path, config: JournalConfig) -> Result<JournalCopy> {
        Self::open_with(original, config, true)
    }

    /// [`JournalCopy::open`] without the durable-head marker: opens what the journal
    /// holds even when it is shorter than its marker says (which `open` refuses as
    /// `journal.truncated`), to report on or verify what is left.
    pub fn open_without_marker(original: &Path, config: JournalConfig) -> Result<JournalCopy> {
        Self::open_with(original, config, false)
    }

    fn open_with(
        original: &Path,
        mut config: JournalConfig,
        with_marker: bool,
    ) -> Result<JournalCopy> {
        let open_err = |reason: String| JournalError::Open {
            path: original.display().to_string(),
            reason,
        };
        if !original.join("db").is_file() {
            return Err(open_err(if original.is_dir() {
                "no journal database in this directory".into()
            } else {
                "no such directory".into()
            }));
        }
        // Failing to copy says nothing about the journal: a storage error, not `Open`.
        let dir = PrivateCopy::of(original).map_err(|e| {
            JournalError::Storage(format!(
                "copying {} to a private directory: {e}",
                original.display()
            ))
        })?;
        let copy = dir.path().to_path_buf();
        if !with_marker {
            std::fs::remove_file(copy.join(HEAD_MARKER))
                .or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| JournalError::Storage(format!("private copy: {e}")))?;
        }
        config.head_witness = None;
        let journal = Journal::open(&copy, config).map_err(|e| match e {
            JournalError::Open { reason, .. } => open_err(
                reason.replace(&copy.display().to_string(), &original.display().to_string()),
            ),
            other => other,
        })?;
        Ok(JournalCopy { journal, dir })
    }

    /// The open copy.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Where the copy is (removed on drop).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl std::ops::Deref for JournalCopy {
    type Target = Journal;

    fn deref(&self) -> &Journal {
        &self.journal
    }
}

/// Copies a journal directory: the head marker first, then everything else (files and
/// directories; nothing else exists in a sled directory). Only reads `from`.
pub fn copy_journal_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    let marker = from.join(HEAD_MARKER);
    if marker.is_file() {
        std::fs::copy(&marker, to.join(HEAD_MARKER))?;
    }
    copy_tree(from, to, true)
}

fn copy_tree(from: &Path, to: &Path, top: bool) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if top && name == HEAD_MARKER {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&dst)?;
            copy_tree(&src, &dst, false)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst)?;
            // A copy of a read-only original is read-only too (the copy keeps the
            // mode); it must be writable for sled to open it, by its owner only.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

/// A private copy of a directory (for a database that must be opened without touching
/// the original: a journal, a checkpoint store): under a fresh temporary directory only
/// this user can enter, removed with everything in it on drop.
pub struct PrivateCopy {
    root: PathBuf,
    copy: PathBuf,
}

impl PrivateCopy {
    /// Copies directory `original` (a head marker in it first); only reads `original`.
    pub fn of(original: &Path) -> std::io::Result<PrivateCopy> {
        let root = private_dir()?;
        let out = PrivateCopy {
            copy: root.join("copy"),
            root,
        };
        copy_journal_dir(original, &out.copy)?;
        Ok(out)
    }

    /// The copy.
    pub fn path(&self) -> &Path {
        &self.copy
    }
}

impl Drop for PrivateCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Creates a fresh directory only this user can enter, under `TMPDIR`.
fn private_dir() -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir();
    for _ in 0..8 {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
        let path = base.join(format!("conclave-copy-{}", hex(&nonce)));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        match builder.create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "no free name for a temporary directory in {}",
        base.display()
    )))
}

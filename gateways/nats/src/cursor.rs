//! The outbox cursor: the last journal sequence the NATS server acknowledged, kept in a
//! small file beside (never inside) the journal.
//!
//! Written atomically: a temporary file is written and fsynced, renamed over the old one
//! and the directory fsynced, so a crash leaves the old or the new value, never a torn
//! one. The format is one line, `conclave-nats-cursor 1 <seq>`, so a damaged or foreign
//! file is refused instead of misread.

use std::fs;
use std::path::{Path, PathBuf};

use conclave_journal::durable;

use crate::error::NatsError;

const MAGIC: &str = "conclave-nats-cursor";
const VERSION: &str = "1";

/// The cursor file of one outbox.
#[derive(Debug, Clone)]
pub struct CursorFile {
    path: PathBuf,
}

impl CursorFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CursorFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, reason: impl ToString) -> NatsError {
        NatsError::Cursor {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// The stored cursor; 0 (nothing published yet) when the file does not exist.
    pub fn load(&self) -> Result<u64, NatsError> {
        let text = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.err(e)),
        };
        if text.len() > 128 {
            return Err(self.err("not a cursor file (too long)"));
        }
        let text = std::str::from_utf8(&text).map_err(|_| self.err("not a cursor file"))?;
        let mut parts = text.trim_end_matches('\n').split(' ');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(MAGIC), Some(VERSION), Some(seq), None) => seq
                .parse::<u64>()
                .map_err(|_| self.err(format!("bad sequence {seq:?}"))),
            (Some(MAGIC), Some(v), _, _) => Err(self.err(format!("unsupported version {v:?}"))),
            _ => Err(self.err("not a cursor file")),
        }
    }

    /// Durably replaces the stored cursor.
    pub fn store(&self, seq: u64) -> Result<(), NatsError> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        durable::create_dir_all(&dir).map_err(|e| self.err(e))?;
        durable::replace_file(&self.path, format!("{MAGIC} {VERSION} {seq}\n").as_bytes())
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_zero_and_store_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let c = CursorFile::new(dir.path().join("sub/cursor"));
        assert_eq!(c.load().unwrap(), 0);
        c.store(42).unwrap();
        assert_eq!(c.load().unwrap(), 42);
        c.store(u64::MAX).unwrap();
        assert_eq!(c.load().unwrap(), u64::MAX);
    }

    #[test]
    fn damaged_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cursor");
        let c = CursorFile::new(&p);
        for bad in [
            &b""[..],
            b"12\n",
            b"conclave-nats-cursor 1 x\n",
            b"conclave-nats-cursor 2 5\n",
            b"conclave-nats-cursor 1 5 6\n",
            b"\xff\xfe",
            &[b'a'; 4096],
        ] {
            std::fs::write(&p, bad).unwrap();
            let e = c.load().unwrap_err();
            assert_eq!(e.code(), "nats.cursor", "{bad:?}");
        }
    }
}

//! The durable-head marker: a small text file naming a (sequence, hash) that is known to
//! be durable, written only after the flush that made it so. The journal keeps one
//! inside its database directory (`conclave-head`) and, when configured
//! ([`crate::JournalConfig::head_witness`]), a second one outside it, so that a journal
//! found shorter than what was acknowledged (truncated, rolled back, replaced, or deleted
//! with its whole directory) is refused on open instead of silently starting over.

use std::path::Path;

use crate::durable;
use crate::error::{JournalError, Result};
use crate::journal::hex;
use crate::record::Hash;

/// The file name of the marker inside the database directory.
pub const HEAD_MARKER: &str = "conclave-head";
const MAGIC: &str = "conclave-journal-head v1";

/// The marker's text for a durable head.
fn text(seq: u64, hash: &Hash) -> String {
    format!("{MAGIC}\nseq {seq}\nhash {}\n", hex(hash))
}

/// Durably replaces the marker at `path` (temporary file, fsync, rename, directory fsync).
pub(crate) fn write(path: &Path, seq: u64, hash: &Hash) -> Result<()> {
    durable::replace_file(path, text(seq, hash).as_bytes())
        .map_err(|e| JournalError::Storage(format!("head marker {}: {e}", path.display())))
}

/// Reads a head marker: `None` if there is no file. A damaged marker is an error naming
/// the file, never a guess. Only reads.
pub fn read_head_marker(path: &Path) -> Result<Option<(u64, Hash)>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::Storage(format!("{}: {e}", path.display()))),
    };
    parse(&bytes).map(Some).ok_or_else(|| JournalError::Open {
        path: path.display().to_string(),
        reason: "the head marker is malformed".into(),
    })
}

/// Parses a marker; hostile or damaged bytes give `None`.
pub(crate) fn parse(bytes: &[u8]) -> Option<(u64, Hash)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let seq = lines.next()?.strip_prefix("seq ")?.parse().ok()?;
    let hex = lines.next()?.strip_prefix("hash ")?;
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some((seq, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_rejects_damage() {
        let good = format!(
            "conclave-journal-head v1\nseq 42\nhash {}\n",
            "ab".repeat(32)
        );
        assert_eq!(parse(good.as_bytes()), Some((42, [0xab; 32])));
        assert_eq!(
            parse(text(42, &[0xab; 32]).as_bytes()),
            Some((42, [0xab; 32]))
        );
        for bad in [
            "",
            "conclave-journal-head v1\n",
            "conclave-journal-head v2\nseq 1\nhash 00\n",
            "conclave-journal-head v1\nseq -1\nhash 00\n",
            "conclave-journal-head v1\nseq 1\nhash zz\n",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        let multibyte = format!(
            "conclave-journal-head v1\nseq 1\nhash {}é\n",
            "a".repeat(62)
        );
        assert_eq!(parse(multibyte.as_bytes()), None);
        assert_eq!(parse(&[0xff, 0xfe, 0x00]), None);
    }

    #[test]
    fn a_missing_marker_is_none_and_a_damaged_one_an_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("m");
        assert_eq!(read_head_marker(&path), Ok(None));
        write(&path, 7, &[1; 32]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_head_marker(&path), Ok(Some((7, [1; 32]))));
        std::fs::write(&path, b"junk").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read_head_marker(&path).map_err(|e| e.code()),
            Err("journal.open_failed")
        );
    }
}

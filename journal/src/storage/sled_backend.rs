//! The sled backend: one tree, key prefixes per kind, atomic `apply_batch` per group.
//!
//! Key layout (all integers big-endian so byte order is numeric order):
//! - `r` seq -> encoded record
//! - `s` u16 stream length, stream bytes, version -> seq
//! - `h` stream bytes -> current stream version
//! - `c` digest -> salt || content
//! - `m` `layout` -> layout version (u32)

use std::path::Path;

use super::{RecordIter, Storage, WriteBatch};
use crate::error::{JournalError, Result};
use crate::record::Hash;

const RECORD: u8 = b'r';
const STREAM: u8 = b's';
const HEAD: u8 = b'h';
const CONTENT: u8 = b'c';
const LAYOUT_KEY: &[u8] = b"mlayout";

/// The key layout version this build writes.
pub(crate) const LAYOUT_VERSION: u32 = 1;

/// A journal stored in one sled database.
pub struct SledStorage {
    db: sled::Db,
    tree: sled::Tree,
}

pub(crate) fn record_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = RECORD;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn stream_prefix(stream: &str) -> Result<Vec<u8>> {
    let len = u16::try_from(stream.len())
        .map_err(|_| JournalError::InvalidRecord("stream name longer than 65535 bytes".into()))?;
    let mut k = Vec::with_capacity(3 + stream.len() + 8);
    k.push(STREAM);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(stream.as_bytes());
    Ok(k)
}

fn head_key(stream: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + stream.len());
    k.push(HEAD);
    k.extend_from_slice(stream.as_bytes());
    k
}

fn content_key(digest: &Hash) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = CONTENT;
    k[1..].copy_from_slice(digest);
    k
}

fn be_u64(bytes: &[u8], what: &str) -> Result<u64> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| {
        JournalError::Storage(format!("{what}: expected 8 bytes, found {}", bytes.len()))
    })?;
    Ok(u64::from_be_bytes(arr))
}

impl SledStorage {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path, cache_capacity: u64) -> Result<Self> {
        let open_err = |reason: String| JournalError::Open {
            path: path.display().to_string(),
            reason,
        };
        // sled can panic on some corrupt files instead of returning an error; a corrupt
        // database must surface as an error that names the path, never as a crash.
        let opened = std::panic::catch_unwind(|| {
            sled::Config::new()
                .path(path)
                .cache_capacity(cache_capacity)
                .mode(sled::Mode::HighThroughput)
                .flush_every_ms(Some(1000))
                .open()
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(open_err(e.to_string())),
            Err(_) => {
                return Err(open_err(
                    "the database files are corrupt (sled panicked while recovering)".into(),
                ))
            }
        };
        let tree = db
            .open_tree("journal")
            .map_err(|e| open_err(e.to_string()))?;
        match tree.get(LAYOUT_KEY).map_err(|e| open_err(e.to_string()))? {
            Some(v) => {
                let arr: [u8; 4] = v.as_ref().try_into().map_err(|_| {
                    open_err(format!("layout marker has {} bytes, expected 4", v.len()))
                })?;
                let found = u32::from_be_bytes(arr);
                if found > LAYOUT_VERSION {
                    return Err(JournalError::UnsupportedLayout {
                        found,
                        supported: LAYOUT_VERSION,
                    });
                }
            }
            None => {
                tree.insert(LAYOUT_KEY, &LAYOUT_VERSION.to_be_bytes())
                    .map_err(|e| open_err(e.to_string()))?;
                db.flush().map_err(|e| open_err(e.to_string()))?;
            }
        }
        Ok(SledStorage { db, tree })
    }

    /// The underlying tree, for tests that tamper with stored bytes.
    #[doc(hidden)]
    pub fn raw_tree(&self) -> &sled::Tree {
        &self.tree
    }
}

impl Storage for SledStorage {
    fn last_record(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let last = self.tree.scan_prefix([RECORD]).next_back().transpose()?;
        match last {
            None => Ok(None),
            Some((k, v)) => Ok(Some((be_u64(&k[1..], "record key")?, v.to_vec()))),
        }
    }

    fn stream_heads(&self) -> Result<Vec<(String, u64)>> {
        self.tree
            .scan_prefix([HEAD])
            .map(|kv| {
                let (k, v) = kv?;
                let stream = String::from_utf8(k[1..].to_vec())
                    .map_err(|_| JournalError::Storage("stream head key is not UTF-8".into()))?;
                Ok((stream, be_u64(&v, "stream head")?))
            })
            .collect()
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut b = sled::Batch::default();
        for (digest, content) in batch.content {
            b.insert(&content_key(&digest)[..], content);
        }
        for (seq, bytes) in batch.records {
            b.insert(&record_key(seq)[..], bytes);
        }
        for (stream, version, seq) in batch.stream_index {
            let mut k = stream_prefix(&stream)?;
            k.extend_from_slice(&version.to_be_bytes());
            b.insert(k, &seq.to_be_bytes()[..]);
        }
        for (stream, version) in batch.stream_heads {
            b.insert(head_key(&stream), &version.to_be_bytes()[..]);
        }
        self.tree.apply_batch(b)?;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    fn records(&self, from: u64, to: u64) -> RecordIter<'_> {
        if from > to {
            return Box::new(std::iter::empty());
        }
        Box::new(
            self.tree
                .range(record_key(from)..=record_key(to))
                .map(|kv| {
                    let (k, v) = kv?;
                    Ok((be_u64(&k[1..], "record key")?, v.to_vec()))
                }),
        )
    }

    fn stream_entries(&self, stream: &str, from_version: u64) -> Result<Vec<(u64, u64)>> {
        let prefix = stream_prefix(stream)?;
        let mut start = prefix.clone();
        start.extend_from_slice(&from_version.to_be_bytes());
        let mut out = Vec::new();
        for kv in self.tree.range(start..) {
            let (k, v) = kv?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push((
                be_u64(&k[prefix.len()..], "stream key")?,
                be_u64(&v, "stream entry")?,
            ));
        }
        Ok(out)
    }

    fn content(&self, digest: &Hash) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(content_key(digest))?.map(|v| v.to_vec()))
    }

    fn purge_content(&self, digest: &Hash) -> Result<bool> {
        let existed = self.tree.remove(content_key(digest))?.is_some();
        self.db.flush()?;
        Ok(existed)
    }
}

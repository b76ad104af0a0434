//! The sled backend: one tree, key prefixes per kind, atomic `apply_batch` per group.
//!
//! Key layout (all integers big-endian so byte order is numeric order):
//! - `g` first seq -> chunk of records
//! - `s` u16 stream length, stream bytes, first version -> run of seqs (see `index_run`)
//! - `c` digest -> salt || content
//! - `mlayout` -> layout version (u32)
//! - `mindexed` -> the sequence number up to which the stream index is complete

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{index_run, ChunkIter, Storage, WriteBatch};
use crate::durable::SledSync;
use crate::error::{JournalError, Result};
use crate::head::{self, HEAD_MARKER};
use crate::record::Hash;

const CHUNK: u8 = b'g';
const STREAM: u8 = b's';
const CONTENT: u8 = b'c';
const LAYOUT_KEY: &[u8] = b"mlayout";
const INDEXED_KEY: &[u8] = b"mindexed";

/// The key layout version this build writes. Version 1 had one stream index key per
/// record; version 2 stores runs. The index is derived data, so a version 1 database is
/// upgraded on open by dropping its index and letting the journal rebuild it.
pub(crate) const LAYOUT_VERSION: u32 = 2;

/// sled's segment (log buffer) size. sled stores any log item larger than a quarter of a
/// segment (a value, or a whole tree node when it rewrites one) as a separate "blob"
/// file, and sled 0.34 never fsyncs blob files: a power cut could lose a blob the synced
/// log points to. With 8 MiB segments the threshold is 2 MiB, and the journal's limits
/// (chunk size, record size, stream name length) keep every node of at most 17 entries
/// below it, so no blob is ever written.
pub(crate) const SEGMENT_SIZE: usize = 8 * 1024 * 1024;
/// The segment size of databases created before [`SEGMENT_SIZE`] was set; sled refuses
/// to open a database with another size than it was created with.
const LEGACY_SEGMENT_SIZE: usize = 512 * 1024;

/// A journal stored in one sled database.
///
/// The open database sits behind a lock so that it can be reopened in place after a
/// storage failure ([`Storage::reopen`]): sled marks itself failed after an I/O error
/// (every later write fails) and only its recovery, on a fresh open, decides what is on
/// disk. Every operation works on a clone of the open handle (an iterator keeps its
/// clone until it is dropped), so a reopen knows when the old database is no longer used.
pub struct SledStorage {
    dir: PathBuf,
    cache_capacity: u64,
    /// `None` between closing the failed database and a successful reopen.
    open: RwLock<Option<Arc<OpenDb>>>,
}

/// One open sled database.
struct OpenDb {
    db: sled::Db,
    tree: sled::Tree,
    /// Turns sled's flush into a durable one.
    sync: SledSync,
}

/// The file a reopen writes (and removes) first, to see whether the disk has room again.
const SPACE_PROBE: &str = "conclave-space-probe";

/// How long a reopen waits for reads still using the old database to finish.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

pub(crate) fn chunk_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = CHUNK;
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
        let db = OpenDb::open(path, cache_capacity)?;
        Ok(SledStorage {
            dir: path.to_path_buf(),
            cache_capacity,
            open: RwLock::new(Some(Arc::new(db))),
        })
    }

    /// The open database, or `journal.poisoned` while it is closed for a reopen (a
    /// storage failure is being recovered from; not damage).
    fn db(&self) -> Result<Arc<OpenDb>> {
        self.open
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                JournalError::Poisoned(
                    "the journal database is being reopened after a storage failure".into(),
                )
            })
    }

    /// The underlying tree, for tests that tamper with stored bytes.
    #[doc(hidden)]
    pub fn raw_tree(&self) -> sled::Tree {
        match self.db() {
            Ok(db) => db.tree.clone(),
            Err(e) => panic!("raw_tree on a closed database: {e}"),
        }
    }
}

/// Writes, syncs and removes a file of one sled segment in `dir`: whether the disk has
/// room again for sled to recover and go on.
fn probe_space(dir: &Path) -> Result<()> {
    let path = dir.join(SPACE_PROBE);
    let probe = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&path)?;
        let block = vec![0u8; 64 * 1024];
        for _ in 0..SEGMENT_SIZE / block.len() {
            f.write_all(&block)?;
        }
        f.sync_data()
    };
    let result = probe();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| {
        JournalError::Storage(format!(
            "no room to reopen the journal yet ({} MiB probe in {}): {e}",
            SEGMENT_SIZE / (1024 * 1024),
            dir.display()
        ))
    })
}

impl OpenDb {
    fn open(path: &Path, cache_capacity: u64) -> Result<Self> {
        let open_err = |reason: String| JournalError::Open {
            path: path.display().to_string(),
            reason,
        };
        // sled can panic on some corrupt files instead of returning an error; a corrupt
        // database must surface as an error that names the path, never as a crash. The
        // attempt consumes its config, so nothing a panic may have half-changed is reused.
        let open = |config: sled::Config| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
        };
        // The threads of a database closed a moment ago (sled's flusher and I/O pool,
        // in this process) can hold its file lock briefly after the last handle is
        // gone: a lock refusal is retried for up to half a second before it counts as
        // another process holding the journal.
        let mut first = open(sled_config(path, cache_capacity));
        for _ in 0..50 {
            match &first {
                Ok(Err(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    first = open(sled_config(path, cache_capacity));
                }
                _ => break,
            }
        }
        let opened = match first {
            Ok(Err(sled::Error::Unsupported(why))) => {
                // The refused first attempt's threads may still hold the database's file
                // lock for a moment: an I/O error here is retried briefly, not reported
                // as the segment size.
                let mut attempts = 0;
                loop {
                    let legacy =
                        sled_config(path, cache_capacity).segment_size(LEGACY_SEGMENT_SIZE);
                    match open(legacy) {
                        Ok(Ok(db)) => {
                            tracing::warn!(
                                path = %path.display(),
                                "journal database was created with sled's old 512 KiB segments, \
                                 where large tree nodes go to blob files that sled does not \
                                 fsync: a power cut can lose them; recreate the database to use \
                                 8 MiB segments"
                            );
                            break Ok(Ok(db));
                        }
                        Ok(Err(sled::Error::Io(e))) if attempts < 50 => {
                            attempts += 1;
                            tracing::debug!(error = %e, "reopening with the old segment size");
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                        Ok(Err(e)) => {
                            break Ok(Err(sled::Error::Unsupported(format!(
                                "{why}; opening with the old segment size: {e}"
                            ))))
                        }
                        Err(p) => break Err(p),
                    }
                }
            }
            other => other,
        };
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(open_err(crate::error::sled_message(e))),
            Err(_) => {
                return Err(open_err(
                    "the database files are corrupt (sled panicked while recovering)".into(),
                ))
            }
        };
        let sync = SledSync::open(path).map_err(|e| open_err(format!("syncing: {e}")))?;
        let flush = |db: &sled::Db| {
            sync.flush(db)
                .map_err(|e| open_err(format!("flushing: {e}")))
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
                if found < LAYOUT_VERSION {
                    clear_stream_index(&tree, Some(LAYOUT_VERSION))
                        .map_err(|e| open_err(format!("upgrading the stream index: {e}")))?;
                    flush(&db)?;
                }
            }
            None => {
                tree.insert(LAYOUT_KEY, &LAYOUT_VERSION.to_be_bytes())
                    .map_err(|e| open_err(e.to_string()))?;
                flush(&db)?;
            }
        }
        Ok(OpenDb { db, tree, sync })
    }
}

/// The sled settings of a journal database; public so that benchmarks compare the
/// journal with raw sled on the same configuration.
pub fn sled_config(path: &Path, cache_capacity: u64) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(cache_capacity)
        .segment_size(SEGMENT_SIZE)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(Some(1000))
}

/// Removes every stream index key and resets the watermark in one batch, optionally
/// stamping a new layout version with it.
fn clear_stream_index(tree: &sled::Tree, layout: Option<u32>) -> Result<()> {
    let mut b = sled::Batch::default();
    for k in tree.scan_prefix([STREAM]).keys() {
        b.remove(k?);
    }
    b.insert(INDEXED_KEY, &0u64.to_be_bytes()[..]);
    if let Some(v) = layout {
        b.insert(LAYOUT_KEY, &v.to_be_bytes()[..]);
    }
    tree.apply_batch(b)?;
    Ok(())
}

/// Decodes one stored run of `stream` (its key after the stream prefix, and its value):
/// (first version, seqs). Damaged bytes give an error naming the stream, never a panic.
fn decode_run(stream: &str, version_key: &[u8], value: &[u8]) -> Result<(u64, Vec<u64>)> {
    let first = be_u64(version_key, "stream key")?;
    let damage = |why: String| {
        JournalError::Storage(format!(
            "stream index run of {stream:?} at version {first}: {why}"
        ))
    };
    let seqs = index_run::decode(value).map_err(damage)?;
    if first.checked_add(seqs.len() as u64).is_none() {
        return Err(damage("versions overflow".into()));
    }
    Ok((first, seqs))
}

impl OpenDb {
    /// Every index run of `stream` whose key is at or after `from_key`, decoded:
    /// (first version, seqs).
    fn runs_from(
        &self,
        stream: &str,
        prefix: &[u8],
        from_key: Vec<u8>,
    ) -> impl Iterator<Item = Result<(u64, Vec<u64>)>> + '_ {
        let plen = prefix.len();
        let prefix = prefix.to_vec();
        let stream = stream.to_owned();
        self.tree
            .range(from_key..)
            .take_while(move |kv| kv.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
            .map(move |kv| {
                let (k, v) = kv?;
                decode_run(&stream, &k[plen..], &v)
            })
    }
}

impl Storage for SledStorage {
    fn last_chunk(&self) -> Result<Option<(u64, Vec<u8>)>> {
        let db = self.db()?;
        let last = db.tree.scan_prefix([CHUNK]).next_back().transpose()?;
        match last {
            None => Ok(None),
            Some((k, v)) => Ok(Some((be_u64(&k[1..], "chunk key")?, v.to_vec()))),
        }
    }

    fn chunks(&self, from_seq: u64) -> ChunkIter<'_> {
        let db = match self.db() {
            Ok(db) => db,
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let holder = db
            .tree
            .range(chunk_key(0)..=chunk_key(from_seq))
            .next_back()
            .transpose();
        let start = match holder {
            Ok(Some((k, _))) => k.to_vec(),
            Ok(None) => chunk_key(from_seq).to_vec(),
            Err(e) => return Box::new(std::iter::once(Err(e.into()))),
        };
        let range = db.tree.range(start..=chunk_key(u64::MAX).to_vec());
        // The iterator keeps its handle: a reopen waits until it is dropped.
        Box::new(range.map(move |kv| {
            let _in_use = &db;
            let (k, v) = kv?;
            Ok((be_u64(&k[1..], "chunk key")?, v.to_vec()))
        }))
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let db = self.db()?;
        let mut b = sled::Batch::default();
        for (digest, content) in batch.content {
            b.insert(&content_key(&digest)[..], content);
        }
        for (seq, bytes) in batch.chunks {
            b.insert(&chunk_key(seq)[..], bytes);
        }
        let mut by_stream: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
        for (stream, version, seq) in &batch.stream_index {
            by_stream.entry(stream).or_default().push((*version, *seq));
        }
        for (stream, mut entries) in by_stream {
            entries.sort_unstable();
            let prefix = stream_prefix(stream)?;
            for (first, seqs) in index_run::split(&entries) {
                let mut k = prefix.clone();
                k.extend_from_slice(&first.to_be_bytes());
                b.insert(k, index_run::encode(&seqs));
            }
        }
        if let Some(up_to) = batch.indexed_up_to {
            b.insert(INDEXED_KEY, &up_to.to_be_bytes()[..]);
        }
        db.tree.apply_batch(b)?;
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.db()?.flush()
    }

    fn stream_entries(&self, stream: &str, from_version: u64) -> Result<Vec<(u64, u64)>> {
        let db = self.db()?;
        let prefix = stream_prefix(stream)?;
        let key_at = |version: u64| {
            let mut k = prefix.clone();
            k.extend_from_slice(&version.to_be_bytes());
            k
        };
        // The run holding `from_version` starts at or before it.
        let start = match db.tree.range(key_at(0)..=key_at(from_version)).next_back() {
            Some(kv) => kv?.0.to_vec(),
            None => key_at(from_version),
        };
        let mut out = Vec::new();
        for run in db.runs_from(stream, &prefix, start) {
            let (first, seqs) = run?;
            out.extend(
                (first..)
                    .zip(seqs)
                    .filter(|(version, _)| *version >= from_version),
            );
        }
        Ok(out)
    }

    fn stream_head(&self, stream: &str, max_seq: u64) -> Result<u64> {
        let db = self.db()?;
        let prefix = stream_prefix(stream)?;
        for kv in db.tree.scan_prefix(&prefix).rev() {
            let (k, v) = kv?;
            let (first, seqs) = decode_run(stream, &k[prefix.len()..], &v)?;
            if let Some(i) = seqs.iter().rposition(|&seq| seq <= max_seq) {
                return Ok(first + i as u64);
            }
        }
        Ok(0)
    }

    fn clear_stream_index(&self) -> Result<()> {
        clear_stream_index(&self.db()?.tree, None)
    }

    fn indexed_up_to(&self) -> Result<u64> {
        match self.db()?.tree.get(INDEXED_KEY)? {
            Some(v) => be_u64(&v, "index marker"),
            None => Ok(0),
        }
    }

    fn content(&self, digest: &Hash) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db()?
            .tree
            .get(content_key(digest))?
            .map(|v| v.to_vec()))
    }

    fn purge_content(&self, digest: &Hash) -> Result<bool> {
        let db = self.db()?;
        let existed = db.tree.remove(content_key(digest))?.is_some();
        db.flush()?;
        Ok(existed)
    }

    fn save_durable_head(&self, seq: u64, hash: &Hash) -> Result<()> {
        // The directory fsync that makes the marker's new name durable also makes
        // durable the snapshot files sled renames in the same directory.
        head::write(&self.dir.join(HEAD_MARKER), seq, hash)
    }

    fn durable_head(&self) -> Result<Option<(u64, Hash)>> {
        head::read_head_marker(&self.dir.join(HEAD_MARKER))
    }

    fn discard(&self, chunks: &[u64], content: &[Hash]) -> Result<()> {
        let db = self.db()?;
        let mut b = sled::Batch::default();
        for seq in chunks {
            b.remove(&chunk_key(*seq)[..]);
        }
        for digest in content {
            b.remove(&content_key(digest)[..]);
        }
        db.tree.apply_batch(b)?;
        db.flush()
    }

    fn reopen(&self) -> Result<()> {
        probe_space(&self.dir)?;
        let taken = self.open.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut old) = taken {
            // sled holds a lock on its files until the last handle is dropped (and
            // dropping it flushes what it can: whatever lands on disk is decided on by
            // the journal after the reopen).
            let started = Instant::now();
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still_used) if started.elapsed() < REOPEN_WAIT => {
                        old = still_used;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(still_used) => {
                        *self.open.write().unwrap_or_else(|p| p.into_inner()) = Some(still_used);
                        return Err(JournalError::Storage(format!(
                            "cannot reopen the journal: reads still use the failed database after {REOPEN_WAIT:?}"
                        )));
                    }
                }
            }
        }
        // sled's background threads may release the file lock a moment after the drop.
        let mut tries = 0;
        let db = loop {
            match OpenDb::open(&self.dir, self.cache_capacity) {
                Ok(db) => break db,
                Err(e) if tries < 20 && e.to_string().contains("lock") => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        };
        *self.open.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(db));
        Ok(())
    }
}

impl OpenDb {
    fn flush(&self) -> Result<()> {
        self.sync
            .flush(&self.db)
            .map_err(|e| JournalError::Storage(format!("durable flush: {e}")))
    }
}

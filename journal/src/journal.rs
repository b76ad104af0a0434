//! The journal handle: open, append, read, subscribe, content, purge, verify.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};

use crate::codec::ChunkReader;
use crate::config::{JournalConfig, MAX_RECORD_BYTES_LIMIT};
use crate::error::{JournalError, Result};
use crate::reader::{read_one, Reader};
use crate::record::{AppendRequest, Appended, Hash, ZERO_HASH};
use crate::shared::Shared;
use crate::storage::{SledStorage, Storage};
use crate::writer::{self, Msg, Pending, WriterState};

/// Counters since open: how well group commit is folding appends together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalStats {
    /// Storage writes (one per group commit).
    pub groups: u64,
    /// Append requests acknowledged.
    pub appends: u64,
    /// The acknowledged head.
    pub head: u64,
}

struct Inner {
    shared: Arc<Shared>,
    reader: Reader,
    tx: Option<mpsc::Sender<Msg>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Ends the writer after it commits what is queued.
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Msg::Close);
        }
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// Personal content as read from the side store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Present(Vec<u8>),
    /// Removed by retention or erasure; the record and its digest remain.
    Purged,
}

/// The pending outcome of a submitted append.
pub struct AppendTicket(oneshot::Receiver<Result<Appended>>);

impl AppendTicket {
    /// Blocks the thread until the append is acknowledged or refused.
    pub fn wait(self) -> Result<Appended> {
        self.0.blocking_recv().map_err(|_| JournalError::Closed)?
    }
}

impl std::future::Future for AppendTicket {
    type Output = Result<Appended>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|_| JournalError::Closed).and_then(|r| r))
    }
}

/// A handle to an open journal: appends, and every read of [`Reader`] (through `Deref`:
/// a journal reads like its reader). Cheap to clone; the last clone closes it.
///
/// Reads are blocking calls into storage (sled serves recent records from memory); call
/// them from `spawn_blocking` where a long scan could stall an async runtime.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl Journal {
    /// Opens or creates the sled journal in directory `path`.
    pub fn open(path: impl AsRef<Path>, config: JournalConfig) -> Result<Journal> {
        Self::open_wrapped(path, config, |sled| Arc::new(sled))
    }

    /// [`Journal::open`] with the sled storage wrapped by `wrap` (tests put a
    /// [`crate::storage::FaultyStorage`] around it). The wrapper must pass
    /// [`Storage::reopen`] on for the journal to recover from a storage failure.
    pub fn open_wrapped(
        path: impl AsRef<Path>,
        config: JournalConfig,
        wrap: impl FnOnce(SledStorage) -> Arc<dyn Storage>,
    ) -> Result<Journal> {
        if config.max_record_bytes > MAX_RECORD_BYTES_LIMIT {
            return Err(JournalError::Open {
                path: path.as_ref().display().to_string(),
                reason: format!(
                    "max_record_bytes {} is above the limit of {MAX_RECORD_BYTES_LIMIT}",
                    config.max_record_bytes
                ),
            });
        }
        let path = path.as_ref();
        // A journal deleted with its directory: sled would create an empty one in its
        // place and the marker inside would be gone with it. The witness outside says
        // what was acknowledged; refuse before creating anything.
        if let Some(witness) = &config.head_witness {
            if let Some((seq, _)) = crate::head::read_head_marker(witness)? {
                if seq > 0 && !has_database(path) {
                    tracing::error!(
                        journal = %path.display(),
                        witness = %witness.display(),
                        expected_head = seq,
                        found_head = 0,
                        "the journal is missing but its head witness names durably acknowledged records"
                    );
                    return Err(JournalError::Truncated {
                        acknowledged: seq,
                        found: 0,
                    });
                }
            }
        }
        let storage = wrap(SledStorage::open(path, config.cache_capacity)?);
        Self::with_storage(storage, config).inspect_err(|e| {
            if let JournalError::Truncated {
                acknowledged,
                found,
            } = e
            {
                tracing::error!(
                    journal = %path.display(),
                    expected_head = acknowledged,
                    found_head = found,
                    "the journal is shorter than what was durably acknowledged"
                );
            }
        })
    }

    /// Opens a journal on any storage backend.
    pub fn with_storage(storage: Arc<dyn Storage>, config: JournalConfig) -> Result<Journal> {
        let (next_seq, prev_hash) = stored_head(storage.as_ref())?;
        let witness = match &config.head_witness {
            Some(path) => crate::head::read_head_marker(path)?,
            None => None,
        };
        for marker in [storage.durable_head()?, witness].into_iter().flatten() {
            check_durable_head(storage.as_ref(), next_seq - 1, marker)?;
        }
        let committed = next_seq - 1;
        let (head_tx, _) = watch::channel(committed);
        let shared = Arc::new(Shared {
            storage,
            committed: AtomicU64::new(committed),
            head_tx,
            config,
            groups_committed: AtomicU64::new(0),
            appends_committed: AtomicU64::new(0),
            committed_hash: Mutex::new(prev_hash),
            poisoned: Mutex::new(None),
            indexed: AtomicU64::new(0),
            damage: Mutex::new(None),
        });
        catch_up_index(&shared, committed)?;
        let (tx, rx) = mpsc::channel();
        let state = WriterState {
            next_seq,
            prev_hash,
            heads: HashMap::new(),
        };
        let writer_shared = shared.clone();
        let wake = tx.clone();
        let handle = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer::run(writer_shared, wake, rx, state))
            .map_err(|e| JournalError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Journal {
            inner: Arc::new(Inner {
                reader: Reader::new(shared.clone()),
                shared,
                tx: Some(tx),
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Read access that does not keep the writer alive (for subscriptions and other
    /// long-lived readers).
    pub fn reader(&self) -> Reader {
        self.inner.reader.clone()
    }

    /// Queues an append and returns at once; the ticket yields the outcome. Appends are
    /// written in the order they are submitted, so a single writer can pipeline them.
    pub fn submit(&self, req: AppendRequest) -> Result<AppendTicket> {
        let (reply, rx) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or(JournalError::Closed)?;
        tx.send(Msg::Append(Pending { req, reply }))
            .map_err(|_| JournalError::Closed)?;
        Ok(AppendTicket(rx))
    }

    /// Appends atomically; resolves once the records are durable (per sync mode).
    pub async fn append(&self, req: AppendRequest) -> Result<Appended> {
        self.submit(req)?.await
    }

    /// [`Journal::append`] for threads outside an async runtime.
    pub fn append_blocking(&self, req: AppendRequest) -> Result<Appended> {
        self.submit(req)?.wait()
    }

    /// Group-commit counters since open.
    pub fn stats(&self) -> JournalStats {
        let s = self.shared();
        JournalStats {
            groups: s.groups_committed.load(Ordering::Relaxed),
            appends: s.appends_committed.load(Ordering::Relaxed),
            head: self.head(),
        }
    }

    /// Removes personal content durably (retention, erasure). The record and the chain
    /// are untouched, so verification still passes. True if content was present.
    pub fn purge_content(&self, digest: &Hash) -> Result<bool> {
        self.shared().storage.purge_content(digest)
    }

    /// Refuses every later append with `journal.poisoned` (the reason given), for good:
    /// for a journal opened only to be read (a degraded, read-only start). Nothing more
    /// is flushed or marked when it closes, and no recovery is attempted.
    pub fn refuse_writes(&self, reason: &str) {
        self.shared().set_poison(reason.to_owned(), false);
    }

    /// After a storage failure, tries to recover now instead of at the next planned
    /// attempt (see [`crate::RecoveryBackoff`]): blocks until the writer has tried.
    /// `Ok` if writes are accepted (again); the attempt's error otherwise, or
    /// `journal.poisoned` when the journal does not recover by itself.
    pub fn recover_now(&self) -> Result<()> {
        let (reply, rx) = mpsc::channel();
        let tx = self.inner.tx.as_ref().ok_or(JournalError::Closed)?;
        tx.send(Msg::Recover(reply))
            .map_err(|_| JournalError::Closed)?;
        rx.recv().map_err(|_| JournalError::Closed)?
    }

    /// The storage backend, for tools and tests.
    #[doc(hidden)]
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.shared().storage
    }
}

/// Whether `path` holds a sled database (its log file), as opposed to nothing at all or
/// an empty directory, where sled would create a new one.
fn has_database(path: &Path) -> bool {
    path.join("db").is_file()
}

/// The stored head: (next sequence number, hash of the last record), checked.
pub(crate) fn stored_head(storage: &dyn Storage) -> Result<(u64, Hash)> {
    match storage.last_chunk()? {
        None => Ok((1, ZERO_HASH)),
        Some((first, bytes)) => {
            let mut reader = ChunkReader::new(first, &bytes)?;
            let mut last = None;
            while let Some(r) = reader.next_record()? {
                last = Some((r.seq, r.hash, r.chain_hash()));
            }
            match last {
                Some((seq, hash, computed)) if computed == hash => Ok((seq + 1, hash)),
                Some((seq, _, _)) => Err(JournalError::Corrupt {
                    seq,
                    reason: "the last record's hash does not match its contents".into(),
                }),
                None => Err(JournalError::Corrupt {
                    seq: first,
                    reason: "the last chunk holds no record".into(),
                }),
            }
        }
    }
}

/// Refuses a journal whose head `found` is below a durable head `(seq, hash)` once
/// recorded, or whose record at `seq` is another one (rolled back and rewritten, or
/// replaced by another journal).
pub(crate) fn check_durable_head(
    storage: &dyn Storage,
    found: u64,
    (seq, hash): (u64, Hash),
) -> Result<()> {
    let truncated = JournalError::Truncated {
        acknowledged: seq,
        found,
    };
    if seq > found {
        return Err(truncated);
    }
    if seq > 0 && read_one(storage, seq)?.map(|r| r.hash) != Some(hash) {
        return Err(truncated);
    }
    Ok(())
}

/// Indexes the records that were written but not indexed before the last stop, so the
/// writer can trust the index for streams it has not seen since open. A watermark past
/// the head (index entries that outlived their records) drops the index and rebuilds it,
/// since stale runs could otherwise overlap new ones.
pub(crate) fn catch_up_index(shared: &Shared, head: u64) -> Result<()> {
    let mut indexed = shared.storage.indexed_up_to()?;
    if indexed > head {
        tracing::warn!(
            indexed,
            head,
            "stream index ahead of the journal; rebuilding it"
        );
        shared.storage.clear_stream_index()?;
        indexed = 0;
    }
    let from = indexed + 1;
    if from <= head {
        let mut entries = Vec::new();
        let write_entries = |entries: &mut Vec<(String, u64, u64)>, up_to: u64| {
            shared.storage.write(crate::storage::WriteBatch {
                stream_index: std::mem::take(entries),
                indexed_up_to: Some(up_to),
                ..Default::default()
            })
        };
        for chunk in shared.storage.chunks(from) {
            let (first, bytes) = chunk?;
            let mut reader = ChunkReader::new(first, &bytes)?;
            let mut last = 0;
            while let Some(r) = reader.next_record()? {
                if r.seq >= from && r.seq <= head {
                    entries.push((r.stream.to_owned(), r.stream_version, r.seq));
                    last = r.seq;
                }
            }
            if entries.len() >= CATCH_UP_BATCH {
                write_entries(&mut entries, last)?;
            }
        }
        write_entries(&mut entries, head)?;
        shared.storage.flush()?;
    }
    shared.indexed.store(head, Ordering::Release);
    Ok(())
}

/// Index entries written per batch while catching up, to bound memory on a long backlog.
const CATCH_UP_BATCH: usize = 65_536;

/// Lower-case hex of a digest, for messages, ids and exports. On the engine's per-command
/// path (correlation ids), so without a formatter call per byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

impl std::ops::Deref for Journal {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.inner.reader
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        assert_eq!(super::hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(super::hex(&[]), "");
    }
}

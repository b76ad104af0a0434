//! The journal handle: open, append, read, subscribe, content, purge, verify.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};

use crate::codec::{self, CONTENT_SALT_LEN};
use crate::config::JournalConfig;
use crate::error::{JournalError, Result};
use crate::record::{AppendRequest, Appended, Hash, Record, ZERO_HASH};
use crate::storage::{SledStorage, Storage};
use crate::subscription::Subscription;
use crate::verify::{self, VerifyReport};
use crate::writer::{self, Pending, WriterState};

/// What readers and the writer share.
pub(crate) struct Shared {
    pub storage: Arc<dyn Storage>,
    /// Highest acknowledged sequence: readers never see past it.
    pub committed: AtomicU64,
    pub head_tx: watch::Sender<u64>,
    pub stream_heads: RwLock<HashMap<String, u64>>,
    pub config: JournalConfig,
}

struct Inner {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<Pending>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it commits what is queued.
        self.tx = None;
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

/// A handle to an open journal. Cheap to clone; the last clone closes it.
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
        let storage = SledStorage::open(path.as_ref(), config.cache_capacity)?;
        Self::with_storage(Arc::new(storage), config)
    }

    /// Opens a journal on any storage backend.
    pub fn with_storage(storage: Arc<dyn Storage>, config: JournalConfig) -> Result<Journal> {
        let (next_seq, prev_hash) = match storage.last_record()? {
            None => (1, ZERO_HASH),
            Some((seq, bytes)) => {
                let r = codec::decode(seq, &bytes)?;
                if codec::chain_hash(&r) != r.hash {
                    return Err(JournalError::Corrupt {
                        seq,
                        reason: "the last record's hash does not match its contents".into(),
                    });
                }
                (seq + 1, r.hash)
            }
        };
        let heads: HashMap<String, u64> = storage.stream_heads()?.into_iter().collect();
        let committed = next_seq - 1;
        let (head_tx, _) = watch::channel(committed);
        let shared = Arc::new(Shared {
            storage,
            committed: AtomicU64::new(committed),
            head_tx,
            stream_heads: RwLock::new(heads.clone()),
            config,
        });
        let (tx, rx) = mpsc::channel();
        let state = WriterState {
            next_seq,
            prev_hash,
            heads,
            poisoned: None,
        };
        let writer_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer::run(writer_shared, rx, state))
            .map_err(|e| JournalError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Journal {
            inner: Arc::new(Inner {
                shared,
                tx: Some(tx),
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn submit(&self, req: AppendRequest) -> Result<oneshot::Receiver<Result<Appended>>> {
        let (reply, rx) = oneshot::channel();
        let tx = self.inner.tx.as_ref().ok_or(JournalError::Closed)?;
        tx.send(Pending { req, reply })
            .map_err(|_| JournalError::Closed)?;
        Ok(rx)
    }

    /// Appends atomically; resolves once the records are durable (per sync mode).
    pub async fn append(&self, req: AppendRequest) -> Result<Appended> {
        let rx = self.submit(req)?;
        rx.await.map_err(|_| JournalError::Closed)?
    }

    /// [`Journal::append`] for threads outside an async runtime.
    pub fn append_blocking(&self, req: AppendRequest) -> Result<Appended> {
        let rx = self.submit(req)?;
        rx.blocking_recv().map_err(|_| JournalError::Closed)?
    }

    /// The highest acknowledged sequence number (0 when empty).
    pub fn head(&self) -> u64 {
        self.shared().committed.load(Ordering::Acquire)
    }

    /// A stream's current version (0 if it has no records).
    pub fn stream_version(&self, stream: &str) -> u64 {
        self.shared()
            .stream_heads
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream)
            .copied()
            .unwrap_or(0)
    }

    /// One record by sequence number.
    pub fn get(&self, seq: u64) -> Result<Option<Record>> {
        Ok(self.read_range(seq, seq)?.pop())
    }

    /// Records with sequence numbers in `from..=to` (capped at the head).
    pub fn read_range(&self, from: u64, to: u64) -> Result<Vec<Record>> {
        self.iter_range(from, to).collect()
    }

    /// Iterates records from `from` up to the head as of this call.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = Result<Record>> + '_ {
        self.iter_range(from, u64::MAX)
    }

    /// Iterates records in `from..=to`, capped at the head as of this call.
    pub fn iter_range(&self, from: u64, to: u64) -> impl Iterator<Item = Result<Record>> + '_ {
        let to = to.min(self.head());
        let from = from.max(1);
        self.shared()
            .storage
            .records(from, to)
            .map(|kv| kv.and_then(|(seq, bytes)| codec::decode(seq, &bytes)))
    }

    /// A stream's records from `from_version` on (versions start at 1).
    pub fn read_stream(&self, stream: &str, from_version: u64) -> Result<Vec<Record>> {
        let head = self.head();
        let mut out = Vec::new();
        for (_, seq) in self.shared().storage.stream_entries(stream, from_version)? {
            if seq > head {
                break;
            }
            let record = self.get(seq)?.ok_or_else(|| JournalError::Corrupt {
                seq,
                reason: format!("indexed for stream {stream:?} but missing"),
            })?;
            out.push(record);
        }
        Ok(out)
    }

    /// Every record from `from` on: first those on disk, then live ones as they are
    /// acknowledged, with no gap and no duplicate at the hand-over.
    pub fn subscribe(&self, from: u64) -> Subscription {
        Subscription::new(self.clone(), self.shared().head_tx.subscribe(), from.max(1))
    }

    /// Reads personal content by digest, checking it against the digest.
    pub fn content(&self, digest: &Hash) -> Result<Content> {
        match self.shared().storage.content(digest)? {
            None => Ok(Content::Purged),
            Some(salted) => {
                if salted.len() < CONTENT_SALT_LEN || codec::content_digest(&salted) != *digest {
                    return Err(JournalError::ContentCorrupt {
                        digest: hex(digest),
                    });
                }
                Ok(Content::Present(salted[CONTENT_SALT_LEN..].to_vec()))
            }
        }
    }

    /// Removes personal content durably (retention, erasure). The record and the chain
    /// are untouched, so verification still passes. True if content was present.
    pub fn purge_content(&self, digest: &Hash) -> Result<bool> {
        self.shared().storage.purge_content(digest)
    }

    /// Walks the whole chain up to the head and reports the first bad record.
    pub fn verify(&self) -> Result<VerifyReport> {
        verify::verify(self.shared().storage.as_ref(), self.head())
    }

    /// The storage backend, for tools and tests.
    #[doc(hidden)]
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.shared().storage
    }
}

/// Lower-case hex of a digest, for messages and exports.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

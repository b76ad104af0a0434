//! A storage wrapper that fails on command, for tests of the failure paths above the
//! backend (the writer, and whatever is built on the journal).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::{ChunkIter, Storage, WriteBatch};
use crate::error::{JournalError, Result};
use crate::record::Hash;

/// What the next call of an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    /// The call waits until the test decides.
    Held,
    /// The call (once released) fails.
    Fail,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    flushes: AtomicU64,
    reopens: AtomicU64,
}

/// Wraps a real backend; `write` and `flush` can be made to fail, and `flush` can be
/// held until the test releases it, so a test can line up exactly which groups are
/// staged while a flush is in progress.
pub struct FaultyStorage<S> {
    inner: S,
    counters: Counters,
    fail_write_at: Mutex<Option<u64>>,
    flush_gate: Arc<(Mutex<Gate>, Condvar)>,
    /// Signalled whenever a write or flush starts, for tests that wait for one.
    progress: Arc<(Mutex<()>, Condvar)>,
    /// A full disk: flushes and reopens fail until it is cleared.
    full: AtomicBool,
}

impl<S: Storage> FaultyStorage<S> {
    pub fn new(inner: S) -> Self {
        FaultyStorage {
            inner,
            counters: Counters::default(),
            fail_write_at: Mutex::new(None),
            flush_gate: Arc::new((Mutex::new(Gate::Open), Condvar::new())),
            progress: Arc::new((Mutex::new(()), Condvar::new())),
            full: AtomicBool::new(false),
        }
    }

    /// Makes the disk "full" or frees it again. While full, as with sled on a real full
    /// disk, a write still lands in memory (sled applies a batch in its page cache) but
    /// every flush, discard and reopen fails with an injected "No space left on
    /// device"; records written meanwhile may still reach the disk later (sled's
    /// background flush, or its flush on close), which is what recovery must undo.
    pub fn set_full(&self, full: bool) {
        self.full.store(full, Ordering::SeqCst);
        self.progressed();
    }

    /// Reopens attempted so far (see [`Storage::reopen`]).
    pub fn reopens(&self) -> u64 {
        self.counters.reopens.load(Ordering::SeqCst)
    }

    fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// The `n`th write from now on (1 = the next one) fails; later ones succeed.
    pub fn fail_write(&self, n: u64) {
        let at = self.counters.writes.load(Ordering::SeqCst) + n;
        *self.fail_write_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    }

    /// Flushes wait from now on until [`FaultyStorage::release_flush`].
    pub fn hold_flush(&self) {
        self.set_gate(Gate::Held);
    }

    /// Lets held and later flushes go on; with `fail`, the next one fails (after which
    /// flushes succeed again).
    pub fn release_flush(&self, fail: bool) {
        self.set_gate(if fail { Gate::Fail } else { Gate::Open });
    }

    fn set_gate(&self, gate: Gate) {
        let (lock, cv) = &*self.flush_gate;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = gate;
        cv.notify_all();
    }

    /// Writes (group applications) started so far.
    pub fn writes(&self) -> u64 {
        self.counters.writes.load(Ordering::SeqCst)
    }

    /// Flushes started so far.
    pub fn flushes(&self) -> u64 {
        self.counters.flushes.load(Ordering::SeqCst)
    }

    /// Blocks until `done(self)` holds; it is checked whenever a write or flush starts.
    pub fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        let (lock, cv) = &*self.progress;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !done(self) {
            guard = cv.wait(guard).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn progressed(&self) {
        let (lock, cv) = &*self.progress;
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        cv.notify_all();
    }
}

fn injected(what: &str) -> JournalError {
    JournalError::Storage(format!("injected {what} failure"))
}

fn no_space(what: &str) -> JournalError {
    JournalError::Storage(format!(
        "injected {what} failure: No space left on device (os error 28)"
    ))
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn last_chunk(&self) -> Result<Option<(u64, Vec<u8>)>> {
        self.inner.last_chunk()
    }

    fn chunks(&self, from_seq: u64) -> ChunkIter<'_> {
        self.inner.chunks(from_seq)
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        let n = self.counters.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let fail = *self.fail_write_at.lock().unwrap_or_else(|p| p.into_inner()) == Some(n);
        let result = if fail {
            Err(injected("write"))
        } else {
            self.inner.write(batch)
        };
        self.progressed();
        result
    }

    fn flush(&self) -> Result<()> {
        self.counters.flushes.fetch_add(1, Ordering::SeqCst);
        self.progressed();
        let (lock, cv) = &*self.flush_gate;
        let mut gate = lock.lock().unwrap_or_else(|p| p.into_inner());
        while *gate == Gate::Held {
            gate = cv.wait(gate).unwrap_or_else(|p| p.into_inner());
        }
        if *gate == Gate::Fail {
            *gate = Gate::Open;
            return Err(injected("flush"));
        }
        drop(gate);
        if self.is_full() {
            return Err(no_space("flush"));
        }
        self.inner.flush()
    }

    fn stream_entries(&self, stream: &str, from_version: u64) -> Result<Vec<(u64, u64)>> {
        self.inner.stream_entries(stream, from_version)
    }

    fn stream_head(&self, stream: &str, max_seq: u64) -> Result<u64> {
        self.inner.stream_head(stream, max_seq)
    }

    fn indexed_up_to(&self) -> Result<u64> {
        self.inner.indexed_up_to()
    }

    fn clear_stream_index(&self) -> Result<()> {
        self.inner.clear_stream_index()
    }

    fn content(&self, digest: &Hash) -> Result<Option<Vec<u8>>> {
        self.inner.content(digest)
    }

    fn purge_content(&self, digest: &Hash) -> Result<bool> {
        self.inner.purge_content(digest)
    }

    fn save_durable_head(&self, seq: u64, hash: &Hash) -> Result<()> {
        self.inner.save_durable_head(seq, hash)
    }

    fn durable_head(&self) -> Result<Option<(u64, Hash)>> {
        self.inner.durable_head()
    }

    fn discard(&self, chunks: &[u64], content: &[Hash]) -> Result<()> {
        if self.is_full() {
            return Err(no_space("discard"));
        }
        self.inner.discard(chunks, content)
    }

    fn reopen(&self) -> Result<()> {
        self.counters.reopens.fetch_add(1, Ordering::SeqCst);
        self.progressed();
        if self.is_full() {
            return Err(no_space("reopen"));
        }
        self.inner.reopen()
    }
}

//! The writer: sequencing, chaining and group commit, in two pipelined stages.
//!
//! Appends are queued on a channel. The *stager* takes everything that is waiting (up to
//! `max_group` requests), checks each request's expected versions, assigns sequence
//! numbers and hashes, and applies the whole group to storage as one atomic batch (not
//! yet durable). It hands the group to the *flusher* and goes on with the next requests
//! at once. The flusher takes every group applied so far, flushes once, and only then
//! acknowledges them and moves the committed head that readers see. So the CPU work of
//! the next group overlaps the disk flush of the previous one, and requests that arrive
//! during a flush share the next one: throughput grows with concurrency while every
//! acknowledgement still means durable.
//!
//! A request that fails its checks is answered with an error and contributes nothing,
//! so the others in its group are unaffected. A storage failure poisons the journal: it
//! refuses every later write, because the tree may hold records that were applied but
//! never made durable, and nothing more is acknowledged. The stager then recovers by
//! itself, with backoff ([`crate::RecoveryBackoff`]): it waits until the flusher has
//! failed every group staged before, reopens the storage (whose own recovery decides
//! what is on disk), removes any record past the acknowledged head that reached the
//! disk anyway (its callers were told it failed), checks the durable-head markers,
//! catches the stream index up, and starts again from the stored head.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::codec::{self, ChunkWriter, CONTENT_SALT_LEN};
use crate::config::SyncMode;
use crate::error::{JournalError, Result};
use crate::record::{AppendRequest, Appended, Hash, Record};
use crate::shared::Shared;
use crate::storage::WriteBatch;

/// One queued append and where to send its answer.
pub(crate) struct Pending {
    pub req: AppendRequest,
    pub reply: oneshot::Sender<Result<Appended>>,
}

/// What the stager is asked to do.
pub(crate) enum Msg {
    Append(Pending),
    /// Try to recover from a storage failure now (if writes are refused), and answer.
    Recover(mpsc::Sender<Result<()>>),
    /// From the flusher or the indexer after they poisoned the journal: the stager plans
    /// its first recovery attempt (it may be waiting for appends that never come).
    Wake,
    /// The last `Journal` handle is gone: stop after what is queued. (The flusher and the
    /// indexer hold senders too, so the channel alone never closes.)
    Close,
}

/// What the flusher receives: applied groups, and barriers that it answers once every
/// group sent before is acknowledged or failed.
enum ToFlusher {
    Group(AppliedGroup),
    Barrier(mpsc::Sender<()>),
}

/// What the indexer receives: index work, and barriers after which it has dropped every
/// entry it had not written.
enum ToIndexer {
    Work(IndexWork),
    Barrier(mpsc::Sender<()>),
}

/// What only the stager knows: the next sequence, the chain head, stream versions.
pub(crate) struct WriterState {
    pub next_seq: u64,
    pub prev_hash: Hash,
    pub heads: HashMap<String, u64>,
}

/// How often the durable-head marker is refreshed while appends flow.
const MARK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The accepted part of a request, applied to storage and waiting to be acknowledged.
struct Staged {
    reply: oneshot::Sender<Result<Appended>>,
    records: Vec<Record>,
}

/// Stream index entries of applied records, for the indexer.
struct IndexWork {
    entries: Vec<(String, u64, u64)>,
    up_to: u64,
}

/// A group applied to storage, not yet durable.
struct AppliedGroup {
    staged: Vec<Staged>,
    last_seq: u64,
    last_hash: Hash,
}

fn poisoned(shared: &Shared) -> Option<String> {
    shared.poison().map(|p| p.reason)
}

fn poison(shared: &Shared, e: &JournalError) {
    if shared.poison().is_none() {
        tracing::error!(
            error = %e,
            code = e.code(),
            "journal storage failed; refusing further writes until the storage is reopened"
        );
    }
    shared.set_poison(e.to_string(), true);
}

/// The writer thread: runs the stager here, the flusher and the indexer beside it.
pub(crate) fn run(
    shared: Arc<Shared>,
    wake: mpsc::Sender<Msg>,
    rx: Receiver<Msg>,
    mut st: WriterState,
) {
    let max_group = shared.config.max_group.max(1);
    let (to_flusher, applied) = mpsc::channel::<ToFlusher>();
    let (to_indexer, index_work) = mpsc::channel::<ToIndexer>();
    std::thread::scope(|scope| {
        let flusher_shared = &*shared;
        let flusher_wake = wake.clone();
        let spawned = std::thread::Builder::new()
            .name("journal-flusher".into())
            .spawn_scoped(scope, move || {
                flusher(flusher_shared, &flusher_wake, applied)
            });
        if let Err(e) = spawned {
            shared.set_poison(format!("cannot start the flusher: {e}"), false);
        }
        let indexer_shared = &*shared;
        let spawned = std::thread::Builder::new()
            .name("journal-indexer".into())
            .spawn_scoped(scope, move || indexer(indexer_shared, &wake, index_work));
        if let Err(e) = spawned {
            shared.set_poison(format!("cannot start the indexer: {e}"), false);
        }
        let mut recovery = Recovery::new(&shared);
        loop {
            let first = match recovery.due(&shared) {
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = recovery.attempt(&shared, &mut st, &to_flusher, &to_indexer);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            let first = match first {
                Msg::Append(p) => p,
                Msg::Recover(reply) => {
                    let _ =
                        reply.send(recovery.attempt(&shared, &mut st, &to_flusher, &to_indexer));
                    continue;
                }
                Msg::Wake => continue,
                Msg::Close => break,
            };
            let mut group = vec![first];
            let mut asked_recovery = None;
            let mut close = false;
            while group.len() < max_group {
                match rx.try_recv() {
                    Ok(Msg::Append(p)) => group.push(p),
                    Ok(Msg::Recover(reply)) => {
                        asked_recovery = Some(reply);
                        break;
                    }
                    Ok(Msg::Wake) => {}
                    Ok(Msg::Close) => {
                        close = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            if let Some((done, index)) = stage_group(&shared, &mut st, group) {
                // The index is derived data: it may trail the records (readers scan the
                // short unindexed tail), so it stays off the durable path.
                if to_indexer.send(ToIndexer::Work(index)).is_err() {
                    shared.set_poison("the indexer stopped".into(), false);
                }
                if let Err(mpsc::SendError(lost)) = to_flusher.send(ToFlusher::Group(done)) {
                    let e = JournalError::Storage("the flusher stopped".into());
                    shared.set_poison(e.to_string(), false);
                    if let ToFlusher::Group(lost) = lost {
                        fail(vec![lost], &e);
                    }
                }
            }
            if let Some(reply) = asked_recovery {
                let _ = reply.send(recovery.attempt(&shared, &mut st, &to_flusher, &to_indexer));
            }
            if close {
                break;
            }
        }
        drop(to_flusher);
        drop(to_indexer);
    });
}

/// The stager's recovery schedule after a storage failure.
struct Recovery {
    first: Duration,
    max: Duration,
    /// The wait before the next attempt.
    wait: Duration,
}

impl Recovery {
    fn new(shared: &Shared) -> Self {
        let first = shared.config.recovery.first.max(Duration::from_millis(1));
        Recovery {
            first,
            max: shared.config.recovery.max.max(first),
            wait: first,
        }
    }

    /// When the next recovery attempt is due, if writes are refused and recovery may
    /// help; plans it on the first call after a failure.
    fn due(&mut self, shared: &Shared) -> Option<Instant> {
        let mut p = shared.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        let p = p.as_mut().filter(|p| p.recoverable)?;
        Some(
            *p.next_attempt
                .get_or_insert_with(|| Instant::now() + self.wait),
        )
    }

    /// Tries to recover now; logs and plans the next attempt on failure.
    fn attempt(
        &mut self,
        shared: &Shared,
        st: &mut WriterState,
        to_flusher: &mpsc::Sender<ToFlusher>,
        to_indexer: &mpsc::Sender<ToIndexer>,
    ) -> Result<()> {
        let Some(p) = shared.poison() else {
            return Ok(());
        };
        if !p.recoverable {
            return Err(JournalError::Poisoned(p.reason));
        }
        match recover(shared, st, to_flusher, to_indexer) {
            Ok(head) => {
                *shared.poisoned.lock().unwrap_or_else(|p| p.into_inner()) = None;
                self.wait = self.first;
                tracing::warn!(
                    head,
                    failed_for = ?p.since.elapsed(),
                    attempts = p.attempts + 1,
                    failure = %p.reason,
                    "journal recovered from the storage failure: writes accepted again"
                );
                Ok(())
            }
            Err(e) => {
                self.wait = (self.wait * 2).min(self.max);
                let mut guard = shared.poisoned.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(p) = guard.as_mut() {
                    p.attempts += 1;
                    p.next_attempt = Some(Instant::now() + self.wait);
                    tracing::warn!(
                        error = %e,
                        attempts = p.attempts,
                        retry_in = ?self.wait,
                        failure = %p.reason,
                        retrying = p.recoverable,
                        "journal recovery failed; writes are still refused"
                    );
                }
                Err(e)
            }
        }
    }
}

/// Waits until `send`'s receiver has answered a barrier (or is gone).
fn barrier<T>(to: &mpsc::Sender<T>, make: impl FnOnce(mpsc::Sender<()>) -> T) {
    let (tx, rx) = mpsc::channel();
    if to.send(make(tx)).is_ok() {
        let _ = rx.recv();
    }
}

/// Reopens the storage and decides from what is on disk; returns the head to go on
/// from. Runs on the stager thread while writes are refused, so nothing is staged
/// meanwhile.
fn recover(
    shared: &Shared,
    st: &mut WriterState,
    to_flusher: &mpsc::Sender<ToFlusher>,
    to_indexer: &mpsc::Sender<ToIndexer>,
) -> Result<u64> {
    // Every group staged before the failure is failed (never acknowledged) before the
    // storage is touched, and the indexer drops what it had not written.
    barrier(to_flusher, ToFlusher::Barrier);
    barrier(to_indexer, ToIndexer::Barrier);
    shared.storage.reopen()?;
    let storage = shared.storage.as_ref();
    let acknowledged = shared.committed.load(Ordering::Acquire);
    let acknowledged_hash = shared.committed_hash();
    let (next_seq, stored_hash) = crate::journal::stored_head(storage)?;
    let mut head = next_seq - 1;
    let mut head_hash = stored_hash;
    if head > acknowledged {
        // Applied, refused to their callers, and on disk anyway (sled writes what it
        // holds in the background): they must never count. Remove them first.
        discard_after(storage, acknowledged, acknowledged_hash)?;
        tracing::warn!(
            acknowledged,
            found = head,
            "removed records that reached the disk but were never acknowledged"
        );
        head = acknowledged;
        head_hash = acknowledged_hash;
    } else if head < acknowledged {
        let e = JournalError::Truncated {
            acknowledged,
            found: head,
        };
        tracing::error!(
            acknowledged,
            found = head,
            sync = ?shared.config.sync,
            "after reopening, the journal is shorter than what was acknowledged; \
             not recovering by itself: restart the server to decide (see `journal.truncated`)"
        );
        shared.set_poison(e.to_string(), false);
        return Err(e);
    } else if head > 0 && head_hash != acknowledged_hash {
        let e = JournalError::Corrupt {
            seq: head,
            reason: "after reopening, the acknowledged head record has another hash".into(),
        };
        shared.set_poison(e.to_string(), false);
        return Err(e);
    }
    let witness = match &shared.config.head_witness {
        Some(path) => crate::head::read_head_marker(path)?,
        None => None,
    };
    for marker in [storage.durable_head()?, witness].into_iter().flatten() {
        crate::journal::check_durable_head(storage, head, marker)?;
    }
    crate::journal::catch_up_index(shared, head)?;
    st.next_seq = head + 1;
    st.prev_hash = head_hash;
    st.heads.clear();
    Ok(head)
}

/// Removes every stored chunk after `acknowledged` (and the content of its records),
/// after checking that the acknowledged head record is the one stored there and that
/// chunks split exactly after it (they do: a chunk holds records of one group, and
/// groups are acknowledged whole).
fn discard_after(
    storage: &dyn crate::storage::Storage,
    acknowledged: u64,
    hash: Hash,
) -> Result<()> {
    if acknowledged > 0 {
        let found = crate::reader::read_one(storage, acknowledged)?.map(|r| r.hash);
        if found != Some(hash) {
            return Err(JournalError::Corrupt {
                seq: acknowledged,
                reason:
                    "after reopening, the acknowledged head record is missing or has another hash"
                        .into(),
            });
        }
    }
    let mut chunks = Vec::new();
    let mut content = Vec::new();
    for chunk in storage.chunks(acknowledged + 1) {
        let (first, bytes) = chunk?;
        if first <= acknowledged {
            // The chunk holding the acknowledged head: nothing after it may be in it.
            let mut reader = codec::ChunkReader::new(first, &bytes)?;
            while let Some(r) = reader.next_record()? {
                if r.seq > acknowledged {
                    return Err(JournalError::Corrupt {
                        seq: r.seq,
                        reason: "an unacknowledged record shares a chunk with acknowledged ones"
                            .into(),
                    });
                }
            }
            continue;
        }
        let mut reader = codec::ChunkReader::new(first, &bytes)?;
        while let Some(r) = reader.next_record()? {
            if let Some(digest) = r.to_record()?.content_digest {
                content.push(digest);
            }
        }
        chunks.push(first);
    }
    storage.discard(&chunks, &content)
}

/// Writes stream index entries in batches and advances the indexed watermark.
///
/// It writes at most every [`INDEX_EVERY`] (or once [`INDEX_BATCH`] entries wait), so
/// its sled work does not compete with every flush; readers scan the short unindexed
/// tail meanwhile.
fn indexer(shared: &Shared, wake: &mpsc::Sender<Msg>, work: Receiver<ToIndexer>) {
    let mut entries: Vec<(String, u64, u64)> = Vec::new();
    let mut up_to = 0u64;
    let mut since: Option<Instant> = None;
    loop {
        let next = match since {
            Some(t) => match work.recv_timeout(INDEX_EVERY.saturating_sub(t.elapsed())) {
                Ok(w) => Some(w),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            },
            None => match work.recv() {
                Ok(w) => Some(w),
                Err(_) => break,
            },
        };
        match next {
            Some(ToIndexer::Work(w)) => {
                since.get_or_insert_with(Instant::now);
                up_to = up_to.max(w.up_to);
                entries.extend(w.entries);
            }
            // A recovery: what was not written is dropped (the index catches up from
            // its stored watermark after the reopen).
            Some(ToIndexer::Barrier(done)) => {
                entries.clear();
                up_to = 0;
                since = None;
                let _ = done.send(());
                continue;
            }
            None => {}
        }
        // While writes are refused, index entries (some of records that will never be
        // acknowledged) are dropped rather than written.
        if shared.poison().is_some() {
            entries.clear();
            since = None;
            continue;
        }
        let due = since.is_some_and(|t| t.elapsed() >= INDEX_EVERY) || entries.len() >= INDEX_BATCH;
        if due {
            since = None;
            if !write_index(shared, std::mem::take(&mut entries), up_to) {
                entries.clear();
                let _ = wake.send(Msg::Wake);
            }
        }
    }
    if !entries.is_empty() && shared.poison().is_none() {
        write_index(shared, entries, up_to);
    }
}

/// How long index entries may wait before they are written.
const INDEX_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// How many index entries may wait before they are written anyway.
const INDEX_BATCH: usize = 16_384;

fn write_index(shared: &Shared, entries: Vec<(String, u64, u64)>, up_to: u64) -> bool {
    let batch = WriteBatch {
        stream_index: entries,
        indexed_up_to: Some(up_to),
        ..WriteBatch::default()
    };
    match shared.storage.write(batch) {
        Ok(()) => {
            shared.indexed.store(up_to, Ordering::Release);
            true
        }
        Err(e) => {
            poison(shared, &e);
            false
        }
    }
}

/// Makes applied groups durable (per sync mode), then acknowledges them in order.
fn flusher(shared: &Shared, wake: &mpsc::Sender<Msg>, applied: Receiver<ToFlusher>) {
    let mut durable: Option<(u64, Hash)> = None;
    let mut marked: Option<(u64, Instant)> = None;
    // In batch mode: when the oldest acknowledged but unflushed write happened.
    let mut dirty_since: Option<Instant> = None;
    loop {
        let first = match (shared.config.sync, dirty_since) {
            (SyncMode::Batch { max_delay }, Some(since)) => {
                match applied.recv_timeout(max_delay.saturating_sub(since.elapsed())) {
                    Ok(g) => Some(g),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            _ => match applied.recv() {
                Ok(g) => Some(g),
                Err(_) => break,
            },
        };
        // Groups up to the first barrier; the barrier is answered once they are done.
        let mut groups: Vec<AppliedGroup> = Vec::new();
        let mut barrier = None;
        let mut next = first;
        while let Some(m) = next {
            match m {
                ToFlusher::Group(g) => groups.push(g),
                ToFlusher::Barrier(b) => {
                    barrier = Some(b);
                    break;
                }
            }
            next = applied.try_recv().ok();
        }
        let was_poisoned = shared.poison().is_some();
        flush_groups(shared, groups, &mut durable, &mut marked, &mut dirty_since);
        if !was_poisoned && shared.poison().is_some() {
            let _ = wake.send(Msg::Wake);
        }
        if let Some(done) = barrier {
            // A recovery follows: what this flusher knew of the old storage is void.
            durable = None;
            marked = None;
            dirty_since = None;
            let _ = done.send(());
        }
    }
    if poisoned(shared).is_none() {
        match shared.storage.flush() {
            Ok(()) => {
                let head = shared.committed.load(Ordering::Acquire);
                mark_durable(
                    shared,
                    Some((head, shared.committed_hash())),
                    &mut marked,
                    true,
                );
            }
            Err(e) => tracing::error!(error = %e, "final journal flush failed"),
        }
    }
}

/// Flushes (per sync mode) and acknowledges `groups`, or fails them once writes are
/// refused; refreshes the durable-head marker.
fn flush_groups(
    shared: &Shared,
    groups: Vec<AppliedGroup>,
    durable: &mut Option<(u64, Hash)>,
    marked: &mut Option<(u64, Instant)>,
    dirty_since: &mut Option<Instant>,
) {
    // Groups staged before a failure are in the tree but may never become durable:
    // once poisoned, nothing more is acknowledged; reopening decides what stands.
    if let Some(reason) = poisoned(shared) {
        fail(groups, &JournalError::Poisoned(reason));
        *dirty_since = None;
        return;
    }
    let last = groups.last().map(|g| (g.last_seq, g.last_hash));
    match shared.config.sync {
        SyncMode::Always => {
            if groups.is_empty() {
                return;
            }
            match shared.storage.flush() {
                Ok(()) => {
                    *durable = last;
                    acknowledge(shared, groups);
                }
                Err(e) => {
                    poison(shared, &e);
                    fail(groups, &e);
                    return;
                }
            }
        }
        SyncMode::Batch { max_delay } => {
            if !groups.is_empty() {
                dirty_since.get_or_insert_with(Instant::now);
                acknowledge(shared, groups);
            }
            if dirty_since.is_some_and(|t| t.elapsed() >= max_delay) {
                *dirty_since = None;
                match shared.storage.flush() {
                    Ok(()) => {
                        *durable = Some((
                            shared.committed.load(Ordering::Acquire),
                            shared.committed_hash(),
                        ))
                    }
                    Err(e) => poison(shared, &e),
                }
            }
        }
        SyncMode::None => acknowledge(shared, groups),
    }
    mark_durable(shared, *durable, marked, false);
}

/// Answers every request of `groups` with `e`.
fn fail(groups: Vec<AppliedGroup>, e: &JournalError) {
    for g in groups {
        for s in g.staged {
            let _ = s.reply.send(Err(e.clone()));
        }
    }
}

/// Publishes groups to readers and answers their requests.
fn acknowledge(shared: &Shared, groups: Vec<AppliedGroup>) {
    for g in groups {
        shared.groups_committed.fetch_add(1, Ordering::Relaxed);
        shared
            .appends_committed
            .fetch_add(g.staged.len() as u64, Ordering::Relaxed);
        shared.set_committed(g.last_seq, g.last_hash);
        shared.head_tx.send_replace(g.last_seq);
        for s in g.staged {
            let _ = s.reply.send(Ok(Appended { records: s.records }));
        }
    }
}

/// Refreshes the durable-head marker, at most every [`MARK_EVERY`] unless `force`. A
/// failure here is logged, not fatal: the marker only detects loss.
fn mark_durable(
    shared: &Shared,
    durable: Option<(u64, Hash)>,
    marked: &mut Option<(u64, Instant)>,
    force: bool,
) {
    let Some((head, hash)) = durable else { return };
    let due = match marked {
        Some((seq, at)) => *seq != head && (force || at.elapsed() >= MARK_EVERY),
        None => head > 0,
    };
    if !due {
        return;
    }
    if let Err(e) = shared.storage.save_durable_head(head, &hash) {
        tracing::warn!(error = %e, "could not save the durable head marker");
        return;
    }
    *marked = Some((head, Instant::now()));
    // The witness outside the database directory, after the inner marker, so that it
    // never names more than the inner marker does.
    if let Some(witness) = &shared.config.head_witness {
        if let Err(e) = crate::head::write(witness, head, &hash) {
            tracing::warn!(error = %e, "could not save the durable head witness");
        }
    }
}

/// Checks and applies one group; returns it for the flusher (and its stream index
/// entries for the indexer) unless nothing was applied.
fn stage_group(
    shared: &Shared,
    st: &mut WriterState,
    group: Vec<Pending>,
) -> Option<(AppliedGroup, IndexWork)> {
    if let Some(reason) = poisoned(shared) {
        for p in group {
            let _ = p.reply.send(Err(JournalError::Poisoned(reason.clone())));
        }
        return None;
    }
    let mut batch = WriteBatch::default();
    let mut overlay: HashMap<String, u64> = HashMap::new();
    let mut staged: Vec<Staged> = Vec::with_capacity(group.len());
    let mut seq = st.next_seq;
    let mut prev = st.prev_hash;
    let mut chunks = ChunkWriter::new();
    for p in group {
        if let Err(e) = load_heads(shared, st, &p.req) {
            let _ = p.reply.send(Err(e));
            continue;
        }
        let mark = chunks.mark();
        match stage(
            shared,
            st,
            &overlay,
            seq,
            prev,
            p.req,
            &mut chunks,
            &mut batch,
        ) {
            Ok((records, versions)) => {
                if let Some(last) = records.last() {
                    seq = last.seq + 1;
                    prev = last.hash;
                }
                overlay.extend(versions);
                staged.push(Staged {
                    reply: p.reply,
                    records,
                });
            }
            Err(e) => {
                chunks.rollback(mark);
                let _ = p.reply.send(Err(e));
            }
        }
    }
    if staged.is_empty() {
        return None;
    }
    batch.chunks = chunks.finish();
    let index = IndexWork {
        entries: std::mem::take(&mut batch.stream_index),
        up_to: seq - 1,
    };
    if let Err(e) = shared.storage.write(batch) {
        poison(shared, &e);
        for s in staged {
            let _ = s.reply.send(Err(e.clone()));
        }
        return None;
    }
    st.next_seq = seq;
    st.prev_hash = prev;
    st.heads.extend(overlay);
    Some((
        AppliedGroup {
            staged,
            last_seq: seq - 1,
            last_hash: prev,
        },
        index,
    ))
}

/// Caches the stored versions of the streams a request touches, so [`stage`] can check
/// them without storage access.
fn load_heads(shared: &Shared, st: &mut WriterState, req: &AppendRequest) -> Result<()> {
    let names = req
        .expected
        .iter()
        .map(|(s, _)| s)
        .chain(req.records.iter().map(|r| &r.stream));
    for stream in names {
        if !st.heads.contains_key(stream) {
            let version = shared.storage.stream_head(stream, u64::MAX)?;
            st.heads.insert(stream.clone(), version);
        }
    }
    Ok(())
}

/// Checks one request and, if it passes, adds its records to `chunks` and `batch`. Returns the
/// records and the stream versions they leave behind; on error nothing was added.
#[allow(clippy::too_many_arguments)]
fn stage(
    shared: &Shared,
    st: &WriterState,
    overlay: &HashMap<String, u64>,
    first_seq: u64,
    first_prev: Hash,
    req: AppendRequest,
    chunks: &mut ChunkWriter,
    batch: &mut WriteBatch,
) -> Result<(Vec<Record>, HashMap<String, u64>)> {
    let current = |stream: &str, local: &HashMap<String, u64>| -> u64 {
        local
            .get(stream)
            .or_else(|| overlay.get(stream))
            .or_else(|| st.heads.get(stream))
            .copied()
            .unwrap_or(0)
    };
    if let Some(expected) = req.expected_head {
        let actual = first_seq - 1;
        if expected != actual {
            return Err(JournalError::HeadConflict { expected, actual });
        }
    }
    let mut local: HashMap<String, u64> = HashMap::new();
    for (stream, expected) in &req.expected {
        let actual = current(stream, &local);
        if !expected.matches(actual) {
            return Err(JournalError::Conflict {
                stream: stream.clone(),
                expected: format!("{expected:?}"),
                actual,
            });
        }
    }
    for new in &req.records {
        new.validate(shared.config.max_record_bytes)?;
    }
    let mut records = Vec::with_capacity(req.records.len());
    let mut index = Vec::with_capacity(req.records.len());
    let mut content = Vec::new();
    let mut prev = first_prev;
    for (seq, new) in (first_seq..).zip(req.records) {
        let version = current(&new.stream, &local) + 1;
        local.insert(new.stream.clone(), version);
        let content_digest = match new.content {
            Some(body) => {
                let mut salted = vec![0u8; CONTENT_SALT_LEN];
                getrandom::fill(&mut salted).map_err(|e| {
                    JournalError::Storage(format!("no randomness for a content salt: {e}"))
                })?;
                salted.extend_from_slice(&body);
                let digest = codec::content_digest(&salted);
                content.push((digest, salted));
                Some(digest)
            }
            None => None,
        };
        let mut record = Record {
            seq,
            stream: new.stream,
            stream_version: version,
            timestamp: new.timestamp,
            event_type: new.event_type,
            schema_version: new.schema_version,
            payload: new.payload,
            content_digest,
            meta: new.meta,
            prev_hash: prev,
            hash: [0; 32],
        };
        record.hash = codec::chain_hash(&record);
        chunks.push(&record)?;
        index.push((record.stream.clone(), version, seq));
        prev = record.hash;
        records.push(record);
    }
    batch.stream_index.extend(index);
    batch.content.extend(content);
    Ok((records, local))
}

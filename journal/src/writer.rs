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
//! refuses every later write until reopened, because the tree may hold records that
//! were applied but never made durable.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

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
    shared
        .poisoned
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

fn poison(shared: &Shared, e: &JournalError) {
    tracing::error!(error = %e, "journal storage failed; refusing further writes");
    let mut p = shared.poisoned.lock().unwrap_or_else(|p| p.into_inner());
    p.get_or_insert_with(|| e.to_string());
}

/// The writer thread: runs the stager here, the flusher and the indexer beside it.
pub(crate) fn run(shared: Arc<Shared>, rx: Receiver<Pending>, mut st: WriterState) {
    let max_group = shared.config.max_group.max(1);
    let (to_flusher, applied) = mpsc::channel::<AppliedGroup>();
    let (to_indexer, index_work) = mpsc::channel::<IndexWork>();
    std::thread::scope(|scope| {
        let flusher_shared = &*shared;
        let spawned = std::thread::Builder::new()
            .name("journal-flusher".into())
            .spawn_scoped(scope, move || flusher(flusher_shared, applied));
        if let Err(e) = spawned {
            poison(
                &shared,
                &JournalError::Storage(format!("cannot start the flusher: {e}")),
            );
        }
        let indexer_shared = &*shared;
        let spawned = std::thread::Builder::new()
            .name("journal-indexer".into())
            .spawn_scoped(scope, move || indexer(indexer_shared, index_work));
        if let Err(e) = spawned {
            poison(
                &shared,
                &JournalError::Storage(format!("cannot start the indexer: {e}")),
            );
        }
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < max_group {
                match rx.try_recv() {
                    Ok(p) => group.push(p),
                    Err(_) => break,
                }
            }
            if let Some((done, index)) = stage_group(&shared, &mut st, group) {
                // The index is derived data: it may trail the records (readers scan the
                // short unindexed tail), so it stays off the durable path.
                if to_indexer.send(index).is_err() {
                    poison(
                        &shared,
                        &JournalError::Storage("the indexer stopped".into()),
                    );
                }
                if let Err(mpsc::SendError(lost)) = to_flusher.send(done) {
                    let e = JournalError::Storage("the flusher stopped".into());
                    poison(&shared, &e);
                    for s in lost.staged {
                        let _ = s.reply.send(Err(e.clone()));
                    }
                }
            }
        }
        drop(to_flusher);
        drop(to_indexer);
    });
}

/// Writes stream index entries in batches and advances the indexed watermark.
///
/// It writes at most every [`INDEX_EVERY`] (or once [`INDEX_BATCH`] entries wait), so
/// its sled work does not compete with every flush; readers scan the short unindexed
/// tail meanwhile.
fn indexer(shared: &Shared, work: Receiver<IndexWork>) {
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
        if let Some(w) = next {
            since.get_or_insert_with(Instant::now);
            up_to = up_to.max(w.up_to);
            entries.extend(w.entries);
        }
        let due = since.is_some_and(|t| t.elapsed() >= INDEX_EVERY) || entries.len() >= INDEX_BATCH;
        if due {
            since = None;
            if !write_index(shared, std::mem::take(&mut entries), up_to) {
                return;
            }
        }
    }
    if !entries.is_empty() {
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
fn flusher(shared: &Shared, applied: Receiver<AppliedGroup>) {
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
        let mut groups: Vec<AppliedGroup> = first.into_iter().collect();
        groups.extend(applied.try_iter());
        // Groups staged before a failure are in the tree but may never become durable:
        // once poisoned, nothing more is acknowledged; reopening decides what stands.
        if let Some(reason) = poisoned(shared) {
            fail(groups, &JournalError::Poisoned(reason));
            dirty_since = None;
            continue;
        }
        let last = groups.last().map(|g| (g.last_seq, g.last_hash));
        match shared.config.sync {
            SyncMode::Always => {
                if groups.is_empty() {
                    continue;
                }
                match shared.storage.flush() {
                    Ok(()) => {
                        durable = last;
                        acknowledge(shared, groups);
                    }
                    Err(e) => {
                        poison(shared, &e);
                        fail(groups, &e);
                        continue;
                    }
                }
            }
            SyncMode::Batch { max_delay } => {
                if !groups.is_empty() {
                    dirty_since.get_or_insert_with(Instant::now);
                    acknowledge(shared, groups);
                }
                if dirty_since.is_some_and(|t| t.elapsed() >= max_delay) {
                    dirty_since = None;
                    match shared.storage.flush() {
                        Ok(()) => {
                            durable = Some((
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
        mark_durable(shared, durable, &mut marked, false);
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

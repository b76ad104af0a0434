//! The single writer thread: sequencing, chaining and group commit.
//!
//! Appends are queued on a channel. The writer takes everything that is waiting (up to
//! `max_group` requests), checks each request's expected versions, assigns sequence
//! numbers and hashes, writes the whole group as one atomic batch and flushes once. A
//! request that fails its checks is answered with an error and contributes nothing, so
//! the others in its group are unaffected. Requests that arrive during a flush wait for
//! the next one: that is what makes throughput grow with concurrency.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::codec::{self, ChunkWriter, CONTENT_SALT_LEN};
use crate::config::SyncMode;
use crate::error::{JournalError, Result};
use crate::journal::Shared;
use crate::record::{AppendRequest, Appended, Hash, Record};
use crate::storage::WriteBatch;

/// One queued append and where to send its answer.
pub(crate) struct Pending {
    pub req: AppendRequest,
    pub reply: oneshot::Sender<Result<Appended>>,
}

/// What only the writer knows: the next sequence, the chain head, stream versions.
pub(crate) struct WriterState {
    pub next_seq: u64,
    pub prev_hash: Hash,
    pub heads: HashMap<String, u64>,
    pub poisoned: Option<String>,
    /// The head last written to the durable-head marker, and when.
    pub marked: Option<(u64, Instant)>,
}

/// How often the durable-head marker is refreshed while appends flow.
const MARK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Refreshes the durable-head marker after a flush, at most every [`MARK_EVERY`]
/// unless `force`. A failure here is logged, not fatal: the marker only detects loss.
fn mark_durable(shared: &Shared, st: &mut WriterState, force: bool) {
    let head = st.next_seq - 1;
    let due = match st.marked {
        Some((seq, at)) => seq != head && (force || at.elapsed() >= MARK_EVERY),
        None => head > 0,
    };
    if !due {
        return;
    }
    match shared.storage.save_durable_head(head, &st.prev_hash) {
        Ok(()) => st.marked = Some((head, Instant::now())),
        Err(e) => tracing::warn!(error = %e, "could not save the durable head marker"),
    }
}

pub(crate) fn run(shared: Arc<Shared>, rx: Receiver<Pending>, mut st: WriterState) {
    let max_group = shared.config.max_group.max(1);
    // In batch mode: when the oldest unflushed write happened.
    let mut dirty_since: Option<Instant> = None;
    loop {
        let first = match (shared.config.sync, dirty_since) {
            (SyncMode::Batch { max_delay }, Some(since)) => {
                let left = max_delay.saturating_sub(since.elapsed());
                match rx.recv_timeout(left) {
                    Ok(p) => p,
                    Err(RecvTimeoutError::Timeout) => {
                        flush_batch_mode(&shared, &mut st, &mut dirty_since);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            _ => match rx.recv() {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let mut group = vec![first];
        while group.len() < max_group {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        commit_group(&shared, &mut st, group, &mut dirty_since);
    }
    if st.poisoned.is_none() {
        match shared.storage.flush() {
            Ok(()) => mark_durable(&shared, &mut st, true),
            Err(e) => tracing::error!(error = %e, "final journal flush failed"),
        }
    }
}

fn flush_batch_mode(shared: &Shared, st: &mut WriterState, dirty_since: &mut Option<Instant>) {
    *dirty_since = None;
    match shared.storage.flush() {
        Ok(()) => mark_durable(shared, st, false),
        Err(e) => {
            tracing::error!(error = %e, "journal flush failed; refusing further writes");
            st.poisoned = Some(e.to_string());
        }
    }
}

/// The accepted part of a request, ready to write.
struct Staged {
    reply: oneshot::Sender<Result<Appended>>,
    records: Vec<Record>,
}

fn commit_group(
    shared: &Shared,
    st: &mut WriterState,
    group: Vec<Pending>,
    dirty_since: &mut Option<Instant>,
) {
    if let Some(reason) = &st.poisoned {
        for p in group {
            let _ = p.reply.send(Err(JournalError::Poisoned(reason.clone())));
        }
        return;
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
        return;
    }
    batch.chunks = chunks.finish();
    let mut flushed = false;
    let written = shared.storage.write(batch).and_then(|()| {
        let flush_now = match shared.config.sync {
            SyncMode::Always => true,
            SyncMode::Batch { max_delay } => {
                let since = *dirty_since.get_or_insert_with(Instant::now);
                since.elapsed() >= max_delay
            }
            SyncMode::None => false,
        };
        if flush_now {
            *dirty_since = None;
            flushed = true;
            shared.storage.flush()
        } else {
            Ok(())
        }
    });
    if let Err(e) = written {
        // The tree may now hold records that are not durable; sequencing from here could
        // overwrite or skip them. Stop writing until the journal is reopened.
        tracing::error!(error = %e, "journal write failed; refusing further writes");
        st.poisoned = Some(e.to_string());
        for s in staged {
            let _ = s.reply.send(Err(e.clone()));
        }
        return;
    }
    st.next_seq = seq;
    st.prev_hash = prev;
    st.heads.extend(overlay);
    if flushed {
        mark_durable(shared, st, false);
    }
    let last = seq - 1;
    shared.groups_committed.fetch_add(1, Ordering::Relaxed);
    shared
        .appends_committed
        .fetch_add(staged.len() as u64, Ordering::Relaxed);
    shared.committed.store(last, Ordering::Release);
    shared.head_tx.send_replace(last);
    for s in staged {
        let _ = s.reply.send(Ok(Appended { records: s.records }));
    }
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
        validate(new, shared.config.max_record_bytes)?;
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

fn validate(r: &crate::record::NewRecord, max_bytes: usize) -> Result<()> {
    if r.stream.is_empty() {
        return Err(JournalError::InvalidRecord("empty stream name".into()));
    }
    if r.stream.len() > u16::MAX as usize {
        return Err(JournalError::InvalidRecord(
            "stream name longer than 65535 bytes".into(),
        ));
    }
    if r.event_type.is_empty() {
        return Err(JournalError::InvalidRecord("empty event type".into()));
    }
    let size = r.stream.len()
        + r.event_type.len()
        + r.payload.len()
        + r.content.as_ref().map_or(0, Vec::len);
    if size > max_bytes {
        return Err(JournalError::InvalidRecord(format!(
            "record of {size} bytes exceeds the limit of {max_bytes}"
        )));
    }
    Ok(())
}

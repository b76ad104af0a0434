//! Chain verification: walk every record and name the first one that is wrong.
//!
//! Each record is checked on its own (it decodes, its sequence is the next one, its
//! hash matches its fields, its stream version follows the stream's previous one, its
//! content, if still present, matches the digest) and against its predecessor (its
//! `prev_hash` is the predecessor's hash). Decoding and hashing, the costly part, runs on
//! worker threads, chunk by chunk; only the cheap linking checks run in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;

use crate::codec::{self, ChunkReader};
use crate::error::Result;
use crate::record::{Hash, ZERO_HASH};
use crate::storage::Storage;

/// What is wrong with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyProblem {
    /// The bytes do not decode (or the format is unknown).
    Undecodable(String),
    /// Sequence numbers skip: the record at `seq` is missing.
    Missing { next_found: Option<u64> },
    /// The stored hash does not match the record's fields.
    HashMismatch,
    /// The record's `prev_hash` is not its predecessor's hash.
    BrokenLink,
    /// The stream version does not follow the stream's previous record.
    StreamVersion { expected: u64, found: u64 },
    /// The personal content does not match the digest the chain covers.
    ContentMismatch,
    /// The storage engine cannot read the bytes that hold this record (or its content):
    /// they fail its own checks (sled's checksums) or the read fails.
    Unreadable(String),
}

impl VerifyProblem {
    /// The stable code of the journal error this problem amounts to.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyProblem::ContentMismatch => "journal.content_corrupt",
            VerifyProblem::Unreadable(_) => "journal.storage",
            VerifyProblem::Undecodable(_)
            | VerifyProblem::Missing { .. }
            | VerifyProblem::HashMismatch
            | VerifyProblem::BrokenLink
            | VerifyProblem::StreamVersion { .. } => "journal.corrupt",
        }
    }
}

/// Where a record's bytes are stored: in the chunk value keyed by `chunk` (the first
/// sequence number it holds), the frame `start..end` (byte offsets in that value,
/// length prefix included). sled does not say where a value lies in its files, so this
/// is as close to the disk as the journal can point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordLocation {
    pub chunk: u64,
    pub start: usize,
    pub end: usize,
}

impl std::fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "chunk {} bytes {}..{}", self.chunk, self.start, self.end)
    }
}

/// The first bad record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    pub seq: u64,
    pub problem: VerifyProblem,
    /// Where its bytes are, when they could be read at all.
    pub location: Option<RecordLocation>,
}

impl std::fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VerifyProblem::Undecodable(why) => write!(f, "cannot be decoded ({why})"),
            VerifyProblem::Missing {
                next_found: Some(next),
            } => write!(f, "is missing (the next stored record is {next})"),
            VerifyProblem::Missing { next_found: None } => {
                write!(f, "is missing (no later record is stored)")
            }
            VerifyProblem::HashMismatch => write!(f, "its hash does not match its contents"),
            VerifyProblem::BrokenLink => {
                write!(f, "its previous-hash does not match the record before it")
            }
            VerifyProblem::StreamVersion { expected, found } => {
                write!(f, "stream version {found}, expected {expected}")
            }
            VerifyProblem::ContentMismatch => {
                write!(f, "its personal content does not match the digest")
            }
            VerifyProblem::Unreadable(why) => {
                write!(f, "cannot be read from storage ({why})")
            }
        }
    }
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}: {}", self.seq, self.problem)
    }
}

/// The outcome of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked and found good.
    pub records_checked: u64,
    /// The hash of the last good record (the chain head if all is well).
    pub last_good_hash: Hash,
    /// Records whose personal content has been purged (not a failure).
    pub purged_content: u64,
    pub first_failure: Option<VerifyFailure>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.first_failure.is_none()
    }
}

/// What a worker learned from one record on its own.
struct Checked {
    location: RecordLocation,
    stream: String,
    stream_version: u64,
    prev_hash: Hash,
    hash: Hash,
    hash_ok: bool,
    content: Option<Hash>,
}

/// A worker's findings for one chunk: its records in order, then the problem that
/// stopped it, if any (naming the sequence it was expecting).
struct CheckedChunk {
    first: u64,
    records: Vec<Checked>,
    problem: Option<(u64, VerifyProblem, Option<RecordLocation>)>,
}

/// Decodes and hashes every record of a chunk, independently of other chunks.
fn check_chunk(first: u64, bytes: &[u8], head: u64) -> CheckedChunk {
    let mut out = CheckedChunk {
        first,
        records: Vec::new(),
        problem: None,
    };
    let whole = RecordLocation {
        chunk: first,
        start: 0,
        end: bytes.len(),
    };
    let mut reader = match ChunkReader::new(first, bytes) {
        Ok(r) => r,
        Err(e) => {
            out.problem = Some((
                first,
                VerifyProblem::Undecodable(e.to_string()),
                Some(whole),
            ));
            return out;
        }
    };
    let mut seq = first;
    while seq <= head {
        let start = reader.offset();
        match reader.next_record() {
            Ok(Some(r)) => out.records.push(Checked {
                location: RecordLocation {
                    chunk: first,
                    start,
                    end: reader.offset(),
                },
                stream: r.stream.to_owned(),
                stream_version: r.stream_version,
                prev_hash: r.prev_hash,
                hash: r.hash,
                hash_ok: r.chain_hash() == r.hash,
                content: r.content_digest,
            }),
            Ok(None) => break,
            Err(e) => {
                out.problem = Some((
                    seq,
                    VerifyProblem::Undecodable(e.to_string()),
                    Some(RecordLocation { start, ..whole }),
                ));
                break;
            }
        }
        seq += 1;
    }
    out
}

pub(crate) fn verify(storage: &dyn Storage, head: u64) -> Result<VerifyReport> {
    let mut v = Verifier {
        storage,
        report: VerifyReport {
            records_checked: 0,
            last_good_hash: ZERO_HASH,
            purged_content: 0,
            first_failure: None,
        },
        expected_seq: 1,
        stream_versions: HashMap::new(),
    };
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8));
    std::thread::scope(|scope| -> Result<()> {
        // A scanner reads chunks, workers decode and hash them in parallel, and this
        // thread puts their findings back in order and checks what links records: the
        // previous-hash chain, sequence continuity and stream versions.
        let (work_tx, work_rx) = mpsc::sync_channel::<(usize, u64, Vec<u8>)>(4 * workers);
        let work_rx = std::sync::Arc::new(std::sync::Mutex::new(work_rx));
        let (done_tx, done_rx) = mpsc::sync_channel::<(usize, Result<CheckedChunk>)>(4 * workers);
        let scan_tx = done_tx.clone();
        scope.spawn(move || {
            for (idx, chunk) in storage.chunks(1).enumerate() {
                match chunk {
                    Ok((first, _)) if first > head => break,
                    Ok((first, bytes)) => {
                        if work_tx.send((idx, first, bytes)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = scan_tx.send((idx, Err(e)));
                        break;
                    }
                }
            }
        });
        for _ in 0..workers {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || loop {
                let job = match work_rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((idx, first, bytes)) = job else { return };
                if done_tx
                    .send((idx, Ok(check_chunk(first, &bytes, head))))
                    .is_err()
                {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut pending: BTreeMap<usize, Result<CheckedChunk>> = BTreeMap::new();
        let mut next = 0usize;
        'outer: for (idx, found) in done_rx.iter() {
            pending.insert(idx, found);
            while let Some(found) = pending.remove(&next) {
                next += 1;
                let linked = match found {
                    Ok(chunk) => v.link(chunk),
                    // Storage could not hand over the next chunk: the first record not
                    // yet checked is the first one that cannot be read.
                    Err(e) => v.fail(VerifyProblem::Unreadable(storage_message(e)), None),
                };
                if !linked {
                    break 'outer;
                }
            }
        }
        // Leaving early drops the receivers, which stops the scanner and the workers.
        Ok(())
    })?;
    if v.report.first_failure.is_none() && v.expected_seq <= head {
        v.report.first_failure = Some(VerifyFailure {
            seq: v.expected_seq,
            problem: VerifyProblem::Missing { next_found: None },
            location: None,
        });
    }
    Ok(v.report)
}

/// A storage error's message without the "storage error:" prefix.
fn storage_message(e: crate::error::JournalError) -> String {
    match e {
        crate::error::JournalError::Storage(why) => why,
        other => other.to_string(),
    }
}

struct Verifier<'s> {
    storage: &'s dyn Storage,
    report: VerifyReport,
    expected_seq: u64,
    stream_versions: HashMap<String, u64>,
}

impl Verifier<'_> {
    /// Records the failure of the record expected next; always false (stop).
    fn fail(&mut self, problem: VerifyProblem, location: Option<RecordLocation>) -> bool {
        self.report.first_failure = Some(VerifyFailure {
            seq: self.expected_seq,
            problem,
            location,
        });
        false
    }

    /// Checks a chunk's records against what came before; false once a failure is found.
    fn link(&mut self, chunk: CheckedChunk) -> bool {
        if chunk.first != self.expected_seq {
            return self.fail(
                VerifyProblem::Missing {
                    next_found: Some(chunk.first),
                },
                None,
            );
        }
        for record in chunk.records {
            let at = Some(record.location);
            if record.prev_hash != self.report.last_good_hash {
                return self.fail(VerifyProblem::BrokenLink, at);
            }
            if !record.hash_ok {
                return self.fail(VerifyProblem::HashMismatch, at);
            }
            let expected_version = match self.stream_versions.get_mut(&record.stream) {
                Some(v) => {
                    *v += 1;
                    *v
                }
                None => {
                    self.stream_versions.insert(record.stream, 1);
                    1
                }
            };
            if record.stream_version != expected_version {
                return self.fail(
                    VerifyProblem::StreamVersion {
                        expected: expected_version,
                        found: record.stream_version,
                    },
                    at,
                );
            }
            if let Some(digest) = &record.content {
                match self.storage.content(digest) {
                    Ok(None) => self.report.purged_content += 1,
                    Ok(Some(salted)) => {
                        if codec::unsalt(&salted, digest).is_none() {
                            return self.fail(VerifyProblem::ContentMismatch, at);
                        }
                    }
                    Err(e) => {
                        return self.fail(
                            VerifyProblem::Unreadable(format!(
                                "its personal content: {}",
                                storage_message(e)
                            )),
                            at,
                        )
                    }
                }
            }
            self.report.last_good_hash = record.hash;
            self.report.records_checked += 1;
            self.expected_seq += 1;
        }
        if let Some((seq, problem, location)) = chunk.problem {
            debug_assert_eq!(seq, self.expected_seq);
            return self.fail(problem, location);
        }
        true
    }
}

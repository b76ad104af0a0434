//! Chain verification: walk every record and name the first one that is wrong.
//!
//! Each record is checked on its own (it decodes, its sequence is the next one, its
//! hash matches its fields, its stream version follows the stream's previous one, its
//! content, if still present, matches the digest) and against its predecessor (its
//! `prev_hash` is the predecessor's hash). The per-record work runs on a second thread
//! while the first scans storage, so verification keeps up with a raw scan.

use std::collections::HashMap;
use std::sync::mpsc;

use crate::codec::{self, CONTENT_SALT_LEN};
use crate::error::{JournalError, Result};
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
}

/// The first bad record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    pub seq: u64,
    pub problem: VerifyProblem,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}: ", self.seq)?;
        match &self.problem {
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
        }
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

const CHUNK: usize = 1024;

pub(crate) fn verify(storage: &dyn Storage, head: u64) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        records_checked: 0,
        last_good_hash: ZERO_HASH,
        purged_content: 0,
        first_failure: None,
    };
    let mut expected_seq = 1u64;
    let mut stream_versions: HashMap<String, u64> = HashMap::new();
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = mpsc::sync_channel::<Vec<(u64, Vec<u8>)>>(4);
        let scanner = scope.spawn(move || -> Result<()> {
            let mut chunk = Vec::with_capacity(CHUNK);
            for kv in storage.records(1, head) {
                chunk.push(kv?);
                if chunk.len() == CHUNK {
                    if tx.send(std::mem::take(&mut chunk)).is_err() {
                        return Ok(());
                    }
                    chunk.reserve(CHUNK);
                }
            }
            if !chunk.is_empty() {
                let _ = tx.send(chunk);
            }
            Ok(())
        });
        'outer: for chunk in rx {
            for (seq, bytes) in chunk {
                let fail = |problem| VerifyFailure {
                    seq: expected_seq,
                    problem,
                };
                if seq != expected_seq {
                    report.first_failure = Some(fail(VerifyProblem::Missing {
                        next_found: Some(seq),
                    }));
                    break 'outer;
                }
                let record = match codec::decode(seq, &bytes) {
                    Ok(r) => r,
                    Err(e) => {
                        report.first_failure =
                            Some(fail(VerifyProblem::Undecodable(e.to_string())));
                        break 'outer;
                    }
                };
                if record.prev_hash != report.last_good_hash {
                    report.first_failure = Some(fail(VerifyProblem::BrokenLink));
                    break 'outer;
                }
                if codec::chain_hash(&record) != record.hash {
                    report.first_failure = Some(fail(VerifyProblem::HashMismatch));
                    break 'outer;
                }
                let version = stream_versions.entry(record.stream.clone()).or_insert(0);
                if record.stream_version != *version + 1 {
                    report.first_failure = Some(fail(VerifyProblem::StreamVersion {
                        expected: *version + 1,
                        found: record.stream_version,
                    }));
                    break 'outer;
                }
                *version += 1;
                if let Some(digest) = &record.content_digest {
                    match storage.content(digest)? {
                        None => report.purged_content += 1,
                        Some(salted) => {
                            if salted.len() < CONTENT_SALT_LEN
                                || codec::content_digest(&salted) != *digest
                            {
                                report.first_failure = Some(fail(VerifyProblem::ContentMismatch));
                                break 'outer;
                            }
                        }
                    }
                }
                report.last_good_hash = record.hash;
                report.records_checked += 1;
                expected_seq += 1;
            }
        }
        // Dropping the receiver (by leaving the loop) stops the scanner early.
        scanner
            .join()
            .map_err(|_| JournalError::Storage("the verify scanner panicked".into()))?
    })?;
    if report.first_failure.is_none() && expected_seq <= head {
        report.first_failure = Some(VerifyFailure {
            seq: expected_seq,
            problem: VerifyProblem::Missing { next_found: None },
        });
    }
    Ok(report)
}

//! Chain verification: walk every record and name the first one that is wrong.
//!
//! Each record is checked on its own (it decodes, its sequence is the next one, its
//! hash matches its fields, its stream version follows the stream's previous one, its
//! content, if still present, matches the digest) and against its predecessor (its
//! `prev_hash` is the predecessor's hash). The per-record work runs on a second thread
//! while the first scans storage, so verification keeps up with a raw scan.

use std::collections::HashMap;
use std::sync::mpsc;

use crate::codec::{self, ChunkReader, CONTENT_SALT_LEN};
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
        head,
        stream_versions: HashMap::new(),
    };
    std::thread::scope(|scope| -> Result<()> {
        // The scanner reads ahead while this thread decodes and hashes.
        let (tx, rx) = mpsc::sync_channel::<Result<(u64, Vec<u8>)>>(16);
        let scanner = scope.spawn(move || {
            for chunk in storage.chunks(1) {
                let stop = match &chunk {
                    Ok((first, _)) => *first > head,
                    Err(_) => true,
                };
                if stop || tx.send(chunk).is_err() {
                    break;
                }
            }
        });
        for chunk in rx {
            let (first, bytes) = chunk?;
            if !v.check_chunk(first, &bytes)? {
                break;
            }
        }
        // Leaving the loop dropped the receiver, which stops the scanner early.
        scanner
            .join()
            .map_err(|_| JournalError::Storage("the verify scanner panicked".into()))
    })?;
    if v.report.first_failure.is_none() && v.expected_seq <= head {
        v.report.first_failure = Some(VerifyFailure {
            seq: v.expected_seq,
            problem: VerifyProblem::Missing { next_found: None },
        });
    }
    Ok(v.report)
}

struct Verifier<'s> {
    storage: &'s dyn Storage,
    report: VerifyReport,
    expected_seq: u64,
    head: u64,
    stream_versions: HashMap<String, u64>,
}

impl Verifier<'_> {
    fn fail(&mut self, problem: VerifyProblem) -> Result<bool> {
        self.report.first_failure = Some(VerifyFailure {
            seq: self.expected_seq,
            problem,
        });
        Ok(false)
    }

    /// Checks every record of a chunk; false once a failure is recorded.
    fn check_chunk(&mut self, first: u64, bytes: &[u8]) -> Result<bool> {
        if first != self.expected_seq {
            return self.fail(VerifyProblem::Missing {
                next_found: Some(first),
            });
        }
        let mut reader = match ChunkReader::new(first, bytes) {
            Ok(r) => r,
            Err(e) => return self.fail(VerifyProblem::Undecodable(e.to_string())),
        };
        loop {
            if self.expected_seq > self.head {
                return Ok(true);
            }
            let record = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(true),
                Err(e) => return self.fail(VerifyProblem::Undecodable(e.to_string())),
            };
            if record.prev_hash != self.report.last_good_hash {
                return self.fail(VerifyProblem::BrokenLink);
            }
            if record.chain_hash() != record.hash {
                return self.fail(VerifyProblem::HashMismatch);
            }
            let expected_version = match self.stream_versions.get_mut(record.stream) {
                Some(v) => {
                    *v += 1;
                    *v
                }
                None => {
                    self.stream_versions.insert(record.stream.to_owned(), 1);
                    1
                }
            };
            if record.stream_version != expected_version {
                return self.fail(VerifyProblem::StreamVersion {
                    expected: expected_version,
                    found: record.stream_version,
                });
            }
            if let Some(digest) = &record.content_digest {
                match self.storage.content(digest)? {
                    None => self.report.purged_content += 1,
                    Some(salted) => {
                        if salted.len() < CONTENT_SALT_LEN
                            || codec::content_digest(&salted) != *digest
                        {
                            return self.fail(VerifyProblem::ContentMismatch);
                        }
                    }
                }
            }
            self.report.last_good_hash = record.hash;
            self.report.records_checked += 1;
            self.expected_seq += 1;
        }
    }
}

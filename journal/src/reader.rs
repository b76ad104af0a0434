//! Reading the journal: by sequence, by stream, content, verification and subscriptions.
//! A [`Reader`] never keeps the writer alive: it holds only what readers and the writer
//! share, so a subscription outliving every `Journal` handle reads on, and the writer
//! stops when the last handle goes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::codec::{self, ChunkReader};
use crate::error::{JournalError, Result};
use crate::journal::{hex, Content};
use crate::record::{Hash, Record};
use crate::shared::{Damage, Shared, WriteFailure};
use crate::storage::{ChunkIter, Storage};
use crate::subscription::Subscription;
use crate::verify::{self, VerifyReport};

/// Read access to a journal. Cheap to clone.
#[derive(Clone)]
pub struct Reader {
    shared: Arc<Shared>,
}

impl Reader {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Reader { shared }
    }

    /// The highest acknowledged sequence number (0 when empty).
    pub fn head(&self) -> u64 {
        self.shared.committed.load(Ordering::Acquire)
    }

    /// A stream's current version (0 if it has no records or the index cannot be read).
    pub fn stream_version(&self, stream: &str) -> u64 {
        let head = self.head();
        let indexed = self.shared.indexed.load(Ordering::Acquire).min(head);
        let mut version = self
            .shared
            .storage
            .stream_head(stream, indexed)
            .unwrap_or(0);
        for r in self.iter_range(indexed + 1, head).flatten() {
            if r.stream == stream {
                version = r.stream_version;
            }
        }
        version
    }

    /// Remembers an error that says stored data is damaged (see [`Reader::damage`]).
    /// A storage error while writes are refused after a storage failure is that
    /// failure's consequence (sled fails reads too once its disk is full), not damage.
    fn note(&self, e: &JournalError, seq: Option<u64>) {
        if !e.is_damage() {
            return;
        }
        if matches!(e, JournalError::Storage(_))
            && self.shared.poison().is_some_and(|p| p.recoverable)
        {
            return;
        }
        let seq = match e {
            JournalError::Corrupt { seq, .. } | JournalError::UnsupportedFormat { seq, .. } => {
                Some(*seq)
            }
            _ => seq,
        };
        self.shared.note_damage(Damage {
            seq,
            code: e.code(),
            reason: e.to_string(),
        });
    }

    /// Passes a result through, remembering damage it reports.
    fn noted<T>(&self, r: Result<T>, seq: Option<u64>) -> Result<T> {
        if let Err(e) = &r {
            self.note(e, seq);
        }
        r
    }

    /// The first damage any read or verification of this journal ran into since it was
    /// opened (a record that does not decode, does not verify, or cannot be read), if
    /// any: a running server reports it as degraded health.
    pub fn damage(&self) -> Option<Damage> {
        self.shared
            .damage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Set while appends are refused after a storage failure (or for good on a journal
    /// opened read-only): why, and whether and when the journal retries by itself.
    pub fn write_failure(&self) -> Option<WriteFailure> {
        self.shared.poison().map(|p| p.view())
    }

    /// The hash of the acknowledged head record ([`crate::ZERO_HASH`] when empty).
    pub fn head_hash(&self) -> Hash {
        self.shared.committed_hash()
    }

    /// One record by sequence number.
    pub fn get(&self, seq: u64) -> Result<Option<Record>> {
        if seq == 0 || seq > self.head() {
            return Ok(None);
        }
        self.noted(read_one(self.shared.storage.as_ref(), seq), Some(seq))
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
        RangeIter {
            chunks: self.shared.storage.chunks(from.max(1)),
            current: Vec::new().into_iter(),
            from: from.max(1),
            to: to.min(self.head()),
            done: false,
        }
        .inspect(|r| {
            if let Err(e) = r {
                self.note(e, None);
            }
        })
    }

    /// A stream's records from `from_version` on (versions start at 1).
    pub fn read_stream(&self, stream: &str, from_version: u64) -> Result<Vec<Record>> {
        let head = self.head();
        // Read the watermark first: the index answers up to it, a scan does the rest,
        // so a record indexed meanwhile is neither missed nor returned twice.
        let indexed = self.shared.indexed.load(Ordering::Acquire).min(head);
        let mut out = Vec::new();
        let entries = self.noted(
            self.shared.storage.stream_entries(stream, from_version),
            None,
        )?;
        for (_, seq) in entries {
            if seq > indexed {
                break;
            }
            let record = self.get(seq)?.ok_or_else(|| JournalError::Corrupt {
                seq,
                reason: format!("indexed for stream {stream:?} but missing"),
            });
            let record = self.noted(record, Some(seq))?;
            out.push(record);
        }
        for record in self.iter_range(indexed + 1, head) {
            let record = record?;
            if record.stream == stream && record.stream_version >= from_version {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Every record from `from` on: first those on disk, then live ones as they are
    /// acknowledged, with no gap and no duplicate at the hand-over.
    pub fn subscribe(&self, from: u64) -> Subscription {
        Subscription::new(self.clone(), self.shared.head_tx.subscribe(), from.max(1))
    }

    /// Reads personal content by digest, checking it against the digest.
    pub fn content(&self, digest: &Hash) -> Result<Content> {
        let found = match self.noted(self.shared.storage.content(digest), None)? {
            None => Ok(Content::Purged),
            Some(salted) => match codec::unsalt(&salted, digest) {
                Some(content) => Ok(Content::Present(content.to_vec())),
                None => Err(JournalError::ContentCorrupt {
                    digest: hex(digest),
                }),
            },
        };
        self.noted(found, None)
    }

    /// Walks the whole chain up to the head and reports the first bad record. A bad
    /// record found is remembered as damage ([`Reader::damage`]).
    pub fn verify(&self) -> Result<VerifyReport> {
        let report = self.noted(
            verify::verify(self.shared.storage.as_ref(), self.head()),
            None,
        )?;
        if let Some(f) = &report.first_failure {
            self.shared.note_damage(Damage {
                seq: Some(f.seq),
                code: f.problem.code(),
                reason: f.to_string(),
            });
        }
        Ok(report)
    }
}

/// Reads one record by sequence number straight from storage.
pub(crate) fn read_one(storage: &dyn Storage, seq: u64) -> Result<Option<Record>> {
    let Some(chunk) = storage.chunks(seq).next() else {
        return Ok(None);
    };
    let (first, bytes) = chunk?;
    let mut reader = ChunkReader::new(first, &bytes)?;
    while let Some(r) = reader.next_record()? {
        if r.seq == seq {
            return r.to_record().map(Some);
        }
    }
    Ok(None)
}

/// Records of a sequence range, decoded chunk by chunk.
struct RangeIter<'a> {
    chunks: ChunkIter<'a>,
    current: std::vec::IntoIter<Record>,
    from: u64,
    to: u64,
    done: bool,
}

impl RangeIter<'_> {
    fn decode_chunk(&mut self, first: u64, bytes: &[u8]) -> Result<()> {
        let mut reader = ChunkReader::new(first, bytes)?;
        let mut out = Vec::new();
        while let Some(r) = reader.next_record()? {
            if r.seq > self.to {
                self.done = true;
                break;
            }
            if r.seq >= self.from {
                if r.seq != self.from {
                    return Err(JournalError::Corrupt {
                        seq: self.from,
                        reason: format!("missing; the next stored record is {}", r.seq),
                    });
                }
                out.push(r.to_record()?);
                self.from += 1;
            }
        }
        self.current = out.into_iter();
        Ok(())
    }
}

impl Iterator for RangeIter<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.current.next() {
                return Some(Ok(r));
            }
            if self.done || self.from > self.to {
                return None;
            }
            let Some(next) = self.chunks.next() else {
                self.done = true;
                return Some(Err(JournalError::Corrupt {
                    seq: self.from,
                    reason: "acknowledged but not found in storage".into(),
                }));
            };
            match next {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok((first, bytes)) => {
                    if first > self.to {
                        self.done = true;
                        return Some(Err(JournalError::Corrupt {
                            seq: self.from,
                            reason: "acknowledged but not found in storage".into(),
                        }));
                    }
                    if let Err(e) = self.decode_chunk(first, &bytes) {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            }
        }
    }
}

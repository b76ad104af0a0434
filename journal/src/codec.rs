//! The on-disk format and the canonical hash.
//!
//! Records are stored in chunks: every group commit writes its records as one or more
//! chunk values keyed by the first sequence number they hold. A chunk is one format byte
//! followed by frames, each a little-endian u32 length and the bincode encoding of a
//! versioned storage struct. Writing one value per group instead of one per record keeps
//! the storage engine's per-key work off the durable path.
//!
//! The hash is computed over a canonical, length-prefixed byte layout of the fields, not
//! over the storage encoding, so the storage format can evolve while old chains verify.

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::error::{JournalError, Result};
use crate::record::{Hash, Metadata, Record};

/// The newest chunk format this build writes and reads.
pub(crate) const CHUNK_FORMAT: u8 = 1;

/// A chunk holding more than one record never grows past this size; a single record
/// larger than it gets a chunk of its own. Small enough that a storage node of 17
/// full chunks stays under sled's 2 MiB blob threshold (see `storage::sled_backend`).
pub(crate) const MAX_CHUNK_BYTES: usize = 64 * 1024;

/// Storage form of a record, format 1, borrowed from a record or from chunk bytes.
/// Never reorder or change these fields: add a new format instead.
#[derive(Serialize, Deserialize)]
pub(crate) struct RecordV1<'a> {
    pub seq: u64,
    #[serde(borrow)]
    pub stream: &'a str,
    pub stream_version: u64,
    pub timestamp_micros: i64,
    pub event_type: &'a str,
    pub schema_version: u16,
    #[serde(with = "serde_bytes")]
    pub payload: &'a [u8],
    pub content_digest: Option<Hash>,
    pub meta: MetaV1<'a>,
    pub prev_hash: Hash,
    pub hash: Hash,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct MetaV1<'a> {
    #[serde(borrow)]
    pub actor: Option<&'a str>,
    #[serde(borrow)]
    pub gateway: Option<&'a str>,
    #[serde(borrow)]
    pub protocol: Option<&'a str>,
    #[serde(borrow)]
    pub remote_addr: Option<&'a str>,
    #[serde(borrow)]
    pub correlation_id: Option<&'a str>,
    #[serde(borrow)]
    pub causation_id: Option<&'a str>,
    #[serde(borrow)]
    pub authorized_by: Option<&'a str>,
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

impl<'a> RecordV1<'a> {
    pub fn of(r: &'a Record) -> Self {
        RecordV1 {
            seq: r.seq,
            stream: &r.stream,
            stream_version: r.stream_version,
            timestamp_micros: r.timestamp.timestamp_micros(),
            event_type: &r.event_type,
            schema_version: r.schema_version,
            payload: &r.payload,
            content_digest: r.content_digest,
            meta: MetaV1 {
                actor: r.meta.actor.as_deref(),
                gateway: r.meta.gateway.as_deref(),
                protocol: r.meta.protocol.as_deref(),
                remote_addr: r.meta.remote_addr.as_deref(),
                correlation_id: r.meta.correlation_id.as_deref(),
                causation_id: r.meta.causation_id.as_deref(),
                authorized_by: r.meta.authorized_by.as_deref(),
            },
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }

    /// An owned record; fails only on a timestamp outside chrono's range.
    pub fn to_record(&self) -> Result<Record> {
        let timestamp =
            DateTime::from_timestamp_micros(self.timestamp_micros).ok_or_else(|| {
                JournalError::Corrupt {
                    seq: self.seq,
                    reason: format!("timestamp {} out of range", self.timestamp_micros),
                }
            })?;
        let own = |s: Option<&str>| s.map(str::to_owned);
        Ok(Record {
            seq: self.seq,
            stream: self.stream.to_owned(),
            stream_version: self.stream_version,
            timestamp,
            event_type: self.event_type.to_owned(),
            schema_version: self.schema_version,
            payload: self.payload.to_vec(),
            content_digest: self.content_digest,
            meta: Metadata {
                actor: own(self.meta.actor),
                gateway: own(self.meta.gateway),
                protocol: own(self.meta.protocol),
                remote_addr: own(self.meta.remote_addr),
                correlation_id: own(self.meta.correlation_id),
                causation_id: own(self.meta.causation_id),
                authorized_by: own(self.meta.authorized_by),
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }

    /// The chain hash: H(domain, prev_hash, seq, every other field), each variable-length
    /// field length-prefixed so that no two layouts collide.
    pub fn chain_hash(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(b"conclave.journal.record.v1\0");
        h.update(&self.prev_hash);
        h.update(&self.seq.to_le_bytes());
        bytes(&mut h, self.stream.as_bytes());
        h.update(&self.stream_version.to_le_bytes());
        h.update(&self.timestamp_micros.to_le_bytes());
        bytes(&mut h, self.event_type.as_bytes());
        h.update(&self.schema_version.to_le_bytes());
        bytes(&mut h, self.payload);
        match &self.content_digest {
            Some(d) => {
                h.update(&[1]);
                h.update(d);
            }
            None => {
                h.update(&[0]);
            }
        }
        let m = &self.meta;
        for field in [
            m.actor,
            m.gateway,
            m.protocol,
            m.remote_addr,
            m.correlation_id,
            m.causation_id,
            m.authorized_by,
        ] {
            match field {
                Some(s) => {
                    h.update(&[1]);
                    bytes(&mut h, s.as_bytes());
                }
                None => {
                    h.update(&[0]);
                }
            }
        }
        *h.finalize().as_bytes()
    }
}

fn bytes(h: &mut blake3::Hasher, b: &[u8]) {
    h.update(&(b.len() as u64).to_le_bytes());
    h.update(b);
}

/// The chain hash of an owned record: what `Record::hash` must equal. Public so that
/// tools outside the journal (bundle verification) recompute it exactly, without a copy
/// of the layout that could drift.
pub fn chain_hash(r: &Record) -> Hash {
    RecordV1::of(r).chain_hash()
}

/// Builds chunk values from consecutive records.
pub(crate) struct ChunkWriter {
    chunks: Vec<(u64, Vec<u8>)>,
}

impl ChunkWriter {
    pub fn new() -> Self {
        ChunkWriter { chunks: Vec::new() }
    }

    /// Appends a record, starting a new chunk when it would not fit in the current one.
    pub fn push(&mut self, r: &Record) -> Result<()> {
        if self.chunks.is_empty() {
            self.chunks.push((r.seq, vec![CHUNK_FORMAT]));
        }
        let Some((_, out)) = self.chunks.last_mut() else {
            return Err(JournalError::InvalidRecord("no chunk to write to".into()));
        };
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        bincode::serde::encode_into_std_write(RecordV1::of(r), out, config())
            .map_err(|e| JournalError::InvalidRecord(format!("cannot encode: {e}")))?;
        let len = u32::try_from(out.len() - len_at - 4)
            .map_err(|_| JournalError::InvalidRecord("record larger than 4 GiB".into()))?;
        out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        // Over the limit with earlier records in it: move this record to a new chunk.
        if out.len() > MAX_CHUNK_BYTES && len_at > 1 {
            let mut moved = vec![CHUNK_FORMAT];
            moved.extend_from_slice(&out[len_at..]);
            out.truncate(len_at);
            self.chunks.push((r.seq, moved));
        }
        Ok(())
    }

    /// Where the writer stands, to undo a request that fails half-way.
    pub fn mark(&self) -> (usize, usize) {
        (
            self.chunks.len(),
            self.chunks.last().map_or(0, |(_, b)| b.len()),
        )
    }

    /// Drops everything pushed since `mark`.
    pub fn rollback(&mut self, (count, last_len): (usize, usize)) {
        self.chunks.truncate(count);
        if let Some((_, bytes)) = self.chunks.last_mut() {
            bytes.truncate(last_len);
        }
    }

    pub fn finish(self) -> Vec<(u64, Vec<u8>)> {
        self.chunks
    }
}

/// Walks the records of one chunk. Every error names the sequence number it was
/// expecting, which is the record that is damaged.
pub(crate) struct ChunkReader<'a> {
    rest: &'a [u8],
    next_seq: u64,
    /// The whole chunk's length, so that positions can be given as offsets in it.
    len: usize,
}

impl<'a> ChunkReader<'a> {
    /// Starts reading a chunk stored under `first_seq`.
    pub fn new(first_seq: u64, bytes: &'a [u8]) -> Result<Self> {
        let (&format, rest) = bytes.split_first().ok_or(JournalError::Corrupt {
            seq: first_seq,
            reason: "empty chunk".into(),
        })?;
        if format != CHUNK_FORMAT {
            if format > CHUNK_FORMAT {
                return Err(JournalError::UnsupportedFormat {
                    seq: first_seq,
                    version: format,
                    supported: CHUNK_FORMAT,
                });
            }
            return Err(JournalError::Corrupt {
                seq: first_seq,
                reason: format!("unknown chunk format {format}"),
            });
        }
        Ok(ChunkReader {
            rest,
            next_seq: first_seq,
            len: bytes.len(),
        })
    }

    /// Where the next record's frame starts, as a byte offset in the chunk.
    pub fn offset(&self) -> usize {
        self.len - self.rest.len()
    }

    /// The next record, borrowed from the chunk; `None` at the end.
    pub fn next_record(&mut self) -> Result<Option<RecordV1<'a>>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let seq = self.next_seq;
        let corrupt = |reason: String| JournalError::Corrupt { seq, reason };
        if self.rest.len() < 4 {
            return Err(corrupt("truncated frame length".into()));
        }
        let (len, rest) = self.rest.split_at(4);
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(len);
        let len = u32::from_le_bytes(len_bytes) as usize;
        if len > rest.len() {
            return Err(corrupt(format!(
                "frame of {len} bytes but only {} remain",
                rest.len()
            )));
        }
        let (body, rest) = rest.split_at(len);
        let (record, used): (RecordV1<'a>, usize) =
            bincode::serde::borrow_decode_from_slice(body, config())
                .map_err(|e| corrupt(e.to_string()))?;
        if used != body.len() {
            return Err(corrupt(format!("{} trailing bytes", body.len() - used)));
        }
        if record.seq != seq {
            return Err(corrupt(format!("stored as {seq} but says {}", record.seq)));
        }
        self.rest = rest;
        self.next_seq += 1;
        Ok(Some(record))
    }
}

/// Digest of salted personal content: the salt is stored with the content and purged with
/// it, so a purged digest cannot be confirmed by guessing the text.
pub(crate) fn content_digest(salted: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"conclave.journal.content.v1\0");
    h.update(salted);
    *h.finalize().as_bytes()
}

/// Length of the random salt stored in front of personal content.
pub(crate) const CONTENT_SALT_LEN: usize = 16;

/// The content inside stored `salt || content`, if it matches `digest`.
pub(crate) fn unsalt<'a>(salted: &'a [u8], digest: &Hash) -> Option<&'a [u8]> {
    if salted.len() < CONTENT_SALT_LEN || content_digest(salted) != *digest {
        return None;
    }
    Some(&salted[CONTENT_SALT_LEN..])
}

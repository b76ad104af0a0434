//! The record types: what callers append and what the journal hands back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::MAX_STREAM_BYTES;
use crate::error::{JournalError, Result};

/// A blake3 digest (record hashes, content digests).
pub type Hash = [u8; 32];

/// The `prev_hash` of the first record.
pub const ZERO_HASH: Hash = [0u8; 32];

/// Who and what caused a record; every field is optional because the journal is generic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The identity that acted (an address, `admin`, `service:<name>`, `system`).
    pub actor: Option<String>,
    /// The gateway the command came through (`web`, `nats`, `sip`, `xmpp`, `cli`, `engine`).
    pub gateway: Option<String>,
    /// The protocol spoken on that gateway (`http`, `sip`, `xmpp`, `nats`, ...).
    pub protocol: Option<String>,
    /// The remote address, already obfuscated if policy says so.
    pub remote_addr: Option<String>,
    /// Groups every record caused by one request.
    pub correlation_id: Option<String>,
    /// The record or message that caused this one.
    pub causation_id: Option<String>,
    /// The credential that authorized the command when it is not the actor's own: an
    /// operator (`admin`) or a service (`service:<name>`) acting as a person. Forensics
    /// must be able to tell a person's own action from one made in their name.
    pub authorized_by: Option<String>,
}

/// What a caller hands to [`crate::Journal::append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// The aggregate this record belongs to, e.g. `room:lobby`. Non-empty.
    pub stream: String,
    /// The event type name, e.g. `room_create`. Non-empty.
    pub event_type: String,
    /// The schema version of `payload` for this event type.
    pub schema_version: u16,
    /// When it happened, as the caller's clock says (the journal never reads a clock).
    pub timestamp: DateTime<Utc>,
    /// The encoded event, opaque to the journal.
    pub payload: Vec<u8>,
    /// Personal content kept in the purgeable side store; the chain covers its digest.
    pub content: Option<Vec<u8>>,
    pub meta: Metadata,
}

impl NewRecord {
    /// Checks what the journal checks before it accepts the record (non-empty names,
    /// stream name length, total size against `max_bytes`), so that a caller batching
    /// several requests can refuse a bad one alone.
    pub fn validate(&self, max_bytes: usize) -> Result<()> {
        let r = self;
        if r.stream.is_empty() {
            return Err(JournalError::InvalidRecord("empty stream name".into()));
        }
        if r.stream.len() > MAX_STREAM_BYTES {
            return Err(JournalError::InvalidRecord(format!(
                "stream name longer than {MAX_STREAM_BYTES} bytes"
            )));
        }
        if r.event_type.is_empty() {
            return Err(JournalError::InvalidRecord("empty event type".into()));
        }
        let m = &r.meta;
        let meta = [
            &m.actor,
            &m.gateway,
            &m.protocol,
            &m.remote_addr,
            &m.correlation_id,
            &m.causation_id,
            &m.authorized_by,
        ]
        .iter()
        .map(|field| field.as_ref().map_or(0, String::len))
        .sum::<usize>();
        let size = r.stream.len()
            + r.event_type.len()
            + r.payload.len()
            + r.content.as_ref().map_or(0, Vec::len)
            + meta;
        if size > max_bytes {
            return Err(JournalError::InvalidRecord(format!(
                "record of {size} bytes exceeds the limit of {max_bytes}"
            )));
        }
        Ok(())
    }
}

/// The stream version an append expects, checked atomically with the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream's current version must be exactly this.
    Exact(u64),
}

impl ExpectedVersion {
    pub(crate) fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

/// One atomic append: every record is written, or none is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendRequest {
    /// Version expectations, checked before anything is written.
    pub expected: Vec<(String, ExpectedVersion)>,
    /// If set, the journal's head must be exactly this when the records are written: a
    /// single writer that pipelines appends uses it so that one failed append makes every
    /// later one fail too, instead of landing on top of a state that never was.
    pub expected_head: Option<u64>,
    pub records: Vec<NewRecord>,
}

impl AppendRequest {
    /// An append of `records` to one stream expecting `expected`.
    pub fn to_stream(
        stream: impl Into<String>,
        expected: ExpectedVersion,
        records: Vec<NewRecord>,
    ) -> Self {
        AppendRequest {
            expected: vec![(stream.into(), expected)],
            expected_head: None,
            records,
        }
    }
}

/// A stored record, as read back or as acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Global sequence number: gap-free, starting at 1.
    pub seq: u64,
    pub stream: String,
    /// Version within the stream: gap-free, starting at 1.
    pub stream_version: u64,
    pub timestamp: DateTime<Utc>,
    pub event_type: String,
    pub schema_version: u16,
    pub payload: Vec<u8>,
    /// Digest of the personal content in the side store, if the record had any.
    pub content_digest: Option<Hash>,
    pub meta: Metadata,
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// What a successful append acknowledges: the records as stored, durable per sync mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub records: Vec<Record>,
}

impl Appended {
    /// Sequence number of the last record written (0 for an empty append).
    pub fn last_seq(&self) -> u64 {
        self.records.last().map_or(0, |r| r.seq)
    }
}

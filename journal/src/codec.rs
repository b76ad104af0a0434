//! The on-disk record format and the canonical hash.
//!
//! A stored record is one format byte followed by the bincode encoding of a versioned
//! storage struct. The hash is computed over a canonical, length-prefixed byte layout of
//! the fields, not over the storage encoding, so the storage format can evolve while old
//! chains keep verifying.

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::error::{JournalError, Result};
use crate::record::{Hash, Metadata, Record};

/// The newest record storage format this build writes and reads.
pub(crate) const RECORD_FORMAT: u8 = 1;

/// Storage form of a record, format 1. Never reorder or change these fields.
#[derive(Serialize, Deserialize)]
struct StoredRecordV1 {
    seq: u64,
    stream: String,
    stream_version: u64,
    timestamp_micros: i64,
    event_type: String,
    schema_version: u16,
    payload: Vec<u8>,
    content_digest: Option<Hash>,
    meta: StoredMetaV1,
    prev_hash: Hash,
    hash: Hash,
}

#[derive(Serialize, Deserialize)]
struct StoredMetaV1 {
    actor: Option<String>,
    gateway: Option<String>,
    protocol: Option<String>,
    remote_addr: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a record for storage.
pub(crate) fn encode(r: &Record) -> Result<Vec<u8>> {
    let stored = StoredRecordV1 {
        seq: r.seq,
        stream: r.stream.clone(),
        stream_version: r.stream_version,
        timestamp_micros: r.timestamp.timestamp_micros(),
        event_type: r.event_type.clone(),
        schema_version: r.schema_version,
        payload: r.payload.clone(),
        content_digest: r.content_digest,
        meta: StoredMetaV1 {
            actor: r.meta.actor.clone(),
            gateway: r.meta.gateway.clone(),
            protocol: r.meta.protocol.clone(),
            remote_addr: r.meta.remote_addr.clone(),
            correlation_id: r.meta.correlation_id.clone(),
            causation_id: r.meta.causation_id.clone(),
        },
        prev_hash: r.prev_hash,
        hash: r.hash,
    };
    let mut out = Vec::with_capacity(64 + r.payload.len());
    out.push(RECORD_FORMAT);
    bincode::serde::encode_into_std_write(&stored, &mut out, config())
        .map_err(|e| JournalError::InvalidRecord(format!("cannot encode: {e}")))?;
    Ok(out)
}

/// Decodes stored bytes found under key `key_seq`; every failure names that sequence.
pub(crate) fn decode(key_seq: u64, bytes: &[u8]) -> Result<Record> {
    let corrupt = |reason: String| JournalError::Corrupt {
        seq: key_seq,
        reason,
    };
    let (&format, body) = bytes
        .split_first()
        .ok_or_else(|| corrupt("empty record".into()))?;
    if format != RECORD_FORMAT {
        if format > RECORD_FORMAT {
            return Err(JournalError::UnsupportedFormat {
                seq: key_seq,
                version: format,
                supported: RECORD_FORMAT,
            });
        }
        return Err(corrupt(format!("unknown record format {format}")));
    }
    let (s, used): (StoredRecordV1, usize) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| corrupt(e.to_string()))?;
    if used != body.len() {
        return Err(corrupt(format!(
            "{} trailing bytes after the record",
            body.len() - used
        )));
    }
    if s.seq != key_seq {
        return Err(corrupt(format!(
            "stored under sequence {key_seq} but says {}",
            s.seq
        )));
    }
    let timestamp = DateTime::from_timestamp_micros(s.timestamp_micros)
        .ok_or_else(|| corrupt(format!("timestamp {} out of range", s.timestamp_micros)))?;
    Ok(Record {
        seq: s.seq,
        stream: s.stream,
        stream_version: s.stream_version,
        timestamp,
        event_type: s.event_type,
        schema_version: s.schema_version,
        payload: s.payload,
        content_digest: s.content_digest,
        meta: Metadata {
            actor: s.meta.actor,
            gateway: s.meta.gateway,
            protocol: s.meta.protocol,
            remote_addr: s.meta.remote_addr,
            correlation_id: s.meta.correlation_id,
            causation_id: s.meta.causation_id,
        },
        prev_hash: s.prev_hash,
        hash: s.hash,
    })
}

/// The chain hash of a record: H(domain, prev_hash, seq, every other field), each
/// variable-length field length-prefixed so no two field layouts collide.
pub(crate) fn chain_hash(r: &Record) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"conclave.journal.record.v1\0");
    h.update(&r.prev_hash);
    h.update(&r.seq.to_le_bytes());
    bytes(&mut h, r.stream.as_bytes());
    h.update(&r.stream_version.to_le_bytes());
    h.update(&r.timestamp.timestamp_micros().to_le_bytes());
    bytes(&mut h, r.event_type.as_bytes());
    h.update(&r.schema_version.to_le_bytes());
    bytes(&mut h, &r.payload);
    match &r.content_digest {
        Some(d) => {
            h.update(&[1]);
            h.update(d);
        }
        None => {
            h.update(&[0]);
        }
    }
    for field in [
        &r.meta.actor,
        &r.meta.gateway,
        &r.meta.protocol,
        &r.meta.remote_addr,
        &r.meta.correlation_id,
        &r.meta.causation_id,
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

fn bytes(h: &mut blake3::Hasher, b: &[u8]) {
    h.update(&(b.len() as u64).to_le_bytes());
    h.update(b);
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

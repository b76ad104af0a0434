//! Helpers shared by the journal's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use conclave_journal::storage::SledStorage;
use conclave_journal::{
    AppendRequest, ExpectedVersion, Journal, JournalConfig, Metadata, NewRecord, SyncMode,
};

pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

pub fn rec(stream: &str, ty: &str, payload: &[u8]) -> NewRecord {
    NewRecord {
        stream: stream.into(),
        event_type: ty.into(),
        schema_version: 1,
        timestamp: at(0),
        payload: payload.to_vec(),
        content: None,
        meta: Metadata {
            actor: Some("sip:alice@example.org".into()),
            gateway: Some("test".into()),
            protocol: Some("none".into()),
            remote_addr: None,
            correlation_id: Some("c1".into()),
            causation_id: None,
            authorized_by: None,
        },
    }
}

pub fn one(stream: &str, expected: ExpectedVersion, payload: &[u8]) -> AppendRequest {
    AppendRequest::to_stream(stream, expected, vec![rec(stream, "test_event", payload)])
}

pub fn config(sync: SyncMode) -> JournalConfig {
    JournalConfig {
        sync,
        cache_capacity: 8 * 1024 * 1024,
        ..JournalConfig::default()
    }
}

/// Opens a journal and keeps a typed handle on its sled storage for tampering.
pub fn open_raw(dir: &std::path::Path) -> (Journal, Arc<SledStorage>) {
    let storage = Arc::new(SledStorage::open(dir, 8 * 1024 * 1024).unwrap());
    let journal = Journal::with_storage(storage.clone(), config(SyncMode::Always)).unwrap();
    (journal, storage)
}

/// The sled key of the chunk that starts at `seq` (one record per chunk when appends
/// are made one at a time).
pub fn record_key(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'g';
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

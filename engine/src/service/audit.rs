//! The audit view: every journaled event, denials included, filtered by room, actor,
//! subject, type and time range, with the metadata that says who did it from where.
//!
//! It reads the journal directly rather than keeping a second copy: a room filter goes
//! through the journal's stream index, a time range is found by binary search (the
//! engine never lets journal time go backwards), and the remaining filters are applied
//! while decoding.

use chrono::{DateTime, SecondsFormat, Utc};
use conclave_journal::{Journal, Record};
use serde::Serialize;
use serde_json::Value;

use super::{from_record, EngineError};
use crate::json::event_json;

/// What to look for. Every filter is optional; results are in journal order.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only events of this room's stream.
    pub room: Option<String>,
    /// Only events by this actor (`admin`, `service:clock`, an address).
    pub actor: Option<String>,
    /// Only events about this principal (an address or `account:<id>`), wherever it
    /// appears in the event's data.
    pub subject: Option<String>,
    /// Only this event type (`room_join`, `peer_role`, ...).
    pub event_type: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only records after this sequence number (for paging).
    pub after_seq: u64,
    /// At most this many entries (default 1000 when 0).
    pub limit: usize,
}

/// One audit line.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: String,
    pub stream: String,
    pub event_type: String,
    pub schema_version: u16,
    pub actor: Option<String>,
    pub gateway: Option<String>,
    pub protocol: Option<String>,
    /// As stored: a keyed hash when IP obfuscation is on.
    pub remote_addr: Option<String>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// Who authorized it when not the actor (an operator acting as a person).
    pub authorized_by: Option<String>,
    /// The event's JSON view (see [`crate::json::event_json`]).
    pub event: Value,
}

/// Runs a query against a journal.
pub fn query(journal: &Journal, q: &AuditQuery) -> Result<Vec<AuditEntry>, EngineError> {
    let limit = if q.limit == 0 { 1000 } else { q.limit };
    let head = journal.head();
    let mut start = q.after_seq + 1;
    if let Some(from) = q.from {
        start = start.max(first_at_or_after(journal, from, head)?);
    }
    let mut out = Vec::new();
    let mut consider = |record: Record| -> Result<bool, EngineError> {
        if q.to.is_some_and(|to| record.timestamp > to) {
            return Ok(false);
        }
        if let Some(entry) = matches(journal, q, record)? {
            out.push(entry);
        }
        Ok(out.len() < limit)
    };
    match &q.room {
        Some(room) => {
            let stream = format!("room:{room}");
            for record in journal.read_stream(&stream, 1)? {
                if record.seq < start {
                    continue;
                }
                if !consider(record)? {
                    break;
                }
            }
        }
        None => {
            for record in journal.iter_range(start, head) {
                if !consider(record?)? {
                    break;
                }
            }
        }
    }
    Ok(out)
}

fn matches(
    journal: &Journal,
    q: &AuditQuery,
    record: Record,
) -> Result<Option<AuditEntry>, EngineError> {
    if q.event_type
        .as_ref()
        .is_some_and(|t| *t != record.event_type)
    {
        return Ok(None);
    }
    if q.actor
        .as_ref()
        .is_some_and(|a| record.meta.actor.as_ref() != Some(a))
    {
        return Ok(None);
    }
    let event = event_json(&from_record(journal, &record)?);
    if let Some(subject) = &q.subject {
        if !mentions(&event["data"], subject) {
            return Ok(None);
        }
    }
    Ok(Some(AuditEntry::new(&record, event)))
}

impl AuditEntry {
    /// The audit line of a record whose event has the JSON view `event`.
    pub fn new(record: &Record, event: Value) -> Self {
        let meta = &record.meta;
        AuditEntry {
            seq: record.seq,
            at: record
                .timestamp
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            stream: record.stream.clone(),
            event_type: record.event_type.clone(),
            schema_version: record.schema_version,
            actor: meta.actor.clone(),
            gateway: meta.gateway.clone(),
            protocol: meta.protocol.clone(),
            remote_addr: meta.remote_addr.clone(),
            correlation_id: meta.correlation_id.clone(),
            causation_id: meta.causation_id.clone(),
            authorized_by: meta.authorized_by.clone(),
            event,
        }
    }
}

/// Whether a string equal to `who` appears anywhere in `v`.
pub(crate) fn mentions(v: &Value, who: &str) -> bool {
    match v {
        Value::String(s) => s == who,
        Value::Array(a) => a.iter().any(|x| mentions(x, who)),
        Value::Object(o) => o.values().any(|x| mentions(x, who)),
        _ => false,
    }
}

/// The first sequence number whose timestamp is at or after `t` (head + 1 if none).
pub fn first_at_or_after(
    journal: &Journal,
    t: DateTime<Utc>,
    head: u64,
) -> Result<u64, EngineError> {
    let (mut lo, mut hi) = (1u64, head + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match journal.get(mid)? {
            Some(r) if r.timestamp < t => lo = mid + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

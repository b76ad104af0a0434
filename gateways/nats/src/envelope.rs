//! What one journal record looks like on NATS: subject, headers and a CloudEvents 1.0
//! JSON payload (structured mode).

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::SecondsFormat;
use conclave_engine::json::event_json;
use conclave_engine::service::{from_record, EngineError};
use conclave_engine::Event;
use conclave_journal::{Reader, Record};
use serde_json::{json, Map, Value};

use crate::subject::{encode_token, event_subject};

/// Header names Conclave sets on every event message.
pub mod headers {
    /// JetStream deduplication: the journal sequence.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// The global journal sequence (decimal).
    pub const SEQ: &str = "Conclave-Seq";
    /// The journal stream (`room:lobby`); percent-escaped if it held control characters.
    pub const STREAM: &str = "Conclave-Stream";
    /// The record's version within its stream (decimal).
    pub const STREAM_VERSION: &str = "Conclave-Stream-Version";
    /// The event type (`room_create`).
    pub const EVENT_TYPE: &str = "Conclave-Event-Type";
    /// `application/cloudevents+json; charset=utf-8`.
    pub const CONTENT_TYPE: &str = "Content-Type";
    /// Request header: the service credential.
    pub const TOKEN: &str = "Conclave-Token";
    /// Request header: act as this identity (if the credential allows it).
    pub const ACT_AS: &str = "Conclave-Act-As";
    /// Request header: correlation id to record on the events.
    pub const CORRELATION_ID: &str = "Conclave-Correlation-Id";
    /// Request header: causation id to record on the events.
    pub const CAUSATION_ID: &str = "Conclave-Causation-Id";
}

/// The CloudEvents media type of the payload.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json; charset=utf-8";

/// One record ready to publish.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub seq: u64,
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Builds the message for `record`. A record the engine cannot decode (a newer schema,
/// damage) is still published, with `data.data = null` and `data.decode_error`, so that
/// the outbox never stalls and never skips a sequence number.
pub fn envelope(journal: &Reader, prefix: &str, source: &str, record: &Record) -> Envelope {
    envelope_of(
        prefix,
        source,
        record,
        from_record(journal, record).as_ref(),
    )
}

/// [`envelope`] for a record whose event is decoded already (the committed feed's).
pub fn envelope_of(
    prefix: &str,
    source: &str,
    record: &Record,
    event: Result<&Event, &EngineError>,
) -> Envelope {
    let mut data = match event {
        Ok(event) => event_json(event),
        Err(e) => json!({
            "type": record.event_type,
            "at": record.timestamp.to_rfc3339_opts(SecondsFormat::Micros, true),
            "actor": record.meta.actor,
            "stream": record.stream,
            "data": Value::Null,
            "decode_error": {"code": e.code(), "message": e.to_string()},
        }),
    };
    let m = &record.meta;
    if let Value::Object(obj) = &mut data {
        obj.insert(
            "meta".into(),
            json!({
                "actor": m.actor,
                "origin": {
                    "gateway": m.gateway,
                    "protocol": m.protocol,
                    "remote_addr": m.remote_addr,
                },
                "correlation_id": m.correlation_id,
                "causation_id": m.causation_id,
                "authorized_by": m.authorized_by,
            }),
        );
        obj.insert("seq".into(), json!(record.seq));
        obj.insert("stream_version".into(), json!(record.stream_version));
    }
    let mut ce = Map::new();
    ce.insert("specversion".into(), json!("1.0"));
    ce.insert("id".into(), json!(record.seq.to_string()));
    ce.insert("source".into(), json!(source));
    ce.insert(
        "type".into(),
        json!(format!(
            "org.conclave.{}.v{}",
            record.event_type, record.schema_version
        )),
    );
    ce.insert(
        "time".into(),
        json!(record
            .timestamp
            .to_rfc3339_opts(SecondsFormat::Micros, true)),
    );
    ce.insert("subject".into(), json!(record.stream));
    ce.insert("datacontenttype".into(), json!("application/json"));
    // CloudEvents integers are 32-bit, journal sequences are not: decimal strings.
    ce.insert("sequence".into(), json!(record.seq.to_string()));
    ce.insert(
        "streamversion".into(),
        json!(record.stream_version.to_string()),
    );
    if let Some(c) = &m.correlation_id {
        ce.insert("correlationid".into(), json!(c));
    }
    ce.insert("data".into(), data);
    // Serializing a Value into a Vec cannot fail.
    let payload = serde_json::to_vec(&Value::Object(ce)).unwrap_or_default();

    let seq = record.seq.to_string();
    let mut h = HeaderMap::new();
    h.insert(headers::MSG_ID, seq.as_str());
    h.insert(headers::SEQ, seq.as_str());
    h.insert(headers::STREAM, header_safe(&record.stream).as_str());
    h.insert(
        headers::STREAM_VERSION,
        record.stream_version.to_string().as_str(),
    );
    h.insert(
        headers::EVENT_TYPE,
        header_safe(&record.event_type).as_str(),
    );
    h.insert(headers::CONTENT_TYPE, CLOUDEVENTS_JSON);
    Envelope {
        seq: record.seq,
        subject: event_subject(prefix, &record.stream, &record.event_type),
        headers: h,
        payload: payload.into(),
    }
}

/// Header values may not hold control characters (they would end the header line).
fn header_safe(s: &str) -> String {
    if s.chars().any(char::is_control) {
        encode_token(s)
    } else {
        s.to_owned()
    }
}

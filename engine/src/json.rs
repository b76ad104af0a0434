//! The JSON view of events, shared by every surface that shows them (REST, NATS,
//! reports), so they all say the same thing in the same words.

use chrono::SecondsFormat;
use serde_json::{json, Value};

use crate::event::Event;

/// `{"type", "at", "actor", "stream", "data"}`: `type` is the stable event type name,
/// `at` is RFC 3339 UTC with microseconds, `data` the event's own fields.
pub fn event_json(e: &Event) -> Value {
    let data = serde_json::to_value(&e.kind)
        .unwrap_or_else(|err| json!({ "unrepresentable": err.to_string() }));
    json!({
        "type": e.type_name(),
        "at": e.at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "actor": e.actor.to_string(),
        "stream": e.stream().to_string(),
        "data": data,
    })
}

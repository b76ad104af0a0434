//! What the gateway reports about itself: shared counters the tasks update and a
//! snapshot ([`NatsStatus`]) for `/about/health` and `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use conclave_journal::Journal;
use serde::Serialize;
use serde_json::{json, Value};

/// Counters shared by the publisher, the command responder and the status readers.
#[derive(Default)]
pub(crate) struct Shared {
    pub connected: AtomicBool,
    /// Last journal sequence the server acknowledged (JetStream) or received (core).
    pub cursor: AtomicU64,
    /// Last cursor durably written to the cursor file.
    pub persisted: AtomicU64,
    pub published: AtomicU64,
    pub duplicates: AtomicU64,
    pub publish_errors: AtomicU64,
    pub reconnects: AtomicU64,
    pub commands: AtomicU64,
    pub commands_rejected: AtomicU64,
    pub last_error: Mutex<Option<LastError>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    pub code: String,
    pub message: String,
    pub at: DateTime<Utc>,
}

impl Shared {
    pub fn error(&self, code: &str, message: String) {
        let mut g = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some(LastError {
            code: code.to_owned(),
            message,
            at: Utc::now(),
        });
    }
}

/// A snapshot of the gateway's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NatsStatus {
    /// Whether the client is connected to a NATS server right now.
    pub connected: bool,
    /// Whether events go to JetStream (acknowledged) or core NATS.
    pub jetstream: bool,
    /// Last journal sequence published and acknowledged.
    pub cursor: u64,
    /// Last cursor durably stored (publishing resumes after it on restart).
    pub persisted_cursor: u64,
    /// The journal head when the snapshot was taken.
    pub head: u64,
    /// `head - cursor`: records not yet published.
    pub lag: u64,
    pub published_total: u64,
    /// Publishes JetStream reported as duplicates (expected after a restart).
    pub duplicates_total: u64,
    pub publish_errors_total: u64,
    pub reconnects_total: u64,
    pub commands_total: u64,
    pub commands_rejected_total: u64,
    pub last_error: Option<LastError>,
}

impl NatsStatus {
    /// The `nats` section of `/about/health`.
    pub fn health_json(&self) -> Value {
        json!({
            "status": if self.connected { "ok" } else { "degraded" },
            "connected": self.connected,
            "jetstream": self.jetstream,
            "cursor": self.cursor,
            "persisted_cursor": self.persisted_cursor,
            "head": self.head,
            "lag": self.lag,
            "last_error": self.last_error.as_ref().map(|e| json!({
                "code": e.code,
                "message": e.message,
                "at": e.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            })),
        })
    }

    /// Prometheus text exposition lines (with HELP and TYPE), ending in a newline.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        };
        metric(
            "conclave_nats_connected",
            "gauge",
            "1 if connected to a NATS server.",
            u64::from(self.connected),
        );
        metric(
            "conclave_nats_cursor",
            "gauge",
            "Last journal sequence acknowledged by NATS.",
            self.cursor,
        );
        metric(
            "conclave_nats_lag_records",
            "gauge",
            "Journal records not yet published (head - cursor).",
            self.lag,
        );
        metric(
            "conclave_nats_published_total",
            "counter",
            "Records published and acknowledged.",
            self.published_total,
        );
        metric(
            "conclave_nats_duplicates_total",
            "counter",
            "Publishes JetStream dropped as duplicates.",
            self.duplicates_total,
        );
        metric(
            "conclave_nats_publish_errors_total",
            "counter",
            "Failed publish attempts (retried).",
            self.publish_errors_total,
        );
        metric(
            "conclave_nats_reconnects_total",
            "counter",
            "Connections re-established.",
            self.reconnects_total,
        );
        metric(
            "conclave_nats_commands_total",
            "counter",
            "Command requests received over NATS.",
            self.commands_total,
        );
        metric(
            "conclave_nats_commands_rejected_total",
            "counter",
            "Command requests answered with an error.",
            self.commands_rejected_total,
        );
        out
    }
}

/// A cheap, clonable reader of the gateway's status (what `/about/health` and
/// `/metrics` hold on to).
#[derive(Clone)]
pub struct StatusReader {
    pub(crate) shared: Arc<Shared>,
    pub(crate) journal: Journal,
    pub(crate) jetstream: bool,
}

impl StatusReader {
    pub fn status(&self) -> NatsStatus {
        let s = &self.shared;
        let cursor = s.cursor.load(Ordering::Acquire);
        let head = self.journal.head();
        NatsStatus {
            connected: s.connected.load(Ordering::Relaxed),
            jetstream: self.jetstream,
            cursor,
            persisted_cursor: s.persisted.load(Ordering::Relaxed),
            head,
            lag: head.saturating_sub(cursor),
            published_total: s.published.load(Ordering::Relaxed),
            duplicates_total: s.duplicates.load(Ordering::Relaxed),
            publish_errors_total: s.publish_errors.load(Ordering::Relaxed),
            reconnects_total: s.reconnects.load(Ordering::Relaxed),
            commands_total: s.commands.load(Ordering::Relaxed),
            commands_rejected_total: s.commands_rejected.load(Ordering::Relaxed),
            last_error: s
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

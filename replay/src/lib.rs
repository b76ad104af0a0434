//! Conclave's replay crate: the journal read back for the people who audit meetings.
//!
//! Everything here is derived from the journal alone, with the engine's own `evolve`:
//! - [`index::ReplayIndex`]: state of the server or of one room as of a sequence number
//!   or a time, answered from periodic snapshots plus a short catch-up;
//! - [`diff`]: what changed in a room between two moments;
//! - [`timeline`]: the events of a room, a person (all linked identities) or a moderator;
//! - [`report`]: compliance reports (attendance, moderation, bans, invitations, denials,
//!   retention) rendered as JSON, CSV, XLSX, recutils or HTML, which also answer the
//!   forensic questions (who was there, who muted whom, why a join failed);
//! - [`verify`]: chain walk, ed25519-signed checkpoints and self-contained export
//!   bundles that a third party checks without the server;
//! - [`retention`]: log-days retention and per-person erasure, journaled.
//!
//! Results are plain serde types so that the CLI and an HTTP surface print the same JSON.

pub mod diff;
mod error;
pub mod index;
pub mod offline;
pub mod persist;
pub mod recordings;
pub mod report;
pub mod retention;
pub mod timeline;
pub mod verify;
pub mod view;
mod walk;

pub use error::{ReplayError, Result};
pub use index::{IndexConfig, PersistJob, PersistReport, ReplayIndex};
pub use walk::{decode, decode_for_state};

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

/// Parses a UTC time as the CLI and the HTTP routes take it: RFC 3339, a naive
/// date-time (taken as UTC) or a date (midnight).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            ReplayError::InvalidArgument(format!(
                "cannot read {s:?} as a UTC time (use RFC 3339, e.g. 2025-01-31T09:00:00Z)"
            ))
        })
}

/// RFC 3339 in UTC with a `Z`, microseconds: the one date format of every output.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

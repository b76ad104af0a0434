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
pub mod report;
pub mod retention;
pub mod timeline;
pub mod verify;
pub mod view;
mod walk;

pub use error::{ReplayError, Result};
pub use index::{IndexConfig, ReplayIndex};
pub use walk::{decode, decode_for_state};

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 in UTC with a `Z`, microseconds: the one date format of every output.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

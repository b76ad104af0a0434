//! Typed errors with stable codes.

use conclave_journal::JournalError;
use thiserror::Error;

pub type Result<T, E = ReplayError> = std::result::Result<T, E>;

/// Everything replay can fail with. `code()` is stable across releases.
#[derive(Debug, Clone, Error)]
pub enum ReplayError {
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("record {seq} cannot be decoded: {reason}")]
    Decode { seq: u64, reason: String },
    #[error("no journal at {path}")]
    NoJournal { path: String },
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("signing key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("bundle line {line}: {reason}")]
    Bundle { line: u64, reason: String },
    #[error("cannot render the report: {0}")]
    Render(String),
    #[error("the journal at {path} is open in a running server; stop it for this write")]
    Locked { path: String },
}

impl ReplayError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ReplayError::Journal(e) => e.code(),
            ReplayError::Decode { .. } => "replay.decode",
            ReplayError::NoJournal { .. } => "replay.no_journal",
            ReplayError::Io { .. } => "replay.io",
            ReplayError::InvalidArgument(_) => "replay.invalid_argument",
            ReplayError::Key { .. } => "replay.key",
            ReplayError::Bundle { .. } => "replay.bundle_malformed",
            ReplayError::Render(_) => "replay.render",
            ReplayError::Locked { .. } => "replay.journal_locked",
        }
    }

    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        ReplayError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}

//! Typed journal errors with stable codes.

use thiserror::Error;

pub type Result<T, E = JournalError> = std::result::Result<T, E>;

/// Everything the journal can refuse or fail with. `code()` is stable across releases.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum JournalError {
    #[error("stream {stream:?} is at version {actual}, the append expected {expected}")]
    Conflict {
        stream: String,
        expected: String,
        actual: u64,
    },
    #[error("the journal head is {actual}, the append expected {expected}")]
    HeadConflict { expected: u64, actual: u64 },
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("record {seq} is corrupt: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error(
        "record {seq} has storage format version {version}; this build reads up to {supported}"
    )]
    UnsupportedFormat {
        seq: u64,
        version: u8,
        supported: u8,
    },
    #[error("personal content {digest} does not match its digest")]
    ContentCorrupt { digest: String },
    #[error("journal layout version {found} is newer than this build supports ({supported})")]
    UnsupportedLayout { found: u32, supported: u32 },
    #[error("the journal does not hold record {acknowledged}, which was durably acknowledged (expected head: at least {acknowledged}, with that record's hash; found head: {found}): it was deleted, truncated, rolled back or replaced")]
    Truncated { acknowledged: u64, found: u64 },
    #[error("could not open the journal at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("storage error: {0}")]
    Storage(String),
    #[error("the journal stopped accepting writes after a storage failure: {0}")]
    Poisoned(String),
    #[error("the journal is closed")]
    Closed,
}

impl JournalError {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            JournalError::Conflict { .. } => "journal.conflict",
            JournalError::HeadConflict { .. } => "journal.head_conflict",
            JournalError::InvalidRecord(_) => "journal.invalid_record",
            JournalError::Corrupt { .. } => "journal.corrupt",
            JournalError::UnsupportedFormat { .. } => "journal.unsupported_format",
            JournalError::UnsupportedLayout { .. } => "journal.unsupported_layout",
            JournalError::ContentCorrupt { .. } => "journal.content_corrupt",
            JournalError::Open { .. } => "journal.open_failed",
            JournalError::Truncated { .. } => "journal.truncated",
            JournalError::Storage(_) => "journal.storage",
            JournalError::Poisoned(_) => "journal.poisoned",
            JournalError::Closed => "journal.closed",
        }
    }
}

impl JournalError {
    /// Whether this error says that stored data is damaged or unreadable (as opposed to a
    /// refused append, a closed journal or a bad argument): what makes a running journal
    /// known to be bad.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            JournalError::Corrupt { .. }
                | JournalError::UnsupportedFormat { .. }
                | JournalError::ContentCorrupt { .. }
                | JournalError::Storage(_)
        )
    }
}

impl From<sled::Error> for JournalError {
    fn from(e: sled::Error) -> Self {
        JournalError::Storage(sled_message(e))
    }
}

/// What a sled error says, in words: sled's own message for corruption prints a debug
/// form and an empty backtrace; this one says where.
pub(crate) fn sled_message(e: sled::Error) -> String {
    match e {
        sled::Error::Corruption {
            at: Some(sled::DiskPtr::Inline(offset)),
            ..
        } => format!(
            "corrupted data: sled's checksum fails for the log item at byte {offset} of the \
             database file `db`"
        ),
        sled::Error::Corruption {
            at: Some(sled::DiskPtr::Blob(offset, blob)),
            ..
        } => format!(
            "corrupted data: sled's checksum fails for blob file {blob} (referenced at byte \
             {offset} of the database file `db`)"
        ),
        sled::Error::Corruption { at: None, .. } => {
            "corrupted data: sled's recovery found the log inconsistent".into()
        }
        other => other.to_string(),
    }
}

//! Why a command did not take effect, with stable codes.

use conclave_journal::JournalError;
use thiserror::Error;

use crate::rejection::Rejection;

/// Why a command did not take effect.
#[derive(Debug, Clone, Error)]
pub enum EngineError {
    /// The domain refused it; `recorded` are the sequence numbers of the events journaled
    /// anyway (the denial itself, autoban consequences).
    #[error("{rejection}")]
    Rejected {
        rejection: Rejection,
        correlation_id: String,
        recorded: Vec<u64>,
    },
    /// The journal's error, its message included (so not also given as the source: an
    /// error chain printed in full, as `conclave serve` does, would say it twice).
    #[error("journal: {0}")]
    Journal(JournalError),
    #[error("record {seq} cannot be decoded: {reason}")]
    Codec { seq: u64, reason: String },
    #[error("cannot encode an event: {0}")]
    Encode(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("the engine is stopped")]
    Stopped,
    /// Work moved to the blocking pool did not finish (it panicked or the runtime is
    /// shutting down).
    #[error("background task: {0}")]
    Task(String),
    /// Too much costly work is waiting (password checks): the request was not started
    /// and may be retried shortly.
    #[error("busy: too many {0} are waiting; try again shortly")]
    Busy(&'static str),
}

impl From<JournalError> for EngineError {
    fn from(e: JournalError) -> Self {
        EngineError::Journal(e)
    }
}

impl EngineError {
    /// The stable code: the rejection's own code for domain refusals.
    pub fn code(&self) -> &str {
        match self {
            EngineError::Rejected { rejection, .. } => rejection.code(),
            EngineError::Journal(e) => e.code(),
            EngineError::Codec { .. } => "engine.codec",
            EngineError::Encode(_) => "engine.encode",
            EngineError::Checkpoint(_) => "engine.checkpoint",
            EngineError::Stopped => "engine.stopped",
            EngineError::Task(_) => "engine.task",
            EngineError::Busy(_) => "engine.busy",
        }
    }

    /// The HTTP status a web gateway answers with (`self.mapping().http`; the whole
    /// mapping, SIP and XMPP included, is [`EngineError::mapping`] in
    /// [`crate::protocol`]).
    pub fn http_status(&self) -> u16 {
        self.mapping().http
    }
}

//! Errors of the NATS gateway, each with a stable code.

use thiserror::Error;

/// Why the gateway could not start, set up a stream or publish.
#[derive(Debug, Error)]
pub enum NatsError {
    /// The configuration cannot work (bad prefix, empty URL, bad credential, an unreadable
    /// secret or TLS file, two ways of authenticating at once).
    #[error("configuration: {0}")]
    Config(String),
    /// The server could not be reached (only where waiting makes no sense: setup).
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The NATS server refused the credentials, or they could not be used.
    #[error("{0}")]
    Auth(String),
    /// TLS could not be set up with the NATS server (untrusted certificate, wrong name,
    /// a server without TLS while TLS is required, a client certificate refused).
    #[error("{0}")]
    Tls(String),
    /// A JetStream API call failed.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// A publish or its acknowledgement failed; the outbox retries from its cursor.
    #[error("publish of record {seq} failed: {reason}")]
    Publish { seq: u64, reason: String },
    /// The previous message id the stream remembers is not the one expected: another
    /// publisher, a purged stream, or a restarted server. Retried at once, unpipelined.
    #[error("publish of record {seq}: the stream's last message is not record {expected}")]
    OutOfOrder { seq: u64, expected: u64 },
    /// The cursor file cannot be read or written.
    #[error("cursor file {path}: {reason}")]
    Cursor { path: String, reason: String },
    /// The cursor is past the journal's head: the journal was replaced or truncated.
    #[error("the published cursor {cursor} is past the journal head {head}")]
    CursorAhead { cursor: u64, head: u64 },
    /// Reading the journal failed.
    #[error("journal: {0}")]
    Journal(#[from] conclave_journal::JournalError),
    /// Subscribing to the command subjects failed.
    #[error("subscribe: {0}")]
    Subscribe(String),
}

impl NatsError {
    /// The stable code shown in health output and logs.
    pub fn code(&self) -> &'static str {
        match self {
            NatsError::Config(_) => "nats.config",
            NatsError::Connect { .. } => "nats.connect",
            NatsError::Auth(_) => "nats.auth",
            NatsError::Tls(_) => "nats.tls",
            NatsError::JetStream(_) => "nats.jetstream",
            NatsError::Publish { .. } => "nats.publish",
            NatsError::OutOfOrder { .. } => "nats.out_of_order",
            NatsError::Cursor { .. } => "nats.cursor",
            NatsError::CursorAhead { .. } => "nats.cursor_ahead",
            NatsError::Journal(_) => "nats.journal",
            NatsError::Subscribe(_) => "nats.subscribe",
        }
    }
}

/// Why a command request over NATS was refused before reaching the engine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    /// No `Conclave-Token` header, or one that matches no configured credential.
    #[error("a valid Conclave-Token header is required")]
    Unauthorized,
    /// `Conclave-Act-As` was sent with a credential that may not act as identities.
    #[error("this credential may not act as an identity")]
    ActAsForbidden,
    /// The subject names no command.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// The body is not the JSON of the command's fields.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A header value is malformed.
    #[error("bad header {name}: {reason}")]
    BadHeader { name: &'static str, reason: String },
    /// Too many requests are being executed at once.
    #[error("too many concurrent requests; retry later")]
    Overloaded,
}

impl RequestError {
    /// The stable code in the `{"error": {"code"}}` reply.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Unauthorized => "nats.unauthorized",
            RequestError::ActAsForbidden => "nats.act_as_forbidden",
            RequestError::UnknownCommand(_) => "nats.unknown_command",
            RequestError::BadRequest(_) => "nats.bad_request",
            RequestError::BadHeader { .. } => "nats.bad_header",
            RequestError::Overloaded => "nats.overloaded",
        }
    }
}

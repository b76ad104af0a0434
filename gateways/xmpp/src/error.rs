//! The gateway's typed errors; `code()` strings are stable (health, logs, tests).

use thiserror::Error;

/// What can go wrong between the component and its XMPP server.
#[derive(Debug, Error)]
pub enum XmppError {
    /// A stanza (or the stream header) grew past the bound: the server misbehaves.
    #[error("a stanza of more than {limit} bytes")]
    StanzaTooLarge {
        /// The bound in bytes.
        limit: usize,
    },
    /// The server sent something that is not XML we can frame or parse.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// Elements nested deeper than the bound.
    #[error("elements nested deeper than {0}")]
    TooDeep(usize),
    /// The server's stream did not open as an XEP-0114 component stream.
    #[error("bad stream header: {0}")]
    BadStreamHeader(String),
    /// The server refused the handshake (wrong secret or unknown component domain).
    #[error("handshake refused: {0}")]
    HandshakeRefused(String),
    /// The server ended the stream with a stream error.
    #[error("stream error from the server: {0}")]
    StreamError(String),
    /// The server closed the stream or the connection.
    #[error("the server closed the connection")]
    Closed,
    /// Connecting, reading or writing did not finish in time.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// A socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl XmppError {
    /// A stable code for health output, logs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            XmppError::StanzaTooLarge { .. } => "xmpp.stanza_too_large",
            XmppError::Malformed(_) => "xmpp.malformed_xml",
            XmppError::TooDeep(_) => "xmpp.too_deep",
            XmppError::BadStreamHeader(_) => "xmpp.bad_stream_header",
            XmppError::HandshakeRefused(_) => "xmpp.handshake_refused",
            XmppError::StreamError(_) => "xmpp.stream_error",
            XmppError::Closed => "xmpp.closed",
            XmppError::Timeout(_) => "xmpp.timeout",
            XmppError::Io(_) => "xmpp.io",
        }
    }
}

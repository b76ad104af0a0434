//! Why a message was refused, with a stable code per reason and the answer RFC 3261 wants.

use thiserror::Error;

/// A message the wire layer refuses. `code()` is stable (logs, metrics, tests); the
/// `Display` text is what a `400` carries as its reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The first line is neither `METHOD SP URI SP SIP/2.0` nor `SIP/2.0 SP code SP reason`.
    #[error("Bad Start Line")]
    BadStartLine,
    /// A request or response in another SIP version (a request gets `505`).
    #[error("Version Not Supported")]
    BadVersion,
    /// A request whose method rsip cannot represent (answered `501`).
    #[error("Not Implemented")]
    UnknownMethod,
    /// The Request-URI has no scheme (`chat@host`): `400`.
    #[error("Bad Request-URI")]
    BadRequestUri,
    /// The Request-URI's scheme is not `sip` or `sips` (`tel:`, `urn:`, `im:`...):
    /// `416 Unsupported URI Scheme` (RFC 3261 §8.2.2.1).
    #[error("Unsupported URI Scheme")]
    UnsupportedUriScheme,
    /// A mandatory header (To, From, CSeq, Call-ID, Via; Max-Forwards on requests) is absent.
    #[error("Missing {0} Header")]
    MissingHeader(&'static str),
    /// A header that must appear once appears several times with different values.
    #[error("Duplicate {0} Header")]
    DuplicateHeader(&'static str),
    /// A header line that cannot be read (no colon, bad name, control bytes, not UTF-8).
    #[error("Malformed Header")]
    BadHeader,
    /// A mandatory header whose value cannot be parsed (CSeq, Max-Forwards, Via...).
    #[error("Malformed {0} Header")]
    BadHeaderValue(&'static str),
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    #[error("CSeq Method Mismatch")]
    CseqMismatch,
    /// The top Via carries no branch; RFC 2543 peers are refused (see the module docs).
    #[error("Missing Via Branch")]
    MissingBranch,
    /// Content-Length absent on a stream, unreadable, or longer than the bytes received.
    #[error("Bad Content-Length")]
    ContentLength,
    /// The message (or, on a stream, the buffered header block) is over the size limit.
    #[error("Message Too Large")]
    TooLarge,
    /// More header lines than the limit.
    #[error("Too Many Headers")]
    TooManyHeaders,
    /// One header line longer than the limit.
    #[error("Header Too Long")]
    HeaderTooLong,
    /// The header block is not terminated by an empty line.
    #[error("Incomplete Message")]
    Incomplete,
    /// rsip refused something our own checks let through (a URI, a header it types).
    #[error("Unparseable Message")]
    Unparseable,
    /// A stream carried bytes that cannot start a SIP message.
    #[error("Garbage On Stream")]
    Garbage,
}

impl WireError {
    /// A stable machine-readable code, `sip.*`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadStartLine => "sip.bad_start_line",
            Self::BadVersion => "sip.bad_version",
            Self::UnknownMethod => "sip.unknown_method",
            Self::BadRequestUri => "sip.bad_request_uri",
            Self::UnsupportedUriScheme => "sip.unsupported_uri_scheme",
            Self::MissingHeader(_) => "sip.missing_header",
            Self::DuplicateHeader(_) => "sip.duplicate_header",
            Self::BadHeader => "sip.bad_header",
            Self::BadHeaderValue(_) => "sip.bad_header_value",
            Self::CseqMismatch => "sip.cseq_mismatch",
            Self::MissingBranch => "sip.missing_branch",
            Self::ContentLength => "sip.content_length",
            Self::TooLarge => "sip.too_large",
            Self::TooManyHeaders => "sip.too_many_headers",
            Self::HeaderTooLong => "sip.header_too_long",
            Self::Incomplete => "sip.incomplete",
            Self::Unparseable => "sip.unparseable",
            Self::Garbage => "sip.garbage",
        }
    }

    /// The status RFC 3261 wants for a *request* refused this way, or `None` for a
    /// silent drop. Whether an answer can actually be built also depends on the
    /// message (a response, an ACK, or an unreadable Via/From/To/Call-ID/CSeq is
    /// never answered): see [`crate::wire::stateless_answer`].
    pub fn answer_status(&self) -> Option<u16> {
        match self {
            // Over the limit: answering would cost more than dropping (and on a stream
            // the connection is closed anyway).
            Self::TooLarge | Self::Garbage | Self::Incomplete => None,
            Self::BadVersion => Some(505),
            Self::UnknownMethod => Some(501),
            Self::UnsupportedUriScheme => Some(416),
            _ => Some(400),
        }
    }

    /// Whether RFC 3261 wants a `400 Bad Request` (as opposed to another status or a drop).
    pub fn wants_400(&self) -> bool {
        self.answer_status() == Some(400)
    }

    /// Whether a stream that produced this error can no longer be framed (the shell
    /// closes the connection).
    pub fn is_fatal_for_stream(&self) -> bool {
        matches!(
            self,
            Self::TooLarge | Self::Garbage | Self::ContentLength | Self::Incomplete
        )
    }
}

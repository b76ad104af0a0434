//! Cutting a TCP byte stream into messages (RFC 3261 §18.3): Content-Length is
//! mandatory, CRLF keep-alives are skipped, the buffer is bounded.

use super::build::stateless_answer;
use super::error::WireError;
use super::parse::{parse_message, Framing};
use super::scan::{self, MAX_MESSAGE};

/// The most bytes buffered: one message at the limit plus one more read's worth.
pub const MAX_BUFFER: usize = 2 * MAX_MESSAGE;

/// A message the framer could not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub error: WireError,
    /// The stateless answer to send back (a `400` for a readable request), if any.
    pub answer: Option<Vec<u8>>,
    /// The stream can no longer be framed: send `answer`, then close the connection.
    pub fatal: bool,
}

/// A per-connection framer. `push` what the socket gave, then call `next` until `None`.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// How far the search for the end of the header block got (a slow sender must
    /// not make every read rescan the whole buffer).
    searched: usize,
    /// The length of the message being received, once its header block is complete.
    pending: Option<usize>,
    overflow: bool,
    closed: bool,
}

impl StreamFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the connection (ignored once the framer has failed).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.closed || self.overflow {
            return;
        }
        if self.buf.len() + bytes.len() > MAX_BUFFER {
            self.overflow = true;
            self.buf = Vec::new();
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes waiting for the rest of their message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a fatal error was returned: the shell should close the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next complete message, an error, or `None` when more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<rsip::SipMessage, Rejected>> {
        if self.closed {
            return None;
        }
        if self.overflow {
            return Some(Err(self.fail(WireError::TooLarge, None)));
        }
        let skipped = self.buf.len() - scan::skip_crlf(&self.buf).len();
        if skipped > 0 {
            self.buf.drain(..skipped);
            self.searched = 0;
        }
        let first = *self.buf.first()?;
        if self.buf == b"\r" {
            // Half of a CRLF keep-alive: wait for the LF.
            return None;
        }
        if !scan::is_token(first) {
            return Some(Err(self.fail(WireError::Garbage, None)));
        }
        let total = match self.pending {
            Some(total) => total,
            None => match self.frame_length() {
                Ok(Some(total)) => total,
                Ok(None) => return None,
                Err(rejected) => return Some(Err(rejected)),
            },
        };
        self.pending = Some(total);
        if self.buf.len() < total {
            return None;
        }
        let frame: Vec<u8> = self.buf.drain(..total).collect();
        self.searched = 0;
        self.pending = None;
        Some(
            parse_message(&frame, Framing::Stream).map_err(|error| Rejected {
                answer: stateless_answer(&frame, &error),
                fatal: false,
                error,
            }),
        )
    }

    /// The whole length of the message at the head of the buffer, once its header
    /// block is in; `None` while it is not.
    fn frame_length(&mut self) -> Result<Option<usize>, Rejected> {
        let from = self.searched.saturating_sub(3);
        let window = self
            .buf
            .get(from..MAX_MESSAGE.min(self.buf.len()))
            .unwrap_or_default();
        let Some(end) = scan::find_head_end(window).map(|at| at + from) else {
            if self.buf.len() >= MAX_MESSAGE {
                return Err(self.fail(WireError::TooLarge, None));
            }
            self.searched = self.buf.len();
            return Ok(None);
        };
        let head_len = end + 4;
        let head = self.buf.get(..head_len).unwrap_or_default();
        let Some(length) = declared_length(head) else {
            let answer = stateless_answer(head, &WireError::ContentLength);
            return Err(self.fail(WireError::ContentLength, answer));
        };
        let total = head_len.saturating_add(length);
        if total > MAX_MESSAGE {
            return Err(self.fail(WireError::TooLarge, None));
        }
        Ok(Some(total))
    }

    fn fail(&mut self, error: WireError, answer: Option<Vec<u8>>) -> Rejected {
        self.closed = true;
        self.buf = Vec::new();
        Rejected {
            error,
            answer,
            fatal: true,
        }
    }
}

/// The one Content-Length of a header block, if present, readable and consistent.
fn declared_length(head: &[u8]) -> Option<usize> {
    let raw = scan::scan(head);
    let mut declared = None;
    for value in raw.values("Content-Length") {
        let s = std::str::from_utf8(value).ok()?;
        if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n = s.parse::<usize>().ok()?;
        if declared.is_some_and(|d| d != n) {
            return None;
        }
        declared = Some(n);
    }
    declared
}

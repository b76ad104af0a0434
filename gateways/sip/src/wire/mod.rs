//! The SIP wire layer: parsing and checking messages, TCP framing, building and
//! serialising (RFC 3261 §7, §8.2, §18, §20). rsip parses; this layer checks what rsip
//! does not.
//!
//! - [`parse_datagram`] / [`parse_message`]: a lenient first pass ([`scan`]) reads
//!   the raw lines (compact names, folding), then the checks: start line `SIP/2.0`
//!   (another version: `505`; a method rsip does not know: `501`), the mandatory
//!   headers (Via, From, To, Call-ID, CSeq; Max-Forwards on requests), the CSeq method
//!   equal to the request method, Content-Length (longer than the bytes: refused; shorter:
//!   the body is cut; absent: the rest of a datagram, an error on a stream), limits
//!   ([`MAX_MESSAGE`], [`MAX_HEADERS`], [`MAX_HEADER_LEN`]), no control bytes and valid
//!   UTF-8 in header values. rsip then parses a normalised copy.
//! - A top Via without a branch is refused (`400 Missing Via Branch`): RFC 2543 peers
//!   (1999) are not supported. A branch without the magic cookie is accepted; the
//!   transaction layer then matches with extra keys (see `transaction`).
//! - [`WireError::answer_status`] says what RFC 3261 wants; [`stateless_answer`]
//!   builds it from the raw bytes, or `None` for a silent drop (responses, ACKs,
//!   unreadable requests, oversized input).
//! - [`StreamFramer`] frames TCP; [`response`], [`request`], [`to_bytes`] build.

mod build;
mod error;
mod framer;
mod ids;
mod parse;
pub(crate) mod scan;

pub use build::{
    default_reason, has_tag, request, response, response_with_body, set_body, stateless_answer,
    status, tag_of, to_bytes, RequestSpec, PRODUCT,
};
pub use error::WireError;
pub use framer::{Rejected, StreamFramer, MAX_BUFFER};
pub use ids::{
    new_branch, new_call_id, new_stateless_tag, new_tag, MAGIC_COOKIE, STATELESS_TAG_PREFIX,
};
pub use parse::{parse_datagram, parse_message, Framing};
pub use scan::{MAX_HEADERS, MAX_HEADER_LEN, MAX_MESSAGE};

pub(crate) use parse::{cseq, top_via};

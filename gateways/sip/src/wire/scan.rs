//! A lenient, allocation-light first pass over a message's header block.
//!
//! rsip's tokenizer knows neither compact header names, line folding nor
//! Content-Length, and refuses a whole message for one odd byte. This pass reads the
//! raw lines itself, notes the first problem without stopping (so a `400` can still be
//! built from the headers it did read), and yields canonical `Name: value` pairs that
//! rsip then parses without surprises.

use std::borrow::Cow;

use super::error::WireError;

/// The largest message accepted (RFC 3261 §18.1.1: a UDP datagram's bound).
pub const MAX_MESSAGE: usize = 65_535;
/// The most header lines (after unfolding) a message may carry.
pub const MAX_HEADERS: usize = 128;
/// The longest one header line (name, colon and unfolded value) may be.
pub const MAX_HEADER_LEN: usize = 8_192;

/// One header line, its name canonical (compact forms expanded) and its value trimmed
/// and unfolded.
#[derive(Debug, Clone)]
pub(crate) struct RawHeader<'a> {
    pub name: Cow<'a, str>,
    pub value: Cow<'a, [u8]>,
}

/// A scanned message: its start line, headers and the bytes after the empty line.
#[derive(Debug)]
pub(crate) struct RawMessage<'a> {
    pub start: &'a [u8],
    pub headers: Vec<RawHeader<'a>>,
    pub body: &'a [u8],
    /// The first problem met; scanning went on leniently after it.
    pub error: Option<WireError>,
}

impl RawMessage<'_> {
    /// Values of every header with this canonical name, in order.
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s [u8]> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_ref())
    }

    /// The first value of a header.
    pub fn first<'s>(&'s self, name: &'s str) -> Option<&'s [u8]> {
        self.values(name).next()
    }

    /// Whether the start line is a request line (not `SIP/...`).
    pub fn is_request(&self) -> bool {
        !self.start.starts_with(b"SIP/")
    }

    fn note(&mut self, error: WireError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
    }
}

/// The bytes after any leading CRLFs (RFC 3261 §7.5; RFC 5626 keep-alives).
pub(crate) fn skip_crlf(mut bytes: &[u8]) -> &[u8] {
    while let Some(rest) = bytes.strip_prefix(b"\r\n") {
        bytes = rest;
    }
    bytes
}

/// Where the `\r\n\r\n` ending the header block starts.
pub(crate) fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Scans a message starting at its start line.
pub(crate) fn scan(bytes: &[u8]) -> RawMessage<'_> {
    let (head, body, error) = match find_head_end(bytes) {
        Some(end) => (
            bytes.get(..end).unwrap_or_default(),
            bytes.get(end + 4..).unwrap_or_default(),
            None,
        ),
        // A datagram whose header block ends with one CRLF and no empty line: read it
        // as headers without a body, as most stacks do.
        None => match bytes.strip_suffix(b"\r\n") {
            Some(head) => (head, &[][..], None),
            None => (bytes, &[][..], Some(WireError::Incomplete)),
        },
    };
    let mut lines = CrlfLines(head);
    let start = lines.next().unwrap_or_default();
    let mut msg = RawMessage {
        start,
        headers: Vec::new(),
        body,
        error,
    };
    for line in lines {
        if let Some(cont) = line.strip_prefix(b" ").or_else(|| line.strip_prefix(b"\t")) {
            fold(&mut msg, cont);
            continue;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            msg.note(WireError::BadHeader);
            continue;
        };
        let name = trim(line.get(..colon).unwrap_or_default());
        let value = trim(line.get(colon + 1..).unwrap_or_default());
        if name.is_empty() || !name.iter().all(|b| is_token(*b)) {
            msg.note(WireError::BadHeader);
            continue;
        }
        if line.len() > MAX_HEADER_LEN {
            msg.note(WireError::HeaderTooLong);
        }
        if !clean(value) {
            msg.note(WireError::BadHeader);
        }
        msg.headers.push(RawHeader {
            name: canonical(name),
            value: Cow::Borrowed(value),
        });
        if msg.headers.len() == MAX_HEADERS + 1 {
            msg.note(WireError::TooManyHeaders);
        }
    }
    msg
}

/// Splits on CRLF only; a bare CR or LF stays in its line (and is refused there).
struct CrlfLines<'a>(&'a [u8]);

impl<'a> Iterator for CrlfLines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        match self.0.windows(2).position(|w| w == b"\r\n") {
            Some(at) => {
                let line = self.0.get(..at).unwrap_or_default();
                self.0 = self.0.get(at + 2..).unwrap_or_default();
                Some(line)
            }
            None => Some(std::mem::take(&mut self.0)),
        }
    }
}

/// Appends a continuation line to the previous header (RFC 3261 §7.3.1).
fn fold(msg: &mut RawMessage<'_>, cont: &[u8]) {
    let cont = trim(cont);
    let mut problem = (!clean(cont)).then_some(WireError::BadHeader);
    match msg.headers.last_mut() {
        None => problem = Some(WireError::BadHeader),
        Some(last) => {
            let value = last.value.to_mut();
            if !cont.is_empty() {
                if !value.is_empty() {
                    value.push(b' ');
                }
                value.extend_from_slice(cont);
            }
            if value.len() + last.name.len() + 2 > MAX_HEADER_LEN {
                problem.get_or_insert(WireError::HeaderTooLong);
                // Memory stays bounded by the datagram, not by folded copies.
                value.truncate(MAX_HEADER_LEN);
            }
        }
    }
    if let Some(problem) = problem {
        msg.note(problem);
    }
}

/// Trims spaces and tabs at both ends.
pub(crate) fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 3261 token characters.
pub(crate) fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// No control bytes but tab, and valid UTF-8.
fn clean(value: &[u8]) -> bool {
    !value
        .iter()
        .any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f)
        && std::str::from_utf8(value).is_ok()
}

/// The canonical spelling of a header name, compact forms (RFC 3261 §7.3.3, 3265, 3515,
/// 4028) expanded.
fn canonical(name: &[u8]) -> Cow<'_, str> {
    const NAMES: &[(&str, &str)] = &[
        ("i", "Call-ID"),
        ("call-id", "Call-ID"),
        ("m", "Contact"),
        ("e", "Content-Encoding"),
        ("l", "Content-Length"),
        ("content-length", "Content-Length"),
        ("c", "Content-Type"),
        ("f", "From"),
        ("from", "From"),
        ("s", "Subject"),
        ("k", "Supported"),
        ("t", "To"),
        ("to", "To"),
        ("v", "Via"),
        ("via", "Via"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("u", "Allow-Events"),
        ("x", "Session-Expires"),
        ("cseq", "CSeq"),
        ("max-forwards", "Max-Forwards"),
    ];
    for (raw, canon) in NAMES {
        if name.eq_ignore_ascii_case(raw.as_bytes()) {
            return Cow::Borrowed(canon);
        }
    }
    // Token bytes are ASCII, so this never replaces anything.
    String::from_utf8_lossy(name)
}

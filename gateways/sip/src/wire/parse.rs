//! Checking a message beyond what rsip checks (RFC 3261 §7, §8.2, §18.3, §20), then
//! handing a normalised copy to rsip.

use std::str::FromStr;

use rsip::prelude::{ToTypedHeader, UntypedHeader};

use super::error::WireError;
use super::scan::{self, RawMessage, MAX_MESSAGE};

/// How the message arrived: a datagram may omit Content-Length (the body is the rest of
/// the datagram); a stream may not (§18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Datagram,
    Stream,
}

/// Parses and checks one UDP datagram. `Ok(None)` is a CRLF keep-alive (RFC 5626
/// §3.5.1) or an empty datagram: ignore it.
pub fn parse_datagram(bytes: &[u8]) -> Result<Option<rsip::SipMessage>, WireError> {
    let bytes = scan::skip_crlf(bytes);
    if bytes.is_empty() {
        return Ok(None);
    }
    parse_message(bytes, Framing::Datagram).map(Some)
}

/// Parses and checks one message that starts at its start line.
pub fn parse_message(bytes: &[u8], framing: Framing) -> Result<rsip::SipMessage, WireError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge);
    }
    let raw = scan::scan(bytes);
    let body = check(&raw, framing)?;
    let normalised = normalise(&raw, body);
    // rsip is a nom parser over bytes; the fuzz harness found no panic in it on inputs
    // our checks let through, so it is called directly (no catch_unwind).
    let msg =
        rsip::SipMessage::try_from(normalised.as_slice()).map_err(|_| WireError::Unparseable)?;
    Ok(msg)
}

/// What a checked start line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartLine<'a> {
    Request { method: rsip::Method, raw: &'a [u8] },
    Response { code: u16 },
}

/// Reads the start line (request: `METHOD SP URI SP SIP/2.0`; response:
/// `SIP/2.0 SP 3DIGIT SP reason`).
pub(crate) fn start_line(line: &[u8]) -> Result<StartLine<'_>, WireError> {
    if line.iter().any(|b| *b < 0x20 && *b != b'\t') {
        return Err(WireError::BadStartLine);
    }
    let mut parts = line.splitn(3, |b| *b == b' ');
    let first = parts.next().unwrap_or_default();
    let second = parts.next().ok_or(WireError::BadStartLine)?;
    let third = parts.next();
    if first.starts_with(b"SIP/") {
        version(first)?;
        let code = std::str::from_utf8(second)
            .ok()
            .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|c| (100..=699).contains(c))
            .ok_or(WireError::BadStartLine)?;
        return Ok(StartLine::Response { code });
    }
    let version_part = third.ok_or(WireError::BadStartLine)?;
    if first.is_empty()
        || !first.iter().all(|b| scan::is_token(*b))
        || second.is_empty()
        || version_part.contains(&b' ')
    {
        return Err(WireError::BadStartLine);
    }
    version(version_part)?;
    let name = std::str::from_utf8(first).map_err(|_| WireError::BadStartLine)?;
    // Methods are case-sensitive (§7.1); rsip's parser is not, so compare back.
    let method = rsip::Method::from_str(name).map_err(|_| WireError::UnknownMethod)?;
    if method.to_string() != name {
        return Err(WireError::UnknownMethod);
    }
    request_uri_scheme(second)?;
    Ok(StartLine::Request { method, raw: first })
}

/// Checks the Request-URI's scheme before rsip reads it: rsip fails on `tel:` and
/// `urn:` URIs (which deserve `416`, not `400`) and reads `chat:x@host` or `chat@host`
/// as a URI without a scheme, which must not pass as `sip:`.
fn request_uri_scheme(uri: &[u8]) -> Result<(), WireError> {
    let Some(colon) = uri.iter().position(|b| *b == b':') else {
        return Err(WireError::BadRequestUri);
    };
    let scheme = uri.get(..colon).unwrap_or_default();
    let well_formed = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !well_formed {
        return Err(WireError::BadRequestUri);
    }
    if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        Ok(())
    } else {
        Err(WireError::UnsupportedUriScheme)
    }
}

fn version(v: &[u8]) -> Result<(), WireError> {
    if v == b"SIP/2.0" {
        return Ok(());
    }
    let rest = v.strip_prefix(b"SIP/").unwrap_or_default();
    let looks_like_version = !rest.is_empty()
        && rest.iter().all(|b| b.is_ascii_digit() || *b == b'.')
        && rest.contains(&b'.');
    Err(if looks_like_version {
        WireError::BadVersion
    } else {
        WireError::BadStartLine
    })
}

/// A CSeq value: sequence number and method token (§20.16, `< 2**31`).
pub(crate) fn cseq(value: &[u8]) -> Option<(u32, &[u8])> {
    let value = scan::trim(value);
    let split = value.iter().position(|b| *b == b' ' || *b == b'\t')?;
    let num = std::str::from_utf8(value.get(..split)?).ok()?;
    if num.is_empty() || num.len() > 10 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seq = num.parse::<u32>().ok().filter(|n| *n < 1 << 31)?;
    let method = scan::trim(value.get(split..)?);
    if method.is_empty() || !method.iter().all(|b| scan::is_token(*b)) {
        return None;
    }
    Some((seq, method))
}

/// A single-valued mandatory header: present, and the same value if repeated.
fn single<'r>(raw: &'r RawMessage<'_>, name: &'static str) -> Result<&'r [u8], WireError> {
    let mut values = raw.values(name);
    let first = values.next().ok_or(WireError::MissingHeader(name))?;
    if values.any(|v| v != first) {
        return Err(WireError::DuplicateHeader(name));
    }
    if first.is_empty() {
        return Err(WireError::BadHeaderValue(name));
    }
    Ok(first)
}

/// The first element of the top Via (a header may hold several, comma-separated).
pub(crate) fn top_via(value: &[u8]) -> &[u8] {
    let mut quoted = false;
    for (i, b) in value.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => return scan::trim(value.get(..i).unwrap_or_default()),
            _ => {}
        }
    }
    scan::trim(value)
}

/// Runs every check; returns the body (cut to Content-Length).
fn check<'a>(raw: &RawMessage<'a>, framing: Framing) -> Result<&'a [u8], WireError> {
    let start = start_line(raw.start)?;
    if let Some(error) = &raw.error {
        return Err(error.clone());
    }
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if raw.first(name).is_none() {
            return Err(WireError::MissingHeader(name));
        }
    }
    single(raw, "From")?;
    single(raw, "To")?;
    single(raw, "Call-ID")?;
    let (_, cseq_method) = cseq(single(raw, "CSeq")?).ok_or(WireError::BadHeaderValue("CSeq"))?;
    if let StartLine::Request { raw: method, .. } = start {
        if cseq_method != method {
            return Err(WireError::CseqMismatch);
        }
        let mf = single(raw, "Max-Forwards")?;
        let ok = mf.len() <= 3
            && !mf.is_empty()
            && mf.iter().all(|b| b.is_ascii_digit())
            && std::str::from_utf8(mf)
                .ok()
                .and_then(|s| s.parse::<u16>().ok())
                .is_some_and(|n| n <= 255);
        if !ok {
            return Err(WireError::BadHeaderValue("Max-Forwards"));
        }
    }
    let via = raw.first("Via").ok_or(WireError::MissingHeader("Via"))?;
    let via = std::str::from_utf8(top_via(via)).map_err(|_| WireError::BadHeaderValue("Via"))?;
    let typed = rsip::headers::Via::new(via)
        .typed()
        .map_err(|_| WireError::BadHeaderValue("Via"))?;
    if typed.branch().is_none_or(|b| b.to_string().is_empty()) {
        return Err(WireError::MissingBranch);
    }
    content_length(raw, framing)
}

/// Applies Content-Length (§18.3, §20.14): longer than the bytes is refused, shorter
/// cuts the body; absent is the rest of a datagram and an error on a stream.
fn content_length<'a>(raw: &RawMessage<'a>, framing: Framing) -> Result<&'a [u8], WireError> {
    let mut declared: Option<usize> = None;
    for value in raw.values("Content-Length") {
        let n = std::str::from_utf8(value)
            .ok()
            .filter(|s| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or(WireError::ContentLength)?;
        if declared.is_some_and(|d| d != n) {
            return Err(WireError::ContentLength);
        }
        declared = Some(n);
    }
    match (declared, framing) {
        (None, Framing::Datagram) => Ok(raw.body),
        (None, Framing::Stream) => Err(WireError::ContentLength),
        (Some(n), _) => raw.body.get(..n).ok_or(WireError::ContentLength),
    }
}

/// The message rebuilt as rsip expects it: `Name: value` lines, one CRLF each.
fn normalise(raw: &RawMessage<'_>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.start.len() + body.len() + 64 * raw.headers.len());
    out.extend_from_slice(raw.start);
    out.extend_from_slice(b"\r\n");
    for header in &raw.headers {
        out.extend_from_slice(header.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&header.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

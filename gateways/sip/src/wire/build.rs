//! Building responses and requests, and serialising them (RFC 3261 §8.1.1, §8.2.6).

use std::fmt::Write as _;

use rsip::prelude::UntypedHeader;
use rsip::{Header, Headers, Method, Request, Response, SipMessage, StatusCode};

use super::error::WireError;
use super::ids;
use super::parse::{start_line, StartLine};
use super::scan::{self, MAX_MESSAGE};

/// Our `Server` / `User-Agent` value.
pub const PRODUCT: &str = "Conclave";

/// The RFC reason phrase of a status code ("" for codes rsip does not name).
pub fn default_reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        201 => "Accepted",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        417 => "Unknown Resource-Priority",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        424 => "Bad Location Information",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        433 => "Anonymity Disallowed",
        436 => "Bad Identity-Info",
        437 => "Unsupported Certificate",
        438 => "Invalid Identity Header",
        439 => "First Hop Lacks Outbound Support",
        440 => "Max-Breadth Exceeded",
        469 => "Bad Info Package",
        470 => "Consent Needed",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        _ => "",
    }
}

/// A status code carrying `reason`. The named rsip variant is used when the reason is
/// the default one (so `== StatusCode::OK` works); otherwise `Other(code, reason)`.
/// Compare statuses with `.code()`.
pub fn status(code: u16, reason: &str) -> StatusCode {
    let named = StatusCode::from(code);
    if reason.is_empty() || reason == default_reason(code) {
        if let StatusCode::Other(c, _) = named {
            return StatusCode::Other(c, sanitize(default_reason(c)));
        }
        return named;
    }
    StatusCode::Other(code, sanitize(reason))
}

fn sanitize(reason: &str) -> String {
    let s: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect();
    if s.is_empty() {
        "Unknown".into()
    } else {
        s
    }
}

/// A response to `req` (§8.2.6.2): every Via in order, From, To (with `to_tag` added
/// when the request's To has none), Call-ID, CSeq, `Server: Conclave`, no body.
pub fn response(req: &Request, code: u16, reason: &str, to_tag: Option<&str>) -> Response {
    let mut headers = Headers::default();
    for header in req.headers.iter() {
        match header {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                headers.push(header.clone())
            }
            Header::To(to) => headers.push(Header::To(rsip::headers::To::new(with_tag(
                to.value(),
                to_tag,
            )))),
            _ => {}
        }
    }
    headers.push(Header::Server(rsip::headers::Server::new(PRODUCT)));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Response {
        status_code: status(code, reason),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    }
}

/// `value` with `;tag=tag` appended unless it already carries a tag.
fn with_tag(value: &str, tag: Option<&str>) -> String {
    match tag {
        Some(tag) if !has_tag(value) => format!("{value};tag={tag}"),
        _ => value.to_string(),
    }
}

/// Whether a From/To value carries a `tag` parameter (outside the `<...>` URI).
pub fn has_tag(value: &str) -> bool {
    tag_of(value).is_some()
}

/// The `tag` parameter of a From/To value, if any.
pub fn tag_of(value: &str) -> Option<&str> {
    let params = match value.rfind('>') {
        Some(end) => value.get(end + 1..)?,
        None => value,
    };
    params.split(';').skip(1).find_map(|p| {
        let (name, val) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("tag")
            .then(|| val.trim())
            .filter(|v| !v.is_empty())
    })
}

/// Sets the body and its Content-Type (replacing any), and Content-Length.
pub fn set_body(headers: &mut Headers, body_slot: &mut Vec<u8>, content_type: &str, body: Vec<u8>) {
    headers.retain(|h| !matches!(h, Header::ContentType(_) | Header::ContentLength(_)));
    headers.push(Header::ContentType(rsip::headers::ContentType::new(
        content_type,
    )));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        body.len().to_string(),
    )));
    *body_slot = body;
}

/// [`set_body`] on a response.
pub fn response_with_body(mut resp: Response, content_type: &str, body: Vec<u8>) -> Response {
    set_body(&mut resp.headers, &mut resp.body, content_type, body);
    resp
}

/// What a new request needs (out of dialog or in dialog).
#[derive(Debug, Clone)]
pub struct RequestSpec<'a> {
    pub method: Method,
    pub uri: rsip::Uri,
    /// The From value without tag, e.g. `<sip:chat-room@example.org>`.
    pub from: &'a str,
    pub from_tag: &'a str,
    /// The To value without tag.
    pub to: &'a str,
    pub to_tag: Option<&'a str>,
    pub call_id: &'a str,
    pub cseq: u32,
    /// Our sent-by, `host:port`.
    pub sent_by: &'a str,
    /// `UDP` or `TCP` for the Via.
    pub transport: rsip::Transport,
    pub contact: Option<&'a str>,
    /// Route set (in-dialog requests), in order.
    pub route: &'a [String],
    /// Content type and body.
    pub body: Option<(&'a str, Vec<u8>)>,
    /// Anything else (Event, Subscription-State, Authorization...).
    pub extra: Vec<Header>,
}

/// A new request with a fresh branch, `Max-Forwards: 70` and `User-Agent: Conclave`.
pub fn request(spec: RequestSpec<'_>) -> Request {
    let mut headers = Headers::default();
    headers.push(Header::Via(rsip::headers::Via::new(format!(
        "SIP/2.0/{} {};branch={}",
        spec.transport,
        spec.sent_by,
        ids::new_branch()
    ))));
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    for route in spec.route {
        headers.push(Header::Route(rsip::headers::Route::new(route.as_str())));
    }
    headers.push(Header::From(rsip::headers::From::new(with_tag(
        spec.from,
        Some(spec.from_tag),
    ))));
    headers.push(Header::To(rsip::headers::To::new(with_tag(
        spec.to,
        spec.to_tag,
    ))));
    headers.push(Header::CallId(rsip::headers::CallId::new(spec.call_id)));
    headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
        "{} {}",
        spec.cseq, spec.method
    ))));
    if let Some(contact) = spec.contact {
        headers.push(Header::Contact(rsip::headers::Contact::new(contact)));
    }
    headers.push(Header::UserAgent(rsip::headers::UserAgent::new(PRODUCT)));
    for h in spec.extra {
        headers.push(h);
    }
    let mut req = Request {
        method: spec.method,
        uri: spec.uri,
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    };
    match spec.body {
        Some((ct, body)) => set_body(&mut req.headers, &mut req.body, ct, body),
        None => req
            .headers
            .push(Header::ContentLength(rsip::headers::ContentLength::new(
                "0",
            ))),
    }
    req
}

/// The bytes of a message. The start line is written here (rsip would print
/// `404 NotFound`); Content-Length is always rewritten to the body's length.
pub fn to_bytes(msg: &SipMessage) -> Vec<u8> {
    let mut head = String::with_capacity(512);
    let (headers, body) = match msg {
        SipMessage::Request(r) => {
            let _ = write!(head, "{} {} SIP/2.0\r\n", r.method, r.uri);
            (&r.headers, &r.body)
        }
        SipMessage::Response(r) => {
            let code = r.status_code.code();
            let reason = match &r.status_code {
                StatusCode::Other(_, reason) => sanitize(reason),
                _ => default_reason(code).to_string(),
            };
            let _ = write!(head, "SIP/2.0 {code} {reason}\r\n");
            (&r.headers, &r.body)
        }
    };
    for h in headers.iter() {
        if !matches!(h, Header::ContentLength(_)) {
            let _ = write!(head, "{h}\r\n");
        }
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The stateless answer RFC 3261 wants for a request refused by the wire layer
/// (`400` with the error as reason phrase, `505`, `501`), built from the raw bytes, or
/// `None` to drop silently: responses, ACKs, errors that are not answered, and requests
/// whose Via, From, To, Call-ID or CSeq cannot be read.
pub fn stateless_answer(bytes: &[u8], err: &WireError) -> Option<Vec<u8>> {
    let code = err.answer_status()?;
    let bytes = scan::skip_crlf(bytes);
    if bytes.len() > MAX_MESSAGE {
        return None;
    }
    let raw = scan::scan(bytes);
    let method = raw.start.split(|b| *b == b' ').next()?;
    if !raw.is_request() || method == b"ACK" || method.is_empty() {
        return None;
    }
    if let Ok(StartLine::Response { .. }) = start_line(raw.start) {
        return None;
    }
    let readable = |v: &[u8]| -> Option<String> {
        let s = std::str::from_utf8(v).ok()?;
        (!s.is_empty() && !s.chars().any(char::is_control) && s.len() <= scan::MAX_HEADER_LEN)
            .then(|| s.to_string())
    };
    let vias: Vec<String> = raw.values("Via").map(readable).collect::<Option<_>>()?;
    if vias.is_empty() {
        return None;
    }
    let from = readable(raw.first("From")?)?;
    let to = readable(raw.first("To")?)?;
    let call_id = readable(raw.first("Call-ID")?)?;
    let cseq = readable(raw.first("CSeq")?)?;
    let reason = if code == 400 {
        err.to_string()
    } else {
        default_reason(code).to_string()
    };
    let mut out = String::with_capacity(256 + vias.iter().map(String::len).sum::<usize>());
    let _ = write!(out, "SIP/2.0 {code} {}\r\n", sanitize(&reason));
    for via in vias {
        let _ = write!(out, "Via: {via}\r\n");
    }
    let tag = ids::new_stateless_tag();
    let _ = write!(
        out,
        "From: {from}\r\nTo: {}\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nServer: {PRODUCT}\r\nContent-Length: 0\r\n\r\n",
        with_tag(&to, Some(&tag))
    );
    Some(out.into_bytes())
}

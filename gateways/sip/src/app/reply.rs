//! Responses the transaction user sends, built on the wire layer's `response`.

use conclave_engine::protocol::ErrorMapping;
use conclave_engine::service::EngineError;

use super::{ALLOW, SUPPORTED};
use crate::wire;

/// A response with a fresh To tag (RFC 3261 §8.2.6.2) unless the request had one.
pub fn status(req: &rsip::Request, code: u16, reason: &str) -> rsip::Response {
    let tag = wire::new_tag();
    wire::response(req, code, reason, Some(&tag))
}

/// A response carrying the dialog's own To tag.
pub fn in_dialog(req: &rsip::Request, code: u16, reason: &str, tag: &str) -> rsip::Response {
    wire::response(req, code, reason, Some(tag))
}

/// Adds `name: value`.
pub fn header(mut resp: rsip::Response, name: &str, value: impl Into<String>) -> rsip::Response {
    resp.headers
        .push(rsip::Header::Other(name.into(), value.into()));
    resp
}

/// Adds `Allow`.
pub fn with_allow(resp: rsip::Response) -> rsip::Response {
    header(resp, "Allow", ALLOW)
}

/// The answer to OPTIONS (RFC 3261 §11.2).
pub fn options(req: &rsip::Request) -> rsip::Response {
    let resp = with_allow(status(req, 200, "OK"));
    let resp = header(resp, "Accept", "application/sdp, text/plain");
    header(resp, "Supported", SUPPORTED)
}

/// The answer for an engine refusal or failure, by the protocol table: its SIP status,
/// the refusal's text as the reason phrase for refusals, `Retry-After` when a retry may
/// succeed. Failures say nothing about their cause.
pub fn engine_error(req: &rsip::Request, err: &EngineError) -> rsip::Response {
    let m: ErrorMapping = err.mapping();
    let reason = match err {
        EngineError::Rejected { rejection, .. }
            if m.class == conclave_engine::protocol::ErrorClass::Refused =>
        {
            reason_phrase(&rejection.to_string())
        }
        _ => m.sip.reason().to_owned(),
    };
    let resp = status(req, m.sip.code(), &reason);
    match m.retry_after {
        Some(secs) => header(resp, "Retry-After", secs.to_string()),
        None => resp,
    }
}

/// A reason phrase from free text: one line, printable, bounded (RFC 3261 §25.1
/// `Reason-Phrase`).
pub fn reason_phrase(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    if s.trim().is_empty() {
        s = "Refused".into();
    }
    s
}

//! Cross-origin requests from browsers (CORS), off unless configured.
//!
//! With no allowed origins (the default) the router answers with no CORS headers at all,
//! so a page on another origin cannot read any answer (the browser's same-origin rule).
//! With a list, tower-http's `CorsLayer` answers preflights (`OPTIONS` with
//! `Access-Control-Request-Method`) and adds `Access-Control-Allow-Origin` to answers
//! for those origins only. Credentials (cookies) are never allowed: every credential
//! here is a bearer token the page sends itself in `Authorization`.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// An allowed origin that is not `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin:?} is not an origin (use https://app.example.org or http://localhost:3000, no path; or * for any): {reason}")]
pub struct CorsError {
    /// What was given.
    pub origin: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Origins whose pages may call the API: `https://host[:port]` (or `http://`), lower
/// case as browsers send them, or `*` for any origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsSettings {
    origins: Vec<String>,
    any: bool,
}

impl CorsSettings {
    /// Checks and normalizes `origins` (an empty list: no CORS).
    pub fn new<S: AsRef<str>>(origins: &[S]) -> Result<CorsSettings, CorsError> {
        let mut out = CorsSettings::default();
        for o in origins {
            let o = o.as_ref().trim();
            if o == "*" {
                out.any = true;
            } else {
                let o = normalize(o)?;
                if !out.origins.contains(&o) {
                    out.origins.push(o);
                }
            }
        }
        Ok(out)
    }

    /// Whether any origin is allowed.
    pub fn enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The layer, or `None` when CORS is off.
    pub fn layer(&self) -> Option<CorsLayer> {
        if !self.enabled() {
            return None;
        }
        let origin = if self.any {
            AllowOrigin::any()
        } else {
            // Checked in `new`: each is visible ASCII.
            AllowOrigin::list(
                self.origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers([
                    HeaderName::from_static("authorization"),
                    HeaderName::from_static("content-type"),
                    HeaderName::from_static("x-request-id"),
                    HeaderName::from_static("last-event-id"),
                ])
                .expose_headers([
                    HeaderName::from_static("x-correlation-id"),
                    HeaderName::from_static("retry-after"),
                    HeaderName::from_static("content-disposition"),
                ])
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }

    /// `router` with the layer (unchanged when CORS is off).
    pub fn apply(&self, router: Router) -> Router {
        match self.layer() {
            Some(layer) => router.layer(layer),
            None => router,
        }
    }
}

/// `scheme://host[:port]` in lower case; refuses paths, user info, queries and anything
/// that is not visible ASCII.
fn normalize(o: &str) -> Result<String, CorsError> {
    let bad = |reason| CorsError {
        origin: o.to_owned(),
        reason,
    };
    let lower = o.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or_else(|| bad("it must start with https:// or http://"))?;
    if rest.is_empty() {
        return Err(bad("no host"));
    }
    if rest.contains(['/', '?', '#', '@']) {
        return Err(bad("an origin has no path, query or user"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("bad IPv6 address"));
        }
        let port = match after {
            "" => None,
            a => Some(
                a.strip_prefix(':')
                    .ok_or_else(|| bad("junk after the IPv6 address"))?,
            ),
        };
        (h, port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
    {
        return Err(bad("bad host"));
    }
    if let Some(p) = port {
        if p.parse::<u16>().is_err() || p.starts_with('+') {
            return Err(bad("bad port"));
        }
    }
    Ok(lower)
}

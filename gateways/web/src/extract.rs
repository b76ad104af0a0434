//! Extractors that turn every malformed request into our error shape (400
//! `input.invalid`) instead of axum's plain-text rejections.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::auth::Caller;
use crate::credential::Credential;
use crate::error::ApiError;
use crate::token::Invalid;
use crate::App;

/// A JSON body. An empty body reads as `{}` so that routes whose fields are all
/// optional accept a bare POST.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned> FromRequest<App> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &App) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "input.too_large",
                    format!("request body over {} bytes", crate::MAX_BODY_BYTES),
                )
            } else {
                ApiError::invalid(format!("cannot read the body: {e}"))
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map(Body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {}", describe(&e))))
    }
}

/// serde's message, except where it would name one of our Rust types ("expected struct
/// CreateRoom with 8 elements"): clients should read what JSON was expected, not how the
/// server is built.
pub(crate) fn describe(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let names_a_type = [
        "expected struct",
        "expected tuple struct",
        "expected enum",
        "expected unit struct",
    ]
    .iter()
    .any(|p| msg.contains(p));
    if names_a_type {
        format!(
            "expected a JSON object at line {} column {}",
            e.line(),
            e.column()
        )
    } else {
        msg
    }
}

/// Path parameters.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<App> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| ApiError::invalid(format!("invalid path: {e}")))
    }
}

/// Query-string parameters.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<App> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::invalid(format!("invalid query: {e}")))
    }
}

/// Per-request context: the caller, the correlation id and the TCP peer.
pub struct Ctx {
    /// Who is calling. A scoped operator credential on a route of its areas is the
    /// admin here, with [`Ctx::credential`] saying which.
    pub caller: Caller,
    /// The operator credential the admin's authority came from, if not the master token.
    pub credential: Option<crate::credential::Credential>,
    /// The client's `X-Request-Id` when it is a sane id, else a fresh one.
    pub correlation_id: String,
    /// The TCP peer (absent in in-process tests without connect info).
    pub remote: Option<SocketAddr>,
    /// The protocol journaled as the command's origin: `http`, or `websocket` for
    /// commands sent over a room's socket.
    pub protocol: &'static str,
}

impl FromRequestParts<App> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Self, Self::Rejection> {
        let correlation_id = parts
            .extensions
            .get::<CorrelationId>()
            .map(|c| c.0.clone())
            .unwrap_or_else(new_correlation_id);
        let remote = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        if let Some(token) = bearer(&parts.headers).filter(|t| Credential::looks_like(t)) {
            let credential =
                scoped(state, parts, token).map_err(|e| e.with_correlation(&correlation_id))?;
            return Ok(Ctx {
                caller: Caller::Admin,
                credential: Some(credential),
                correlation_id,
                remote,
                protocol: "http",
            });
        }
        let caller = state
            .tokens
            .caller(&state.auth, &parts.headers)
            .and_then(|c| crate::revocation::still_valid(state, c))
            .map_err(|e| e.with_correlation(&correlation_id))?;
        Ok(Ctx {
            caller,
            credential: None,
            correlation_id,
            remote,
            protocol: "http",
        })
    }
}

/// The bearer token of the Authorization header, if any.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim())
}

/// The operator credential `token` stands for, if it may call this route.
fn scoped(state: &App, parts: &Parts, token: &str) -> Result<Credential, ApiError> {
    let credential = Credential::verify(state.tokens.signer(), token, chrono::Utc::now()).map_err(
        |e| match e {
            Invalid::Forged => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "auth.invalid_token",
                "the bearer token is not valid",
            ),
            Invalid::Expired => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "auth.token_expired",
                "this credential has expired; ask the operator for a new one",
            ),
        },
    )?;
    let tag = parts
        .extensions
        .get::<MatchedPath>()
        .and_then(|p| crate::routes::tag_of(&parts.method, p.as_str()));
    match tag {
        Some(tag) if credential.allows(tag, &parts.method) => Ok(credential),
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "auth.out_of_scope",
            format!(
                "credential {} may not call {} {} (areas: {}{})",
                credential.label,
                parts.method,
                parts.uri.path(),
                credential.scopes.join(", "),
                if credential.read_only {
                    ", read only"
                } else {
                    ""
                }
            ),
        )),
    }
}

/// The request's correlation id, chosen once by [`correlate`].
#[derive(Clone)]
pub struct CorrelationId(pub String);

/// Gives every request a correlation id (the client's `X-Request-Id` when it is a sane
/// id) and every error answer that id, even errors raised before a handler ran.
pub async fn correlate(mut req: Request, next: axum::middleware::Next) -> axum::response::Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map(str::to_owned)
        .unwrap_or_else(new_correlation_id);
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let resp = next.run(req).await;
    match resp.extensions().get::<ApiError>() {
        Some(e) => axum::response::IntoResponse::into_response(e.clone().with_correlation(&id)),
        None => resp,
    }
}

pub(crate) fn new_correlation_id() -> String {
    let mut b = [0u8; 8];
    // A zero id on entropy failure still correlates within one request.
    let _ = getrandom::fill(&mut b);
    conclave_journal::hex(&b)
}

//! The one error shape every route answers with:
//! `{"error": {"code", "message", "correlation_id"}}` and the HTTP status of the code.
//! Engine errors take their status and retry hint from the engine's protocol mapping
//! (`EngineError::mapping`), the same table the SIP and XMPP gateways answer from.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use conclave_engine::service::EngineError;
use conclave_engine::ErrorClass;
use serde_json::json;
use thiserror::Error;

/// A refusal or failure, ready to be answered. Codes are stable (see docs/api.md).
#[derive(Debug, Clone, Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code: an engine rejection code (`membership.banned`), a journal code, or
    /// one of the gateway's own (`auth.*`, `input.*`, `route.*`).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Ties the answer to the journaled facts and the server log.
    pub correlation_id: Option<String>,
    /// Seconds after which a retry may succeed, sent as `Retry-After` (with 503s: the
    /// engine stopping or resynchronizing, the server full).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// A gateway-made error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            correlation_id: None,
            retry_after: None,
        }
    }

    /// Ask the client to retry after `secs` seconds (`Retry-After`).
    pub fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 400 `input.invalid`: malformed JSON, parameters or values.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "input.invalid", message)
    }

    /// 401 `auth.required`: the route needs a bearer token and none was sent.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "auth.required",
            "this route needs an Authorization: Bearer token",
        )
    }

    /// 403 `auth.admin_required`: only the admin token may do this.
    pub fn admin_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "auth.admin_required",
            "this route needs the admin token",
        )
    }

    /// 500 `server.internal`: something on our side failed (details go to the log).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server.internal",
            message,
        )
    }

    /// Attach the request's correlation id unless one is already set.
    pub fn with_correlation(mut self, id: &str) -> Self {
        if self.correlation_id.is_none() {
            self.correlation_id = Some(id.to_owned());
        }
        self
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let mapping = e.mapping();
        let status =
            StatusCode::from_u16(mapping.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let correlation_id = match &e {
            EngineError::Rejected { correlation_id, .. } => Some(correlation_id.clone()),
            _ => None,
        };
        match mapping.class {
            ErrorClass::Internal => tracing::error!(code = e.code(), error = %e, "engine error"),
            ErrorClass::Unavailable => {
                tracing::warn!(code = e.code(), error = %e, "engine cannot take the request now")
            }
            ErrorClass::Refused => {}
        }
        ApiError {
            status,
            code: e.code().to_owned(),
            message: e.to_string(),
            correlation_id,
            retry_after: mapping.retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "correlation_id": self.correlation_id,
            }
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.correlation_id.is_none() {
            // The correlation layer re-renders it with the request's id.
            resp.extensions_mut().insert(self.clone());
        }
        if let Some(id) = self
            .correlation_id
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            resp.headers_mut().insert("x-correlation-id", id);
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"conclave\""),
            );
        }
        resp
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_engine::Rejection;
    use conclave_journal::JournalError;

    fn retry_after(e: ApiError) -> Option<String> {
        e.into_response()
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    #[test]
    fn engine_errors_take_status_and_retry_hint_from_the_mapping() {
        let stopped = ApiError::from(EngineError::Stopped);
        assert_eq!(stopped.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(stopped.code, "engine.stopped");
        assert_eq!(retry_after(stopped).as_deref(), Some("30"));

        let raced = ApiError::from(EngineError::Journal(JournalError::HeadConflict {
            expected: 1,
            actual: 2,
        }));
        assert_eq!(raced.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after(raced).as_deref(), Some("1"));

        let failed = ApiError::from(EngineError::Task("panicked".into()));
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after(failed), None);

        let banned = ApiError::from(EngineError::Rejected {
            rejection: Rejection::Banned { until: None },
            correlation_id: "c1".into(),
            recorded: vec![],
        });
        assert_eq!(banned.status, StatusCode::FORBIDDEN);
        assert_eq!(banned.code, "membership.banned");
        assert_eq!(banned.correlation_id.as_deref(), Some("c1"));
        assert_eq!(retry_after(banned), None);
    }
}

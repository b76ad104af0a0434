//! The one error shape every route answers with:
//! `{"error": {"code", "message", "correlation_id"}}` and the HTTP status of the code.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use conclave_engine::service::EngineError;
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
}

impl ApiError {
    /// A gateway-made error.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            correlation_id: None,
        }
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
        let status =
            StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let correlation_id = match &e {
            EngineError::Rejected { correlation_id, .. } => Some(correlation_id.clone()),
            _ => None,
        };
        if status.is_server_error() {
            tracing::error!(code = e.code(), error = %e, "engine error");
        }
        ApiError {
            status,
            code: e.code().to_owned(),
            message: e.to_string(),
            correlation_id,
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

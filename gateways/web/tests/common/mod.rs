//! Helpers shared by the web gateway's in-process tests: an engine and router on a
//! temporary directory, requests through `oneshot`, a two-person meeting.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use conclave_engine::service::{Engine, EngineConfig};
use conclave_gateway_web::{router, AuthConfig};
use conclave_journal::SyncMode;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const ADMIN: &str = "test-admin-token-0123456789abcdef";

/// An engine configuration in `dir` without fsyncs (nothing here survives a power cut).
pub fn config(dir: &std::path::Path) -> EngineConfig {
    let mut config = EngineConfig::new(dir);
    config.journal.sync = SyncMode::None;
    config
}

/// The engine on `config` and the web router over it.
pub fn open(config: EngineConfig) -> (Router, Engine) {
    let engine = Engine::open(config).unwrap();
    (router(engine.clone(), AuthConfig::new(ADMIN)), engine)
}

/// A router over a fresh engine with default settings.
pub fn setup() -> (Router, Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (router, engine) = open(config(dir.path()));
    (router, engine, dir)
}

pub fn request(method: Method, path: &str, token: Option<&str>, body: Value) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

/// One request: the status and the JSON answer (null if it is not JSON).
pub async fn call(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let resp = router
        .clone()
        .oneshot(request(method, path, token, body))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Alice creates `standup`, Bob joins; returns their tokens.
pub async fn meeting(router: &Router) -> (String, String) {
    let (s, v) = call(
        router,
        Method::POST,
        "/rooms",
        None,
        json!({"room": "standup", "as": "web:alice"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let alice = v["token"].as_str().unwrap().to_owned();
    let (s, v) = call(
        router,
        Method::POST,
        "/rooms/standup/join",
        None,
        json!({"as": "web:bob"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    (alice, v["token"].as_str().unwrap().to_owned())
}

/// The body of a request as text (e.g. `/metrics`).
pub async fn text(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let resp = router
        .clone()
        .oneshot(request(method, path, token, json!({})))
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

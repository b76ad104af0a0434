//! Web sessions on a virtual clock: a heartbeat keeps a session alive, a session nobody
//! keeps alive ends when its lease runs out and its token with it, and a token and its
//! session survive a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use chrono::TimeDelta;
use conclave_engine::service::{Engine, EngineConfig, TestClock};
use conclave_engine::testing::{advance, t0, test_clock};
use conclave_engine::Policy;
use conclave_gateway_web::{router, AuthConfig};
use conclave_journal::SyncMode;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN: &str = "test-admin-token-0123456789abcdef";

fn setup(clock: &TestClock) -> (Router, Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path()).with_clock(clock.clone());
    config.journal.sync = SyncMode::None;
    config.policy = Policy {
        session_lease_secs: 300,
        ..Policy::default()
    };
    let engine = Engine::open(config).unwrap();
    (router(engine.clone(), AuthConfig::new(ADMIN)), engine, dir)
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn bob_joins(router: &Router) -> String {
    let (s, _) = call(
        router,
        Method::POST,
        "/rooms",
        None,
        json!({"room": "standup", "as": "web:alice"}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, v) = call(
        router,
        Method::POST,
        "/rooms/standup/join",
        None,
        json!({"as": "web:bob"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    v["token"].as_str().unwrap().to_owned()
}

fn at(secs: i64) -> String {
    (t0() + TimeDelta::seconds(secs)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_moves_the_lease_once_half_is_spent() {
    let clock = test_clock();
    let (router, engine, _dir) = setup(&clock);
    let bob = bob_joins(&router).await;
    let (s, v) = call(
        &router,
        Method::POST,
        "/rooms/standup/heartbeat",
        Some(&bob),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["lease_until"].as_str()),
        (200, Some(at(300).as_str()))
    );
    advance(&engine, &clock, TimeDelta::seconds(200))
        .await
        .unwrap();
    let (s, v) = call(
        &router,
        Method::POST,
        "/rooms/standup/heartbeat",
        Some(&bob),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["lease_until"].as_str()),
        (200, Some(at(500).as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_nobody_keeps_alive_ends_and_its_token_with_it() {
    let clock = test_clock();
    let (router, engine, _dir) = setup(&clock);
    let bob = bob_joins(&router).await;
    let expired = advance(&engine, &clock, TimeDelta::seconds(300))
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].event.type_name(), "room_leave");
    let (s, v) = call(&router, Method::GET, "/me", Some(&bob), json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("auth.token_revoked"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_and_its_session_survive_a_restart() {
    let clock = test_clock();
    let (router, engine, dir) = setup(&clock);
    let bob = bob_joins(&router).await;
    engine.shutdown();
    drop((router, engine));
    let mut config = EngineConfig::new(dir.path()).with_clock(clock.clone());
    config.journal.sync = SyncMode::None;
    config.policy = Policy {
        session_lease_secs: 300,
        ..Policy::default()
    };
    let engine = Engine::open(config).unwrap();
    let router = conclave_gateway_web::router(engine.clone(), AuthConfig::new(ADMIN));
    let (s, v) = call(&router, Method::GET, "/me", Some(&bob), json!({})).await;
    assert_eq!((s, v["identity"].as_str()), (200, Some("web:bob")), "{v}");
    assert_eq!(engine.read(|st| st.online), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_token_is_refused() {
    let clock = test_clock();
    let (router, _engine, _dir) = setup(&clock);
    let bob = bob_joins(&router).await;
    let forged = format!("{}0", &bob[..bob.len() - 1]);
    let (s, v) = call(&router, Method::GET, "/me", Some(&forged), json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("auth.invalid_token"))
    );
}

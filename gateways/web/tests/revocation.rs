//! Participant tokens end with the right they stand for, whichever gateway ended it: here
//! the engine is driven directly (as the NATS gateway does) while the token was issued
//! by the web gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Method, Request};
use axum::Router;
use conclave_engine::command::Command;
use conclave_engine::service::{Engine, EngineConfig, Request as EngineRequest};
use conclave_engine::{Actor, Address, Origin, Principal, RoomName};
use conclave_gateway_web::{router, AuthConfig};
use conclave_journal::SyncMode;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN: &str = "test-admin-token-0123456789abcdef";

fn setup() -> (Router, Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.journal.sync = SyncMode::None;
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

fn by_admin(command: Command) -> EngineRequest {
    EngineRequest::new(
        command,
        Actor::Admin,
        Origin {
            gateway: "nats".into(),
            protocol: "nats".into(),
            remote_addr: None,
        },
    )
}

async fn guest_in_room(router: &Router) -> String {
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
    let bob = v["token"].as_str().unwrap().to_owned();
    let (s, _) = call(router, Method::GET, "/me", Some(&bob), json!({})).await;
    assert_eq!(s, 200);
    bob
}

#[tokio::test]
async fn a_kick_made_through_another_gateway_revokes_the_token() {
    let (router, engine, _dir) = setup();
    let bob = guest_in_room(&router).await;
    engine
        .execute(by_admin(Command::Kick {
            room: RoomName::lookup("standup").unwrap(),
            subject: Principal::Address(Address::parse("web:bob").unwrap()),
            reason: None,
        }))
        .await
        .unwrap();
    let (s, v) = call(&router, Method::GET, "/me", Some(&bob), json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("auth.token_revoked"))
    );
}

#[tokio::test]
async fn destroying_the_room_elsewhere_revokes_the_token() {
    let (router, engine, _dir) = setup();
    let bob = guest_in_room(&router).await;
    engine
        .execute(by_admin(Command::DestroyRoom {
            room: RoomName::lookup("standup").unwrap(),
        }))
        .await
        .unwrap();
    let (s, v) = call(
        &router,
        Method::POST,
        "/rooms/standup/messages",
        Some(&bob),
        json!({"body": "hi"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("auth.token_revoked"))
    );
}

//! Participant tokens end with the right they stand for, whichever gateway ended it: here
//! the engine is driven directly (as the NATS gateway does) while the token was issued
//! by the web gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::Method;
use axum::Router;
use common::{call, meeting, setup};
use conclave_engine::command::Command;
use conclave_engine::service::Request as EngineRequest;
use conclave_engine::{Actor, Address, Origin, Principal, RoomName};
use serde_json::json;

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

/// Bob's token, once the meeting is on and it works.
async fn guest_in_room(router: &Router) -> String {
    let (_alice, bob) = meeting(router).await;
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

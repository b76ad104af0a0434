//! What a password attempt costs: nothing when the join would be refused anyway (a
//! missing room, a ban), one bounded argon2 check otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conclave_engine::command::Command;
use conclave_engine::service::{hash_password, Engine, EngineConfig, Request};
use conclave_engine::{
    Actor, Address, BanScope, Credentials, Origin, Principal, RoomName, Secret, SessionId,
};

fn origin() -> Origin {
    Origin {
        gateway: "test".into(),
        protocol: "none".into(),
        remote_addr: Some("192.0.2.9:4444".into()),
    }
}

fn room(name: &str) -> RoomName {
    RoomName::lookup(name).unwrap()
}

fn mallory() -> Address {
    Address::parse("sip:mallory@example.org").unwrap()
}

fn join_with_password(name: &str) -> Request {
    Request::new(
        Command::Join {
            room: room(name),
            session: SessionId::parse("m1").unwrap(),
            credentials: Credentials {
                password: Some(Secret::new("guess")),
                ..Credentials::default()
            },
        },
        Actor::Identity(mallory()),
        origin(),
    )
}

/// Given a room with an access password.
fn engine_with_locked_room(dir: &std::path::Path) -> Engine {
    let engine = Engine::open(EngineConfig::new(dir)).unwrap();
    engine
        .execute_blocking(Request::new(
            Command::CreateRoom {
                room: room("vault"),
                parent: None,
                private: false,
                owner: Some(Principal::Address(
                    Address::parse("sip:alice@example.org").unwrap(),
                )),
                max_members: None,
                welcome_text: None,
                access_password_hash: Some(hash_password("right").unwrap()),
                server_password: None,
            },
            Actor::Admin,
            origin(),
        ))
        .unwrap();
    engine
}

#[test]
fn a_wrong_password_costs_one_check() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_locked_room(dir.path());
    let err = engine
        .execute_blocking(join_with_password("vault"))
        .unwrap_err();
    assert_eq!(err.code(), "auth.wrong_password");
    assert_eq!(engine.metrics().password_checks, 1);
}

#[test]
fn a_banned_person_costs_no_check() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_locked_room(dir.path());
    engine
        .execute_blocking(Request::new(
            Command::Ban {
                scope: BanScope::Room(room("vault")),
                subject: Principal::Address(mallory()),
                reason: None,
                until: None,
            },
            Actor::Admin,
            origin(),
        ))
        .unwrap();
    let err = engine
        .execute_blocking(join_with_password("vault"))
        .unwrap_err();
    assert_eq!(err.code(), "membership.banned");
    assert_eq!(engine.metrics().password_checks, 0);
}

#[test]
fn a_missing_room_costs_no_check() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_locked_room(dir.path());
    let err = engine
        .execute_blocking(join_with_password("nowhere"))
        .unwrap_err();
    assert_eq!(err.code(), "room.not_found");
    assert_eq!(engine.metrics().password_checks, 0);
}

/// A guest creating a room, offering a server password.
fn create_with_server_password(name: &str, attempt: &str) -> Request {
    Request::new(
        Command::CreateRoom {
            room: room(name),
            parent: None,
            private: false,
            owner: None,
            max_members: None,
            welcome_text: None,
            access_password_hash: None,
            server_password: Some(Secret::new(attempt)),
        },
        Actor::Identity(mallory()),
        origin(),
    )
}

/// Given a server with a password (and the room `vault`).
fn engine_with_server_password(dir: &std::path::Path) -> Engine {
    let engine = engine_with_locked_room(dir);
    engine
        .execute_blocking(Request::new(
            Command::SetServerPassword {
                hash: Some(hash_password("srv").unwrap()),
            },
            Actor::Admin,
            origin(),
        ))
        .unwrap();
    engine
}

#[test]
fn a_creation_checks_the_server_password_in_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_server_password(dir.path());
    let err = engine
        .execute_blocking(create_with_server_password("den", "guess"))
        .unwrap_err();
    assert_eq!(err.code(), "auth.wrong_password");
    assert_eq!(engine.metrics().password_checks, 1);
    engine
        .execute_blocking(create_with_server_password("den", "srv"))
        .unwrap();
    assert_eq!(engine.metrics().password_checks, 2);
    assert!(engine.read(|s| s.rooms.contains_key(&room("den"))));
}

#[test]
fn a_creation_refused_anyway_costs_no_check() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_server_password(dir.path());
    let err = engine
        .execute_blocking(create_with_server_password("vault", "guess"))
        .unwrap_err();
    assert_eq!(err.code(), "room.exists");
    assert_eq!(engine.metrics().password_checks, 0);
}

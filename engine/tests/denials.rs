//! A flood of refused commands does not grow the journal without bound: repeats of the
//! same refusal from the same source are answered but journaled once a minute (engine
//! clock), and counted in the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::TimeDelta;
use conclave_engine::command::Command;
use conclave_engine::service::{Engine, EngineConfig, Request, TestClock};
use conclave_engine::testing::{advance_blocking, test_clock};
use conclave_engine::{
    Actor, Address, Credentials, Origin, Policy, Principal, RoomName, SessionId,
};

fn from(remote: &str) -> Origin {
    Origin {
        gateway: "test".into(),
        protocol: "none".into(),
        remote_addr: Some(remote.into()),
    }
}

fn room(name: &str) -> RoomName {
    RoomName::lookup(name).unwrap()
}

fn given() -> (Engine, TestClock, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = test_clock();
    let mut config = EngineConfig::new(dir.path()).with_clock(clock.clone());
    config.policy = Policy::default();
    config.tick_interval = Duration::from_secs(3600);
    let engine = Engine::open(config).unwrap();
    engine
        .execute_blocking(Request::new(
            Command::CreateRoom {
                room: room("board"),
                parent: None,
                private: true,
                owner: Some(Principal::Address(
                    Address::parse("sip:alice@example.org").unwrap(),
                )),
                max_members: None,
                welcome_text: None,
                access_password_hash: None,
                server_password: None,
            },
            Actor::Admin,
            from("192.0.2.1:1"),
        ))
        .unwrap();
    (engine, clock, dir)
}

/// One attempt by `who` from `remote` to join the private room; its refusal code.
fn attempt(engine: &Engine, who: &str, remote: &str, n: usize) -> String {
    let join = Command::Join {
        room: room("board"),
        session: SessionId::parse(&format!("s{n}")).unwrap(),
        credentials: Credentials::default(),
    };
    let actor = Actor::Identity(Address::parse(who).unwrap());
    engine
        .execute_blocking(Request::new(join, actor, from(remote)))
        .unwrap_err()
        .code()
        .to_owned()
}

#[test]
fn repeated_refusals_from_one_source_are_journaled_once_a_minute() {
    let (engine, clock, _dir) = given();
    // Ten guesses: each journaled (autoban counts them), the tenth with its autoban.
    for n in 0..10 {
        attempt(&engine, "sip:bob@example.org", "198.51.100.9:4000", n);
    }
    let after_guesses = engine.head();
    // Fifty more from the banned address, under fifty names: one journaled.
    for n in 10..60 {
        let who = format!("sip:bot{n}@example.org");
        let code = attempt(&engine, &who, "198.51.100.9:4000", n);
        assert_eq!(code, "membership.banned");
    }
    assert_eq!(engine.head(), after_guesses + 1);
    assert_eq!(engine.metrics().denials_not_journaled, 49);

    // Another source is journaled at once; the same one again after a minute.
    attempt(&engine, "sip:carol@example.org", "203.0.113.5:1", 60);
    assert_eq!(engine.head(), after_guesses + 2);
    advance_blocking(&engine, &clock, TimeDelta::seconds(61)).unwrap();
    let before = engine.head();
    attempt(&engine, "sip:bot61@example.org", "198.51.100.9:4000", 61);
    assert_eq!(engine.head(), before + 1);
}

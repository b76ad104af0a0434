//! A flood of refused commands does not grow the journal without bound: repeats of the
//! same refusal from the same source are answered but journaled once a minute (engine
//! clock), and counted in the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::TimeDelta;
use conclave_engine::command::Command;
use conclave_engine::service::{
    Engine, EngineConfig, EngineError, GatewayScope, Request, TestClock,
};
use conclave_engine::testing::{advance_blocking, test_clock};
use conclave_engine::{
    Actor, Address, Credentials, Origin, Policy, Principal, Rejection, RoomName, Scheme, SessionId,
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

/// One INVITE the SIP gateway refused for want of a common codec, reported as the
/// caller from `remote`; the engine's answer.
fn refused_invite(engine: &Engine, who: &str, remote: &str, room_name: &str) -> EngineError {
    let sip = engine.gateway(GatewayScope {
        name: "sip".into(),
        schemes: vec![Scheme::Sip],
    });
    let req = Request::new(
        Command::RecordGatewayRefusal {
            room: Some(room(room_name)),
            action: "sip_invite".into(),
            code: "sdp.no_common_codec".into(),
        },
        Actor::Identity(Address::parse(who).unwrap()),
        Origin {
            gateway: "sip".into(),
            protocol: "sip".into(),
            remote_addr: Some(remote.into()),
        },
    );
    sip.execute_blocking(req).unwrap_err()
}

#[test]
fn a_stranger_flooding_refused_invites_costs_one_record_a_minute() {
    // given a room
    let (engine, clock, _dir) = given();
    let before = engine.head();
    // when a stranger sends a hundred INVITEs the gateway refuses (488)
    for n in 0..100 {
        let err = refused_invite(
            &engine,
            &format!("sip:bot{n}@example.org"),
            "198.51.100.9",
            "board",
        );
        // then each is answered as a gateway refusal
        match err {
            EngineError::Rejected {
                rejection,
                recorded,
                ..
            } => {
                assert_eq!(
                    rejection,
                    Rejection::GatewayRefused {
                        action: "sip_invite".into(),
                        code: "sdp.no_common_codec".into(),
                    }
                );
                assert_eq!(recorded.len(), usize::from(n == 0), "attempt {n}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // and one is journaled, in the room's stream, the others counted
    assert_eq!(engine.head(), before + 1);
    assert_eq!(engine.metrics().denials_not_journaled, 99);
    let record = engine.journal().reader().get(before + 1).unwrap().unwrap();
    assert_eq!(record.stream, "room:board");
    assert_eq!(record.event_type, "api_action_denied");
    assert_eq!(record.meta.gateway.as_deref(), Some("sip"));

    // Another source is journaled at once, the same one again after a minute; a room
    // nobody holds goes to the server stream, once a minute too.
    refused_invite(&engine, "sip:carol@example.org", "203.0.113.5", "board");
    assert_eq!(engine.head(), before + 2);
    refused_invite(&engine, "sip:bot1@example.org", "198.51.100.9", "nowhere");
    refused_invite(&engine, "sip:bot2@example.org", "198.51.100.9", "elsewhere");
    assert_eq!(engine.head(), before + 3);
    advance_blocking(&engine, &clock, TimeDelta::seconds(61)).unwrap();
    let before = engine.head();
    refused_invite(&engine, "sip:bot1@example.org", "198.51.100.9", "board");
    assert_eq!(engine.head(), before + 1);
}

//! Sessions with leases on a virtual clock: a session lives while its gateway renews it;
//! a lease that runs out is a journaled leave, across restarts too; a restarting gateway
//! ends its old sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::TimeDelta;
use conclave_engine::command::Command;
use conclave_engine::service::{Engine, EngineConfig, EngineError, Outcome, Request, TestClock};
use conclave_engine::testing::{advance_blocking, test_clock};
use conclave_engine::{
    Actor, Address, Credentials, EventKind, LeaveReason, Origin, Policy, Principal, RoomName,
    SessionId,
};

const LEASE: i64 = 120;

fn origin(gateway: &str) -> Origin {
    Origin {
        gateway: gateway.into(),
        protocol: "none".into(),
        remote_addr: None,
    }
}

fn room() -> RoomName {
    RoomName::lookup("standup").unwrap()
}

fn session(s: &str) -> SessionId {
    SessionId::parse(s).unwrap()
}

fn bob() -> Actor {
    Actor::Identity(Address::parse("sip:bob@example.org").unwrap())
}

fn open(dir: &std::path::Path, clock: &TestClock) -> Engine {
    let mut c = EngineConfig::new(dir).with_clock(clock.clone());
    c.policy = Policy {
        session_lease_secs: LEASE as u32,
        ..Policy::default()
    };
    Engine::open(c).unwrap()
}

/// Given a room and Bob present with session `s1` through `gateway`.
fn given_bob_present(engine: &Engine, gateway: &str) {
    let joined = bob_joins(engine, gateway);
    let kinds: Vec<&str> = joined.events.iter().map(|a| a.event.type_name()).collect();
    assert_eq!(kinds, ["room_join", "session_renew"]);
}

/// Creates the room and has Bob join it with session `s1` through `gateway`.
fn bob_joins(engine: &Engine, gateway: &str) -> Outcome {
    engine
        .execute_blocking(Request::new(
            Command::CreateRoom {
                room: room(),
                parent: None,
                private: false,
                owner: Some(Principal::Address(
                    Address::parse("sip:alice@example.org").unwrap(),
                )),
                max_members: None,
                welcome_text: None,
                access_password_hash: None,
                server_password: None,
            },
            Actor::Admin,
            origin("test"),
        ))
        .unwrap();
    engine
        .execute_blocking(Request::new(
            Command::Join {
                room: room(),
                session: session("s1"),
                credentials: Credentials::default(),
            },
            bob(),
            origin(gateway),
        ))
        .unwrap()
}

fn renew(engine: &Engine) -> Result<usize, EngineError> {
    engine
        .execute_blocking(Request::new(
            Command::RenewSession {
                room: room(),
                session: session("s1"),
            },
            bob(),
            origin("sip"),
        ))
        .map(|o| o.events.len())
}

fn present(engine: &Engine) -> bool {
    engine.read(|st| st.rooms[&room()].session_holder(&session("s1")).is_some())
}

fn leave_reasons(events: &[conclave_engine::service::Applied]) -> Vec<LeaveReason> {
    events
        .iter()
        .filter_map(|a| match &a.event.kind {
            EventKind::Left { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn a_lease_that_runs_out_is_a_journaled_leave() {
    let dir = tempfile::tempdir().unwrap();
    let clock = test_clock();
    let engine = open(dir.path(), &clock);
    given_bob_present(&engine, "sip");
    let before = advance_blocking(&engine, &clock, TimeDelta::seconds(LEASE - 1)).unwrap();
    assert!(before.is_empty() && present(&engine));
    let at = advance_blocking(&engine, &clock, TimeDelta::seconds(1)).unwrap();
    assert_eq!(leave_reasons(&at), [LeaveReason::LeaseExpired]);
    assert!(!present(&engine));
}

#[test]
fn a_renewal_is_journaled_only_once_half_the_lease_is_spent() {
    let dir = tempfile::tempdir().unwrap();
    let clock = test_clock();
    let engine = open(dir.path(), &clock);
    given_bob_present(&engine, "sip");
    assert_eq!(renew(&engine).unwrap(), 0);
    advance_blocking(&engine, &clock, TimeDelta::seconds(LEASE / 2)).unwrap();
    assert_eq!(renew(&engine).unwrap(), 1);
    // The lease now runs from the renewal: the old deadline passes harmlessly.
    let old_deadline = advance_blocking(&engine, &clock, TimeDelta::seconds(LEASE / 2)).unwrap();
    assert!(old_deadline.is_empty() && present(&engine));
    let new_deadline = advance_blocking(&engine, &clock, TimeDelta::seconds(LEASE / 2)).unwrap();
    assert_eq!(leave_reasons(&new_deadline), [LeaveReason::LeaseExpired]);
}

#[test]
fn only_the_holder_or_an_operator_renews() {
    let dir = tempfile::tempdir().unwrap();
    let clock = test_clock();
    let engine = open(dir.path(), &clock);
    given_bob_present(&engine, "sip");
    let mallory = Actor::Identity(Address::parse("sip:mallory@example.org").unwrap());
    let err = engine
        .execute_blocking(Request::new(
            Command::RenewSession {
                room: room(),
                session: session("s1"),
            },
            mallory,
            origin("sip"),
        ))
        .unwrap_err();
    assert_eq!(err.code(), "perm.not_yours");
}

#[test]
fn a_session_left_behind_by_a_restart_still_expires() {
    let dir = tempfile::tempdir().unwrap();
    let clock = test_clock();
    {
        let engine = open(dir.path(), &clock);
        given_bob_present(&engine, "web");
        engine.shutdown();
    }
    let engine = open(dir.path(), &clock);
    assert!(present(&engine));
    let expired = advance_blocking(&engine, &clock, TimeDelta::seconds(LEASE)).unwrap();
    assert_eq!(leave_reasons(&expired), [LeaveReason::LeaseExpired]);
    assert_eq!(
        engine.read(|st| st.online),
        0,
        "a ghost holds a server slot"
    );
}

#[test]
fn a_restarting_gateway_ends_its_own_sessions_only() {
    let dir = tempfile::tempdir().unwrap();
    let clock = test_clock();
    let engine = open(dir.path(), &clock);
    given_bob_present(&engine, "web");
    engine
        .execute_blocking(Request::new(
            Command::Join {
                room: room(),
                session: session("s2"),
                credentials: Credentials::default(),
            },
            Actor::Identity(Address::parse("sip:carol@example.org").unwrap()),
            origin("sip"),
        ))
        .unwrap();
    let ended = engine
        .execute_blocking(Request::new(
            Command::EndGatewaySessions {
                gateway: "web".into(),
            },
            Actor::Admin,
            origin("web"),
        ))
        .unwrap();
    assert_eq!(
        leave_reasons(&ended.events),
        [LeaveReason::GatewayRestarted]
    );
    assert!(!present(&engine));
    assert!(engine.read(|st| st.rooms[&room()].session_holder(&session("s2")).is_some()));
}

#[test]
fn only_an_operator_ends_a_gateways_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let clock = test_clock();
    let engine = open(dir.path(), &clock);
    given_bob_present(&engine, "web");
    let err = engine
        .execute_blocking(Request::new(
            Command::EndGatewaySessions {
                gateway: "web".into(),
            },
            bob(),
            origin("web"),
        ))
        .unwrap_err();
    assert!(err.code().starts_with("perm."), "{}", err.code());
    assert!(present(&engine));
}

#[test]
fn an_identity_holds_at_most_its_share_of_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = EngineConfig::new(dir.path()).with_clock(test_clock());
    c.policy = Policy {
        max_sessions_per_identity: 2,
        ..Policy::default()
    };
    let engine = Engine::open(c).unwrap();
    bob_joins(&engine, "sip");
    let join = |s: &str| {
        engine.execute_blocking(Request::new(
            Command::Join {
                room: room(),
                session: session(s),
                credentials: Credentials::default(),
            },
            bob(),
            origin("sip"),
        ))
    };
    join("s2").unwrap();
    let err = join("s3").unwrap_err();
    assert_eq!(err.code(), "membership.too_many_sessions");
    assert_eq!(err.http_status(), 429);
}

#[test]
fn a_gateway_acts_only_for_identities_of_its_scope() {
    use conclave_engine::service::GatewayScope;
    use conclave_engine::Scheme;
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path(), &test_clock());
    given_bob_present(&engine, "sip");
    let sip = engine.gateway(GatewayScope {
        name: "sip".into(),
        schemes: vec![Scheme::Sip],
    });
    let raise = |who: &str| {
        sip.execute_blocking(Request::new(
            Command::RaiseHand { room: room() },
            Actor::Identity(Address::parse(who).unwrap()),
            origin("forged"),
        ))
    };
    raise("sip:bob@example.org").unwrap();
    let head = engine.head();
    let err = raise("xmpp:bob@example.org").unwrap_err();
    assert_eq!(err.code(), "perm.out_of_scope");
    // The attempt is journaled, under the gateway's own name.
    let denial = engine.journal().get(head + 1).unwrap().unwrap();
    assert_eq!(denial.event_type, "api_action_denied");
    assert_eq!(denial.meta.gateway.as_deref(), Some("sip"));
}

//! The Engine service on a virtual clock: expiry falls due at its deadline and not
//! before, with the test clock moved by hand and nothing waiting in real time.
//!
//! Each test reads given / when / then: `given` an engine on a test clock and some
//! commands, `when` the clock moves ([`advance`]: move, then wait until the engine has
//! ticked at the new time), `then` the time-driven events committed meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::TimeDelta;
use conclave_engine::command::Command;
use conclave_engine::service::{
    Applied, Engine, EngineConfig, FeedFilter, Request, SystemClock, TestClock,
};
use conclave_engine::state::InvitationState;
use conclave_engine::testing::{advance, advance_blocking, t0, test_clock};
use conclave_engine::{
    Actor, Address, AutobanPolicy, BanScope, Credentials, EventKind, Origin, Policy, Principal,
    PurgeScope, RoomName, SessionId,
};

fn origin() -> Origin {
    Origin {
        gateway: "test".into(),
        protocol: "none".into(),
        remote_addr: Some("192.0.2.7:5555".into()),
    }
}

fn admin(command: Command) -> Request {
    Request::new(command, Actor::Admin, origin())
}

fn by(who: &str, command: Command) -> Request {
    Request::new(command, Actor::Identity(addr(who)), origin())
}

fn addr(who: &str) -> Address {
    Address::parse(who).unwrap()
}

fn room(name: &str) -> RoomName {
    RoomName::lookup(name).unwrap()
}

fn create(name: &str, private: bool) -> Command {
    Command::CreateRoom {
        room: room(name),
        parent: None,
        private,
        owner: Some(Principal::Address(addr("sip:alice@example.org"))),
        max_members: None,
        welcome_text: None,
        access_password_hash: None,
        server_password: None,
    }
}

fn join(name: &str, session: &str) -> Command {
    Command::Join {
        room: room(name),
        session: SessionId::parse(session).unwrap(),
        credentials: Credentials::default(),
    }
}

fn types(applied: &[Applied]) -> Vec<&'static str> {
    applied.iter().map(|a| a.event.type_name()).collect()
}

/// An engine on a test clock reading `t0`, with `policy`; expiry never waits for the
/// safety net (an hour).
fn given(policy: Policy) -> (Engine, TestClock, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let clock = test_clock();
    let mut config = EngineConfig::new(dir.path()).with_clock(clock.clone());
    config.policy = policy;
    config.tick_interval = Duration::from_secs(3600);
    (Engine::open(config).unwrap(), clock, dir)
}

/// `n` attempts by bob to join a private room he is not invited to: each denied and
/// counted for autoban. The last refusal's code.
fn knock(engine: &Engine, round: &str, n: usize) -> String {
    let mut code = String::new();
    for i in 0..n {
        let join = join("board", &format!("{round}{i}"));
        let err = engine
            .execute_blocking(by("sip:bob@example.org", join))
            .unwrap_err();
        code = err.code().to_owned();
    }
    code
}

#[test]
fn an_empty_room_expires_at_its_inactivity_timeout_and_not_before() {
    let (engine, clock, _dir) = given(Policy::default());
    engine
        .execute_blocking(admin(create("standup", false)))
        .unwrap();

    let early = TimeDelta::minutes(60) - TimeDelta::seconds(1);
    assert!(advance_blocking(&engine, &clock, early).unwrap().is_empty());
    assert!(engine.read(|s| s.rooms.contains_key(&room("standup"))));

    let due = advance_blocking(&engine, &clock, TimeDelta::seconds(1)).unwrap();
    assert_eq!(types(&due), ["room_expire"]);
    assert_eq!(due[0].event.at, t0() + TimeDelta::minutes(60));
    assert!(!engine.read(|s| s.rooms.contains_key(&room("standup"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_expires_at_the_end_of_its_lifetime() {
    let (engine, clock, _dir) = given(Policy::default());
    engine.execute(admin(create("board", true))).await.unwrap();
    engine
        .execute(by(
            "sip:alice@example.org",
            Command::Invite {
                room: room("board"),
                invitee: addr("sip:bob@example.org"),
                ttl_secs: Some(90),
                single_use: true,
                secret: None,
            },
        ))
        .await
        .unwrap();

    let early = advance(&engine, &clock, TimeDelta::seconds(89))
        .await
        .unwrap();
    assert!(early.is_empty());

    let due = advance(&engine, &clock, TimeDelta::seconds(1))
        .await
        .unwrap();
    assert_eq!(types(&due), ["invalidate_invitation"]);
    let states = engine.read(|s| {
        s.rooms[&room("board")]
            .invitations
            .values()
            .map(|i| i.state)
            .collect::<Vec<_>>()
    });
    assert_eq!(states, [InvitationState::Expired]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_ban_ends_at_its_end() {
    let (engine, clock, _dir) = given(Policy::default());
    let bob = Principal::Address(addr("sip:bob@example.org"));
    engine
        .execute(admin(Command::Ban {
            scope: BanScope::Server,
            subject: bob.clone(),
            reason: Some("cool off".into()),
            until: Some(clock.now() + TimeDelta::minutes(10)),
        }))
        .await
        .unwrap();

    let early = advance(&engine, &clock, TimeDelta::seconds(599))
        .await
        .unwrap();
    assert!(early.is_empty());
    assert!(engine.read(|s| s.server_bans.contains_key(&bob)));

    let due = advance(&engine, &clock, TimeDelta::seconds(1))
        .await
        .unwrap();
    assert!(matches!(
        &due[..],
        [Applied { event, .. }]
            if matches!(&event.kind, EventKind::Unbanned { scope: BanScope::Server, expired: true, .. })
    ));
    assert!(engine.read(|s| s.server_bans.is_empty()));
}

#[test]
fn an_autoban_lasts_its_duration_then_lifts() {
    let (engine, clock, _dir) = given(Policy::default());
    engine
        .execute_blocking(admin(create("board", true)))
        .unwrap();
    assert_eq!(knock(&engine, "b", 10), "membership.not_invited");
    assert_eq!(
        engine.read(|s| s.autobans.len()),
        2,
        "by identity and by address"
    );

    let early = advance_blocking(&engine, &clock, TimeDelta::seconds(299)).unwrap();
    assert!(early.is_empty());

    let due = advance_blocking(&engine, &clock, TimeDelta::seconds(1)).unwrap();
    assert_eq!(types(&due), ["autoban_lift", "autoban_lift"]);
    assert!(engine.read(|s| s.autobans.is_empty()));
}

#[test]
fn failures_spread_wider_than_the_autoban_window_do_not_add_up() {
    let (engine, clock, _dir) = given(Policy::default());
    engine
        .execute_blocking(admin(create("board", true)))
        .unwrap();
    knock(&engine, "early", 9);

    clock.advance(TimeDelta::seconds(121));
    knock(&engine, "late", 1);

    assert!(engine.read(|s| s.autobans.is_empty()));
}

/// The clock thread ticks by itself once the clock passes a deadline: no call to
/// `tick_now`, only the feed to watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_ticks_by_itself_when_the_clock_passes_a_deadline() {
    let (engine, clock, _dir) = given(Policy::default());
    engine
        .execute(admin(create("standup", false)))
        .await
        .unwrap();
    let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());

    clock.advance(TimeDelta::minutes(61));

    let next = tokio::time::timeout(Duration::from_secs(30), feed.next());
    let event = next.await.expect("the clock thread never ticked").unwrap();
    assert_eq!(event.event.type_name(), "room_expire");
}

/// A commit whose deadline has already come wakes the clock thread (an autoban that
/// lasts no time at all is due as it is journaled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_due_as_it_commits_is_ticked_without_moving_the_clock() {
    let policy = Policy {
        autoban: AutobanPolicy {
            duration_secs: 0,
            ..AutobanPolicy::default()
        },
        ..Policy::default()
    };
    let (engine, _clock, _dir) = given(policy);
    engine.execute(admin(create("board", true))).await.unwrap();
    let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());
    let e = engine.clone();
    tokio::task::spawn_blocking(move || knock(&e, "b", 10))
        .await
        .unwrap();

    let lifted = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = feed.next().await.unwrap();
            if e.event.type_name() == "autoban_lift" {
                return e;
            }
        }
    });
    let lifted = lifted.await.expect("the clock thread never woke");
    assert_eq!(lifted.event.at, t0());
}

/// On the system clock, the clock thread sleeps until the deadline rather than for its
/// safety net (an hour here): a ban ending in a quarter of a second ends then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_system_clock_expiry_comes_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path()).with_clock(SystemClock);
    config.tick_interval = Duration::from_secs(3600);
    let engine = Engine::open(config).unwrap();
    let mut feed = engine.subscribe(1, FeedFilter::all());
    let until = engine.now() + TimeDelta::milliseconds(250);
    engine
        .execute(admin(Command::Ban {
            scope: BanScope::Server,
            subject: Principal::Address(addr("sip:bob@example.org")),
            reason: None,
            until: Some(until),
        }))
        .await
        .unwrap();

    let unban = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = feed.next().await.unwrap();
            if e.event.type_name() == "unban" {
                return e;
            }
        }
    });
    let unban = unban.await.expect("the ban never ended");
    assert!(unban.event.at >= until);
}

#[test]
fn events_carry_the_engine_clock_and_never_go_back_in_time() {
    let (engine, clock, _dir) = given(Policy::default());
    clock.advance(TimeDelta::seconds(30));
    let first = engine.execute_blocking(admin(create("a", false))).unwrap();
    assert_eq!(first.events[0].event.at, t0() + TimeDelta::seconds(30));

    clock.set(t0());
    let second = engine.execute_blocking(admin(create("b", false))).unwrap();
    assert_eq!(second.events[0].event.at, t0() + TimeDelta::seconds(30));
}

#[test]
fn a_tick_with_nothing_due_journals_nothing() {
    let (engine, clock, _dir) = given(Policy::default());
    engine
        .execute_blocking(admin(create("standup", false)))
        .unwrap();
    let head = engine.head();

    let out = advance_blocking(&engine, &clock, TimeDelta::minutes(5)).unwrap();

    assert!(out.is_empty());
    assert_eq!(engine.head(), head);
}

/// Retention (log days) measured on the engine's clock: content older than the kept
/// days goes, the rest stays, with a month passing in no time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_only_the_last_log_days() {
    let (engine, clock, _dir) = given(Policy::default());
    engine
        .execute(admin(create("standup", false)))
        .await
        .unwrap();
    engine
        .execute(by("sip:bob@example.org", join("standup", "b1")))
        .await
        .unwrap();
    let post = |body: &str| {
        by(
            "sip:bob@example.org",
            Command::PostMessage {
                room: room("standup"),
                body: body.into(),
            },
        )
    };
    engine.execute(post("old news")).await.unwrap();
    clock.advance(TimeDelta::days(32));
    engine.execute(post("fresh")).await.unwrap();

    let scope = PurgeScope::log_days(31, engine.now()).unwrap();
    let out = engine
        .purge_content(scope, Actor::Admin, origin(), None)
        .await
        .unwrap();

    assert_eq!((out.action, out.records_purged), ("retention", 1));
}

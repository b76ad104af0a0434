//! The committed event feed: exactly the committed events, in order, once each, across
//! the hand-over from the journal to the in-memory ring and across a resume.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use conclave_engine::command::Command;
use conclave_engine::service::{Engine, EngineConfig, EngineError, FeedFilter, FeedView, Request};
use conclave_engine::{Actor, Address, Credentials, Origin, Principal, RoomName, SessionId};
use proptest::prelude::*;

fn origin() -> Origin {
    Origin {
        gateway: "test".into(),
        protocol: "none".into(),
        remote_addr: None,
    }
}

fn room(i: u8) -> RoomName {
    RoomName::lookup(&format!("room{i}")).unwrap()
}

fn person(i: u8) -> Actor {
    Actor::Identity(Address::parse(&format!("sip:user{i}@example.org")).unwrap())
}

/// One step of a random meeting; some are refused (a join to a missing room), which
/// journals a denial or nothing, and the feed must follow either way.
#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    Join(u8, u8),
    Leave(u8, u8),
    Chat(u8, u8),
    Destroy(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3u8).prop_map(Op::Create),
        (0..3u8, 0..4u8).prop_map(|(r, u)| Op::Join(r, u)),
        (0..3u8, 0..4u8).prop_map(|(r, u)| Op::Leave(r, u)),
        (0..3u8, 0..4u8).prop_map(|(r, u)| Op::Chat(r, u)),
        (0..3u8).prop_map(Op::Destroy),
    ]
}

fn request(op: &Op) -> Request {
    let session = |u: u8| SessionId::parse(&format!("s{u}")).unwrap();
    let (command, actor) = match *op {
        Op::Create(r) => (
            Command::CreateRoom {
                room: room(r),
                parent: None,
                private: false,
                owner: Some(Principal::Address(
                    Address::parse("sip:owner@example.org").unwrap(),
                )),
                max_members: None,
                welcome_text: None,
                access_password_hash: None,
                server_password: None,
            },
            Actor::Admin,
        ),
        Op::Join(r, u) => (
            Command::Join {
                room: room(r),
                session: session(u),
                credentials: Credentials::default(),
            },
            person(u),
        ),
        Op::Leave(r, u) => (
            Command::Leave {
                room: room(r),
                session: session(u),
            },
            person(u),
        ),
        Op::Chat(r, u) => (
            Command::PostMessage {
                room: room(r),
                body: format!("hello from {u}"),
            },
            person(u),
        ),
        Op::Destroy(r) => (Command::DestroyRoom { room: room(r) }, Actor::Admin),
    };
    Request::new(command, actor, origin())
}

fn engine(dir: &std::path::Path, feed_capacity: usize) -> Engine {
    let mut c = EngineConfig::new(dir);
    c.feed_capacity = feed_capacity;
    Engine::open(c).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The sequence numbers of every record in the journal, in order.
fn journal_seqs(engine: &Engine) -> Vec<u64> {
    engine
        .journal()
        .iter_from(1)
        .map(|r| r.unwrap().seq)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A live subscriber, started before the commands, receives every committed event in
    /// order; it drops out after `drop_after` events and resumes from its position. The
    /// ring is tiny, so the subscriber also falls behind it and reads the journal.
    #[test]
    fn the_feed_delivers_every_committed_event_once_in_order(
        ops in proptest::collection::vec(op(), 1..40),
        drop_after in 0usize..30,
        capacity in 1usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path(), capacity);
        let rt = runtime();
        let reader = {
            let engine = engine.clone();
            rt.spawn(async move {
                let mut seen = Vec::new();
                let mut sub = engine.subscribe(1, FeedFilter::all());
                loop {
                    if seen.len() == drop_after {
                        let from = sub.position();
                        sub = engine.subscribe(from, FeedFilter::all());
                    }
                    match sub.next().await {
                        Ok(e) => {
                            // Delivered only once the committed state includes it.
                            assert!(engine.head() >= e.seq());
                            seen.push(e.seq());
                        }
                        Err(EngineError::Stopped) => return seen,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        };
        for op in &ops {
            let _ = engine.execute_blocking(request(op));
        }
        let expected = journal_seqs(&engine);
        engine.shutdown();
        let seen = rt.block_on(reader).unwrap();
        prop_assert_eq!(seen, expected);
    }
}

#[test]
fn a_subscription_from_the_past_reads_history_then_follows_live() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 2);
    for op in [
        Op::Create(0),
        Op::Join(0, 1),
        Op::Chat(0, 1),
        Op::Join(0, 2),
    ] {
        engine.execute_blocking(request(&op)).unwrap();
    }
    let rt = runtime();
    let mut sub = engine.subscribe(2, FeedFilter::all());
    let first = rt.block_on(sub.next()).unwrap();
    assert_eq!(first.seq(), 2);
    assert_eq!(first.json(FeedView::Full)["seq"], 2);
    // Participants never see stored remote addresses.
    let participant = first.json(FeedView::Participant);
    assert!(participant.get("remote_addr").is_none());
    assert!(participant["event"]["data"].get("remote").is_none());
    assert!(first.json(FeedView::Full).get("remote_addr").is_some());
    assert_eq!(
        &*first.text(FeedView::Participant),
        participant.to_string().as_str()
    );
    assert_eq!(first.json(FeedView::Full)["stream_version"], 2);
    assert_eq!(first.json(FeedView::Full)["actor"], "sip:user1@example.org");
    assert_eq!(first.json(FeedView::Full)["event"]["type"], "room_join");
    for seq in 3..=4 {
        assert_eq!(rt.block_on(sub.next()).unwrap().seq(), seq);
    }
    engine.execute_blocking(request(&Op::Leave(0, 2))).unwrap();
    assert_eq!(rt.block_on(sub.next()).unwrap().seq(), 5);
}

#[test]
fn a_room_filter_delivers_that_room_only() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 64);
    for op in [
        Op::Create(0),
        Op::Create(1),
        Op::Join(1, 1),
        Op::Join(0, 2),
        Op::Chat(1, 1),
    ] {
        engine.execute_blocking(request(&op)).unwrap();
    }
    engine.shutdown();
    let rt = runtime();
    let mut sub = engine.subscribe(1, FeedFilter::room(room(1)));
    let mut types = Vec::new();
    while let Ok(e) = rt.block_on(sub.next()) {
        assert_eq!(e.record.stream, "room:room1");
        types.push(e.event.type_name());
    }
    assert_eq!(types, ["room_create", "room_join", "chat_message"]);
}

#[test]
fn an_identity_filter_delivers_what_concerns_that_identity() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), 64);
    for op in [
        Op::Create(0),
        Op::Join(0, 1),
        Op::Join(0, 2),
        Op::Chat(0, 2),
    ] {
        engine.execute_blocking(request(&op)).unwrap();
    }
    engine.shutdown();
    let rt = runtime();
    let who = Address::parse("sip:user2@example.org").unwrap();
    let mut sub = engine.subscribe(1, FeedFilter::identity(who));
    let mut seqs = Vec::new();
    while let Ok(e) = rt.block_on(sub.next()) {
        seqs.push(e.seq());
    }
    assert_eq!(seqs, [3, 4]);
}

#[test]
fn wait_for_resolves_once_the_committed_state_covers_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(engine(dir.path(), 64));
    let rt = runtime();
    let waiter = {
        let engine = engine.clone();
        rt.spawn(async move {
            engine.wait_for(2).await.unwrap();
            engine.read(|s| s.rooms[&room(0)].members.len())
        })
    };
    engine.execute_blocking(request(&Op::Create(0))).unwrap();
    engine.execute_blocking(request(&Op::Join(0, 1))).unwrap();
    assert_eq!(rt.block_on(waiter).unwrap(), 1);
    engine.shutdown();
    assert!(matches!(
        rt.block_on(engine.wait_for(99)),
        Err(EngineError::Stopped)
    ));
}

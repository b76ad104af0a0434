//! The engine through a storage failure (a disk that fills up) and its recovery, on a
//! journal whose sled storage fails flushes on command: commands are refused with a
//! typed, retryable error while the disk is full, health stays unhealthy without
//! flip-flopping, reads go on, and once space is freed the engine recovers by itself,
//! with a committed state equal to a fresh rebuild from the journal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conclave_engine::command::Command;
use conclave_engine::service::{Engine, EngineConfig, Request, WrapStorage};
use conclave_engine::{Actor, Address, Credentials, Origin, Principal, RoomName, SessionId};
use conclave_journal::storage::{FaultyStorage, SledStorage, Storage};
use conclave_journal::RecoveryBackoff;

fn origin() -> Origin {
    Origin {
        gateway: "test".into(),
        protocol: "none".into(),
        remote_addr: Some("127.0.0.1:5555".into()),
    }
}

fn room(name: &str) -> RoomName {
    RoomName::lookup(name).unwrap()
}

fn create(name: &str) -> Request {
    Request::new(
        Command::CreateRoom {
            room: room(name),
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
        origin(),
    )
}

fn join(name: &str, who: &str, session: &str) -> Request {
    Request::new(
        Command::Join {
            room: room(name),
            session: SessionId::parse(session).unwrap(),
            credentials: Credentials::default(),
        },
        Actor::Identity(Address::parse(who).unwrap()),
        origin(),
    )
}

type Faulty = Arc<FaultyStorage<SledStorage>>;

/// An engine on a journal whose storage the test can fill up, with quick recovery.
fn open(dir: &std::path::Path) -> (Engine, Faulty) {
    let slot: Arc<Mutex<Option<Faulty>>> = Arc::default();
    let mut config = EngineConfig::new(dir);
    config.journal.recovery = RecoveryBackoff {
        first: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    let keep = slot.clone();
    config.journal_storage = Some(WrapStorage(Arc::new(move |sled| {
        let faulty = Arc::new(FaultyStorage::new(sled));
        *keep.lock().unwrap() = Some(faulty.clone());
        faulty as Arc<dyn Storage>
    })));
    let engine = Engine::open(config).unwrap();
    let storage = slot.lock().unwrap().take().unwrap();
    (engine, storage)
}

#[test]
fn a_full_disk_refuses_commands_typed_and_the_engine_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, storage) = open(dir.path());
    engine.execute_blocking(create("standup")).unwrap();
    engine
        .execute_blocking(join("standup", "sip:bob@example.org", "s1"))
        .unwrap();
    let head = engine.head();
    assert!(engine.healthy());

    storage.set_full(true);
    // The command whose flush fails, and every command after it while the disk is full:
    // the same typed, retryable refusal.
    for name in ["refused", "refused-too"] {
        let err = engine.execute_blocking(create(name)).unwrap_err();
        assert_eq!(err.code(), "journal.poisoned", "{err}");
        assert_eq!(err.http_status(), 503);
        assert!(err.mapping().retry_after.is_some());
        assert!(err.to_string().contains("No space left"), "{err}");
    }
    // Health stays unhealthy, with the reason, for as long as the disk is full: no
    // flip-flopping between commands.
    let before = storage.reopens();
    storage.wait_until(|s| s.reopens() >= before + 2);
    for _ in 0..20 {
        assert!(!engine.healthy());
        let failure = engine
            .storage_failure()
            .expect("the storage failure is reported");
        assert!(failure.retrying);
        assert!(failure.reason.contains("No space left"), "{failure:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Reads go on from the committed state and what is durable.
    assert_eq!(engine.head(), head);
    assert!(engine.read(|s| s.rooms.contains_key(&room("standup"))));
    assert!(!engine.read(|s| s.rooms.contains_key(&room("refused"))));
    assert_eq!(
        engine.journal().read_range(1, head).unwrap().len() as u64,
        head
    );
    assert_eq!(engine.journal().damage(), None);

    // Space is freed: the journal reopens its storage and the engine resynchronizes,
    // with no command sent and no restart.
    storage.set_full(false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !engine.healthy() {
        assert!(
            Instant::now() < deadline,
            "the engine did not recover by itself: {:?}",
            engine.storage_failure()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(engine.storage_failure().is_none());
    assert_eq!(engine.journal().head(), head, "a refused record was kept");
    engine.execute_blocking(create("after")).unwrap();
    engine
        .execute_blocking(join("after", "sip:carol@example.org", "s2"))
        .unwrap();
    assert!(!engine.read(|s| s.rooms.contains_key(&room("refused"))));
    assert_eq!(engine.head(), engine.journal().head());
    let committed = engine.read(|s| s.clone());
    engine.shutdown();
    drop(engine);
    drop(storage);

    // The committed state is exactly a fresh rebuild of the journal (no checkpoint).
    std::fs::remove_dir_all(dir.path().join("projections")).unwrap();
    let rebuilt = Engine::open(EngineConfig::new(dir.path())).unwrap();
    assert!(rebuilt.journal().verify().unwrap().is_ok());
    assert_eq!(rebuilt.read(|s| s.clone()), committed);
    assert!(!rebuilt.read(|s| s.rooms.contains_key(&room("refused"))));
}

//! The Engine service end to end on a real journal: durability, denials journaled and
//! answered, restarts from checkpoints, concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conclave_engine::command::Command;
use conclave_engine::service::{Engine, EngineConfig, EngineError, Request};
use conclave_engine::{Actor, Address, Credentials, Origin, Principal, RoomName, SessionId};

fn origin() -> Origin {
    Origin {
        gateway: "test".into(),
        protocol: "none".into(),
        remote_addr: Some("127.0.0.1:5555".into()),
    }
}

fn admin(command: Command) -> Request {
    Request::new(command, Actor::Admin, origin())
}

fn as_person(who: &str, command: Command) -> Request {
    Request::new(
        command,
        Actor::Identity(Address::parse(who).unwrap()),
        origin(),
    )
}

fn room(name: &str) -> RoomName {
    RoomName::lookup(name).unwrap()
}

fn create(name: &str, private: bool) -> Command {
    Command::CreateRoom {
        room: room(name),
        parent: None,
        private,
        owner: Some(Principal::Address(
            Address::parse("sip:alice@example.org").unwrap(),
        )),
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

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir);
    c.checkpoint_every = 5;
    c
}

#[test]
fn commands_are_durable_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        let out = engine
            .execute_blocking(admin(create("standup", false)))
            .unwrap();
        assert!(!out.events.is_empty());
        assert_eq!(out.events[0].event.type_name(), "room_create");
        assert_eq!(out.head, engine.journal().head());
        engine
            .execute_blocking(as_person("sip:bob@example.org", join("standup", "s1")))
            .unwrap();
        assert_eq!(engine.read(|s| s.rooms[&room("standup")].members.len()), 1);
        // The journal says who did it and from where, with the address obfuscated.
        let last = engine
            .journal()
            .get(engine.journal().head())
            .unwrap()
            .unwrap();
        assert_eq!(last.meta.actor.as_deref(), Some("sip:bob@example.org"));
        assert_eq!(last.meta.gateway.as_deref(), Some("test"));
        assert!(!last.meta.remote_addr.unwrap().contains("127.0.0.1"));
        engine.shutdown();
    }
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(engine.read(|s| s.rooms[&room("standup")].members.len()), 1);
    assert!(engine.journal().verify().unwrap().is_ok());
}

#[test]
fn a_denied_join_is_journaled_and_answered() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine
        .execute_blocking(admin(create("board", true)))
        .unwrap();
    let head = engine.head();
    let err = engine
        .execute_blocking(as_person("xmpp:mallory@example.org", join("board", "m1")))
        .unwrap_err();
    assert_eq!(err.code(), "membership.not_invited");
    assert_eq!(err.http_status(), 403);
    let EngineError::Rejected { recorded, .. } = err else {
        panic!("not a rejection")
    };
    assert_eq!(recorded, vec![head + 1]);
    let denial = engine.journal().get(head + 1).unwrap().unwrap();
    assert_eq!(denial.event_type, "join_denied");
    // A refusal that records nothing changes nothing.
    let err = engine
        .execute_blocking(as_person(
            "sip:bob@example.org",
            Command::DestroyRoom { room: room("nope") },
        ))
        .unwrap_err();
    assert_eq!(err.code(), "room.not_found");
    assert_eq!(engine.head(), head + 1);
}

#[test]
fn restart_uses_the_checkpoint_and_replays_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        for i in 0..12 {
            engine
                .execute_blocking(admin(create(&format!("r{i}"), false)))
                .unwrap();
        }
        // Drop without shutdown: the periodic checkpoint (every 5 records) is older
        // than the head, so a restart must replay the tail after it.
    }
    let engine = Engine::open(config(dir.path())).unwrap();
    assert_eq!(engine.read(|s| s.rooms.len()), 12);
    assert_eq!(engine.head(), engine.journal().head());
}

#[test]
fn a_checkpoint_that_does_not_match_the_journal_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    {
        let engine = Engine::open(config(dir.path())).unwrap();
        engine
            .execute_blocking(admin(create("mine", false)))
            .unwrap();
        engine.shutdown();
    }
    {
        let engine = Engine::open(config(other.path())).unwrap();
        engine
            .execute_blocking(admin(create("theirs", false)))
            .unwrap();
        engine.shutdown();
    }
    // Put the other server's checkpoint beside this journal.
    std::fs::remove_dir_all(dir.path().join("projections")).unwrap();
    copy_dir(
        &other.path().join("projections"),
        &dir.path().join("projections"),
    );
    let engine = Engine::open(config(dir.path())).unwrap();
    assert!(engine.read(|s| s.rooms.contains_key(&room("mine"))));
    assert!(!engine.read(|s| s.rooms.contains_key(&room("theirs"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_are_serialized_and_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.execute(admin(create("big", false))).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let who = format!("web:user{i}");
            engine
                .execute(as_person(&who, join("big", &format!("s{i}"))))
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.code(), "room.full"),
        }
    }
    let members = engine.read(|s| s.rooms[&room("big")].members.len());
    assert_eq!(members, ok);
    assert!(members <= 64);
    assert_eq!(engine.head(), engine.journal().head());
    assert!(engine.journal().verify().unwrap().is_ok());
}

/// `submit` queues before it returns: commands submitted in a row and awaited together
/// are journaled in submission order (a gateway relaying one client keeps its order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_commands_are_journaled_in_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    engine.execute(admin(create("chat", false))).await.unwrap();
    engine
        .execute(as_person("sip:alice@example.org", join("chat", "s1")))
        .await
        .unwrap();
    let answers: Vec<_> = (0..200)
        .map(|i| {
            engine.submit(as_person(
                "sip:alice@example.org",
                Command::PostMessage {
                    room: room("chat"),
                    body: format!("m{i}"),
                },
            ))
        })
        .collect();
    let mut tasks = Vec::new();
    for a in answers {
        tasks.push(tokio::spawn(a));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let bodies: Vec<String> = engine
        .audit(&conclave_engine::service::audit::AuditQuery {
            room: Some("chat".into()),
            event_type: Some("chat_message".into()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter_map(|e| e.event["data"]["body"].as_str().map(str::to_owned))
        .collect();
    let expected: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected);
}

/// The decider batches concurrent commands into one journal append; a command whose
/// record the journal would refuse must fail alone, not take its batch with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_journal_would_refuse_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.journal.max_record_bytes = 2_000;
    let engine = Engine::open(cfg).unwrap();
    engine.execute(admin(create("big", false))).await.unwrap();
    for i in 0..32 {
        let who = format!("web:user{i}");
        engine
            .execute(as_person(&who, join("big", &format!("s{i}"))))
            .await
            .unwrap();
    }
    for round in 0..3 {
        let mut tasks = Vec::new();
        for i in 0..32 {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                let body = if i == 13 {
                    "x".repeat(1_900)
                } else {
                    format!("hello {round}")
                };
                let who = format!("web:user{i}");
                let post = Command::PostMessage {
                    room: room("big"),
                    body,
                };
                (i, engine.execute(as_person(&who, post)).await)
            }));
        }
        for t in tasks {
            match t.await.unwrap() {
                (13, result) => assert_eq!(result.unwrap_err().code(), "journal.invalid_record"),
                (i, result) => assert!(result.is_ok(), "user{i}: {:?}", result.err()),
            }
        }
    }
    assert_eq!(engine.head(), engine.journal().head());
    assert!(engine.journal().verify().unwrap().is_ok());
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn the_audit_view_filters_by_room_actor_subject_type_and_time() {
    use conclave_engine::service::audit::AuditQuery;
    let dir = tempfile::tempdir().unwrap();
    let clock = conclave_engine::testing::test_clock();
    let engine = Engine::open(config(dir.path()).with_clock(clock.clone())).unwrap();
    engine.execute_blocking(admin(create("a", false))).unwrap();
    engine.execute_blocking(admin(create("b", true))).unwrap();
    let middle = clock.advance(chrono::TimeDelta::seconds(1));
    engine
        .execute_blocking(as_person("sip:bob@example.org", join("a", "s1")))
        .unwrap();
    let _ = engine.execute_blocking(as_person("sip:eve@example.org", join("b", "s2")));
    let all = engine.audit(&AuditQuery::default()).unwrap();
    assert_eq!(all.len() as u64, engine.head());
    let in_b = engine
        .audit(&AuditQuery {
            room: Some("b".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(in_b.iter().all(|e| e.stream == "room:b"));
    assert!(in_b.iter().any(|e| e.event_type == "join_denied"));
    let by_bob = engine
        .audit(&AuditQuery {
            actor: Some("sip:bob@example.org".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_bob.len(), 1);
    assert_eq!(by_bob[0].event_type, "room_join");
    let about_eve = engine
        .audit(&AuditQuery {
            subject: Some("sip:eve@example.org".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(!about_eve.is_empty());
    assert!(about_eve.iter().all(|e| e.event_type == "join_denied"));
    let later = engine
        .audit(&AuditQuery {
            from: Some(middle),
            ..Default::default()
        })
        .unwrap();
    assert!(later.iter().all(|e| e.event_type != "room_create"));
    assert!(!later.is_empty());
    let creates = engine
        .audit(&AuditQuery {
            event_type: Some("room_create".into()),
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(creates.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_passwords_are_checked_off_the_decider_and_still_decide() {
    use conclave_engine::command::Secret;
    use conclave_engine::service::hash_password;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let mut cmd = create("vault", false);
    if let Command::CreateRoom {
        access_password_hash,
        ..
    } = &mut cmd
    {
        *access_password_hash = Some(hash_password("letmein").unwrap());
    }
    engine.execute(admin(cmd)).await.unwrap();
    let with = |password: &str, session: &str| Command::Join {
        room: room("vault"),
        session: SessionId::parse(session).unwrap(),
        credentials: Credentials {
            password: Some(Secret::new(password)),
            ..Credentials::default()
        },
    };
    let err = engine
        .execute(as_person("web:eve", with("guess", "e1")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "auth.wrong_password");
    engine
        .execute(as_person("web:bob", with("letmein", "b1")))
        .await
        .unwrap();
    assert_eq!(engine.read(|s| s.rooms[&room("vault")].members.len()), 1);
}

/// A meeting where bob (account `bob`, two linked identities) and carol chat.
fn chatty(engine: &Engine) {
    use conclave_engine::AccountId;
    let bob = AccountId::parse("bob").unwrap();
    engine
        .execute_blocking(admin(Command::CreateAccount {
            account: bob.clone(),
            display_name: Some("BobExample".into()),
        }))
        .unwrap();
    for a in ["sip:bob@example.org", "xmpp:bob@example.org"] {
        engine
            .execute_blocking(admin(Command::LinkIdentity {
                account: bob.clone(),
                address: Address::parse(a).unwrap(),
            }))
            .unwrap();
    }
    engine
        .execute_blocking(admin(create("standup", false)))
        .unwrap();
    for (who, s, body) in [
        ("xmpp:bob@example.org", "b1", "bob's secret"),
        ("sip:carol@example.org", "c1", "carol's note"),
    ] {
        engine
            .execute_blocking(as_person(who, join("standup", s)))
            .unwrap();
        engine
            .execute_blocking(as_person(
                who,
                Command::PostMessage {
                    room: room("standup"),
                    body: body.into(),
                },
            ))
            .unwrap();
    }
}

fn chat_bodies(engine: &Engine) -> Vec<serde_json::Value> {
    use conclave_engine::service::audit::AuditQuery;
    engine
        .audit(&AuditQuery {
            event_type: Some("chat_message".into()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|e| e.event["data"]["body"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_goes_through_the_decider_and_the_chain_still_verifies() {
    use conclave_engine::PurgeScope;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let e = engine.clone();
    tokio::task::spawn_blocking(move || chatty(&e))
        .await
        .unwrap();
    assert_eq!(chat_bodies(&engine), ["bob's secret", "carol's note"]);
    let head = engine.head();

    // Someone who is not an operator: refused, audited, nothing scanned or purged.
    let err = engine
        .purge_content(
            PurgeScope::Person(Principal::parse("sip:bob@example.org").unwrap()),
            Actor::Identity(Address::parse("sip:carol@example.org").unwrap()),
            origin(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "perm.not_admin");
    assert_eq!(engine.head(), head + 1);
    let denied = engine.journal().get(head + 1).unwrap().unwrap();
    assert_eq!(denied.event_type, "api_action_denied");

    // Erasing bob by his SIP identity takes his display name and the message he posted
    // from XMPP; carol's message stays.
    let out = engine
        .purge_content(
            PurgeScope::Person(Principal::parse("sip:bob@example.org").unwrap()),
            Actor::Admin,
            origin(),
            Some("erase-1".into()),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.action, out.records_selected, out.records_purged),
        ("erasure", 2, 2)
    );
    assert_eq!(out.up_to_seq, head + 1);
    let seq = out.journaled_seq.unwrap();
    assert_eq!(seq, head + 2);
    let fact = engine.journal().get(seq).unwrap().unwrap();
    assert_eq!(fact.event_type, "content_purge");
    assert_eq!(fact.meta.correlation_id.as_deref(), Some("erase-1"));
    assert_eq!(engine.head(), seq);
    assert_eq!(
        chat_bodies(&engine),
        [serde_json::Value::Null, "carol's note".into()]
    );
    let report = engine.journal().verify().unwrap();
    assert!(report.is_ok());
    assert_eq!(report.purged_content, 2);
    // The live state forgets the display name too, and so does the next start.
    let display_names = |engine: &Engine| {
        engine.read(|s| {
            s.accounts
                .values()
                .filter_map(|a| a.display_name.clone())
                .collect::<Vec<_>>()
        })
    };
    assert!(display_names(&engine).is_empty());

    // Again: nothing left to purge, nothing journaled.
    let again = engine
        .purge_content(
            PurgeScope::Person(Principal::parse("account:bob").unwrap()),
            Actor::Admin,
            origin(),
            None,
        )
        .await
        .unwrap();
    assert_eq!((again.records_selected, again.journaled_seq), (0, None));
    assert_eq!(engine.head(), seq);

    // Retention keeping nothing takes the rest; the engine keeps deciding afterwards.
    let scope = PurgeScope::log_days(-1, engine.now()).unwrap();
    let out = engine
        .purge_content(scope, Actor::Admin, origin(), None)
        .await
        .unwrap();
    assert_eq!((out.action, out.records_purged), ("retention", 1));
    assert_eq!(
        chat_bodies(&engine),
        [serde_json::Value::Null, serde_json::Value::Null]
    );
    engine
        .execute(as_person("sip:dan@example.org", join("standup", "d1")))
        .await
        .unwrap();
    assert!(engine.journal().verify().unwrap().is_ok());
}

//! The decider's queue is bounded: while it is full, one more command is refused at once
//! as busy (503 with Retry-After over HTTP), nothing queued is lost, and places come
//! back as commands are decided.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conclave_engine::command::Command;
use conclave_engine::service::{Engine, EngineConfig, EngineError, Request};
use conclave_engine::{Actor, Origin};

/// An operator command that journals one event (each text differs from the last).
fn create(text: &str) -> Request {
    Request::new(
        Command::SetWelcomeText {
            text: text.to_owned(),
        },
        Actor::Admin,
        Origin::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_at_once_and_loses_nothing_queued() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.max_queued_commands = 4;
    let engine = Engine::open(config).unwrap();
    let head = engine.head();

    let hold = engine.hold_decider().unwrap();
    let queued: Vec<_> = (0..4)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.execute(create(&format!("r{i}"))).await })
        })
        .collect();
    // Wait until the four have their places (each task queues and then waits).
    while engine.metrics().queued_commands < 4 {
        tokio::task::yield_now().await;
    }
    // Refused at once: without a bound it would wait for the held decider (the timeout
    // only turns that hang into a failure).
    let refused = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        engine.execute(create("one-more")),
    )
    .await
    .expect("answered at once, not queued")
    .unwrap_err();
    assert_eq!(refused.code(), "engine.busy");
    assert!(matches!(refused, EngineError::Busy(_)));
    assert_eq!(engine.metrics().queue_full, 1);

    drop(hold);
    for q in queued {
        q.await.unwrap().unwrap();
    }
    assert_eq!(engine.head(), head + 4);
    // Places came back.
    engine.execute(create("after")).await.unwrap();
}

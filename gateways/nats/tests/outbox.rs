//! The outbox against a real nats-server: order, completeness, outage and restart
//! recovery, deduplication, core NATS mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use async_nats::jetstream;
use conclave_gateway_nats::{
    setup_stream, start, NatsAuth, NatsConfig, NatsHandle, NatsTls, StreamOptions,
};
use futures_util::StreamExt;
use serde_json::Value;
use support::{eventually, meeting, open_engine, NatsServer};

fn config(url: &str, dir: &std::path::Path) -> NatsConfig {
    let mut c = NatsConfig::new(url, dir.join("nats-cursor"));
    c.server_id = "test-1".into();
    c.backoff_max = Duration::from_millis(400);
    c.ack_timeout = Duration::from_secs(1);
    c
}

async fn caught_up(h: &NatsHandle) {
    eventually(30, || {
        let s = h.status();
        s.lag == 0 && s.connected
    })
    .await;
}

/// Every message of the stream, by stream sequence.
async fn stream_messages(url: &str) -> Vec<jetstream::message::StreamMessage> {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let mut stream = js.get_stream("CONCLAVE_EVENTS").await.unwrap();
    let info = stream.info().await.unwrap().clone();
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        out.push(stream.get_raw_message(seq).await.unwrap());
    }
    out
}

fn header(m: &jetstream::message::StreamMessage, name: &str) -> String {
    m.headers.get(name).unwrap().as_str().to_owned()
}

/// Exactly the journal's records 1..=head, each once, in order.
fn assert_exact(messages: &[jetstream::message::StreamMessage], head: u64) {
    let seqs: Vec<u64> = messages
        .iter()
        .map(|m| header(m, "Conclave-Seq").parse().unwrap())
        .collect();
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
    for m in messages {
        let ce: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(ce["id"], header(m, "Conclave-Seq"));
        assert_eq!(header(m, "Nats-Msg-Id"), header(m, "Conclave-Seq"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_reaches_jetstream_in_order_as_a_cloudevent() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    setup_stream(
        &server.url(),
        &NatsAuth::default(),
        &NatsTls::default(),
        &StreamOptions::default(),
    )
    .await
    .unwrap();
    let engine = open_engine(&dir.path().join("data"));
    let handle = start(engine.clone(), config(&server.url(), dir.path()))
        .await
        .unwrap();
    meeting(&engine, "lobby", "m1").await;
    meeting(&engine, "Team Ωμέγα (ops)", "m2").await;
    caught_up(&handle).await;
    let head = engine.journal().head();
    assert!(head >= 10);

    let messages = stream_messages(&server.url()).await;
    assert_exact(&messages, head);
    // The stream sequence equals the journal sequence when the stream predates the
    // first publication.
    assert!(messages
        .iter()
        .all(|m| m.sequence.to_string() == header(m, "Conclave-Seq")));

    let created: Vec<_> = messages
        .iter()
        .filter(|m| header(m, "Conclave-Event-Type") == "room_create")
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(
        created[1].subject.as_str(),
        "conclave.events.room.Team%20%CE%A9%CE%BC%CE%AD%CE%B3%CE%B1%20%28ops%29.room_create"
    );
    assert_eq!(
        header(created[1], "Conclave-Stream"),
        "room:Team Ωμέγα (ops)"
    );
    let ce: Value = serde_json::from_slice(&created[0].payload).unwrap();
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["source"], "/conclave/test-1");
    assert_eq!(ce["type"], "org.conclave.room_create.v2");
    assert_eq!(ce["subject"], "room:lobby");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["sequence"], ce["id"]);
    assert_eq!(ce["streamversion"], "1");
    assert!(ce["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ce["data"]["type"], "room_create");
    assert_eq!(ce["data"]["actor"], "admin");
    assert_eq!(ce["data"]["meta"]["origin"]["gateway"], "test");
    assert!(ce["data"]["meta"]["correlation_id"].is_string());

    let status = handle.status();
    assert_eq!(status.cursor, head);
    assert!(status.health_json()["connected"].as_bool().unwrap());
    assert!(status
        .prometheus()
        .contains(&format!("conclave_nats_cursor {head}\n")));
    handle.shutdown().await;
    let stored = std::fs::read_to_string(dir.path().join("nats-cursor")).unwrap();
    assert_eq!(stored, format!("conclave-nats-cursor 1 {head}\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_and_restarts_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    setup_stream(
        &server.url(),
        &NatsAuth::default(),
        &NatsTls::default(),
        &StreamOptions::default(),
    )
    .await
    .unwrap();
    let engine = open_engine(&dir.path().join("data"));
    let cfg = config(&server.url(), dir.path());
    let handle = start(engine.clone(), cfg.clone()).await.unwrap();
    meeting(&engine, "r1", "a").await;
    caught_up(&handle).await;

    // The NATS server dies mid-meeting; the meeting goes on.
    server.kill();
    meeting(&engine, "r2", "b").await;
    eventually(10, || !handle.status().connected).await;
    assert!(handle.status().lag > 0);
    assert!(handle.status().last_error.is_some());
    server.restart();
    meeting(&engine, "r3", "c").await;
    caught_up(&handle).await;

    // Conclave stops; records appended meanwhile are published after its restart.
    handle.shutdown().await;
    meeting(&engine, "r4", "d").await;
    let handle = start(engine.clone(), cfg.clone()).await.unwrap();
    caught_up(&handle).await;
    handle.shutdown().await;

    // A crash between acks and the cursor write: the cursor file is behind what the
    // stream holds. The records are sent again and JetStream drops them by Nats-Msg-Id.
    let head = engine.journal().head();
    conclave_gateway_nats::cursor::CursorFile::new(&cfg.cursor_path)
        .store(head - 3)
        .unwrap();
    let handle = start(engine.clone(), cfg).await.unwrap();
    caught_up(&handle).await;
    assert_eq!(handle.status().duplicates_total, 3);
    handle.shutdown().await;

    assert_exact(&stream_messages(&server.url()).await, head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_past_the_journal_head_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_engine(&dir.path().join("data"));
    let cfg = config("nats://127.0.0.1:1", dir.path());
    conclave_gateway_nats::cursor::CursorFile::new(&cfg.cursor_path)
        .store(5)
        .unwrap();
    let err = start(engine, cfg).await.err().unwrap();
    assert_eq!(err.code(), "nats.cursor_ahead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_nats_subscribers_get_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut sub = client.subscribe("conclave.events.>").await.unwrap();
    client.flush().await.unwrap();
    let engine = open_engine(&dir.path().join("data"));
    let mut cfg = config(&server.url(), dir.path());
    cfg.jetstream = false;
    let handle = start(engine.clone(), cfg).await.unwrap();
    meeting(&engine, "lobby", "m").await;
    caught_up(&handle).await;
    let head = engine.journal().head();
    let mut seqs = Vec::new();
    while (seqs.len() as u64) < head {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap()
            .unwrap();
        let h = m.headers.unwrap();
        seqs.push(
            h.get("Conclave-Seq")
                .unwrap()
                .as_str()
                .parse::<u64>()
                .unwrap(),
        );
    }
    assert_eq!(seqs, (1..=head).collect::<Vec<_>>());
    handle.shutdown().await;
}

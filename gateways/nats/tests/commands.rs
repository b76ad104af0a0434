//! Commands over NATS request/reply against a real nats-server and a real engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use async_nats::HeaderMap;
use conclave_engine::RoomName;
use conclave_gateway_nats::{start, NatsConfig, ServiceCredential};
use serde_json::{json, Value};
use support::{open_engine, NatsServer};

const TOKEN: &str = "bot-token-0123456789";

async fn request(
    client: &async_nats::Client,
    cmd: &str,
    token: Option<&str>,
    body: &[u8],
) -> Value {
    let mut h = HeaderMap::new();
    if let Some(t) = token {
        h.insert("Conclave-Token", t);
    }
    let reply = client
        .request_with_headers(format!("conclave.cmd.{cmd}"), h, body.to_vec().into())
        .await
        .unwrap();
    serde_json::from_slice(&reply.payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_run_commands_and_get_sequences_or_typed_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let engine = open_engine(&dir.path().join("data"));
    let mut cfg = NatsConfig::new(server.url(), dir.path().join("nats-cursor"));
    cfg.publish = false;
    cfg.credentials = vec![ServiceCredential {
        name: "crm".into(),
        token: TOKEN.into(),
        may_act_as: true,
    }];
    let handle = start(engine.clone(), cfg).await.unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    support::eventually(10, || handle.status().connected).await;

    let body = br#"{"room":"standup","private":false,"owner":"sip:alice@example.org"}"#;
    // The responder subscribes in the background; retry until it answers.
    let mut r = Value::Null;
    for _ in 0..100 {
        let mut h = HeaderMap::new();
        h.insert("Conclave-Token", TOKEN);
        match client
            .request_with_headers("conclave.cmd.create_room", h, body.to_vec().into())
            .await
        {
            Ok(m) => {
                r = serde_json::from_slice(&m.payload).unwrap();
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    assert_eq!(r["ok"], true, "{r}");
    let seq = r["seqs"][0].as_u64().unwrap();
    assert_eq!(r["events"][0]["type"], "room_create");
    assert_eq!(r["head"].as_u64().unwrap(), engine.head());
    let room = RoomName::from_stored("standup".into());
    assert!(engine.read(|s| s.rooms.contains_key(&room)));
    let record = engine.journal().get(seq).unwrap().unwrap();
    assert_eq!(record.meta.gateway.as_deref(), Some("nats"));
    assert_eq!(record.meta.protocol.as_deref(), Some("nats"));
    assert_eq!(record.meta.actor.as_deref(), Some("service:crm"));

    // Typed rejections from the engine and from the gateway.
    let r = request(&client, "create_room", Some(TOKEN), body).await;
    assert_eq!(r["error"]["code"], "room.exists", "{r}");
    let r = request(
        &client,
        "create_room",
        Some("wrong-token-wrong-token"),
        body,
    )
    .await;
    assert_eq!(r["error"]["code"], "nats.unauthorized");
    let r = request(&client, "create_room", None, body).await;
    assert_eq!(r["error"]["code"], "nats.unauthorized");
    let r = request(&client, "no_such_command", Some(TOKEN), b"{}").await;
    assert_eq!(r["error"]["code"], "nats.unknown_command");
    let r = request(&client, "create_room", Some(TOKEN), b"\x00\xff garbage").await;
    assert_eq!(r["error"]["code"], "nats.bad_request");

    // Acting as a person: the engine applies that person's rights.
    let mut h = HeaderMap::new();
    h.insert("Conclave-Token", TOKEN);
    h.insert("Conclave-Act-As", "sip:bob@example.org");
    h.insert("Conclave-Correlation-Id", "crm-42");
    let join = json!({"room": "standup", "session": "bob-1", "credentials": {}});
    let m = client
        .request_with_headers("conclave.cmd.join", h, join.to_string().into())
        .await
        .unwrap();
    let r: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["correlation_id"], "crm-42");
    let rec = engine
        .journal()
        .get(r["seqs"][0].as_u64().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(rec.meta.actor.as_deref(), Some("sip:bob@example.org"));
    assert_eq!(rec.meta.correlation_id.as_deref(), Some("crm-42"));

    let st = handle.status();
    assert!(st.commands_total >= 7);
    assert!(st.commands_rejected_total >= 5);
    handle.shutdown().await;
}

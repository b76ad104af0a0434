//! The live event feed over SSE and the chat history, in process against a real engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request};
use common::{call, meeting, request, setup, ADMIN};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// One parsed SSE message: its event name (None for plain messages), id and data.
#[derive(Debug)]
struct Sse {
    event: Option<String>,
    id: Option<u64>,
    data: Value,
}

/// Reads SSE messages from a streaming body until `n` arrived or the stream ended.
async fn read_sse(body: Body, n: usize) -> Vec<Sse> {
    let mut body = body;
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let Some(frame) = body.frame().await else {
            break;
        };
        let frame = frame.unwrap();
        let Some(data) = frame.data_ref() else {
            continue;
        };
        buf.push_str(std::str::from_utf8(data).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line
                    .strip_prefix("event: ")
                    .or_else(|| line.strip_prefix("event:"))
                {
                    event = Some(v.to_owned());
                } else if let Some(v) = line
                    .strip_prefix("id: ")
                    .or_else(|| line.strip_prefix("id:"))
                {
                    id = v.parse().ok();
                } else if let Some(v) = line
                    .strip_prefix("data: ")
                    .or_else(|| line.strip_prefix("data:"))
                {
                    data = Some(serde_json::from_str(v).unwrap());
                }
            }
            if let Some(data) = data {
                out.push(Sse { event, id, data });
            }
        }
    }
    out
}

#[tokio::test]
async fn the_admin_stream_replays_history_in_order_and_resumes_after_last_event_id() {
    let (router, engine, _dir) = setup();
    let (_alice, bob) = meeting(&router).await;
    let head = engine.head();
    let resp = router
        .clone()
        .oneshot(request(
            Method::GET,
            "/events?from=1",
            Some(ADMIN),
            json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let got = read_sse(resp.into_body(), head as usize).await;
    let ids: Vec<u64> = got.iter().map(|m| m.id.unwrap()).collect();
    assert_eq!(ids, (1..=head).collect::<Vec<_>>());
    assert_eq!(got[0].data["event_type"], "room_create");
    assert_eq!(got[0].data["seq"], 1);
    // Resuming after the second event starts with the third.
    let req = Request::builder()
        .uri("/events")
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("last-event-id", "2")
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let (s, _) = call(
        &router,
        Method::POST,
        "/rooms/standup/hand/raise",
        Some(&bob),
        json!({}),
    )
    .await;
    assert_eq!(s, 200);
    let got = read_sse(resp.into_body(), 1).await;
    assert_eq!(got[0].id, Some(3));
    assert_eq!(got[0].data["event_type"], "hand_raise");
}

#[tokio::test]
async fn a_participant_stream_follows_live_events_and_ends_when_kicked() {
    let (router, engine, _dir) = setup();
    let (alice, bob) = meeting(&router).await;
    let from = engine.head() + 1;
    let resp = router
        .clone()
        .oneshot(request(
            Method::GET,
            &format!("/rooms/standup/events?from={from}"),
            Some(&bob),
            json!({}),
        ))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (s, _) = call(
        &router,
        Method::POST,
        "/rooms/standup/messages",
        Some(&bob),
        json!({"body": "hi all"}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = call(
        &router,
        Method::POST,
        "/rooms/standup/kick",
        Some(&alice),
        json!({"subject": "web:bob"}),
    )
    .await;
    assert_eq!(s, 200);
    let got = read_sse(resp.into_body(), 10).await;
    let kinds: Vec<String> = got
        .iter()
        .map(|m| {
            m.event
                .clone()
                .unwrap_or_else(|| m.data["event_type"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("chat_message"));
    assert!(kinds.contains(&"peer_kick".to_owned()), "{kinds:?}");
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("revoked"),
        "{kinds:?}"
    );
    // A participant's view has no remote address, neither the record's nor a join's.
    assert!(got
        .iter()
        .all(|m| m.data.get("remote_addr").is_none()
            && m.data["event"]["data"].get("remote").is_none()));
}

#[tokio::test]
async fn streams_need_a_token_of_the_room() {
    let (router, _engine, _dir) = setup();
    let (alice, _bob) = meeting(&router).await;
    let (s, _) = call(
        &router,
        Method::POST,
        "/rooms",
        None,
        json!({"room": "other", "as": "web:carol"}),
    )
    .await;
    assert_eq!(s, 201);
    let (s, v) = call(
        &router,
        Method::GET,
        "/rooms/standup/events",
        None,
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (401, Some("auth.required"))
    );
    let (s, v) = call(
        &router,
        Method::GET,
        "/rooms/other/events",
        Some(&alice),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("auth.token_scope"))
    );
    let (s, v) = call(&router, Method::GET, "/events", Some(&alice), json!({})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("auth.admin_required"))
    );
    let (s, v) = call(
        &router,
        Method::GET,
        "/rooms/standup/ws",
        Some(&alice),
        json!({}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("input.not_websocket"))
    );
}

#[tokio::test]
async fn chat_history_pages_by_sequence() {
    let (router, _engine, _dir) = setup();
    let (_alice, bob) = meeting(&router).await;
    for body in ["one", "two", "three"] {
        let (s, v) = call(
            &router,
            Method::POST,
            "/rooms/standup/messages",
            Some(&bob),
            json!({"body": body}),
        )
        .await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, page) = call(
        &router,
        Method::GET,
        "/rooms/standup/messages?limit=2",
        Some(&bob),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{page}");
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["one", "two"]);
    assert_eq!(page["messages"][0]["address"], "web:bob");
    let after = page["next_after"].as_u64().unwrap();
    let (_, rest) = call(
        &router,
        Method::GET,
        &format!("/rooms/standup/messages?after={after}"),
        Some(&bob),
        json!({}),
    )
    .await;
    assert_eq!(rest["messages"].as_array().unwrap().len(), 1);
    assert_eq!(rest["messages"][0]["body"], "three");
    let (s, _) = call(
        &router,
        Method::GET,
        "/rooms/standup/messages",
        None,
        json!({}),
    )
    .await;
    assert_eq!(s, 401);
}

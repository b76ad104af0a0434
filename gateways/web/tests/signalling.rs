//! Media signalling and commands over the room WebSocket, against a real engine and a
//! fake media plane that records what the gateway asks of it: offers relayed and
//! answers returned, server offers and candidates passed to the client, moderation
//! events from the committed feed turned into forwarding decisions and disconnects, and
//! typed errors for bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;
use common::{call, config, meeting, ADMIN};
use conclave_engine::service::Engine;
use conclave_gateway_web::{
    router_with_media, AuthConfig, BoxFuture, IceSettings, MediaError, MediaKind, MediaOptions,
    MediaPlane, MediaSignal, RateSettings,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Connect(String, String),
    Offer(String, String),
    Answer(String, String),
    Candidate(String, Value),
    Forward(String, MediaKind, bool),
    Disconnect(String),
}

#[derive(Default)]
struct FakePlane {
    calls: Mutex<Vec<Call>>,
    signals: Mutex<Vec<(String, mpsc::Sender<MediaSignal>)>>,
}

impl FakePlane {
    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
    async fn wait_for(&self, c: &Call) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.calls().contains(c) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {c:?}; calls: {:?}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    fn signal(&self, participant: &str) -> mpsc::Sender<MediaSignal> {
        let s = self.signals.lock().unwrap();
        s.iter()
            .rev()
            .find(|(p, _)| p == participant)
            .unwrap()
            .1
            .clone()
    }
}

impl MediaPlane for FakePlane {
    fn connect<'a>(
        &'a self,
        room: &'a str,
        participant: &'a str,
        signals: mpsc::Sender<MediaSignal>,
    ) -> BoxFuture<'a, Result<(), MediaError>> {
        Box::pin(async move {
            self.record(Call::Connect(room.into(), participant.into()));
            self.signals
                .lock()
                .unwrap()
                .push((participant.into(), signals));
            Ok(())
        })
    }
    fn offer<'a>(
        &'a self,
        participant: &'a str,
        sdp: String,
    ) -> BoxFuture<'a, Result<String, MediaError>> {
        Box::pin(async move {
            self.record(Call::Offer(participant.into(), sdp.clone()));
            if sdp == "bad" {
                return Err(MediaError::new("media.bad_sdp", "cannot parse the offer"));
            }
            Ok(format!("answer to {sdp}"))
        })
    }
    fn answer<'a>(
        &'a self,
        participant: &'a str,
        sdp: String,
    ) -> BoxFuture<'a, Result<(), MediaError>> {
        Box::pin(async move {
            self.record(Call::Answer(participant.into(), sdp));
            Ok(())
        })
    }
    fn candidate<'a>(
        &'a self,
        participant: &'a str,
        candidate: Value,
    ) -> BoxFuture<'a, Result<(), MediaError>> {
        Box::pin(async move {
            self.record(Call::Candidate(participant.into(), candidate));
            Ok(())
        })
    }
    fn set_forwarding(&self, participant: &str, kind: MediaKind, allowed: bool) {
        self.record(Call::Forward(participant.into(), kind, allowed));
    }
    fn disconnect<'a>(&'a self, participant: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move { self.record(Call::Disconnect(participant.into())) })
    }
    fn stats(&self) -> Value {
        json!({
            "participant_count": self.signals.lock().unwrap().len(),
            "packets_forwarded": 42,
            "packets_dropped": 3,
            "rooms": {"standup": {"dominant_speaker": null}},
        })
    }
}

struct Server {
    router: axum::Router,
    port: u16,
    _engine: Engine,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(plane: Option<Arc<FakePlane>>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(config(dir.path())).unwrap();
    let ice = IceSettings::new(
        vec!["stun:stun.example.org".into()],
        vec!["turn:turn.example.org".into()],
        Some("north".into()),
        None,
    )
    .unwrap();
    let router = router_with_media(
        engine.clone(),
        AuthConfig::new(ADMIN),
        Vec::new(),
        RateSettings::default(),
        MediaOptions {
            plane: plane.map(|p| p as Arc<dyn MediaPlane>),
            ice,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(conclave_gateway_web::serve(
        listener,
        router.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        router,
        port,
        _engine: engine,
        _dir: dir,
        _stop: stop,
    }
}

struct Ws(WebSocketStream<TcpStream>);

impl Ws {
    async fn open(port: u16, room: &str, token: &str) -> Ws {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let url =
            format!("ws://127.0.0.1:{port}/rooms/{room}/ws?signalling=true&access_token={token}");
        let (ws, _) = tokio_tungstenite::client_async(url, tcp).await.unwrap();
        Ws(ws)
    }

    async fn send(&mut self, v: Value) {
        self.0.send(Message::text(v.to_string())).await.unwrap();
    }

    async fn send_raw(&mut self, m: Message) {
        self.0.send(m).await.unwrap();
    }

    /// The next JSON message (skipping pings), or None once closed.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("no message in time")?;
            match m {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next message that is not a committed event.
    async fn reply(&mut self) -> Value {
        loop {
            let v = self.next().await.expect("socket closed");
            if v.get("event_type").is_none() {
                return v;
            }
        }
    }

    /// Messages until the socket closes, and the close code.
    async fn until_closed(&mut self) -> (Vec<Value>, Option<u16>) {
        let mut got = Vec::new();
        loop {
            let m = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("socket not closed in time");
            match m {
                Some(Ok(Message::Text(t))) => got.push(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(f))) => return (got, f.map(|f| u16::from(f.code))),
                None | Some(Err(_)) => return (got, None),
                Some(Ok(_)) => {}
            }
        }
    }
}

async fn session_of(router: &axum::Router, token: &str) -> String {
    let (s, v) = call(router, Method::GET, "/me", Some(token), json!({})).await;
    assert_eq!(s, 200, "{v}");
    v["session"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn offers_are_relayed_answers_returned_and_server_signals_reach_the_client() {
    let plane = Arc::new(FakePlane::default());
    let srv = start(Some(plane.clone())).await;
    let (_alice, bob) = meeting(&srv.router).await;
    let session = session_of(&srv.router, &bob).await;
    let mut ws = Ws::open(srv.port, "standup", &bob).await;

    let hello = ws.next().await.unwrap();
    assert_eq!(hello["type"], "media.config", "{hello}");
    assert_eq!(hello["enabled"], true);
    assert_eq!(hello["session"], session.as_str());
    assert_eq!(hello["ice_servers"][0]["urls"][0], "stun:stun.example.org");
    let username = hello["ice_servers"][1]["username"].as_str().unwrap();
    assert!(username.ends_with(&format!(":{session}")), "{username}");
    assert_eq!(
        hello["ice_servers"][1]["credential"]
            .as_str()
            .unwrap()
            .len(),
        28
    );

    ws.send(json!({"type": "media.offer", "sdp": "v=0 client", "id": 7}))
        .await;
    let a = ws.reply().await;
    assert_eq!(
        a,
        json!({"type": "media.answer", "sdp": "answer to v=0 client", "id": 7})
    );
    let calls = plane.calls();
    assert_eq!(calls[0], Call::Connect("standup".into(), session.clone()));
    assert!(calls.contains(&Call::Forward(session.clone(), MediaKind::Audio, true)));
    assert!(calls.contains(&Call::Forward(session.clone(), MediaKind::Video, true)));
    assert!(calls.contains(&Call::Offer(session.clone(), "v=0 client".into())));

    let cand = json!({"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    ws.send(json!({"type": "media.candidate", "candidate": cand}))
        .await;
    plane
        .wait_for(&Call::Candidate(session.clone(), cand.clone()))
        .await;

    // Renegotiation from the server, and its candidates.
    let tx = plane.signal(&session);
    tx.send(MediaSignal::Offer("v=0 server".into()))
        .await
        .unwrap();
    assert_eq!(
        ws.reply().await,
        json!({"type": "media.offer", "sdp": "v=0 server"})
    );
    ws.send(json!({"type": "media.answer", "sdp": "v=0 client answer"}))
        .await;
    plane
        .wait_for(&Call::Answer(session.clone(), "v=0 client answer".into()))
        .await;
    tx.send(MediaSignal::Candidate(json!({"candidate": "c"})))
        .await
        .unwrap();
    assert_eq!(
        ws.reply().await,
        json!({"type": "media.candidate", "candidate": {"candidate": "c"}})
    );

    // A media error is typed and answered with the message's id.
    ws.send(json!({"type": "media.offer", "sdp": "bad", "id": "x1"}))
        .await;
    let e = ws.reply().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str(), e["id"].as_str()),
        (Some("error"), Some("media.bad_sdp"), Some("x1")),
        "{e}"
    );

    // The dominant speaker reaches the page as presentation data.
    tx.send(MediaSignal::DominantSpeaker(session.clone()))
        .await
        .unwrap();
    assert_eq!(
        ws.reply().await,
        json!({"type": "media.dominant_speaker", "session": session})
    );

    // Health reports the plane (totals only).
    let (_, h) = call(&srv.router, Method::GET, "/about/health", None, json!({})).await;
    assert_eq!(h["media"]["enabled"], true);
    assert_eq!(h["media"]["sessions"], 1);
    assert_eq!(h["media"]["stats"]["packets_forwarded"], 42);
    assert!(h["media"]["stats"].get("rooms").is_none(), "{h}");

    // Per-room detail at /debug/media, for the admin only; totals in /metrics.
    let (s, _) = call(&srv.router, Method::GET, "/debug/media", None, json!({})).await;
    assert_eq!(s, 401);
    let (s, d) = call(
        &srv.router,
        Method::GET,
        "/debug/media",
        Some(ADMIN),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(
        d["stats"]["rooms"]["standup"]["dominant_speaker"],
        Value::Null
    );
    assert_eq!(d["sessions"], 1);
    let (_, text) = common::text(&srv.router, Method::GET, "/metrics", None).await;
    for needle in [
        "conclave_media_sessions 1",
        "conclave_media_participants 1",
        "conclave_media_packets_forwarded_total 42",
        "conclave_media_packets_dropped_total 3",
        "# TYPE conclave_media_packets_forwarded_total counter",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }

    // Closing the socket disconnects the session.
    ws.0.close(None).await.unwrap();
    plane.wait_for(&Call::Disconnect(session.clone())).await;
}

#[tokio::test]
async fn moderation_from_the_feed_becomes_forwarding_decisions_and_disconnects() {
    let plane = Arc::new(FakePlane::default());
    let srv = start(Some(plane.clone())).await;
    let (alice, bob) = meeting(&srv.router).await;
    let session = session_of(&srv.router, &bob).await;
    let mut ws = Ws::open(srv.port, "standup", &bob).await;
    assert_eq!(ws.next().await.unwrap()["type"], "media.config");
    ws.send(json!({"type": "media.offer", "sdp": "o"})).await;
    assert_eq!(ws.reply().await["type"], "media.answer");

    let r = |path: &'static str| {
        let (router, alice) = (srv.router.clone(), alice.clone());
        async move {
            let (s, v) = call(
                &router,
                Method::POST,
                path,
                Some(&alice),
                json!({"subject": "web:bob"}),
            )
            .await;
            assert_eq!(s, 200, "{path}: {v}");
        }
    };
    let n = |c: &Call| plane.calls().iter().filter(|x| *x == c).count();
    let audio_on = Call::Forward(session.clone(), MediaKind::Audio, true);
    let audio_off = Call::Forward(session.clone(), MediaKind::Audio, false);
    let video_off = Call::Forward(session.clone(), MediaKind::Video, false);
    let video_on = Call::Forward(session.clone(), MediaKind::Video, true);
    r("/rooms/standup/mute").await;
    plane.wait_for(&audio_off).await;
    let before = n(&audio_on);
    r("/rooms/standup/unmute").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while n(&audio_on) == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            plane.calls()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    r("/rooms/standup/pause-video").await;
    plane.wait_for(&video_off).await;
    let before = n(&video_on);
    r("/rooms/standup/resume-video").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while n(&video_on) == before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            plane.calls()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Muted before connecting: the connection starts muted.
    r("/rooms/standup/mute").await;
    let (s, v) = call(
        &srv.router,
        Method::POST,
        "/rooms/standup/join",
        None,
        json!({"as": "web:carol"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let carol = v["token"].as_str().unwrap().to_owned();
    let carol_session = v["session"].as_str().unwrap().to_owned();
    let mut cws = Ws::open(srv.port, "standup", &carol).await;
    assert_eq!(cws.next().await.unwrap()["type"], "media.config");
    cws.send(json!({"type": "media.offer", "sdp": "o"})).await;
    assert_eq!(cws.reply().await["type"], "media.answer");
    let (s, v) = call(
        &srv.router,
        Method::POST,
        "/rooms/standup/mute",
        Some(&alice),
        json!({"subject": "web:carol"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    plane
        .wait_for(&Call::Forward(
            carol_session.clone(),
            MediaKind::Audio,
            false,
        ))
        .await;

    // A kick disconnects the media and closes the socket.
    let (s, v) = call(
        &srv.router,
        Method::POST,
        "/rooms/standup/kick",
        Some(&alice),
        json!({"subject": "web:bob"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    plane.wait_for(&Call::Disconnect(session.clone())).await;
    let (got, code) = ws.until_closed().await;
    assert_eq!(code, Some(4001), "{got:?}");
    assert!(got.iter().any(|m| m["type"] == "revoked"), "{got:?}");
    assert!(!plane
        .calls()
        .contains(&Call::Disconnect(carol_session.clone())));

    // A ban (server-wide here, by the admin) disconnects too.
    let (s, v) = call(
        &srv.router,
        Method::POST,
        "/bans",
        Some(ADMIN),
        json!({"subject": "web:carol"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    plane.wait_for(&Call::Disconnect(carol_session)).await;
}

#[tokio::test]
async fn commands_run_as_the_participant_and_bad_input_gets_typed_errors() {
    let plane = Arc::new(FakePlane::default());
    let srv = start(Some(plane.clone())).await;
    let (_alice, bob) = meeting(&srv.router).await;
    let mut ws = Ws::open(srv.port, "standup", &bob).await;
    assert_eq!(ws.next().await.unwrap()["type"], "media.config");

    ws.send(json!({"type": "chat", "body": "hello over the socket", "id": 1}))
        .await;
    let r = ws.reply().await;
    assert_eq!(
        (
            r["type"].as_str(),
            r["command"].as_str(),
            r["id"].as_i64(),
            r["status"].as_u64()
        ),
        (Some("result"), Some("chat"), Some(1), Some(201)),
        "{r}"
    );
    assert!(r["result"]["message"].is_string(), "{r}");
    // Journaled with the participant as actor, through the web gateway's socket.
    let (_, audit) = call(
        &srv.router,
        Method::GET,
        "/audit?type=chat_message",
        Some(ADMIN),
        json!({}),
    )
    .await;
    let e = &audit["entries"][0];
    assert_eq!(
        (e["actor"].as_str(), e["protocol"].as_str()),
        (Some("web:bob"), Some("websocket")),
        "{e}"
    );
    assert_eq!(e["event"]["data"]["body"], "hello over the socket");

    // Refused by the engine: bob is no moderator.
    ws.send(json!({"type": "lock", "id": "m"})).await;
    let r = ws.reply().await;
    assert_eq!(
        (r["type"].as_str(), r["id"].as_str(), r["command"].as_str()),
        (Some("error"), Some("m"), Some("lock")),
        "{r}"
    );
    assert_eq!(r["status"], 403, "{r}");
    assert!(r["correlation_id"].is_string(), "{r}");
    // Raising one's hand needs no fields.
    ws.send(json!({"type": "raise_hand"})).await;
    assert_eq!(ws.reply().await["type"], "result");

    let code = |v: Value| v["code"].as_str().unwrap().to_owned();
    ws.send_raw(Message::text("{not json")).await;
    assert_eq!(code(ws.reply().await), "input.invalid_json");
    ws.send_raw(Message::text("[1, 2]")).await;
    assert_eq!(code(ws.reply().await), "input.invalid");
    ws.send(json!({"body": "no type"})).await;
    assert_eq!(code(ws.reply().await), "input.invalid");
    ws.send(json!({"type": "launch_missiles"})).await;
    assert_eq!(code(ws.reply().await), "ws.unknown_type");
    ws.send(json!({"type": "media.offer"})).await;
    assert_eq!(code(ws.reply().await), "input.invalid");
    ws.send(json!({"type": "media.candidate", "candidate": "a string"}))
        .await;
    assert_eq!(code(ws.reply().await), "input.invalid");
    ws.send(json!({"type": "chat", "body": "x", "admin": true}))
        .await;
    assert_eq!(code(ws.reply().await), "input.invalid");
    ws.send(json!({"type": "lock", "now": true})).await;
    assert_eq!(code(ws.reply().await), "input.invalid");
    ws.send(json!({"type": "chat", "body": "x", "id": {"nested": 1}}))
        .await;
    assert_eq!(code(ws.reply().await), "input.invalid");
    ws.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    assert_eq!(code(ws.reply().await), "input.not_text");
    let big = "x".repeat(70 * 1024);
    ws.send(json!({"type": "chat", "body": big})).await;
    assert_eq!(code(ws.reply().await), "input.too_large");
    assert!(!plane.calls().iter().any(|c| matches!(c, Call::Offer(..))));

    // A flood is cut down to the socket's rate, with typed refusals.
    for _ in 0..150 {
        ws.send(json!({"type": "launch_missiles"})).await;
    }
    let mut limited = 0;
    for _ in 0..150 {
        if code(ws.reply().await) == "rate.limited" {
            limited += 1;
        }
    }
    assert!(limited > 0);
    // The socket still works afterwards.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ws.send(json!({"type": "lower_hand", "id": "after"})).await;
    loop {
        let r = ws.reply().await;
        if r["id"] == "after" {
            assert_eq!(r["type"], "result", "{r}");
            break;
        }
    }
}

#[tokio::test]
async fn without_a_media_plane_media_is_refused_and_commands_still_work() {
    let srv = start(None).await;
    let (_alice, bob) = meeting(&srv.router).await;
    let mut ws = Ws::open(srv.port, "standup", &bob).await;
    let hello = ws.next().await.unwrap();
    assert_eq!(
        (hello["type"].as_str(), hello["enabled"].as_bool()),
        (Some("media.config"), Some(false)),
        "{hello}"
    );
    ws.send(json!({"type": "media.offer", "sdp": "o"})).await;
    let e = ws.reply().await;
    assert_eq!(e["code"], "media.unavailable", "{e}");
    ws.send(json!({"type": "chat", "body": "still here"})).await;
    assert_eq!(ws.reply().await["type"], "result");
    let (_, h) = call(&srv.router, Method::GET, "/about/health", None, json!({})).await;
    assert_eq!(h["media"], json!({"enabled": false}));
}

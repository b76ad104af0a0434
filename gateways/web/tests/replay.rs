//! The /replay routes in process: a meeting scripted over the REST API, then replayed,
//! reported, verified, bundled and erased over HTTP; authentication and bad parameters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use calamine::{Reader, Xlsx};
use conclave_engine::service::{Engine, EngineConfig, TestClock};
use conclave_gateway_web::{router, routes, AuthConfig};
use conclave_journal::SyncMode;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN: &str = "test-admin-token-0123456789abcdef";

struct T {
    router: Router,
    engine: Engine,
    /// The engine's clock: moved by hand to give the mark its own instant.
    clock: TestClock,
    _dir: tempfile::TempDir,
}

fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    // Starts before the wall clock, so the tests' "now" is after the meeting.
    let clock = TestClock::new(chrono::Utc::now() - chrono::TimeDelta::minutes(10));
    let mut config = EngineConfig::new(dir.path()).with_clock(clock.clone());
    config.journal.sync = SyncMode::None;
    let engine = Engine::open(config).unwrap();
    T {
        router: router(engine.clone(), AuthConfig::new(ADMIN)),
        engine,
        clock,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl T {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        let resp = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            bytes,
        }
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let a = self.send(method.clone(), path, token, body).await;
        assert!(
            a.status.is_success(),
            "{method} {path} -> {}: {}",
            a.status,
            a.text()
        );
        a
    }

    async fn get(&self, path: &str) -> Value {
        self.ok(Method::GET, path, Some(ADMIN), None).await.json()
    }

    async fn err(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        status: u16,
        code: &str,
    ) {
        let a = self.send(method.clone(), path, token, body).await;
        let v = a.json();
        assert_eq!(a.status.as_u16(), status, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
        assert!(v["error"]["correlation_id"].is_string(), "{v}");
    }
}

fn token(v: &Value) -> String {
    v["token"].as_str().expect("a token").to_owned()
}

/// Percent-encodes a query value (RFC 3339 times carry `+` and `:`).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

use Method as M;

/// The meeting: alice opens, bob joins and chats, (mark), bob leaves, carol joins and is
/// muted, mallory is banned and refused, dave is invited. Returns the mark.
async fn meeting(t: &T) -> String {
    let alice = token(
        &t.ok(
            M::POST,
            "/rooms",
            None,
            Some(json!({"room": "standup", "as": "web:alice"})),
        )
        .await
        .json(),
    );
    t.ok(
        M::POST,
        "/rooms/standup/join",
        Some(&alice),
        Some(json!({})),
    )
    .await;
    let bob = token(
        &t.ok(
            M::POST,
            "/rooms/standup/join",
            None,
            Some(json!({"as": "web:bob"})),
        )
        .await
        .json(),
    );
    t.ok(
        M::POST,
        "/rooms/standup/messages",
        Some(&bob),
        Some(json!({"body": "bob's secret plan"})),
    )
    .await;
    // The mark is an instant of its own, between bob's message and his leaving.
    t.clock.advance(chrono::TimeDelta::milliseconds(1));
    let mark = conclave_replay::fmt_time(t.clock.now());
    t.clock.advance(chrono::TimeDelta::milliseconds(1));
    t.ok(M::POST, "/rooms/standup/leave", Some(&bob), Some(json!({})))
        .await;
    t.ok(
        M::POST,
        "/rooms/standup/join",
        None,
        Some(json!({"as": "web:carol"})),
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/standup/mute",
        Some(&alice),
        Some(json!({"subject": "web:carol"})),
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/standup/bans",
        Some(&alice),
        Some(json!({"subject": "web:mallory", "reason": "spam"})),
    )
    .await;
    t.err(
        M::POST,
        "/rooms/standup/join",
        None,
        Some(json!({"as": "web:mallory"})),
        403,
        "membership.banned",
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/standup/invitations",
        Some(&alice),
        Some(json!({"invitee": "web:dave"})),
    )
    .await;
    mark
}

fn names(members: &Value) -> Vec<String> {
    let mut v: Vec<String> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["principal"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_replayed_reported_verified_and_erased_over_http() {
    let t = setup();
    let mark = meeting(&t).await;
    let at = enc(&mark);

    // Point in time: bob was there at the mark, carol was not; now it is the other way.
    let then = t.get(&format!("/replay/state?room=standup&at={at}")).await;
    assert_eq!(names(&then["members"]), ["web:alice", "web:bob"]);
    let now = t.get("/replay/state?room=standup").await;
    assert_eq!(names(&now["members"]), ["web:alice", "web:carol"]);
    let server = t.get("/replay/state?seq=1").await;
    assert_eq!(server["seq"], 1, "{server}");
    t.err(
        M::GET,
        "/replay/state?room=standup&seq=0",
        Some(ADMIN),
        None,
        404,
        "room.not_found",
    )
    .await;
    let who = t
        .get(&format!("/replay/who-was-there?room=standup&at={at}"))
        .await;
    assert_eq!(
        (who["exists"].clone(), names(&who["members"])),
        (
            json!(true),
            vec!["web:alice".to_owned(), "web:bob".to_owned()]
        )
    );
    let d = t.get(&format!("/replay/diff?room=standup&from={at}")).await;
    let text = d.to_string();
    assert!(
        text.contains("web:bob") && text.contains("web:carol"),
        "{d}"
    );

    // Timelines and forensic questions.
    let tl = t.get("/replay/timeline?person=web:bob").await;
    let types: Vec<&str> = tl["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"room_join")
            && types.contains(&"chat_message")
            && types.contains(&"room_leave"),
        "{types:?}"
    );
    let by_alice = t
        .get("/replay/timeline?moderator=web:alice&limit=100")
        .await;
    assert!(
        by_alice["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "ban"),
        "{by_alice}"
    );
    let room_tl = t.get("/replay/timeline?room=standup&limit=2").await;
    assert_eq!(room_tl["entries"].as_array().unwrap().len(), 2);
    let m = t.get("/replay/moderation?room=standup").await;
    assert!(m["actions"].to_string().contains("web:carol"), "{m}");
    let den = t.get("/replay/denials?person=web:mallory").await;
    assert_eq!(den["denials"].as_array().unwrap().len(), 1, "{den}");
    assert_eq!(
        t.get("/replay/denials?person=web:bob").await["denials"],
        json!([])
    );
    let inv = t.get("/replay/invitations?room=standup").await;
    assert_eq!(inv["invitations"].as_array().unwrap().len(), 1, "{inv}");

    // Reports in every format, with the right types and download names.
    let rep = t.ok(M::GET, "/replay/report", Some(ADMIN), None).await;
    assert!(rep.header("content-type").starts_with("application/json"));
    let rep = rep.json();
    assert!(rep["events"].to_string().contains("bob's secret plan"));
    let html = t
        .ok(
            M::GET,
            "/replay/report?format=html&room=standup",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(html.header("content-type"), "text/html; charset=utf-8");
    assert!(html.text().contains("<svg"));
    let rec = t
        .ok(M::GET, "/replay/report?format=rec", Some(ADMIN), None)
        .await;
    assert!(rec.header("content-disposition").ends_with(".rec\""));
    assert!(rec.text().contains("%rec: Attendance"));
    let csv = t
        .ok(
            M::GET,
            "/replay/report?format=csv&table=attendance",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(csv.header("content-type"), "text/csv; charset=utf-8");
    assert!(csv
        .header("content-disposition")
        .starts_with("attachment; filename=\"conclave-report-"));
    assert!(csv.text().lines().count() >= 4, "{}", csv.text());
    let all_csv = t
        .ok(M::GET, "/replay/report?format=csv", Some(ADMIN), None)
        .await;
    assert!(all_csv.text().starts_with("# "));
    t.err(
        M::GET,
        "/replay/report?format=csv&table=nope",
        Some(ADMIN),
        None,
        400,
        "replay.invalid_argument",
    )
    .await;
    let xlsx = t
        .ok(
            M::GET,
            &format!(
                "/replay/report?format=xlsx&from=2000-01-01&to={}",
                enc(&conclave_replay::fmt_time(chrono::Utc::now()))
            ),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        xlsx.header("content-type"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(xlsx.header("content-disposition").ends_with(".xlsx\""));
    let mut wb: Xlsx<_> = Xlsx::new(Cursor::new(xlsx.bytes.clone())).unwrap();
    let sheets = wb.sheet_names();
    assert!(sheets.iter().any(|s| s == "Attendance"), "{sheets:?}");
    let att = wb.worksheet_range("Attendance").unwrap();
    assert_eq!(
        att.height(),
        1 + rep["attendance"].as_array().unwrap().len()
    );

    // Verification, a signed checkpoint, a bundle that verifies offline.
    let v = t.get("/replay/verify").await;
    assert_eq!(
        (v["ok"].clone(), v["head"].clone()),
        (json!(true), json!(t.engine.head()))
    );
    let cp = t
        .ok(M::POST, "/replay/checkpoint", Some(ADMIN), None)
        .await
        .json();
    assert_eq!(cp["checkpoint"]["seq"], json!(t.engine.head()));
    let bundle = t.ok(M::GET, "/replay/bundle", Some(ADMIN), None).await;
    assert_eq!(bundle.header("content-type"), "application/x-ndjson");
    assert_eq!(bundle.header("x-conclave-chain-ok"), "true");
    assert!(bundle
        .header("content-disposition")
        .contains("conclave-bundle-1-"));
    let report =
        conclave_replay::verify::verify_bundle(&mut Cursor::new(bundle.bytes.clone()), None);
    assert!(report.ok, "{report:?}");

    // Erasure through the engine: journaled first, content gone, the chain still good.
    let head = t.engine.head();
    let out = t
        .ok(
            M::POST,
            "/replay/erasure",
            Some(ADMIN),
            Some(json!({"person": "web:bob"})),
        )
        .await
        .json();
    assert_eq!(out["action"], "erasure");
    assert_eq!(out["records_purged"], 1, "{out}");
    assert_eq!(out["journaled_seq"], json!(head + 1));
    let fact = t.engine.journal().get(head + 1).unwrap().unwrap();
    assert_eq!(fact.event_type, "content_purge");
    let rep = t.get("/replay/report").await;
    let events = rep["events"].to_string();
    assert!(
        !events.contains("bob's secret plan") && events.contains("[purged]"),
        "{events}"
    );
    assert_eq!(rep["retention"].as_array().unwrap().len(), 1);
    let v = t.get("/replay/verify").await;
    assert_eq!(
        (v["ok"].clone(), v["purged_content"].clone()),
        (json!(true), json!(1))
    );
    // A second erasure finds nothing and journals nothing; retention 0 keeps everything.
    let again = t
        .ok(
            M::POST,
            "/replay/erasure",
            Some(ADMIN),
            Some(json!({"person": "web:bob"})),
        )
        .await
        .json();
    assert_eq!(
        (
            again["records_purged"].clone(),
            again["journaled_seq"].clone()
        ),
        (json!(0), Value::Null)
    );
    let keep = t
        .ok(
            M::POST,
            "/replay/retention",
            Some(ADMIN),
            Some(json!({"days": 0})),
        )
        .await
        .json();
    assert_eq!(keep["records_purged"], 0);
    let policy_days = t
        .ok(M::POST, "/replay/retention", Some(ADMIN), None)
        .await
        .json();
    assert_eq!(
        policy_days["records_purged"], 0,
        "31 days keep today's content"
    );
    assert_eq!(t.engine.head(), head + 1);
    let bundle = t
        .ok(M::GET, "/replay/bundle?from_seq=2", Some(ADMIN), None)
        .await;
    assert!(conclave_replay::verify::verify_bundle(&mut Cursor::new(bundle.bytes), None).ok);
}

#[tokio::test]
async fn replay_routes_need_the_admin_token() {
    let t = setup();
    let part = token(
        &t.ok(
            M::POST,
            "/rooms",
            None,
            Some(json!({"room": "r1", "as": "web:p"})),
        )
        .await
        .json(),
    );
    let replay: Vec<_> = routes::table()
        .into_iter()
        .filter(|r| r.path.starts_with("/replay/"))
        .collect();
    assert_eq!(replay.len(), 13);
    for r in replay {
        let body = (r.path == "/replay/erasure").then(|| json!({"person": "web:p"}));
        t.err(
            r.method.clone(),
            r.path,
            None,
            body.clone(),
            401,
            "auth.required",
        )
        .await;
        t.err(
            r.method.clone(),
            r.path,
            Some("not-a-token"),
            body.clone(),
            401,
            "auth.invalid_token",
        )
        .await;
        t.err(
            r.method.clone(),
            r.path,
            Some(&part),
            body,
            403,
            "auth.admin_required",
        )
        .await;
    }
    // Refused before anything was journaled or purged.
    assert_eq!(t.engine.head(), 1);
}

#[tokio::test]
async fn bad_parameters_are_input_invalid() {
    let t = setup();
    t.ok(
        M::POST,
        "/rooms",
        Some(ADMIN),
        Some(json!({"room": "r1", "as": "web:o"})),
    )
    .await;
    let long = "x".repeat(600);
    for path in [
        "/replay/state?at=yesterday",
        "/replay/state?at=2025-01-01&seq=1",
        "/replay/state?seq=-1",
        "/replay/state?seq=abc",
        "/replay/state?room=",
        "/replay/state?nope=1",
        &format!("/replay/state?room={long}"),
        "/replay/diff",
        "/replay/diff?room=r1&from=2025-01-01&from_seq=1",
        "/replay/timeline?room=r1&person=web:b",
        "/replay/timeline?limit=0",
        "/replay/timeline?limit=10001",
        "/replay/timeline?person=nobody",
        "/replay/who-was-there",
        "/replay/who-was-there?room=r1&at=13:00",
        "/replay/moderation?format=csv",
        "/replay/denials?person=bad%20principal",
        "/replay/invitations?from=2025-02-01&to=2025-01-01",
        "/replay/report?format=pdf",
        "/replay/report?format=json&table=attendance",
        "/replay/report?person=web:x",
        "/replay/report?from=2025-02-30",
        "/replay/bundle?from_seq=x",
        "/replay/bundle?force=maybe",
    ] {
        t.err(M::GET, path, Some(ADMIN), None, 400, "input.invalid")
            .await;
    }
    for (path, body) in [
        ("/replay/retention", json!({"days": -2})),
        ("/replay/retention", json!({"days": "ten"})),
        ("/replay/retention", json!({"keep": 3})),
        ("/replay/erasure", json!({})),
        ("/replay/erasure", json!({"person": "no-scheme"})),
        ("/replay/erasure", json!({"person": ""})),
    ] {
        t.err(M::POST, path, Some(ADMIN), Some(body), 400, "input.invalid")
            .await;
    }
    // Well-formed but past the journal: the library's own stable code.
    t.err(
        M::GET,
        "/replay/state?seq=99",
        Some(ADMIN),
        None,
        400,
        "replay.invalid_argument",
    )
    .await;
    t.err(
        M::GET,
        "/replay/bundle?from_seq=99",
        Some(ADMIN),
        None,
        400,
        "replay.invalid_argument",
    )
    .await;
}

/// The index a live server keeps from the committed feed answers exactly what an
/// offline rebuild of the same journal answers, at every sequence number, for the whole
/// server and for the meeting's room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_servers_replay_answers_match_an_offline_rebuild_after_a_meeting() {
    use conclave_replay::{IndexConfig, ReplayIndex};
    let t = setup();
    // The index exists before the meeting (built when the router started, or by this
    // first query), so everything after it reaches it through the feed.
    let first = t.get("/replay/state?seq=0").await;
    assert_eq!(first["seq"], 0, "{first}");
    meeting(&t).await;
    let head = t.engine.head();
    let offline = ReplayIndex::build(t.engine.journal(), IndexConfig::default()).unwrap();
    assert_eq!(offline.head(), head);
    let j = t.engine.journal();
    let room = conclave_engine::RoomName::lookup("standup").unwrap();
    for n in 0..=head {
        let live = t.get(&format!("/replay/state?seq={n}")).await;
        let want = serde_json::to_value(offline.server_at(j, n).unwrap()).unwrap();
        assert_eq!(live, want, "server at {n}");
        let want = offline
            .room_at(j, &room, n)
            .unwrap()
            .map(|v| serde_json::to_value(v).unwrap());
        let live = t
            .send(
                Method::GET,
                &format!("/replay/state?room=standup&seq={n}"),
                Some(ADMIN),
                None,
            )
            .await;
        match want {
            Some(want) => assert_eq!(live.json(), want, "room at {n}"),
            None => assert_eq!(live.status, StatusCode::NOT_FOUND, "room at {n}"),
        }
    }
}

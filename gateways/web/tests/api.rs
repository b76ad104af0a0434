//! The REST API in process: each route's success and error mapping, authentication and
//! hostile input, through `tower::ServiceExt::oneshot` against a real engine on a
//! temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use conclave_engine::service::{Engine, EngineConfig};
use conclave_gateway_web::{router, routes, AuthConfig};
use conclave_journal::SyncMode;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN: &str = "test-admin-token-0123456789abcdef";

struct T {
    router: Router,
    _dir: tempfile::TempDir,
}

fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.journal.sync = SyncMode::None;
    let engine = Engine::open(config).unwrap();
    T {
        router: router(engine, AuthConfig::new(ADMIN)),
        _dir: dir,
    }
}

impl T {
    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v, text)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        let (s, v, _) = self.raw(method, path, token, body).await;
        (s, v)
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let (s, v) = self.call(method.clone(), path, token, body).await;
        assert!(s.is_success(), "{method} {path} -> {s}: {v}");
        v
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
        let (s, v) = self.call(method.clone(), path, token, body).await;
        assert_eq!(s.as_u16(), status, "{method} {path}: {v}");
        assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
}

fn token(v: &Value) -> String {
    v["token"].as_str().expect("a token").to_owned()
}

use Method as M;

#[tokio::test]
async fn a_whole_meeting() {
    let t = setup();
    let created = t
        .ok(
            M::POST,
            "/rooms",
            None,
            Some(json!({"room": "standup", "as": "web:alice", "private": true})),
        )
        .await;
    assert_eq!(created["owners"], json!(["web:alice"]));
    let alice = token(&created);
    assert!(created["events"][0]["type"] == "room_create");
    t.ok(
        M::POST,
        "/rooms/standup/reserve",
        Some(&alice),
        Some(json!({"owner_password": "s3cret"})),
    )
    .await;
    let inv = t
        .ok(
            M::POST,
            "/rooms/standup/invitations",
            Some(&alice),
            Some(json!({"invitee": "web:bob"})),
        )
        .await;
    let inv_id = inv["invitation"].as_str().unwrap().to_owned();
    assert_eq!(inv["single_use"], true);
    // Without the invitation the private room is closed.
    t.err(
        M::POST,
        "/rooms/standup/join",
        None,
        Some(json!({"as": "web:mallory"})),
        403,
        "membership.not_invited",
    )
    .await;
    let bob = token(
        &t.ok(
            M::POST,
            "/rooms/standup/join",
            None,
            Some(json!({"as": "web:bob", "invitation": inv_id})),
        )
        .await,
    );
    // Single use: the invitation is spent.
    let listed = t
        .ok(M::GET, "/rooms/standup/invitations", Some(&alice), None)
        .await;
    assert_eq!(listed["invitations"][0]["state"], "used");
    t.ok(
        M::POST,
        "/rooms/standup/roles",
        Some(&alice),
        Some(json!({"subject": "web:bob", "role": "moderator"})),
    )
    .await;
    let mail = t
        .ok(
            M::POST,
            "/rooms/standup/invitations",
            Some(&bob),
            Some(json!({"invitee": "mailto:carol@example.org"})),
        )
        .await;
    // No relay configured: the inviter gets the link's secret to hand over; the id
    // alone admits nobody.
    assert_eq!(mail["delivery"], "none");
    let secret = mail["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        mail["link"],
        format!("/r/standup?invitation={secret}").as_str()
    );
    t.err(
        M::POST,
        "/rooms/standup/join",
        None,
        Some(json!({"as": "web:carol", "invitation": mail["invitation"]})),
        403,
        "perm.not_yours",
    )
    .await;
    let carol_join = t
        .ok(
            M::POST,
            "/rooms/standup/join",
            None,
            Some(json!({"as": "web:carol", "invitation_secret": secret, "session": "tab-1"})),
        )
        .await;
    assert_eq!(carol_join["session"], "tab-1");
    assert_eq!(carol_join["role"], "member");
    let carol = token(&carol_join);
    let carol_key = carol_join["guest_key"].as_str().unwrap().to_owned();
    let me = t.ok(M::GET, "/me", Some(&carol), None).await;
    assert_eq!(me["identity"], "web:carol");
    // Carol is no moderator.
    t.err(
        M::POST,
        "/rooms/standup/mute",
        Some(&carol),
        Some(json!({"subject": "web:bob"})),
        403,
        "perm.not_moderator",
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/standup/mute",
        Some(&bob),
        Some(json!({"subject": "web:carol"})),
    )
    .await;
    let members = t
        .ok(M::GET, "/rooms/standup/members", Some(&carol), None)
        .await;
    let carol_m = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["principal"] == "web:carol")
        .unwrap();
    assert_eq!(carol_m["audio"], "moderator");
    t.ok(
        M::POST,
        "/rooms/standup/unmute",
        Some(&bob),
        Some(json!({"subject": "web:carol"})),
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/standup/pause-video",
        Some(&bob),
        Some(json!({"subject": "web:carol"})),
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/standup/resume-video",
        Some(&bob),
        Some(json!({"subject": "web:carol"})),
    )
    .await;
    t.ok(M::POST, "/rooms/standup/hand/raise", Some(&carol), None)
        .await;
    t.ok(
        M::POST,
        "/rooms/standup/hand/lower",
        Some(&bob),
        Some(json!({"subject": "web:carol"})),
    )
    .await;
    let msg = t
        .ok(
            M::POST,
            "/rooms/standup/messages",
            Some(&carol),
            Some(json!({"body": "<b>hi</b> all"})),
        )
        .await;
    assert_eq!(msg["html_stripped"], true);
    t.ok(
        M::POST,
        "/rooms/standup/moderated-chat",
        Some(&bob),
        Some(json!({"enabled": true})),
    )
    .await;
    t.err(
        M::POST,
        "/rooms/standup/messages",
        Some(&carol),
        Some(json!({"body": "again"})),
        403,
        "perm.chat_moderated",
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/standup/kick",
        Some(&bob),
        Some(json!({"subject": "web:carol", "reason": "noise"})),
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/standup/bans",
        Some(&bob),
        Some(json!({"subject": "web:carol", "reason": "spam", "duration_secs": 3600})),
    )
    .await;
    let bans = t.ok(M::GET, "/rooms/standup/bans", Some(&bob), None).await;
    assert_eq!(bans["bans"][0]["subject"], "web:carol");
    assert!(bans["bans"][0]["until"].is_string());
    // The kick ended her session, so her token is dead.
    t.err(
        M::POST,
        "/rooms/standup/join",
        Some(&carol),
        Some(json!({})),
        401,
        "auth.token_revoked",
    )
    .await;
    // Nobody else may take her name: it has standing in the room.
    t.err(
        M::POST,
        "/rooms/standup/join",
        None,
        Some(json!({"as": "web:carol"})),
        403,
        "auth.guest_key_required",
    )
    .await;
    // Coming back herself, with her guest key: refused as banned.
    t.err(
        M::POST,
        "/rooms/standup/join",
        None,
        Some(json!({"as": "web:carol", "guest_key": carol_key})),
        403,
        "membership.banned",
    )
    .await;
    t.ok(M::DELETE, "/rooms/standup/bans/web:carol", Some(&bob), None)
        .await;
    // Audit: the denial is journaled.
    let audit = t
        .ok(
            M::GET,
            "/audit?room=standup&type=join_denied",
            Some(ADMIN),
            None,
        )
        .await;
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"]["data"]["reason"] == "Banned"
                || e["event"]["data"]["address"] == "web:carol"),
        "{audit}"
    );
    let by_actor = t
        .ok(M::GET, "/audit?actor=web:bob&limit=2", Some(ADMIN), None)
        .await;
    assert_eq!(by_actor["entries"].as_array().unwrap().len(), 2);
    assert_eq!(by_actor["complete"], false);
    // Only the owner destroys.
    t.err(
        M::DELETE,
        "/rooms/standup",
        Some(&bob),
        None,
        403,
        "perm.not_owner",
    )
    .await;
    t.ok(M::POST, "/rooms/standup/leave", Some(&bob), None)
        .await;
    // Leaving revoked Bob's token.
    t.err(M::GET, "/me", Some(&bob), None, 401, "auth.token_revoked")
        .await;
    t.ok(M::DELETE, "/rooms/standup", Some(&alice), None).await;
    t.err(
        M::GET,
        "/rooms/standup",
        Some(ADMIN),
        None,
        404,
        "room.not_found",
    )
    .await;
    // Destroying the room dropped its tokens.
    t.err(M::GET, "/me", Some(&alice), None, 401, "auth.token_revoked")
        .await;
}

#[tokio::test]
async fn room_subject_and_xmpp_settings() {
    let t = setup();
    let alice = token(
        &t.ok(
            M::POST,
            "/rooms",
            None,
            Some(json!({"room": "topics", "as": "web:alice"})),
        )
        .await,
    );
    let dave = token(
        &t.ok(
            M::POST,
            "/rooms/topics/join",
            None,
            Some(json!({"as": "web:dave"})),
        )
        .await,
    );
    let summary = t.ok(M::GET, "/rooms/topics", None, None).await;
    assert_eq!(summary["subject"], Value::Null);
    assert_eq!(summary["persistent"], false);
    // A member may not change the subject until the room lets members.
    t.err(
        M::PUT,
        "/rooms/topics/subject",
        Some(&dave),
        Some(json!({"subject": "Agenda"})),
        403,
        "perm.subject_not_allowed",
    )
    .await;
    t.ok(
        M::PATCH,
        "/rooms/topics",
        Some(&alice),
        Some(
            json!({"name": "<b>Topics</b>", "description": "what we talk about",
                    "members_change_subject": true, "persistent": true, "public_addresses": true}),
        ),
    )
    .await;
    t.ok(
        M::PUT,
        "/rooms/topics/subject",
        Some(&dave),
        Some(json!({"subject": "Agenda"})),
    )
    .await;
    let summary = t.ok(M::GET, "/rooms/topics", None, None).await;
    assert_eq!(summary["subject"], "Agenda");
    assert_eq!(summary["name"], "Topics");
    assert_eq!(summary["description"], "what we talk about");
    assert_eq!(summary["persistent"], true);
    let detail = t.ok(M::GET, "/rooms/topics", Some(&dave), None).await;
    assert_eq!(detail["members_change_subject"], true);
    assert_eq!(detail["public_addresses"], true);
    assert!(detail["subject_at"].is_string());
    t.ok(
        M::PUT,
        "/rooms/topics/subject",
        Some(&dave),
        Some(json!({"subject": null})),
    )
    .await;
    let summary = t.ok(M::GET, "/rooms/topics", None, None).await;
    assert_eq!(summary["subject"], Value::Null);
}

#[tokio::test]
async fn room_configuration_lobby_and_roles() {
    let t = setup();
    let alice = token(
        &t.ok(
            M::POST,
            "/rooms",
            None,
            Some(json!({"room": "ops", "as": "web:alice", "password": "pw"})),
        )
        .await,
    );
    let summary = t.ok(M::GET, "/rooms/ops", None, None).await;
    assert_eq!(summary["has_password"], true);
    assert!(
        summary.get("affiliations").is_none(),
        "outsiders see the summary only"
    );
    t.err(
        M::POST,
        "/rooms/ops/join",
        None,
        Some(json!({"as": "web:dave"})),
        401,
        "auth.password_required",
    )
    .await;
    t.err(
        M::POST,
        "/rooms/ops/join",
        None,
        Some(json!({"as": "web:dave", "password": "nope"})),
        401,
        "auth.wrong_password",
    )
    .await;
    let dave = token(
        &t.ok(
            M::POST,
            "/rooms/ops/join",
            None,
            Some(json!({"as": "web:dave", "password": "pw"})),
        )
        .await,
    );
    t.err(
        M::PATCH,
        "/rooms/ops",
        Some(&dave),
        Some(json!({"lobby": true})),
        403,
        "perm.not_owner",
    )
    .await;
    t.err(
        M::PATCH,
        "/rooms/ops",
        Some(&alice),
        Some(json!({})),
        400,
        "input.invalid",
    )
    .await;
    t.ok(
        M::PATCH,
        "/rooms/ops",
        Some(&alice),
        Some(json!({"lobby": true, "password": null, "max_members": 5, "welcome_text": "hello"})),
    )
    .await;
    let detail = t.ok(M::GET, "/rooms/ops", Some(&dave), None).await;
    assert_eq!(detail["lobby"], true);
    assert_eq!(detail["has_password"], false);
    assert_eq!(detail["max_members"], 5);
    assert_eq!(detail["affiliations"]["web:alice"], "owner");
    let eve = token(
        &t.ok(
            M::POST,
            "/rooms/ops/knock",
            None,
            Some(json!({"as": "web:eve"})),
        )
        .await,
    );
    let lobby = t.ok(M::GET, "/rooms/ops/lobby", Some(&alice), None).await;
    assert_eq!(lobby["lobby"][0]["principal"], "web:eve");
    // Waiting in the lobby shows no roster.
    t.err(
        M::GET,
        "/rooms/ops/members",
        Some(&eve),
        None,
        403,
        "lobby.waiting",
    )
    .await;
    t.err(
        M::GET,
        "/rooms/ops/lobby",
        Some(&dave),
        None,
        403,
        "perm.not_moderator",
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/ops/admit",
        Some(&alice),
        Some(json!({"subject": "web:eve"})),
    )
    .await;
    let me = t.ok(M::GET, "/me", Some(&eve), None).await;
    assert_eq!(me["room"], "ops");
    t.ok(M::GET, "/rooms/ops/members", Some(&eve), None).await;
    t.err(
        M::POST,
        "/rooms/ops/reject",
        Some(&alice),
        Some(json!({"subject": "web:eve"})),
        404,
        "membership.not_knocking",
    )
    .await;
    t.ok(M::POST, "/rooms/ops/lock", Some(&alice), None).await;
    t.err(
        M::POST,
        "/rooms/ops/join",
        None,
        Some(json!({"as": "web:frank"})),
        403,
        "room.locked",
    )
    .await;
    t.ok(M::POST, "/rooms/ops/unlock", Some(&alice), None).await;
    t.err(
        M::POST,
        "/rooms/ops/roles",
        Some(&dave),
        Some(json!({"subject": "web:eve", "role": "moderator"})),
        403,
        "perm.not_moderator",
    )
    .await;
    t.err(
        M::DELETE,
        "/rooms/ops/roles/web:alice",
        Some(&alice),
        None,
        409,
        "role.last_owner",
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/ops/roles",
        Some(&alice),
        Some(json!({"subject": "web:dave", "role": "owner"})),
    )
    .await;
    let roles = t.ok(M::GET, "/rooms/ops/roles", Some(&eve), None).await;
    assert_eq!(roles["affiliations"]["web:dave"], "owner");
    t.ok(M::DELETE, "/rooms/ops/roles/web:alice", Some(&dave), None)
        .await;
    // Reserved names: common names cannot be reserved.
    let lobby_owner = token(
        &t.ok(
            M::POST,
            "/rooms",
            None,
            Some(json!({"room": "lobby", "as": "web:gina"})),
        )
        .await,
    );
    t.err(
        M::POST,
        "/rooms/lobby/reserve",
        Some(&lobby_owner),
        Some(json!({"owner_password": "x"})),
        422,
        "room.common_name",
    )
    .await;
    t.err(
        M::POST,
        "/rooms/lobby/unreserve",
        Some(&lobby_owner),
        None,
        409,
        "room.not_reserved",
    )
    .await;
    // Nested rooms need moderator rights in the parent.
    t.err(
        M::POST,
        "/rooms",
        Some(&eve),
        Some(json!({"room": "sub", "parent": "lobby"})),
        403,
        "perm.not_moderator",
    )
    .await;
    t.ok(
        M::POST,
        "/rooms",
        Some(&lobby_owner),
        Some(json!({"room": "sub", "parent": "lobby"})),
    )
    .await;
    let listed = t.ok(M::GET, "/rooms", None, None).await;
    assert_eq!(listed["rooms"].as_array().unwrap().len(), 3);
    t.err(
        M::POST,
        "/rooms",
        None,
        Some(json!({"room": "sub", "as": "web:hank"})),
        409,
        "room.exists",
    )
    .await;
    // Invitations: deny and revoke.
    let inv = t
        .ok(
            M::POST,
            "/rooms/ops/invitations",
            Some(&dave),
            Some(json!({"invitee": "web:ivy"})),
        )
        .await;
    let id = inv["invitation"].as_str().unwrap();
    t.ok(
        M::POST,
        &format!("/rooms/ops/invitations/{id}/deny"),
        None,
        Some(json!({"as": "web:ivy"})),
    )
    .await;
    t.err(
        M::POST,
        &format!("/rooms/ops/invitations/{id}/accept"),
        None,
        Some(json!({"as": "web:ivy"})),
        410,
        "invitation.closed",
    )
    .await;
    let inv = t
        .ok(
            M::POST,
            "/rooms/ops/invitations",
            Some(&dave),
            Some(json!({"invitee": "web:ivy", "single_use": false})),
        )
        .await;
    let id = inv["invitation"].as_str().unwrap();
    t.ok(
        M::POST,
        &format!("/rooms/ops/invitations/{id}/accept"),
        None,
        Some(json!({"as": "web:ivy"})),
    )
    .await;
    t.ok(
        M::DELETE,
        &format!("/rooms/ops/invitations/{id}"),
        Some(&dave),
        None,
    )
    .await;
    t.err(
        M::DELETE,
        "/rooms/ops/invitations/nope",
        Some(&dave),
        None,
        404,
        "invitation.not_found",
    )
    .await;
}

#[tokio::test]
async fn accounts_policies_and_server_bans() {
    let t = setup();
    let a = Some(ADMIN);
    t.ok(
        M::POST,
        "/accounts",
        a,
        Some(json!({"account": "f3345f27", "display_name": "dummy"})),
    )
    .await;
    t.err(
        M::POST,
        "/accounts",
        a,
        Some(json!({"account": "f3345f27"})),
        409,
        "account.exists",
    )
    .await;
    t.ok(
        M::POST,
        "/accounts/f3345f27/identities",
        a,
        Some(json!({"address": "sip:dummy@example.org"})),
    )
    .await;
    t.ok(
        M::POST,
        "/accounts/f3345f27/moderators",
        a,
        Some(json!({"moderator": "sip:mod@example.org"})),
    )
    .await;
    t.ok(
        M::POST,
        "/accounts/f3345f27/contacts",
        a,
        Some(json!({"contact": "sip:friend@example.org"})),
    )
    .await;
    t.ok(
        M::POST,
        "/accounts/f3345f27/bans",
        a,
        Some(json!({"subject": "sip:troll@example.org"})),
    )
    .await;
    t.ok(M::POST, "/accounts/f3345f27/disable", a, None).await;
    let acc = t.ok(M::GET, "/accounts/f3345f27", a, None).await;
    assert_eq!(acc["enabled"], false);
    assert_eq!(acc["identities"], json!(["sip:dummy@example.org"]));
    assert_eq!(acc["moderators"], json!(["sip:mod@example.org"]));
    assert_eq!(acc["contacts_restricted"], true);
    assert_eq!(acc["bans"][0]["subject"], "sip:troll@example.org");
    let contacts = t.ok(M::GET, "/accounts/f3345f27/contacts", a, None).await;
    assert_eq!(
        contacts["allowed_contacts"],
        json!(["sip:friend@example.org"])
    );
    assert_eq!(
        t.ok(M::GET, "/accounts/f3345f27/moderators", a, None).await["moderators"][0],
        "sip:mod@example.org"
    );
    assert_eq!(
        t.ok(M::GET, "/accounts/f3345f27/bans", a, None).await["bans"][0]["subject"],
        "sip:troll@example.org"
    );
    assert_eq!(
        t.ok(M::GET, "/accounts", a, None).await["accounts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    t.ok(M::POST, "/accounts/f3345f27/enable", a, None).await;
    t.ok(
        M::DELETE,
        "/accounts/f3345f27/bans/sip:troll@example.org",
        a,
        None,
    )
    .await;
    t.ok(
        M::DELETE,
        "/accounts/f3345f27/contacts/sip:friend@example.org",
        a,
        None,
    )
    .await;
    t.ok(M::DELETE, "/accounts/f3345f27/contacts", a, None)
        .await;
    t.ok(
        M::DELETE,
        "/accounts/f3345f27/moderators/sip:mod@example.org",
        a,
        None,
    )
    .await;
    t.ok(
        M::PATCH,
        "/accounts/f3345f27",
        a,
        Some(json!({"display_name": null})),
    )
    .await;
    // The linked identity cannot be claimed by a guest, nor can sip: identities at all.
    t.err(
        M::POST,
        "/rooms",
        None,
        Some(json!({"room": "x", "as": "sip:dummy@example.org"})),
        403,
        "auth.scheme_forbidden",
    )
    .await;
    // Rendezvous: calls land in the account's room.
    t.ok(
        M::PUT,
        "/accounts/f3345f27/rendezvous",
        a,
        Some(json!({"room": "conf-f3"})),
    )
    .await;
    let call = t
        .ok(
            M::POST,
            "/accounts/f3345f27/call",
            None,
            Some(json!({"as": "web:caller"})),
        )
        .await;
    assert_eq!(call["room"], "conf-f3");
    // The admin acts for a sip: identity.
    let sip = t
        .ok(
            M::POST,
            "/rooms/conf-f3/join",
            a,
            Some(json!({"as": "sip:dummy@example.org"})),
        )
        .await;
    assert_eq!(sip["identity"], "sip:dummy@example.org");
    t.ok(
        M::DELETE,
        "/accounts/f3345f27/identities/sip:dummy@example.org",
        a,
        None,
    )
    .await;
    // Server bans apply everywhere.
    t.ok(
        M::POST,
        "/bans",
        a,
        Some(json!({"subject": "web:spammer", "reason": "spam"})),
    )
    .await;
    assert_eq!(
        t.ok(M::GET, "/bans", a, None).await["bans"][0]["subject"],
        "web:spammer"
    );
    t.err(
        M::POST,
        "/rooms",
        None,
        Some(json!({"room": "spam", "as": "web:spammer"})),
        403,
        "membership.banned",
    )
    .await;
    t.ok(M::DELETE, "/bans/web:spammer", a, None).await;
    t.err(
        M::DELETE,
        "/bans/web:spammer",
        a,
        None,
        404,
        "ban.not_found",
    )
    .await;
    t.err(
        M::POST,
        "/bans",
        a,
        Some(json!({"subject": "web:x", "until": "2030-01-01T00:00:00Z", "duration_secs": 5})),
        400,
        "input.invalid",
    )
    .await;
    // Policies.
    t.ok(
        M::PUT,
        "/server/welcome-text",
        a,
        Some(json!({"text": "Welcome"})),
    )
    .await;
    t.ok(M::PUT, "/server/log-days", a, Some(json!({"days": 7})))
        .await;
    t.ok(
        M::PUT,
        "/server/obfuscate-ips",
        a,
        Some(json!({"enabled": false})),
    )
    .await;
    t.ok(
        M::PUT,
        "/server/password",
        a,
        Some(json!({"password": "srv"})),
    )
    .await;
    let p = t.ok(M::GET, "/server/policy", a, None).await;
    assert_eq!(p["welcome_text"], "Welcome");
    assert_eq!(p["log_days"], 7);
    assert_eq!(p["has_server_password"], true);
    assert!(
        !p.to_string().contains("argon2"),
        "hashes never leave the server"
    );
    t.err(
        M::POST,
        "/rooms/conf-f3/join",
        None,
        Some(json!({"as": "web:z"})),
        401,
        "auth.password_required",
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/conf-f3/join",
        None,
        Some(json!({"as": "web:z", "server_password": "srv"})),
    )
    .await;
    t.ok(
        M::PUT,
        "/server/password",
        a,
        Some(json!({"password": null})),
    )
    .await;
    let j = t
        .ok(
            M::POST,
            "/rooms/conf-f3/join",
            None,
            Some(json!({"as": "web:y"})),
        )
        .await;
    assert!(j["token"].is_string());
}

#[tokio::test]
async fn authentication() {
    let t = setup();
    let alice = token(
        &t.ok(
            M::POST,
            "/rooms",
            None,
            Some(json!({"room": "a", "as": "web:alice"})),
        )
        .await,
    );
    t.ok(
        M::POST,
        "/rooms",
        None,
        Some(json!({"room": "b", "as": "web:bob"})),
    )
    .await;
    for (m, p) in [
        (M::GET, "/accounts"),
        (M::GET, "/audit"),
        (M::GET, "/bans"),
        (M::GET, "/server/policy"),
        (M::PUT, "/server/welcome-text"),
    ] {
        let body = (m == M::PUT).then(|| json!({"text": "x"}));
        t.err(m.clone(), p, None, body.clone(), 401, "auth.required")
            .await;
        t.err(
            m.clone(),
            p,
            Some("wrong-token"),
            body.clone(),
            401,
            "auth.invalid_token",
        )
        .await;
        if m == M::GET {
            t.err(m.clone(), p, Some(&alice), None, 403, "auth.admin_required")
                .await;
        } else {
            // Participants reach the engine, which refuses (and journals the attempt).
            t.err(m.clone(), p, Some(&alice), body, 403, "perm.not_admin")
                .await;
        }
    }
    t.err(
        M::POST,
        "/rooms/b/lock",
        Some(&alice),
        None,
        403,
        "auth.token_scope",
    )
    .await;
    t.err(M::POST, "/rooms/b/lock", None, None, 401, "auth.required")
        .await;
    t.err(
        M::POST,
        "/rooms/a/join",
        None,
        Some(json!({"as": "web:alice"})),
        409,
        "auth.identity_claimed",
    )
    .await;
    t.err(
        M::POST,
        "/rooms/a/join",
        Some(&alice),
        Some(json!({"as": "web:bob"})),
        403,
        "auth.identity_mismatch",
    )
    .await;
    t.err(
        M::POST,
        "/rooms/a/join",
        None,
        Some(json!({})),
        400,
        "input.invalid",
    )
    .await;
    t.err(
        M::POST,
        "/rooms/a/join",
        Some(ADMIN),
        Some(json!({})),
        400,
        "input.invalid",
    )
    .await;
    // The admin can create for a named owner without acting as anyone.
    let r = t
        .ok(
            M::POST,
            "/rooms",
            Some(ADMIN),
            Some(json!({"room": "c", "owner": "sip:boss@example.org"})),
        )
        .await;
    assert_eq!(r["owners"], json!(["sip:boss@example.org"]));
    assert!(r.get("token").is_none());
    t.err(
        M::POST,
        "/rooms",
        Some(ADMIN),
        Some(json!({"room": "d"})),
        422,
        "room.owner_required",
    )
    .await;
    // Private rooms are invisible to outsiders.
    t.ok(
        M::POST,
        "/rooms",
        None,
        Some(json!({"room": "secret", "as": "web:sam", "private": true})),
    )
    .await;
    t.err(M::GET, "/rooms/secret", None, None, 404, "room.not_found")
        .await;
    let all = t.ok(M::GET, "/rooms", Some(ADMIN), None).await;
    assert_eq!(all["rooms"].as_array().unwrap().len(), 4);
    let public = t.ok(M::GET, "/rooms", None, None).await;
    assert_eq!(public["rooms"].as_array().unwrap().len(), 3);
    t.err(M::GET, "/rooms/a/members", None, None, 401, "auth.required")
        .await;
    t.err(M::GET, "/me", None, None, 401, "auth.required").await;
    let me = t.ok(M::GET, "/me", Some(ADMIN), None).await;
    assert_eq!(me["admin"], true);
}

/// A plausible body for each route that takes one.
fn sample_body(path: &str) -> Value {
    match path {
        "/rooms" => json!({"room": "nowhere-new", "as": "web:sampler"}),
        "/rooms/{room}" => json!({"locked": true}),
        "/rooms/{room}/reserve" => json!({"owner_password": "x"}),
        "/rooms/{room}/roles" => json!({"subject": "web:x", "role": "member"}),
        "/rooms/{room}/invitations" => json!({"invitee": "web:x"}),
        "/rooms/{room}/kick"
        | "/rooms/{room}/bans"
        | "/bans"
        | "/accounts/{account}/bans"
        | "/rooms/{room}/address-bans"
        | "/address-bans" => json!({"subject": "web:x"}),
        "/rooms/{room}/mute"
        | "/rooms/{room}/unmute"
        | "/rooms/{room}/pause-video"
        | "/rooms/{room}/resume-video"
        | "/rooms/{room}/admit"
        | "/rooms/{room}/reject" => json!({"subject": "web:x"}),
        "/rooms/{room}/moderated-chat" | "/server/obfuscate-ips" => json!({"enabled": true}),
        "/rooms/{room}/messages" => json!({"body": "hi"}),
        "/rooms/{room}/leave" => json!({"session": "s1"}),
        "/accounts" => json!({"account": "acc"}),
        "/accounts/{account}" => json!({"display_name": "x"}),
        "/accounts/{account}/identities" => json!({"address": "sip:x@example.org"}),
        "/accounts/{account}/contacts" => json!({"contact": "web:x"}),
        "/accounts/{account}/moderators" => json!({"moderator": "web:x"}),
        "/accounts/{account}/rendezvous" => json!({"room": null}),
        "/server/password" => json!({"password": null}),
        "/server/log-days" => json!({"days": 3}),
        "/server/welcome-text" => json!({"text": "x"}),
        "/rooms/{room}/subject" => json!({"subject": "x"}),
        _ => json!({}),
    }
}

fn concrete(path: &str) -> String {
    path.replace("{room}", "nowhere")
        .replace("{account}", "nobody")
        .replace("{subject}", "web:x")
        .replace("{invitation}", "inv1")
        .replace("{address}", "sip:x@example.org")
        .replace("{contact}", "web:x")
        .replace("{moderator}", "web:x")
}

#[tokio::test]
async fn openapi_documents_every_route_and_every_route_answers() {
    let t = setup();
    let doc = t.ok(M::GET, "/openapi.json", None, None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let table = routes::table();
    let mut documented = 0;
    for path in doc["paths"].as_object().unwrap().values() {
        documented += path.as_object().unwrap().len();
    }
    assert_eq!(
        documented,
        table.len(),
        "the document lists exactly the router's routes"
    );
    for r in &table {
        let m = r.method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][r.path][&m];
        assert!(
            op.is_object(),
            "{} {} missing from /openapi.json",
            r.method,
            r.path
        );
        assert!(op["responses"][r.ok.to_string()].is_object());
        for seg in r.path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            assert!(
                op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == name),
                "{} lacks {name}",
                r.path
            );
        }
        // An event stream answers 200 at once and then never ends: check the head only.
        if r.content.contains(&"text/event-stream") {
            let req = Request::builder()
                .uri(concrete(r.path))
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .unwrap();
            let resp = t.router.clone().oneshot(req).await.unwrap();
            assert!(!resp.status().is_server_error(), "{} {}", r.method, r.path);
            continue;
        }
        // Routed (not the fallback), answers in our shape, never a 5xx.
        let body = r.body.as_ref().map(|_| sample_body(r.path));
        let (s, v) = t
            .call(r.method.clone(), &concrete(r.path), Some(ADMIN), body)
            .await;
        assert!(!s.is_server_error(), "{} {} -> {s} {v}", r.method, r.path);
        if !s.is_success() {
            let code = v["error"]["code"].as_str().unwrap_or_default();
            assert!(
                !code.starts_with("route."),
                "{} {} not routed: {v}",
                r.method,
                r.path
            );
            assert!(!code.is_empty(), "{} {} -> {s} {v}", r.method, r.path);
        }
    }
    t.err(M::GET, "/nope", None, None, 404, "route.not_found")
        .await;
    t.err(
        M::PUT,
        "/rooms",
        None,
        None,
        405,
        "route.method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn every_room_command_maps_room_not_found() {
    let t = setup();
    for r in routes::table() {
        if !r.path.starts_with("/rooms/{room}") || r.method == M::GET && r.path == "/rooms/{room}" {
            continue;
        }
        if matches!(
            r.path,
            "/rooms/{room}/invitations/{invitation}/accept"
                | "/rooms/{room}/invitations/{invitation}/deny"
        ) {
            continue; // need `as`, tested elsewhere
        }
        let body = r.body.as_ref().map(|_| sample_body(r.path));
        let body = body.map(|mut b| {
            if r.path.ends_with("/join") || r.path.ends_with("/knock") {
                b = json!({"as": "web:x"});
            }
            b
        });
        let (s, v) = t
            .call(r.method.clone(), &concrete(r.path), Some(ADMIN), body)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{} {}: {v}", r.method, r.path);
        assert_eq!(
            v["error"]["code"], "room.not_found",
            "{} {}: {v}",
            r.method, r.path
        );
        assert!(v["error"]["correlation_id"].is_string(), "{v}");
    }
}

#[tokio::test]
async fn hostile_input_never_panics() {
    let t = setup();
    let alice = token(
        &t.ok(
            M::POST,
            "/rooms",
            None,
            Some(json!({"room": "r", "as": "web:alice"})),
        )
        .await,
    );
    let garbage: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\"str\"".to_vec(),
        b"{\"room\": 5}".to_vec(),
        b"{\"unknown\": 1}".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x01],
        format!("{{\"room\": \"{}\"}}", "x".repeat(5000)).into_bytes(),
        b"{\"subject\": \"sip:a@b\\r\\nVia: x\"}".to_vec(),
        b"{\"as\": \"web:../../etc\", \"session\": \"a/b\"}".to_vec(),
        b"{\"days\": 99999999999999999999}".to_vec(),
        b"{\"until\": \"yesterday\", \"subject\": \"web:x\"}".to_vec(),
    ];
    for r in routes::table().iter().filter(|r| r.body.is_some()) {
        for g in &garbage {
            for tok in [None, Some(alice.as_str()), Some(ADMIN)] {
                let (s, v, text) = t
                    .raw(
                        r.method.clone(),
                        &concrete(r.path).replace("nowhere", "r"),
                        tok,
                        g.clone(),
                    )
                    .await;
                assert!(
                    !s.is_server_error(),
                    "{} {} {:?} -> {s} {text}",
                    r.method,
                    r.path,
                    String::from_utf8_lossy(g)
                );
                if !s.is_success() {
                    assert!(
                        v["error"]["code"].is_string(),
                        "{} {} -> {s} {text}",
                        r.method,
                        r.path
                    );
                    // Errors say what JSON was expected, never our Rust type names.
                    let message = v["error"]["message"].as_str().unwrap_or_default();
                    assert!(
                        !message.contains("struct") && !message.contains("enum "),
                        "{} {} -> {message}",
                        r.method,
                        r.path
                    );
                }
            }
        }
    }
    // Oversized bodies.
    let big = vec![b' '; conclave_gateway_web::MAX_BODY_BYTES + 10];
    let (s, v, _) = t.raw(M::POST, "/rooms", None, big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["error"]["code"], "input.too_large");
    // Hostile path parameters.
    for p in [
        "/rooms/%00x",
        "/rooms/%0d%0a",
        "/rooms/%FF%FE",
        "/accounts/a%20b",
        "/rooms/r/bans/sip:a@b%0d%0a",
    ] {
        let (s, v, text) = t.raw(M::GET, p, Some(ADMIN), vec![]).await;
        assert!(!s.is_server_error(), "{p} -> {s} {text}");
        assert!(v["error"]["code"].is_string(), "{p} -> {text}");
    }
    let long = format!("/rooms/{}", "a".repeat(10_000));
    let (s, _, _) = t.raw(M::GET, &long, None, vec![]).await;
    assert!(!s.is_server_error());
    // Hostile audit queries.
    for q in [
        "/audit?limit=0",
        "/audit?limit=-1",
        "/audit?from=yesterday",
        "/audit?after=abc",
        "/audit?bogus=1",
    ] {
        let (s, v, _) = t.raw(M::GET, q, Some(ADMIN), vec![]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(v["error"]["code"], "input.invalid");
    }
    // Hostile Authorization headers.
    for h in [
        "Bearer",
        "Basic abc",
        "Bearer  ",
        &format!("Bearer {}", "x".repeat(4000)),
    ] {
        let req = Request::builder()
            .uri("/me")
            .header("authorization", h)
            .body(Body::empty())
            .unwrap();
        let resp = t.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{h}");
    }
    // Overlong chat is the engine's typed refusal.
    let alice = token(&t.ok(M::POST, "/rooms/r/join", Some(&alice), None).await);
    t.err(
        M::POST,
        "/rooms/r/messages",
        Some(&alice),
        Some(json!({"body": "x".repeat(6000)})),
        413,
        "chat.too_long",
    )
    .await;
    t.err(
        M::POST,
        "/rooms/r/messages",
        Some(&alice),
        Some(json!({"body": "<b></b>"})),
        400,
        "chat.empty",
    )
    .await;
}

#[tokio::test]
async fn health_and_metrics() {
    let t = setup();
    let h = t.ok(M::GET, "/about/health", None, None).await;
    assert_eq!(h["status"], "ok");
    t.ok(
        M::POST,
        "/rooms",
        None,
        Some(json!({"room": "m", "as": "web:alice"})),
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/m/join",
        None,
        Some(json!({"as": "web:bob"})),
    )
    .await;
    t.call(
        M::POST,
        "/rooms",
        None,
        Some(json!({"room": "m", "as": "web:carl"})),
    )
    .await;
    let (s, _, text) = t.raw(M::GET, "/metrics", None, vec![]).await;
    assert_eq!(s, StatusCode::OK);
    for needle in [
        "conclave_active_rooms 1",
        "conclave_members 1",
        "conclave_sessions 1",
        "conclave_commands_total{command=\"create_room\"} 2",
        "conclave_commands_total{command=\"join\"} 1",
        "conclave_rejections_total{code=\"room.exists\"} 1",
        "conclave_rejections_total{code=\"membership.banned\"} 0",
        "conclave_append_latency_seconds_bucket{le=\"+Inf\"} 2",
        "conclave_append_latency_seconds_count 2",
        "conclave_journal_head 2",
        "# TYPE conclave_append_latency_seconds histogram",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

/// The admin acting as a person is journaled as such: the actor is the person, and the
/// record says the admin token authorized it; a guest's own action says nothing more.
#[tokio::test]
async fn acting_as_a_person_is_journaled_with_who_authorized_it() {
    let t = setup();
    t.ok(
        M::POST,
        "/rooms",
        None,
        Some(json!({"room": "lab", "as": "web:alice"})),
    )
    .await;
    t.ok(
        M::POST,
        "/rooms/lab/join",
        Some(ADMIN),
        Some(json!({"as": "sip:bob@example.org"})),
    )
    .await;
    let audit = t.ok(M::GET, "/audit?room=lab", Some(ADMIN), None).await;
    let entries = audit["entries"]
        .as_array()
        .or(audit.as_array())
        .expect("entries");
    let by_type = |ty: &str| {
        entries
            .iter()
            .find(|e| e["event_type"] == ty)
            .unwrap_or_else(|| panic!("no {ty} in {audit}"))
            .clone()
    };
    let join = by_type("room_join");
    assert_eq!(join["actor"], "sip:bob@example.org");
    assert_eq!(join["authorized_by"], "admin");
    let create = by_type("room_create");
    assert_eq!(create["actor"], "web:alice");
    assert!(create["authorized_by"].is_null());
}

#[tokio::test]
async fn sip_credentials_are_set_as_ha1_values_and_never_shown() {
    use conclave_engine::sip_digest::{ha1, DigestAlgorithm};
    // Given an account,
    let t = setup();
    let a = Some(ADMIN);
    t.ok(M::POST, "/accounts", a, Some(json!({"account": "alice"})))
        .await;
    let body = json!({"address": "sip:alice@example.org", "password": "s3cret-pw"});
    // anonymous callers and non-sip identities are refused,
    t.err(
        M::PUT,
        "/accounts/alice/sip-credentials",
        None,
        Some(body.clone()),
        401,
        "auth.required",
    )
    .await;
    t.err(
        M::PUT,
        "/accounts/alice/sip-credentials",
        a,
        Some(json!({"address": "xmpp:alice@example.org", "password": "x"})),
        400,
        "input.invalid",
    )
    .await;
    // when the admin sets a SIP password (realm defaulting to the host),
    let set = t
        .ok(M::PUT, "/accounts/alice/sip-credentials", a, Some(body))
        .await;
    assert_eq!(
        set["events"].as_array().map(Vec::len),
        Some(2),
        "identity_link then sip_credential_set: {set}"
    );
    // then the account lists the identity's realm and algorithms,
    let acc = t.ok(M::GET, "/accounts/alice", a, None).await;
    assert_eq!(acc["identities"], json!(["sip:alice@example.org"]));
    assert_eq!(
        acc["sip_credentials"],
        json!([{"address": "sip:alice@example.org", "realm": "example.org",
                "algorithms": ["MD5", "SHA-256"]}])
    );
    // and neither the audit trail nor the account shows the hashes or the password.
    let audit = t
        .ok(M::GET, "/audit?type=sip_credential_set", a, None)
        .await;
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(1),
        "{audit}"
    );
    let md5 = ha1(DigestAlgorithm::Md5, "alice", "example.org", "s3cret-pw");
    let sha = ha1(DigestAlgorithm::Sha256, "alice", "example.org", "s3cret-pw");
    for text in [audit.to_string(), acc.to_string(), set.to_string()] {
        assert!(!text.contains(&md5) && !text.contains(&sha), "{text}");
        assert!(!text.contains("s3cret-pw"), "{text}");
    }
    // Clearing keeps the link.
    t.ok(
        M::DELETE,
        "/accounts/alice/sip-credentials/sip:alice@example.org",
        a,
        None,
    )
    .await;
    let acc = t.ok(M::GET, "/accounts/alice", a, None).await;
    assert_eq!(acc["sip_credentials"], json!([]));
    assert_eq!(acc["identities"], json!(["sip:alice@example.org"]));
}

#[tokio::test]
async fn recordings_start_stop_and_list_with_the_files_the_media_node_closed() {
    use conclave_engine::service::Request as EngineRequest;
    use conclave_engine::{
        Actor, Command, Origin, RecordingFile, RecordingId, RecordingKind, RoomName,
    };
    // Given a room where alice owns and dave is a plain participant
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.journal.sync = SyncMode::None;
    let engine = Engine::open(config).unwrap();
    let t = T {
        router: router(engine.clone(), AuthConfig::new(ADMIN)),
        _dir: dir,
    };
    let alice = token(
        &t.ok(
            M::POST,
            "/rooms",
            None,
            Some(json!({"room": "rec", "as": "web:alice"})),
        )
        .await,
    );
    let dave = token(
        &t.ok(
            M::POST,
            "/rooms/rec/join",
            None,
            Some(json!({"as": "web:dave"})),
        )
        .await,
    );
    // dave may not start a recording; nothing runs to stop
    t.err(
        M::POST,
        "/rooms/rec/recording",
        Some(&dave),
        None,
        403,
        "perm.not_moderator",
    )
    .await;
    t.err(
        M::DELETE,
        "/rooms/rec/recording",
        Some(&alice),
        None,
        409,
        "recording.not_active",
    )
    .await;
    // When alice starts one (with video) it answers 201 with the id
    let (s, started) = t
        .call(
            M::POST,
            "/rooms/rec/recording",
            Some(&alice),
            Some(json!({"video": true})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{started}");
    let id = started["recording"].as_str().unwrap().to_owned();
    assert_eq!(started["events"][0]["type"], "recording_started");
    assert_eq!(started["events"][0]["data"]["by"], "web:alice");
    // and a second start is a conflict
    t.err(
        M::POST,
        "/rooms/rec/recording",
        Some(&alice),
        None,
        409,
        "recording.already_active",
    )
    .await;
    // unknown fields are refused as everywhere
    t.err(
        M::POST,
        "/rooms/rec/recording",
        Some(&alice),
        Some(json!({"audio": true})),
        400,
        "input.invalid",
    )
    .await;
    let listed = t
        .ok(M::GET, "/rooms/rec/recordings", Some(&dave), None)
        .await;
    assert_eq!(listed["active"], id.as_str());
    assert_eq!(listed["recordings"][0]["stopped_at"], Value::Null);
    // Then alice stops it, and the media node states the audio file it closed
    t.ok(M::DELETE, "/rooms/rec/recording", Some(&alice), None)
        .await;
    let hash = "0123456789abcdef".repeat(4);
    engine
        .execute(EngineRequest::new(
            Command::RecordRecordingFile {
                room: RoomName::lookup("rec").unwrap(),
                recording: RecordingId::parse(&id).unwrap(),
                file: RecordingFile {
                    name: format!("{id}/audio.ogg"),
                    kind: RecordingKind::Audio,
                    track: None,
                    bytes: 2048,
                    duration_ms: 3000,
                    blake3: hash.clone(),
                },
            },
            Actor::Service("media".into()),
            Origin::default(),
        ))
        .await
        .unwrap();
    // and the list shows it, to participants and to the admin
    for who in [dave.as_str(), ADMIN] {
        let listed = t.ok(M::GET, "/rooms/rec/recordings", Some(who), None).await;
        assert_eq!(listed["active"], Value::Null);
        let r = &listed["recordings"][0];
        assert_eq!(r["id"], id.as_str());
        assert_eq!(r["video"], true);
        assert_eq!(r["erased"], Value::Null);
        assert!(r["stopped_at"].is_string());
        assert_eq!(
            r["files"],
            json!([{"name": format!("{id}/audio.ogg"), "kind": "audio", "track": null,
                    "bytes": 2048, "duration_ms": 3000, "blake3": hash}])
        );
    }
    // strangers do not see it
    t.err(
        M::GET,
        "/rooms/rec/recordings",
        None,
        None,
        401,
        "auth.required",
    )
    .await;
}

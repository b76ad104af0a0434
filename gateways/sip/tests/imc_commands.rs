//! IMC commands against a real engine on a temporary directory: each command's success
//! and refusal, given / when / then.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conclave_engine::model::{BanScope, Role};
use conclave_engine::service::{Engine, EngineConfig, FeedFilter, GatewayScope, Request};
use conclave_engine::state::InvitationState;
use conclave_engine::{
    Actor, Address, Command, Credentials, EventKind, Origin, Principal, RoomName, Scheme, SessionId,
};
use conclave_gateway_sip::imc::{im_session, Addressing, Imc, ImcReply, ImcRequest};
use conclave_journal::SyncMode;

struct T {
    engine: Engine,
    imc: Imc,
    _dir: tempfile::TempDir,
}

fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.journal.sync = SyncMode::None;
    let engine = Engine::open(config).unwrap();
    let handle = engine.gateway(GatewayScope {
        name: "sip".into(),
        schemes: vec![Scheme::Sip],
    });
    let imc = Imc::new(handle, Addressing::new("example.org"), '#');
    T {
        engine,
        imc,
        _dir: dir,
    }
}

fn sip(user: &str) -> Address {
    Address::parse(&format!("sip:{user}@example.org")).unwrap()
}

fn room(name: &str) -> RoomName {
    RoomName::from_stored(name.into())
}

/// The one notice's text.
fn text(r: &ImcReply) -> &str {
    assert_eq!(r.notices.len(), 1, "{r:?}");
    &r.notices[0].body
}

impl T {
    /// `user` sends `body` to `sip:<to>@example.org`.
    async fn send(&self, user: &str, to: &str, body: &str) -> ImcReply {
        let target = self.imc.addressing().target(to, "example.org");
        self.imc
            .handle(ImcRequest {
                sender: sip(user),
                target,
                body: body.into(),
                remote: Some("192.0.2.7:5060".parse().unwrap()),
                call_id: format!("call-{user}"),
            })
            .await
    }

    fn is_member(&self, r: &str, user: &str) -> bool {
        self.engine.read(|s| {
            s.rooms.get(&room(r)).is_some_and(|rm| {
                rm.members
                    .get(&Principal::Address(sip(user)))
                    .is_some_and(|m| m.sessions.contains_key(&im_session(&sip(user))))
            })
        })
    }

    fn exists(&self, r: &str) -> bool {
        self.engine.read(|s| s.rooms.contains_key(&room(r)))
    }

    /// alice created `standup` (public) and bob joined it.
    async fn standup(&self) {
        self.send("alice", "chat-manager", "#create standup").await;
        self.send("bob", "chat-standup", "#join").await;
    }

    /// alice created the private room `secret`.
    async fn secret(&self) {
        self.send("alice", "chat-manager", "#create secret private")
            .await;
    }

    /// Every event in the journal.
    fn events(&self) -> Vec<EventKind> {
        let mut sub = self.engine.subscribe(0, FeedFilter::all());
        let mut out = Vec::new();
        while let Some(e) = sub.try_next().unwrap() {
            out.push(e.event.kind.clone());
        }
        out
    }
}

#[tokio::test]
async fn create_public_makes_the_sender_owner_and_member() {
    let t = setup();
    let r = t.send("alice", "chat-manager", "#create standup").await;
    assert_eq!(r.status, 200);
    assert_eq!(text(&r), "*** Room was created");
    assert_eq!(r.notices[0].from_uri, "sip:chat-standup@example.org");
    assert_eq!(r.notices[0].to, sip("alice"));
    assert!(t.is_member("standup", "alice"));
    t.engine.read(|s| {
        let rm = &s.rooms[&room("standup")];
        assert!(!rm.config.private);
        assert!(rm.config.owner_exit_destroys);
        assert_eq!(
            rm.affiliations.get(&Principal::Address(sip("alice"))),
            Some(&Role::Owner)
        );
    });
}

#[tokio::test]
async fn create_private_from_the_room_uri() {
    let t = setup();
    let r = t.send("alice", "chat-secret", "#create private").await;
    assert_eq!(text(&r), "*** Room was created");
    assert!(t.engine.read(|s| s.rooms[&room("secret")].config.private));
}

#[tokio::test]
async fn create_of_an_existing_room_is_refused_with_a_notice() {
    let t = setup();
    t.standup().await;
    let r = t.send("carol", "chat-manager", "#create standup").await;
    assert_eq!(r.status, 200);
    assert_eq!(text(&r), "*** Room already exists");
    assert_eq!(r.notices[0].from_uri, "sip:chat-manager@example.org");
}

#[tokio::test]
async fn join_public_room() {
    let t = setup();
    t.send("alice", "chat-manager", "#create standup").await;
    let r = t.send("bob", "chat-standup", "#join").await;
    assert_eq!((r.status, text(&r)), (200, "*** You have joined the room"));
    assert!(t.is_member("standup", "bob"));
    let again = t.send("bob", "chat-manager", "#join chat-standup").await;
    assert_eq!(text(&again), "*** You are in the room already");
}

#[tokio::test]
async fn join_of_a_missing_room_creates_it_as_the_seed_says() {
    let t = setup();
    let r = t
        .send("bob", "chat-manager", "#join sip:chat-new@example.org")
        .await;
    assert_eq!(text(&r), "*** Room was created");
    assert!(t.is_member("new", "bob"));
}

#[tokio::test]
async fn join_private_without_invitation_is_refused_and_journaled() {
    let t = setup();
    t.secret().await;
    let r = t.send("bob", "chat-secret", "#join").await;
    assert_eq!(r.status, 200);
    assert!(text(&r).contains("by invitation only"), "{r:?}");
    assert!(!t.is_member("secret", "bob"));
    assert!(t
        .events()
        .iter()
        .any(|e| matches!(e, EventKind::JoinDenied { address, .. } if *address == sip("bob"))));
}

#[tokio::test]
async fn invite_then_accept_joins_the_private_room() {
    let t = setup();
    t.secret().await;
    let r = t.send("alice", "chat-secret", "#invite bob").await;
    assert_eq!(
        text(&r),
        "*** <bob@example.org> has been invited to the room"
    );
    let r = t.send("bob", "chat-manager", "#accept chat-secret").await;
    assert_eq!(text(&r), "*** You have joined the room");
    assert!(t.is_member("secret", "bob"));
}

#[tokio::test]
async fn invite_then_deny_keeps_the_invitee_out() {
    let t = setup();
    t.secret().await;
    t.send("alice", "chat-secret", "#invite sip:bob@example.org")
        .await;
    let r = t.send("bob", "chat-secret", "#deny").await;
    assert_eq!(text(&r), "*** You have declined the invitation");
    assert!(t.engine.read(|s| s.rooms[&room("secret")]
        .invitations
        .values()
        .all(|i| i.state == InvitationState::Denied)));
    let r = t.send("bob", "chat-secret", "#accept").await;
    assert_eq!(text(&r), "*** You have no pending invitation to this room");
    assert!(!t.is_member("secret", "bob"));
}

#[tokio::test]
async fn invite_by_a_plain_member_is_refused() {
    let t = setup();
    t.standup().await;
    let r = t.send("bob", "chat-standup", "#invite carol").await;
    assert_eq!(r.status, 200);
    assert!(text(&r).starts_with("*** Only the room's owner"), "{r:?}");
}

#[tokio::test]
async fn remove_by_a_non_owner_is_refused() {
    let t = setup();
    t.standup().await;
    let r = t.send("bob", "chat-standup", "#remove alice").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        text(&r),
        "*** Only the room's owner or moderators may do this"
    );
    assert!(t.is_member("standup", "alice"));
}

#[tokio::test]
async fn remove_by_the_owner_removes() {
    let t = setup();
    t.standup().await;
    let r = t.send("alice", "chat-standup", "#remove bob").await;
    assert_eq!(
        text(&r),
        "*** <bob@example.org> has been removed from the room"
    );
    assert!(!t.is_member("standup", "bob"));
}

#[tokio::test]
async fn remove_from_a_private_room_takes_the_membership_too() {
    let t = setup();
    t.secret().await;
    t.send("alice", "chat-secret", "#invite bob").await;
    t.send("bob", "chat-secret", "#accept").await;
    t.send("alice", "chat-secret", "#remove bob").await;
    let r = t.send("bob", "chat-secret", "#join").await;
    assert!(text(&r).contains("by invitation only"), "{r:?}");
}

#[tokio::test]
async fn destroy_by_a_non_owner_is_refused() {
    let t = setup();
    t.standup().await;
    let r = t.send("bob", "chat-standup", "#destroy").await;
    assert_eq!(r.status, 200);
    assert_eq!(text(&r), "*** Only the room's owner may do this");
    assert!(t.exists("standup"));
}

#[tokio::test]
async fn destroy_by_the_owner() {
    let t = setup();
    t.standup().await;
    let r = t.send("alice", "chat-manager", "#destroy standup").await;
    assert_eq!(text(&r), "*** Room has been destroyed");
    assert!(!t.exists("standup"));
}

#[tokio::test]
async fn owner_exit_destroys_the_room_member_exit_leaves() {
    let t = setup();
    t.standup().await;
    let r = t.send("bob", "chat-standup", "#exit").await;
    assert_eq!(text(&r), "*** You have left the room");
    assert!(t.exists("standup"));
    let r = t.send("alice", "chat-standup", "#exit").await;
    assert_eq!(text(&r), "*** Room has been destroyed");
    assert!(!t.exists("standup"));
}

#[tokio::test]
async fn exit_when_not_in_the_room() {
    let t = setup();
    t.standup().await;
    let r = t.send("carol", "chat-standup", "#exit").await;
    assert_eq!(text(&r), "*** You are not in the room");
}

#[tokio::test]
async fn list_shows_members_to_members_only() {
    let t = setup();
    t.standup().await;
    let r = t.send("bob", "chat-standup", "#list").await;
    assert_eq!(
        text(&r),
        "*** Members:\n*alice@example.org\nbob@example.org"
    );
    let r = t.send("carol", "chat-standup", "#list").await;
    assert_eq!((r.status, r.notices.len()), (403, 0));
}

#[tokio::test]
async fn help_lists_the_commands() {
    let t = setup();
    let r = t.send("bob", "chat-manager", "#help").await;
    assert_eq!(r.status, 200);
    for c in [
        "#create", "#join", "#invite", "#accept", "#deny", "#remove", "#list", "#exit", "#destroy",
    ] {
        assert!(text(&r).contains(c), "{c}");
    }
}

#[tokio::test]
async fn unknown_command_points_to_help() {
    let t = setup();
    let r = t.send("bob", "chat-manager", "#dance").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        text(&r),
        "*** Invalid command 'dance' (send '#help' for help)"
    );
}

#[tokio::test]
async fn missing_arguments_get_the_usage() {
    let t = setup();
    let r = t.send("bob", "chat-manager", "#invite").await;
    assert_eq!(text(&r), "*** Usage: #invite <user> [<room>]");
    let r = t.send("bob", "chat-manager", "#join").await;
    assert!(text(&r).starts_with("*** Name the room"));
}

#[tokio::test]
async fn chat_by_a_member_is_posted() {
    let t = setup();
    t.standup().await;
    let r = t.send("bob", "chat-standup", "hello all").await;
    assert_eq!((r.status, r.notices.len()), (200, 0));
    assert!(t.events().iter().any(|e| matches!(e,
        EventKind::MessagePosted { body: Some(b), address, .. } if b == "hello all" && *address == sip("bob"))));
}

#[tokio::test]
async fn chat_by_a_non_member_is_refused() {
    let t = setup();
    t.standup().await;
    let r = t.send("carol", "chat-standup", "hello").await;
    assert_eq!((r.status, r.notices.len()), (403, 0));
    assert_eq!(r.reason, "not present in this room");
}

#[tokio::test]
async fn chat_to_a_missing_room_is_404_and_too_long_is_413() {
    let t = setup();
    t.standup().await;
    let r = t.send("bob", "chat-nowhere", "hello").await;
    assert_eq!(r.status, 404);
    let r = t.send("bob", "chat-standup", &"x".repeat(5001)).await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn chat_to_the_manager_explains_commands() {
    let t = setup();
    let r = t.send("bob", "chat-manager", "hi").await;
    assert_eq!(r.status, 200);
    assert!(text(&r).contains("'#help'"));
}

#[tokio::test]
async fn a_room_made_over_imc_is_the_room_rest_users_see() {
    let t = setup();
    t.send("alice", "chat-manager", "#create standup").await;
    // A web user joins through the engine as the REST gateway would.
    let join = Request::new(
        Command::Join {
            room: room("standup"),
            session: SessionId::parse("tab-1").unwrap(),
            credentials: Credentials::default(),
        },
        Actor::Identity(Address::parse("web:carol").unwrap()),
        Origin::default(),
    );
    t.engine.execute(join).await.unwrap();
    let r = t.send("alice", "chat-standup", "#list").await;
    assert_eq!(text(&r), "*** Members:\n*alice@example.org\ncarol");
}

#[tokio::test]
async fn a_ban_on_the_sip_identity_refuses_the_join() {
    let t = setup();
    t.send("alice", "chat-manager", "#create standup").await;
    let ban = Request::new(
        Command::Ban {
            scope: BanScope::Server,
            subject: Principal::Address(sip("bob")),
            reason: None,
            until: None,
        },
        Actor::Admin,
        Origin::default(),
    );
    t.engine.execute(ban).await.unwrap();
    let r = t.send("bob", "chat-standup", "#join").await;
    assert_eq!(r.status, 200);
    assert_eq!(text(&r), "*** You are banned");
    assert!(!t.is_member("standup", "bob"));
}

#[tokio::test]
async fn a_request_uri_outside_imc_is_404() {
    let t = setup();
    let r = t.send("bob", "somebody", "#help").await;
    assert_eq!((r.status, r.notices.len()), (404, 0));
}

#[tokio::test]
async fn handling_can_be_spawned() {
    let t = setup();
    let imc = t.imc.clone();
    let req = ImcRequest {
        sender: sip("bob"),
        target: imc.addressing().target("chat-manager", "example.org"),
        body: "#help".into(),
        remote: None,
        call_id: "c".into(),
    };
    let r = tokio::spawn(async move { imc.handle(req).await })
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}

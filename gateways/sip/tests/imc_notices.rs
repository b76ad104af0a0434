//! What IMC tells a room's SIP members about events (`notices_for`, `chat_line`) and to
//! whom (`Roster`), given / when / then.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use conclave_engine::model::{BanScope, Role, RoomChange};
use conclave_engine::service::{Engine, EngineConfig, FeedFilter, GatewayScope};
use conclave_engine::testing::t0;
use conclave_engine::{
    Actor, Address, DeleteReason, DenyReason, Event, EventKind, InvitationId, LeaveReason,
    MessageId, Principal, RoleVia, RoomName, Scheme, SessionId,
};
use conclave_gateway_sip::imc::{
    chat_line, im_session, notices_for, Addressing, EventNotice, Imc, ImcRequest, Recipients,
    Roster,
};
use conclave_journal::SyncMode;

fn sip(user: &str) -> Address {
    Address::parse(&format!("sip:{user}@example.org")).unwrap()
}

fn room() -> RoomName {
    RoomName::from_stored("standup".into())
}

fn addressing() -> Addressing {
    Addressing::new("example.org")
}

fn ev(actor: &str, kind: EventKind) -> Event {
    Event {
        at: t0(),
        actor: Actor::Identity(sip(actor)),
        kind,
    }
}

fn bob() -> Principal {
    Principal::Address(sip("bob"))
}

fn members(body: &str) -> EventNotice {
    EventNotice {
        room: room(),
        recipients: Recipients::Members,
        body: body.into(),
    }
}

fn person(p: Principal, body: &str) -> EventNotice {
    EventNotice {
        room: room(),
        recipients: Recipients::Person(p),
        body: body.into(),
    }
}

fn notices(actor: &str, kind: EventKind) -> Vec<EventNotice> {
    notices_for(&ev(actor, kind), &addressing())
}

#[test]
fn a_join_is_told_to_the_members() {
    let n = notices(
        "bob",
        EventKind::Joined {
            room: room(),
            principal: bob(),
            address: sip("bob"),
            session: im_session(&sip("bob")),
            gateway: "sip".into(),
            role: Role::Member,
            remote: None,
        },
    );
    assert_eq!(
        n,
        vec![members("*** <bob@example.org> has joined the room")]
    );
}

#[test]
fn leaving_and_losing_the_connection() {
    let left = |reason| {
        notices(
            "bob",
            EventKind::Left {
                room: room(),
                principal: bob(),
                session: im_session(&sip("bob")),
                reason,
            },
        )
    };
    assert_eq!(
        left(LeaveReason::Left),
        vec![members("*** <bob@example.org> has left the room")]
    );
    assert_eq!(
        left(LeaveReason::LeaseExpired),
        vec![members(
            "*** <bob@example.org> has left the room (connection lost)"
        )]
    );
}

#[test]
fn a_denied_join_is_an_attempt_but_not_a_password_prompt() {
    let denied = |reason| {
        notices(
            "bob",
            EventKind::JoinDenied {
                room: room(),
                principal: bob(),
                address: sip("bob"),
                reason,
                remote: None,
            },
        )
    };
    assert_eq!(
        denied(DenyReason::NotInvited),
        vec![members("*** <bob@example.org> attempted to join the room")]
    );
    assert!(denied(DenyReason::PasswordRequired).is_empty());
}

#[test]
fn a_kick_tells_the_room_and_the_removed() {
    let n = notices(
        "alice",
        EventKind::Kicked {
            room: room(),
            subject: bob(),
            reason: None,
        },
    );
    assert_eq!(
        n,
        vec![
            members("*** <bob@example.org> has been removed from the room"),
            person(bob(), "*** You have been removed from the room"),
        ]
    );
}

#[test]
fn a_room_ban_tells_the_room_and_the_banned_a_server_ban_does_not() {
    let ban = |scope| {
        notices(
            "alice",
            EventKind::Banned {
                scope,
                subject: bob(),
                reason: None,
                until: None,
            },
        )
    };
    assert_eq!(
        ban(BanScope::Room(room())),
        vec![
            members("*** <bob@example.org> has been banned from the room"),
            person(bob(), "*** You have been banned from the room"),
        ]
    );
    assert!(ban(BanScope::Server).is_empty());
}

#[test]
fn destroyed_and_expired_rooms() {
    let deleted = notices(
        "alice",
        EventKind::RoomDeleted {
            room: room(),
            reason: DeleteReason::OwnerLeft,
        },
    );
    assert_eq!(deleted, vec![members("*** Room has been destroyed")]);
    let expired = notices(
        "alice",
        EventKind::RoomExpired {
            room: room(),
            idle_secs: 60,
            reserved: false,
        },
    );
    assert_eq!(expired.len(), 1);
    assert!(expired[0].body.contains("closed"));
}

#[test]
fn an_invitation_goes_to_a_sip_invitee_with_how_to_answer() {
    let invite = |invitee: Address| {
        notices(
            "alice",
            EventKind::InvitationIssued {
                room: room(),
                invitation: InvitationId::from_stored("i1".into()),
                invitee,
                expires_at: None,
                single_use: true,
                secret_digest: None,
            },
        )
    };
    let n = invite(sip("bob"));
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].recipients, Recipients::One(sip("bob")));
    assert_eq!(
        n[0].body,
        "*** <alice@example.org> invites you to join the room sip:chat-standup@example.org \
         (send '#accept' or '#deny' to sip:chat-standup@example.org)"
    );
    assert!(invite(Address::parse("xmpp:bob@example.org").unwrap()).is_empty());
}

#[test]
fn a_declined_invitation_is_told_an_accepted_one_is_not() {
    let answered = |accepted| {
        notices(
            "bob",
            EventKind::InvitationAnswered {
                room: room(),
                invitation: InvitationId::from_stored("i1".into()),
                accepted,
                by: bob(),
            },
        )
    };
    assert_eq!(
        answered(false),
        vec![members("*** <bob@example.org> has declined the invitation")]
    );
    assert!(answered(true).is_empty());
}

#[test]
fn role_changes_and_room_settings() {
    let role = |via| {
        notices(
            "alice",
            EventKind::RoleChanged {
                room: room(),
                subject: bob(),
                from: None,
                to: Some(Role::Moderator),
                via,
            },
        )
    };
    assert_eq!(
        role(RoleVia::Grant),
        vec![members("*** <bob@example.org> is now moderator")]
    );
    assert!(role(RoleVia::Invitation).is_empty());
    let modified = |change| {
        notices(
            "alice",
            EventKind::RoomModified {
                room: room(),
                change,
            },
        )
    };
    assert_eq!(
        modified(RoomChange::Locked(true)),
        vec![members("*** The room is now locked")]
    );
    assert!(modified(RoomChange::MaxMembers(Some(3))).is_empty());
}

#[test]
fn chat_is_a_line_not_a_notice() {
    let posted = ev(
        "bob",
        EventKind::MessagePosted {
            room: room(),
            message: MessageId::from_stored("m1".into()),
            from: bob(),
            address: sip("bob"),
            body: Some("hi".into()),
            html_stripped: false,
        },
    );
    assert!(notices_for(&posted, &addressing()).is_empty());
    let line = chat_line(&posted).unwrap();
    assert_eq!(line.body, "<bob@example.org>: hi");
    assert_eq!(line.sender, sip("bob"));
}

#[test]
fn a_web_guest_is_named_by_name() {
    let n = notices_for(
        &Event {
            at: t0(),
            actor: Actor::Identity(Address::parse("web:carol").unwrap()),
            kind: EventKind::Joined {
                room: room(),
                principal: Principal::Address(Address::parse("web:carol").unwrap()),
                address: Address::parse("web:carol").unwrap(),
                session: SessionId::parse("tab").unwrap(),
                gateway: "web".into(),
                role: Role::Member,
                remote: None,
            },
        },
        &addressing(),
    );
    assert_eq!(n, vec![members("*** <carol> has joined the room")]);
}

// ---- the roster, fed from a real engine's feed ----

async fn send(imc: &Imc, user: &str, to: &str, body: &str) {
    let target = imc.addressing().target(to, "example.org");
    imc.handle(ImcRequest {
        sender: sip(user),
        target,
        body: body.into(),
        remote: None,
        call_id: "c".into(),
    })
    .await;
}

/// Every notice the roster delivers for the events committed since `sub` last read.
fn deliver(
    roster: &mut Roster,
    sub: &mut conclave_engine::service::FeedSubscription,
) -> Vec<(Address, String)> {
    let mut out = Vec::new();
    while let Some(e) = sub.try_next().unwrap() {
        let (notices, _) = roster.deliveries(&e.event, &addressing());
        out.extend(notices.into_iter().map(|n| {
            assert_eq!(n.from_uri, "sip:chat-standup@example.org");
            (n.to, n.body)
        }));
    }
    out
}

#[tokio::test]
async fn the_roster_tells_members_but_not_the_actor_even_of_a_destroyed_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.journal.sync = SyncMode::None;
    let engine = Engine::open(config).unwrap();
    let imc = Imc::new(
        engine.gateway(GatewayScope {
            name: "sip".into(),
            schemes: vec![Scheme::Sip],
        }),
        addressing(),
        '#',
    );
    let mut roster = Roster::from_state(&engine.read(|s| s.clone()));
    let mut sub = engine.subscribe(0, FeedFilter::all());

    send(&imc, "alice", "chat-manager", "#create standup").await;
    send(&imc, "bob", "chat-standup", "#join").await;
    assert_eq!(
        deliver(&mut roster, &mut sub),
        vec![(
            sip("alice"),
            "*** <bob@example.org> has joined the room".into()
        )]
    );

    send(&imc, "carol", "chat-standup", "#join").await;
    send(&imc, "alice", "chat-standup", "#remove bob").await;
    let got = deliver(&mut roster, &mut sub);
    assert!(got.contains(&(sip("bob"), "*** You have been removed from the room".into())));
    assert!(got.contains(&(
        sip("carol"),
        "*** <bob@example.org> has been removed from the room".into()
    )));
    assert!(!got
        .iter()
        .any(|(to, b)| *to == sip("alice") && b.contains("removed")));

    send(&imc, "alice", "chat-standup", "#destroy").await;
    assert_eq!(
        deliver(&mut roster, &mut sub),
        vec![(sip("carol"), "*** Room has been destroyed".into())]
    );
    assert!(roster.members(&room()).is_empty());
    assert_eq!(roster, Roster::from_state(&engine.read(|s| s.clone())));
}

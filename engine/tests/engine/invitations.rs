//! Invitations: issue to an identity or email, accept, deny, revoke, expire,
//! single use.

use crate::common::*;
use conclave_engine::*;

fn invite(r: &str, invitee: Address) -> Command {
    Command::Invite {
        room: room(r),
        invitee,
        ttl_secs: None,
        single_use: true,
    }
}

fn id_of(events: &[Event]) -> InvitationId {
    events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::InvitationIssued { invitation, .. } => Some(invitation.clone()),
            _ => None,
        })
        .expect("an invitation")
}

fn using(id: &InvitationId) -> Credentials {
    Credentials {
        invitation: Some(id.clone()),
        ..Credentials::default()
    }
}

#[test]
fn private_rooms_admit_the_invited_who_become_members() {
    let mut w = World::new();
    w.run(&user("alice"), create_private("p"));
    w.when(&user("bob"), invite("p", sip("carol")))
        .err("perm.not_moderator", &["api_action_denied"]);
    let ev = w
        .when(&user("alice"), invite("p", sip("bob")))
        .ok(&["send_invitation"]);
    assert!(matches!(
        &ev[0].kind,
        EventKind::InvitationIssued {
            expires_at: Some(_),
            single_use: true,
            ..
        }
    ));
    w.when(&user("carol"), join("p", "c"))
        .err("membership.not_invited", &["join_denied"]);
    // The invitation addressed to bob is found without presenting it.
    w.when(&user("bob"), join("p", "b1"))
        .ok(&["invalidate_invitation", "peer_role", "room_join"]);
    w.run(&user("bob"), leave("p", "b1"));
    // Bob is now a member and may come back.
    w.when(&user("bob"), join("p", "b2")).ok(&["room_join"]);
}

#[test]
fn email_invitations_are_single_use_bearer_tokens() {
    let mut w = World::new();
    w.run(&user("alice"), create_private("p"));
    let id = id_of(&w.run(
        &user("alice"),
        invite("p", Address::parse("mailto:guest@mail.example").unwrap()),
    ));
    let guest = Actor::Identity(Address::parse("web:guest").unwrap());
    w.when(&guest, join_with("p", "g", using(&id))).ok(&[
        "invalidate_invitation",
        "peer_role",
        "room_join",
    ]);
    w.when(&user("eve"), join_with("p", "e", using(&id)))
        .err("invitation.closed", &["join_denied"]);
    w.when(
        &user("eve"),
        join_with("p", "e", using(&InvitationId::parse("forged").unwrap())),
    )
    .err("invitation.not_found", &["join_denied"]);
}

#[test]
fn personal_invitations_cannot_be_borrowed() {
    let mut w = World::new();
    w.run(&user("alice"), create_private("p"));
    let id = id_of(&w.run(&user("alice"), invite("p", sip("bob"))));
    w.when(&user("eve"), join_with("p", "e", using(&id)))
        .err("perm.not_yours", &["join_denied"]);
}

#[test]
fn accept_and_deny_like_kamailio_imc() {
    let mut w = World::new();
    w.run(&user("alice"), create_private("chat-1"));
    let to_bob = id_of(&w.run(&user("alice"), invite("chat-1", sip("bob"))));
    let to_carol = id_of(&w.run(&user("alice"), invite("chat-1", sip("carol"))));
    let accept = |id: &InvitationId| Command::AcceptInvitation {
        room: room("chat-1"),
        invitation: id.clone(),
    };
    let deny = |id: &InvitationId| Command::DenyInvitation {
        room: room("chat-1"),
        invitation: id.clone(),
    };
    w.when(&user("carol"), accept(&to_bob))
        .err("perm.not_yours", &["api_action_denied"]);
    w.when(&user("bob"), accept(&to_bob)).ok(&[
        "invitation_response",
        "peer_role",
        "invalidate_invitation",
    ]);
    assert_eq!(w.role("chat-1", &who("bob")), Some(Role::Member));
    w.when(&user("carol"), deny(&to_carol))
        .ok(&["invitation_response"]);
    w.when(&user("carol"), accept(&to_carol))
        .err("invitation.closed", &[]);
    w.when(&user("carol"), join("chat-1", "c"))
        .err("membership.not_invited", &["join_denied"]);
}

#[test]
fn revoke_by_issuer_or_moderator() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("pub"));
    w.run(&user("bob"), join("pub", "b"));
    // A room whose owners let members invite.
    w.run(
        &user("alice"),
        Command::ConfigureRoom {
            room: room("pub"),
            changes: vec![RoomChange::Invite(InviteRight::Members)],
        },
    );
    let id = id_of(&w.run(&user("bob"), invite("pub", sip("carol"))));
    let revoke = Command::RevokeInvitation {
        room: room("pub"),
        invitation: id.clone(),
    };
    w.when(&user("mallory"), revoke.clone())
        .err("perm.not_moderator", &["api_action_denied"]);
    w.when(&user("bob"), revoke.clone())
        .ok(&["invalidate_invitation"]);
    w.when(&user("alice"), revoke).err("invitation.closed", &[]);
}

#[test]
fn invitations_expire() {
    let mut w = World::new();
    w.run(&user("alice"), create_private("p"));
    let id = id_of(&w.run(
        &user("alice"),
        Command::Invite {
            room: room("p"),
            invitee: sip("bob"),
            ttl_secs: Some(60),
            single_use: true,
        },
    ));
    w.advance(61);
    w.when(&user("bob"), join_with("p", "b", using(&id)))
        .err("invitation.expired", &["join_denied"]);
    let ev = w.tick();
    assert_eq!(types(&ev), ["invalidate_invitation"]);
    assert!(matches!(
        ev[0].kind,
        EventKind::InvitationInvalidated {
            reason: InvalidationReason::Expired,
            ..
        }
    ));
    w.when(&user("bob"), join_with("p", "b", using(&id)))
        .err("invitation.closed", &["join_denied"]);
}

#[test]
fn multi_use_invitations_stay_valid() {
    let mut w = World::new();
    w.run(&user("alice"), create_private("p"));
    let id = id_of(&w.run(
        &user("alice"),
        Command::Invite {
            room: room("p"),
            invitee: Address::parse("mailto:team@mail.example").unwrap(),
            ttl_secs: Some(0),
            single_use: false,
        },
    ));
    w.when(&user("a"), join_with("p", "a", using(&id)))
        .ok(&["peer_role", "room_join"]);
    w.when(&user("b"), join_with("p", "b", using(&id)))
        .ok(&["peer_role", "room_join"]);
}

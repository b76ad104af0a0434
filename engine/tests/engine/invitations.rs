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
        secret: None,
    }
}

const LINK_SECRET: &str = "Zm9yLXRlc3RzLW9ubHktMzItcmFuZG9tLWJ5dGVzISE";

/// An email invitation with its bearer secret, as the web gateway issues it.
fn invite_by_email(r: &str, to: &str, secret: &str, single_use: bool) -> Command {
    Command::Invite {
        room: room(r),
        invitee: Address::parse(to).unwrap(),
        ttl_secs: None,
        single_use,
        secret: Some(Secret::new(secret)),
    }
}

fn with_secret(secret: &str) -> Credentials {
    Credentials {
        invitation_secret: Some(Secret::new(secret)),
        ..Credentials::default()
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
fn email_invitations_are_single_use_bearer_secrets_kept_as_digests() {
    let mut w = World::new();
    w.run(&user("alice"), create_private("p"));
    // Given an email invitation issued with a bearer secret,
    let issued = w.run(
        &user("alice"),
        invite_by_email("p", "mailto:guest@mail.example", LINK_SECRET, true),
    );
    let id = id_of(&issued);
    // the event and the state keep its SHA-256 digest, never the secret,
    let digest = SecretDigest::of(&Secret::new(LINK_SECRET));
    assert!(matches!(
        &issued[0].kind,
        EventKind::InvitationIssued { secret_digest: Some(d), .. } if *d == digest
    ));
    let kept = w.state.rooms[&room("p")].invitations[&id].secret_digest;
    assert_eq!(kept, Some(digest));
    let stored = codec::encode(&issued[0]).unwrap();
    assert_eq!(stored.schema_version, 2);
    let needle = LINK_SECRET.as_bytes();
    assert!(!stored.payload.windows(needle.len()).any(|x| x == needle));
    assert!(!format!("{:?}", w.state).contains(LINK_SECRET));
    // and no JSON view shows either.
    let view = json::event_json(&issued[0]).to_string();
    assert!(view.contains("\"bearer\":true"), "{view}");
    assert!(
        !view.contains(LINK_SECRET) && !view.contains("secret_digest"),
        "{view}"
    );
    // The id alone (listed to moderators, journaled) is no bearer token,
    let guest = Actor::Identity(Address::parse("web:guest").unwrap());
    w.when(&guest, join_with("p", "g", using(&id)))
        .err("perm.not_yours", &["join_denied"]);
    // nor does it answer the invitation.
    w.when(
        &guest,
        Command::AcceptInvitation {
            room: room("p"),
            invitation: id.clone(),
        },
    )
    .err("perm.not_yours", &["api_action_denied"]);
    // A wrong secret finds nothing.
    w.when(
        &guest,
        join_with(
            "p",
            "g",
            with_secret("bm90LXRoZS1zZWNyZXQtYXQtYWxsLW5vLW5vLW5v"),
        ),
    )
    .err("invitation.not_found", &["join_denied"]);
    // When the secret is presented, its holder joins as a member, once.
    w.when(&guest, join_with("p", "g", with_secret(LINK_SECRET)))
        .ok(&["invalidate_invitation", "peer_role", "room_join"]);
    w.when(&user("eve"), join_with("p", "e", with_secret(LINK_SECRET)))
        .err("invitation.closed", &["join_denied"]);
}

#[test]
fn email_invitations_need_a_well_formed_secret_and_only_they_take_one() {
    let mut w = World::new();
    w.run(&user("alice"), create_private("p"));
    w.when(
        &user("alice"),
        invite("p", Address::parse("mailto:guest@mail.example").unwrap()),
    )
    .err("input.invalid", &[]);
    w.when(
        &user("alice"),
        invite_by_email("p", "mailto:guest@mail.example", "short", true),
    )
    .err("input.invalid", &[]);
    let mut personal = invite("p", sip("bob"));
    if let Command::Invite { secret, .. } = &mut personal {
        *secret = Some(Secret::new(LINK_SECRET));
    }
    w.when(&user("alice"), personal).err("input.invalid", &[]);
    // One secret, one invitation: a reused secret would make a link ambiguous.
    w.run(
        &user("alice"),
        invite_by_email("p", "mailto:a@mail.example", LINK_SECRET, true),
    );
    w.when(
        &user("alice"),
        invite_by_email("p", "mailto:b@mail.example", LINK_SECRET, true),
    )
    .err("input.invalid", &[]);
}

#[test]
fn email_invitations_from_before_secrets_keep_their_id_as_bearer() {
    // A journal written before bearer secrets holds `send_invitation` v1 records of
    // email invitations: upcast, they have no digest, and their id stays the token.
    let mut w = World::new();
    w.run(&user("alice"), create_private("p"));
    let env = codec::stored::v1::Envelope {
        at_secs: w.now.timestamp(),
        at_nanos: 0,
        actor: codec::stored::v1::Actor::Identity("sip:alice@example.org".into()),
    };
    let body = codec::stored::v1::InvitationIssued {
        room: "p".into(),
        invitation: "0123456789abcdef0123456789abcdef".into(),
        invitee: "mailto:old@mail.example".into(),
        expires_at: None,
        single_use: true,
    };
    let bytes = bincode::serde::encode_to_vec((env, body), bincode::config::standard()).unwrap();
    let legacy = codec::decode("send_invitation", 1, &bytes, None).unwrap();
    assert!(matches!(
        legacy.kind,
        EventKind::InvitationIssued {
            secret_digest: None,
            ..
        }
    ));
    evolve(&mut w.state, &legacy);
    w.journal.push(legacy.clone());
    let id = id_of(&[legacy]);
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
            secret: None,
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
            secret: Some(Secret::new(LINK_SECRET)),
        },
    ));
    assert!(w.state.rooms[&room("p")].invitations.contains_key(&id));
    w.when(&user("a"), join_with("p", "a", with_secret(LINK_SECRET)))
        .ok(&["peer_role", "room_join"]);
    w.when(&user("b"), join_with("p", "b", with_secret(LINK_SECRET)))
        .ok(&["peer_role", "room_join"]);
}

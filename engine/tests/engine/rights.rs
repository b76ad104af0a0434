//! Rights (issue 11): who may invite is a room setting; an invitation spares its holder
//! the access password and the lobby only if its issuer could have let them in; the
//! server password gates room creation too; guests creating rooms and guests at all are
//! server settings.

use crate::common::*;
use conclave_engine::*;

fn invite(r: &str, invitee: Address) -> Command {
    Command::invite(room(r), invitee)
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

fn configure(r: &str, change: RoomChange) -> Command {
    Command::ConfigureRoom {
        room: room(r),
        changes: vec![change],
    }
}

fn create_with_password(name: &str, pw: &str) -> Command {
    match create_room(name) {
        Command::CreateRoom {
            room,
            parent,
            private,
            owner,
            max_members,
            welcome_text,
            ..
        } => Command::CreateRoom {
            room,
            parent,
            private,
            owner,
            max_members,
            welcome_text,
            access_password_hash: Some(hash(pw)),
            server_password: None,
        },
        other => other,
    }
}

fn create_as_guest(name: &str, server_password: Option<&str>) -> Command {
    match create_room(name) {
        Command::CreateRoom {
            room,
            parent,
            private,
            owner,
            max_members,
            welcome_text,
            access_password_hash,
            ..
        } => Command::CreateRoom {
            room,
            parent,
            private,
            owner,
            max_members,
            welcome_text,
            access_password_hash,
            server_password: server_password.map(Secret::new),
        },
        other => other,
    }
}

fn create_for(name: &str, owner: Principal) -> Command {
    match create_room(name) {
        Command::CreateRoom {
            room,
            parent,
            private,
            max_members,
            welcome_text,
            access_password_hash,
            server_password,
            ..
        } => Command::CreateRoom {
            room,
            parent,
            private,
            owner: Some(owner),
            max_members,
            welcome_text,
            access_password_hash,
            server_password,
        },
        other => other,
    }
}

/// Carol has an account, and `sip:carol@example.org` is linked to it.
fn with_carols_account(w: &mut World) {
    w.run(
        &admin(),
        Command::CreateAccount {
            account: aid("carol"),
            display_name: None,
        },
    );
    w.run(
        &admin(),
        Command::LinkIdentity {
            account: aid("carol"),
            address: sip("carol"),
        },
    );
}

fn with_server_password(w: &mut World, pw: &str) {
    w.run(
        &admin(),
        Command::SetServerPassword {
            hash: Some(hash(pw)),
        },
    );
}

// ---- 1. who may invite ----

#[test]
fn plain_members_may_not_invite_by_default() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("pub"));
    assert_eq!(
        w.state.rooms[&room("pub")].config.invite,
        InviteRight::Moderators
    );
    w.run(&user("bob"), join("pub", "b"));
    // Bob is present with the member role, and may not invite a friend.
    w.when(&user("bob"), invite("pub", sip("carol")))
        .err("perm.not_moderator", &["api_action_denied"]);
    // A moderator may; the owner may; the operator may.
    w.run(&user("alice"), grant("pub", who("bob"), Role::Moderator));
    w.when(&user("bob"), invite("pub", sip("carol")))
        .ok(&["send_invitation"]);
    w.when(&user("alice"), invite("pub", sip("dan")))
        .ok(&["send_invitation"]);
    w.when(&admin(), invite("pub", sip("erin")))
        .ok(&["send_invitation"]);
}

#[test]
fn owners_choose_who_may_invite() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("r"));
    w.run(&user("bob"), join("r", "b"));
    w.run(&user("mod"), join("r", "m"));
    w.run(&user("alice"), grant("r", who("mod"), Role::Moderator));
    // Only owners configure it.
    w.when(
        &user("mod"),
        configure("r", RoomChange::Invite(InviteRight::Members)),
    )
    .err("perm.not_owner", &["api_action_denied"]);
    // Members.
    w.when(
        &user("alice"),
        configure("r", RoomChange::Invite(InviteRight::Members)),
    )
    .ok(&["room_modify"]);
    w.when(
        &user("alice"),
        configure("r", RoomChange::Invite(InviteRight::Members)),
    )
    .ok(&[]);
    w.when(&user("bob"), invite("r", sip("carol")))
        .ok(&["send_invitation"]);
    // A stranger (not present, no affiliation) still may not.
    w.when(&user("eve"), invite("r", sip("carol")))
        .err("perm.not_moderator", &["api_action_denied"]);
    // Owners only: a moderator may not.
    w.run(
        &user("alice"),
        configure("r", RoomChange::Invite(InviteRight::Owners)),
    );
    w.when(&user("mod"), invite("r", sip("carol")))
        .err("perm.not_owner", &["api_action_denied"]);
    w.when(&user("alice"), invite("r", sip("carol")))
        .ok(&["send_invitation"]);
    // The rule of rooms from before the setting is kept, never chosen.
    w.when(
        &user("alice"),
        configure("r", RoomChange::Invite(InviteRight::MembersUnlessPrivate)),
    )
    .err("input.invalid", &[]);
    w.assert_replays(Policy::default());
}

#[test]
fn rooms_from_before_the_setting_keep_their_rule() {
    // What a release-1 room_create decodes to (see the codec tests): members invite
    // while the room is public, moderators once it is private.
    let created = Event {
        at: t0(),
        actor: user("alice"),
        kind: EventKind::RoomCreated {
            room: room("old"),
            parent: None,
            owner: who("alice"),
            config: RoomConfig {
                invite: InviteRight::MembersUnlessPrivate,
                ..RoomConfig::default()
            },
        },
    };
    let mut w = given(vec![created]);
    w.run(&user("bob"), join("old", "b"));
    w.when(&user("bob"), invite("old", sip("carol")))
        .ok(&["send_invitation"]);
    w.run(&user("alice"), configure("old", RoomChange::Private(true)));
    w.when(&user("bob"), invite("old", sip("dan")))
        .err("perm.not_moderator", &["api_action_denied"]);
}

// ---- 2. an invitation spares the password and the lobby only from someone who
// could have let its holder in ----

#[test]
fn a_members_invitation_does_not_skip_the_password() {
    let mut w = World::new();
    w.run(&user("alice"), create_with_password("club", "door"));
    w.run(
        &user("alice"),
        configure("club", RoomChange::Invite(InviteRight::Members)),
    );
    w.run(&user("bob"), join_with("club", "b", with_password("door")));
    let from_bob = id_of(&w.run(&user("bob"), invite("club", sip("carol"))));
    // Presented or found, a member's invitation does not open the door.
    w.when(&user("carol"), join_with("club", "c", using(&from_bob)))
        .err("auth.password_required", &["join_denied"]);
    w.when(&user("carol"), join("club", "c"))
        .err("auth.password_required", &["join_denied"]);
    // With the password it is used like any invitation.
    w.when(
        &user("carol"),
        join_with(
            "club",
            "c",
            Credentials {
                password: Some(Secret::new("door")),
                invitation: Some(from_bob),
                ..Credentials::default()
            },
        ),
    )
    .ok(&["invalidate_invitation", "peer_role", "room_join"]);
    // The owner's invitation does.
    let from_alice = id_of(&w.run(&user("alice"), invite("club", sip("dan"))));
    w.when(&user("dan"), join_with("club", "d", using(&from_alice)))
        .ok(&["invalidate_invitation", "peer_role", "room_join"]);
    // So does a moderator's, and the operator's.
    w.run(&user("alice"), grant("club", who("bob"), Role::Moderator));
    w.run(&user("bob"), invite("club", sip("erin")));
    w.when(&user("erin"), join("club", "e")).ok(&[
        "invalidate_invitation",
        "peer_role",
        "room_join",
    ]);
    w.run(&admin(), invite("club", sip("fay")));
    w.when(&user("fay"), join("club", "f")).ok(&[
        "invalidate_invitation",
        "peer_role",
        "room_join",
    ]);
}

#[test]
fn a_members_invitation_does_not_skip_the_lobby() {
    let mut w = World::new();
    w.run(&user("chair"), create_room("l"));
    w.run(
        &user("chair"),
        configure("l", RoomChange::Invite(InviteRight::Members)),
    );
    w.run(&user("chair"), configure("l", RoomChange::Lobby(true)));
    // Bob is an affiliated member (no lobby for him), and invites Carol.
    w.run(&user("chair"), grant("l", who("bob"), Role::Member));
    w.run(&user("bob"), join("l", "b"));
    let from_bob = id_of(&w.run(&user("bob"), invite("l", sip("carol"))));
    w.when(&user("carol"), join_with("l", "c", using(&from_bob)))
        .err("room.lobby", &["join_denied"]);
    // The chair's invitation lets Dan straight in.
    let from_chair = id_of(&w.run(&user("chair"), invite("l", sip("dan"))));
    w.when(&user("dan"), join_with("l", "d", using(&from_chair)))
        .ok(&["invalidate_invitation", "peer_role", "room_join"]);
}

#[test]
fn an_invitation_is_worth_its_issuers_standing_when_used() {
    let mut w = World::new();
    w.run(&user("alice"), create_with_password("club", "door"));
    w.run(&user("alice"), grant("club", who("bob"), Role::Moderator));
    let from_bob = id_of(&w.run(&user("bob"), invite("club", sip("carol"))));
    let to_dan = id_of(&w.run(&user("bob"), invite("club", sip("dan"))));
    // Bob is demoted before Carol comes: his invitation no longer opens the door.
    w.run(&user("alice"), grant("club", who("bob"), Role::Member));
    w.when(&user("carol"), join_with("club", "c", using(&from_bob)))
        .err("auth.password_required", &["join_denied"]);
    // Promoted again: it does.
    w.run(&user("alice"), grant("club", who("bob"), Role::Moderator));
    w.when(&user("carol"), join_with("club", "c", using(&from_bob)))
        .ok(&["invalidate_invitation", "peer_role", "room_join"]);
    // Banned from the room, his standing is gone, and his invitations' with it.
    w.run(&user("alice"), ban_room("club", who("bob")));
    w.when(&user("dan"), join_with("club", "d", using(&to_dan)))
        .err("auth.password_required", &["join_denied"]);
}

#[test]
fn accepting_a_members_invitation_gives_no_standing() {
    let mut w = World::new();
    w.run(&user("alice"), create_with_password("club", "door"));
    w.run(
        &user("alice"),
        configure("club", RoomChange::Invite(InviteRight::Members)),
    );
    w.run(&user("alice"), grant("club", who("bob"), Role::Member));
    let from_bob = id_of(&w.run(&user("bob"), invite("club", sip("carol"))));
    let accept = |id: &InvitationId| Command::AcceptInvitation {
        room: room("club"),
        invitation: id.clone(),
    };
    // Kamailio's #accept would make Carol a member, and members need no password: not
    // from a member's invitation. It stays open, to be used on joining.
    w.when(&user("carol"), accept(&from_bob))
        .ok(&["invitation_response"]);
    assert_eq!(w.role("club", &who("carol")), None);
    w.when(&user("carol"), join("club", "c"))
        .err("auth.password_required", &["join_denied"]);
    w.when(
        &user("carol"),
        join_with("club", "c", with_password("door")),
    )
    .ok(&["invalidate_invitation", "peer_role", "room_join"]);
    // The owner's invitation, accepted, makes Dan a member as before.
    let from_alice = id_of(&w.run(&user("alice"), invite("club", sip("dan"))));
    w.when(&user("dan"), accept(&from_alice)).ok(&[
        "invitation_response",
        "peer_role",
        "invalidate_invitation",
    ]);
    w.when(&user("dan"), join("club", "d")).ok(&["room_join"]);
}

// ---- 3. the server password gates room creation ----

#[test]
fn the_server_password_gates_room_creation() {
    let mut w = World::new();
    with_server_password(&mut w, "srv");
    with_carols_account(&mut w);
    w.when(&user("bob"), create_as_guest("r1", None))
        .err("auth.password_required", &["join_denied"]);
    let r = w
        .when(&user("bob"), create_as_guest("r1", Some("nope")))
        .err("auth.wrong_password", &["join_denied"]);
    assert_eq!(r.rejection, Rejection::WrongPassword(PasswordKind::Server));
    assert!(!w.state.rooms.contains_key(&room("r1")));
    w.when(&user("bob"), create_as_guest("r1", Some("srv")))
        .ok(&["room_create"]);
    // Registered people skip it, as on joins; the operator never needs it.
    w.when(&user("carol"), create_room("r2"))
        .ok(&["room_create"]);
    w.when(&admin(), create_for("r3", who("dan")))
        .ok(&["room_create"]);
}

fn knock_with(r: &str, s: &str, server_password: Option<&str>) -> Command {
    Command::Knock {
        room: room(r),
        session: sid(s),
        server_password: server_password.map(Secret::new),
    }
}

#[test]
fn the_server_password_gates_the_lobby_too() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("hall"));
    w.run(&user("alice"), configure("hall", RoomChange::Lobby(true)));
    with_server_password(&mut w, "srv");
    with_carols_account(&mut w);
    w.when(&user("bob"), knock_with("hall", "b1", None))
        .err("auth.password_required", &["join_denied"]);
    w.when(&user("bob"), knock_with("hall", "b2", Some("nope")))
        .err("auth.wrong_password", &["join_denied"]);
    assert!(w.state.rooms[&room("hall")].lobby.is_empty());
    w.when(&user("bob"), knock_with("hall", "b3", Some("srv")))
        .ok(&["lobby_knock"]);
    // Registered people skip it, as on joins.
    w.when(&user("carol"), knock_with("hall", "c1", None))
        .ok(&["lobby_knock"]);
}

#[test]
fn guessing_the_server_password_by_creating_rooms_is_autobanned() {
    let mut w = World::new();
    with_server_password(&mut w, "srv");
    for i in 0..9 {
        w.when(
            &user("mallory"),
            create_as_guest(&format!("r{i}"), Some("guess")),
        )
        .err("auth.wrong_password", &["join_denied"]);
    }
    w.when(&user("mallory"), create_as_guest("r9", Some("guess")))
        .err("auth.wrong_password", &["join_denied", "autoban"]);
    w.when(&user("mallory"), create_as_guest("r10", Some("srv")))
        .err("membership.banned", &[]);
    w.assert_replays(Policy::default());
}

#[test]
fn new_guest_names_from_an_autobanned_address_guess_no_more() {
    let mut w = World::new();
    with_server_password(&mut w, "srv");
    w.remote = Some("192.0.2.7:5060".into());
    for i in 0..9 {
        w.when(
            &user(&format!("m{i}")),
            create_as_guest(&format!("r{i}"), Some("guess")),
        )
        .err("auth.wrong_password", &["join_denied"]);
    }
    // The tenth guess from the address bans the address (no name guessed ten times).
    w.when(&user("m9"), create_as_guest("r9", Some("guess")))
        .err("auth.wrong_password", &["join_denied", "autoban"]);
    w.when(&user("trudy"), create_as_guest("r10", Some("srv")))
        .err("membership.banned", &[]);
}

#[test]
fn the_precheck_asks_for_the_server_password_only_when_the_creation_would() {
    let mut w = World::new();
    let probe = |w: &mut World, actor: &Actor, cmd: &Command| {
        let ctx = w.ctx(actor);
        decide::create_checks_server_password(&w.state, &ctx, cmd)
    };
    // No server password: nothing to check.
    assert!(!probe(
        &mut w,
        &user("bob"),
        &create_as_guest("r", Some("x"))
    ));
    with_server_password(&mut w, "srv");
    with_carols_account(&mut w);
    w.run(&user("carol"), create_room("taken"));
    assert!(probe(
        &mut w,
        &user("bob"),
        &create_as_guest("r", Some("x"))
    ));
    // Without an attempt there is nothing to verify (refused as password_required).
    assert!(!probe(&mut w, &user("bob"), &create_as_guest("r", None)));
    // Refused before the password, or not asked for it at all.
    assert!(!probe(
        &mut w,
        &user("bob"),
        &create_as_guest("taken", Some("x"))
    ));
    assert!(!probe(
        &mut w,
        &user("carol"),
        &create_as_guest("r", Some("x"))
    ));
    assert!(!probe(&mut w, &admin(), &create_for("r", who("bob"))));
    assert!(!probe(&mut w, &user("bob"), &join("taken", "s")));
}

// ---- 4. whether guests may create rooms ----

#[test]
fn guests_may_create_rooms_unless_the_server_says_otherwise() {
    let mut open = World::new();
    open.when(&user("bob"), create_room("r"))
        .ok(&["room_create"]);

    let mut w = World::with_policy(Policy {
        guests_may_create: false,
        ..Policy::default()
    });
    with_carols_account(&mut w);
    w.when(&user("bob"), create_room("r"))
        .err("perm.guests_may_not_create", &["api_action_denied"]);
    w.when(
        &Actor::Identity(Address::parse("web:bob").unwrap()),
        create_room("r"),
    )
    .err("perm.guests_may_not_create", &["api_action_denied"]);
    w.when(&user("carol"), create_room("r"))
        .ok(&["room_create"]);
    w.when(&admin(), create_for("r2", who("bob")))
        .ok(&["room_create"]);
    // Guests still join.
    w.when(&user("bob"), join("r2", "b")).ok(&["room_join"]);
}

// ---- 5. accounts only ----

#[test]
fn accounts_only_admits_only_identities_linked_to_an_account() {
    let mut w = World::with_policy(Policy {
        accounts_only: true,
        ..Policy::default()
    });
    with_carols_account(&mut w);
    w.run(&admin(), create_for("r", acct("carol")));
    let r = w
        .when(&user("bob"), join("r", "b"))
        .err("auth.account_required", &["join_denied"]);
    assert!(matches!(
        r.record[0].kind,
        EventKind::JoinDenied {
            reason: DenyReason::AccountRequired,
            ..
        }
    ));
    // An invitation, even the operator's, does not make a guest an account.
    w.run(&admin(), invite("r", sip("bob")));
    w.when(&user("bob"), join("r", "b"))
        .err("auth.account_required", &["join_denied"]);
    // Nor may a guest create a room or wait in a lobby.
    w.when(&user("bob"), create_room("mine"))
        .err("auth.account_required", &["join_denied"]);
    w.run(&admin(), configure("r", RoomChange::Lobby(true)));
    w.when(
        &user("bob"),
        Command::Knock {
            room: room("r"),
            session: sid("b"),
            server_password: None,
        },
    )
    .err("auth.account_required", &["join_denied"]);
    // Carol, through her linked identity, does all of it.
    w.when(&user("carol"), join("r", "c")).ok(&["room_join"]);
    w.when(&user("carol"), create_room("hers"))
        .ok(&["room_create"]);
    // Not a guess: however often refused, no autoban.
    for s in 0..12 {
        w.when(&user("bob"), join("r", &format!("b{s}")))
            .err("auth.account_required", &["join_denied"]);
    }
    assert!(w.state.autobans.is_empty());
    // A disabled account is refused as before.
    w.run(
        &admin(),
        Command::DisableAccount {
            account: aid("carol"),
        },
    );
    w.when(&user("carol"), join("r", "c2"))
        .err("account.disabled", &["join_denied"]);
    w.assert_replays(Policy {
        accounts_only: true,
        ..Policy::default()
    });
}

#[test]
fn a_join_refused_for_want_of_an_account_costs_no_password_check() {
    let mut w = World::with_policy(Policy {
        accounts_only: true,
        ..Policy::default()
    });
    w.run(&admin(), create_for("r", who("alice")));
    let ctx = w.ctx(&user("bob"));
    assert!(refused_before_passwords_of(&w, &ctx, "r"));
}

fn refused_before_passwords_of(w: &World, ctx: &Context, r: &str) -> bool {
    decide::refused_before_passwords(&w.state, ctx, &room(r), &sid("s"))
}

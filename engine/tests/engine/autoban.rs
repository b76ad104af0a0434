//! Autoban (Mumble 10 attempts / 120 s / 300 s): by identity and by remote address;
//! the ban and its lifting are events.

use crate::common::*;
use conclave_engine::*;

fn guarded() -> World {
    let mut w = World::new();
    w.run(
        &user("alice"),
        Command::CreateRoom {
            room: room("vault"),
            parent: None,
            private: false,
            owner: None,
            max_members: None,
            welcome_text: None,
            access_password_hash: Some(hash("right")),
            server_password: None,
        },
    );
    w
}

fn guess(w: &mut World, who: &str, n: usize) {
    for i in 0..n {
        w.when(
            &user(who),
            join_with("vault", &format!("s{i}"), with_password("wrong")),
        )
        .err("auth.wrong_password", &["join_denied"]);
    }
}

#[test]
fn tenth_failure_in_the_window_bans_for_five_minutes() {
    let mut w = guarded();
    guess(&mut w, "bob", 9);
    let r = w
        .when(
            &user("bob"),
            join_with("vault", "s9", with_password("wrong")),
        )
        .err("auth.wrong_password", &["join_denied", "autoban"]);
    assert!(matches!(
        &r.record[1].kind,
        EventKind::AutobanApplied { key: AutobanKey::Identity(a), attempts: 10, until, ends_sessions: false }
            if *a == sip("bob") && *until == w.now + chrono::Duration::seconds(300)
    ));
    assert_eq!(r.record[1].stream(), StreamId::Server);
    // Even the right password is refused now, and that refusal does not count.
    w.when(
        &user("bob"),
        join_with("vault", "ok", with_password("right")),
    )
    .err("membership.banned", &["join_denied"]);
    w.advance(300);
    assert_eq!(types(&w.tick()), ["autoban_lift"]);
    w.when(
        &user("bob"),
        join_with("vault", "ok", with_password("right")),
    )
    .ok(&["room_join"]);
    w.assert_replays(Policy::default());
}

#[test]
fn failures_outside_the_window_do_not_add_up() {
    let mut w = guarded();
    guess(&mut w, "bob", 9);
    w.advance(121);
    guess(&mut w, "bob", 9);
    assert!(w.state.autobans.is_empty());
}

#[test]
fn by_remote_address_across_identities() {
    let mut w = guarded();
    w.remote = Some("198.51.100.9:40000".into());
    for i in 0..9 {
        w.when(
            &user(&format!("bot{i}")),
            join_with("vault", "x", with_password("wrong")),
        )
        .err("auth.wrong_password", &["join_denied"]);
    }
    w.when(
        &user("bot9"),
        join_with("vault", "x", with_password("wrong")),
    )
    .err("auth.wrong_password", &["join_denied", "autoban"]);
    // A fresh identity from the same host is refused.
    w.when(
        &user("fresh"),
        join_with("vault", "y", with_password("right")),
    )
    .err("membership.banned", &["join_denied"]);
    // Another host is fine.
    w.remote = Some("203.0.113.5".into());
    w.when(
        &user("fresh"),
        join_with("vault", "y", with_password("right")),
    )
    .ok(&["room_join"]);
}

#[test]
fn autoban_refuses_new_attempts_but_ends_no_live_session() {
    let mut w = guarded();
    w.run(&user("alice"), create_room("lounge"));
    w.run(&user("bob"), join("lounge", "l"));
    w.run(&user("dave"), join("lounge", "d"));
    guess(&mut w, "bob", 9);
    w.when(
        &user("bob"),
        join_with("vault", "s9", with_password("wrong")),
    )
    .err("auth.wrong_password", &["join_denied", "autoban"]);
    // Bob's session and Dave's (same address) stay; new attempts are refused.
    assert!(w.members("lounge").contains(&who("bob")));
    assert!(w.members("lounge").contains(&who("dave")));
    w.when(&user("bob"), join("lounge", "l2"))
        .err("membership.banned", &["join_denied"]);
}

#[test]
fn honest_failures_do_not_count() {
    let mut w = guarded();
    w.run(&user("alice"), create_room("lounge"));
    // A full room is not guessing.
    w.run(
        &user("alice"),
        Command::ConfigureRoom {
            room: room("lounge"),
            changes: vec![RoomChange::Locked(true)],
        },
    );
    for i in 0..12 {
        w.when(&user("carol"), join("lounge", &format!("c{i}")))
            .err("room.locked", &["join_denied"]);
    }
    assert!(!w
        .state
        .autobans
        .contains_key(&AutobanKey::Identity(sip("carol"))));
}

#[test]
fn autoban_can_be_disabled() {
    let policy = Policy {
        autoban: AutobanPolicy {
            attempts: 0,
            ..AutobanPolicy::default()
        },
        ..Policy::default()
    };
    let mut w = World::with_policy(policy);
    w.run(
        &user("alice"),
        Command::CreateRoom {
            room: room("vault"),
            parent: None,
            private: false,
            owner: None,
            max_members: None,
            welcome_text: None,
            access_password_hash: Some(hash("right")),
            server_password: None,
        },
    );
    guess(&mut w, "bob", 20);
    assert!(w.state.autobans.is_empty());
}

#[test]
fn asking_for_the_password_is_not_a_guess() {
    let mut w = guarded();
    for i in 0..12 {
        let r = w
            .when(&user("bob"), join("vault", &format!("p{i}")))
            .err("auth.password_required", &["join_denied"]);
        assert!(matches!(
            r.record[0].kind,
            EventKind::JoinDenied {
                reason: DenyReason::PasswordRequired,
                ..
            }
        ));
    }
    assert!(w.state.autobans.is_empty());
    w.when(
        &user("bob"),
        join_with("vault", "ok", with_password("right")),
    )
    .ok(&["room_join"]);
}

#[test]
fn an_expired_invitation_is_not_a_guess() {
    let mut w = guarded();
    w.run(
        &user("alice"),
        Command::ConfigureRoom {
            room: room("vault"),
            changes: vec![RoomChange::Private(true)],
        },
    );
    let issued = w.run(
        &user("alice"),
        Command::Invite {
            room: room("vault"),
            invitee: sip("bob"),
            ttl_secs: Some(60),
            single_use: true,
            secret: None,
        },
    );
    let inv = issued
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::InvitationIssued { invitation, .. } => Some(invitation.clone()),
            _ => None,
        })
        .expect("an invitation");
    w.advance(120);
    for i in 0..12 {
        let r = w
            .when(
                &user("bob"),
                join_with(
                    "vault",
                    &format!("e{i}"),
                    Credentials {
                        invitation: Some(inv.clone()),
                        ..Credentials::default()
                    },
                ),
            )
            .err("invitation.expired", &["join_denied"]);
        assert!(matches!(
            r.record[0].kind,
            EventKind::JoinDenied {
                reason: DenyReason::InvitationExpired,
                ..
            }
        ));
    }
    assert!(w.state.autobans.is_empty());
}

#[test]
fn an_operator_lifts_an_autoban_and_no_one_else_can() {
    let mut w = guarded();
    guess(&mut w, "bob", 9);
    w.when(
        &user("bob"),
        join_with("vault", "s9", with_password("wrong")),
    )
    .err("auth.wrong_password", &["join_denied", "autoban"]);
    let keys: Vec<AutobanKey> = w.state.autobans.keys().cloned().collect();
    assert_eq!(keys, [AutobanKey::Identity(sip("bob"))]);
    for key in keys {
        w.when(&user("alice"), Command::LiftAutoban { key: key.clone() })
            .err("perm.not_admin", &["api_action_denied"]);
        w.when(&Actor::Admin, Command::LiftAutoban { key: key.clone() })
            .ok(&["autoban_lift"]);
        // Lifting twice is a no-op.
        w.when(&Actor::Admin, Command::LiftAutoban { key }).ok(&[]);
    }
    w.when(
        &user("bob"),
        join_with("vault", "ok", with_password("right")),
    )
    .ok(&["room_join"]);
}

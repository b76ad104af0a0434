//! Membership: join, leave, sessions over several protocols, denials with reasons.

use crate::common::*;
use conclave_engine::*;

#[test]
fn join_and_leave_per_session_across_protocols() {
    let mut w = World::new();
    w.run(
        &admin(),
        Command::CreateAccount {
            account: aid("alice"),
            display_name: None,
        },
    );
    for a in [sip("alice"), xmpp("alice")] {
        w.run(
            &admin(),
            Command::LinkIdentity {
                account: aid("alice"),
                address: a,
            },
        );
    }
    w.run(&user("owner"), create_room("r"));
    w.when(&user("alice"), join("r", "sip-1"))
        .ok(&["room_join"]);
    w.when(&Actor::Identity(xmpp("alice")), join("r", "xmpp-1"))
        .ok(&["room_join"]);
    // One person, two sessions, counted once.
    assert_eq!(w.members("r"), vec![acct("alice")]);
    assert_eq!(w.state.online, 2);
    w.when(&user("bob"), join("r", "sip-1"))
        .err("membership.session_exists", &[]);
    w.when(&user("bob"), leave("r", "sip-1"))
        .err("perm.not_yours", &["api_action_denied"]);
    w.when(&user("alice"), leave("r", "sip-1"))
        .ok(&["room_leave"]);
    assert_eq!(w.members("r"), vec![acct("alice")]);
    // A gateway (service) reports a lost session.
    let ev = w
        .when(&Actor::Service("sip".into()), leave("r", "xmpp-1"))
        .ok(&["room_leave"]);
    assert!(matches!(
        ev[0].kind,
        EventKind::Left {
            reason: LeaveReason::Disconnected,
            ..
        }
    ));
    assert!(w.members("r").is_empty());
    w.when(&user("alice"), leave("r", "nope"))
        .err("membership.session_not_found", &[]);
    w.when(&user("alice"), join("nowhere", "s"))
        .err("room.not_found", &[]);
    w.when(&admin(), join("r", "s"))
        .err("auth.identity_required", &[]);
    w.assert_replays(Policy::default());
}

#[test]
fn room_full_is_member_off_limit_and_server_full() {
    let policy = Policy {
        max_users: 3,
        ..Policy::default()
    };
    let mut w = World::with_policy(policy.clone());
    w.run(
        &user("alice"),
        Command::CreateRoom {
            room: room("small"),
            parent: None,
            private: false,
            owner: None,
            max_members: Some(2),
            welcome_text: None,
            access_password_hash: None,
            server_password: None,
        },
    );
    w.run(&user("alice"), create_room("other"));
    w.run(&user("a"), join("small", "1"));
    w.run(&user("b"), join("small", "2"));
    let r = w
        .when(&user("c"), join("small", "3"))
        .err("room.full", &["member_off_limit"]);
    assert_eq!(r.rejection, Rejection::RoomFull { max: 2 });
    // A present person may add a session (still one member).
    w.when(&user("a"), join("small", "1b")).ok(&["room_join"]);
    w.when(&user("c"), join("other", "4"))
        .err("server.full", &["join_denied"]);
    w.assert_replays(policy);
}

#[test]
fn denial_reasons_are_journaled() {
    let mut w = World::new();
    w.run(&user("alice"), create_private("p"));
    let r = w
        .when(&user("bob"), join("p", "b"))
        .err("membership.not_invited", &["join_denied"]);
    assert!(matches!(
        r.record[0].kind,
        EventKind::JoinDenied {
            reason: DenyReason::NotInvited,
            ..
        }
    ));
    // No role: a room admitting affiliated people only.
    w.run(&user("alice"), create_room("members"));
    w.run(
        &user("alice"),
        Command::ConfigureRoom {
            room: room("members"),
            changes: vec![RoomChange::DefaultRole(None)],
        },
    );
    w.when(&user("bob"), join("members", "b"))
        .err("membership.no_role", &["no_role"]);
    w.run(&user("alice"), grant("members", who("bob"), Role::Member));
    w.when(&user("bob"), join("members", "b"))
        .ok(&["room_join"]);
}

#[test]
fn remote_addresses_are_obfuscated_in_events() {
    let mut w = World::new();
    w.remote = Some("192.0.2.7:5060".into());
    w.run(&user("alice"), create_room("r"));
    let ev = w.run(&user("bob"), join("r", "b"));
    let EventKind::Joined { remote, .. } = &ev[0].kind else {
        panic!("not a join")
    };
    let stored = remote.clone().unwrap();
    assert!(stored.starts_with("h:"), "{stored}");
    assert!(!stored.contains("192.0.2.7"));
}

#[test]
fn visitors_are_present_but_cannot_post() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("talk"));
    w.run(
        &user("alice"),
        Command::ConfigureRoom {
            room: room("talk"),
            changes: vec![RoomChange::DefaultRole(Some(Role::Visitor))],
        },
    );
    let ev = w.run(&user("bob"), join("talk", "b"));
    assert!(matches!(
        ev[0].kind,
        EventKind::Joined {
            role: Role::Visitor,
            ..
        }
    ));
    w.when(&user("bob"), post("talk", "hi"))
        .err("perm.visitor", &["api_action_denied"]);
}

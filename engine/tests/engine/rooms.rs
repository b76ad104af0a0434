//! Rooms: create (public/private, nested), configure, lock, reserve, destroy, expire.

use crate::common::*;
use conclave_engine::*;

#[test]
fn create_names_the_creator_owner() {
    let mut w = World::new();
    let events = w
        .when(&user("alice"), create_room("standup"))
        .ok(&["room_create"]);
    assert_eq!(events[0].stream(), StreamId::Room(room("standup")));
    assert_eq!(events[0].stream().to_string(), "room:standup");
    assert_eq!(w.role("standup", &who("alice")), Some(Role::Owner));
    w.when(&user("bob"), create_room("standup"))
        .err("room.exists", &[]);
    w.when(&user("bob"), create_room("bad/name"))
        .err("input.invalid", &[]);
}

#[test]
fn operators_create_rooms_for_someone() {
    let mut w = World::new();
    w.when(&admin(), create_room("r"))
        .err("room.owner_required", &[]);
    let cmd = Command::CreateRoom {
        room: room("r"),
        parent: None,
        private: true,
        owner: Some(who("carol")),
        max_members: Some(5),
        welcome_text: Some("<b>Hi</b> all".into()),
        access_password_hash: None,
        server_password: None,
    };
    w.when(&user("bob"), cmd.clone())
        .err("perm.not_admin", &["api_action_denied"]);
    w.when(&admin(), cmd).ok(&["room_create"]);
    let r = &w.state.rooms[&room("r")];
    assert!(r.config.private);
    assert_eq!(r.config.welcome_text.as_deref(), Some("Hi all"));
    assert_eq!(w.role("r", &who("carol")), Some(Role::Owner));
}

#[test]
fn nesting_limit_and_parent_rights() {
    let policy = Policy {
        nesting_limit: 2,
        ..Policy::default()
    };
    let mut w = World::with_policy(policy);
    w.run(&user("alice"), create_room("a"));
    w.when(&user("alice"), create_child("b", "a"))
        .ok(&["room_create"]);
    w.when(&user("alice"), create_child("c", "b"))
        .ok(&["room_create"]);
    w.when(&user("alice"), create_child("d", "c"))
        .err("room.nesting_limit", &[]);
    w.when(&user("alice"), create_child("x", "nope"))
        .err("room.parent_not_found", &[]);
    w.when(&user("bob"), create_child("y", "a"))
        .err("perm.not_moderator", &["api_action_denied"]);
    assert_eq!(w.state.rooms[&room("c")].depth, 2);
    assert_eq!(Policy::default().nesting_limit, 10);
}

#[test]
fn configure_is_for_owners_and_respects_the_cap() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("r"));
    w.run(&user("alice"), grant("r", who("bob"), Role::Moderator));
    let cfg = |changes| Command::ConfigureRoom {
        room: room("r"),
        changes,
    };
    w.when(&user("bob"), cfg(vec![RoomChange::Private(true)]))
        .err("perm.not_owner", &["api_action_denied"]);
    w.when(&user("alice"), cfg(vec![RoomChange::MaxMembers(Some(101))]))
        .err("room.max_members", &[]);
    w.when(
        &user("alice"),
        cfg(vec![
            RoomChange::Private(true),
            RoomChange::MaxMembers(Some(3)),
            RoomChange::Private(true),
        ]),
    )
    .ok(&["room_modify", "room_modify"]);
    w.when(&user("alice"), cfg(vec![RoomChange::Private(true)]))
        .ok(&[]);
    w.when(&user("missing"), Command::LockRoom { room: room("zz") })
        .err("room.not_found", &[]);
}

#[test]
fn lock_keeps_newcomers_out_but_not_moderators() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("r"));
    w.run(&user("alice"), grant("r", who("mod"), Role::Moderator));
    w.when(&user("bob"), Command::LockRoom { room: room("r") })
        .err("perm.not_moderator", &["api_action_denied"]);
    w.when(&user("mod"), Command::LockRoom { room: room("r") })
        .ok(&["room_modify"]);
    w.when(&user("bob"), join("r", "b"))
        .err("room.locked", &["join_denied"]);
    w.when(&user("alice"), join("r", "a")).ok(&["room_join"]);
    w.when(&user("mod"), Command::UnlockRoom { room: room("r") })
        .ok(&["room_modify"]);
    w.when(&user("bob"), join("r", "b")).ok(&["room_join"]);
}

#[test]
fn reserve_with_owner_password_except_common_names() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("test"));
    w.run(&user("alice"), create_room("board"));
    let reserve = |r: &str| Command::ReserveRoom {
        room: room(r),
        owner_password_hash: hash("secret"),
    };
    // VROOM common_names: created fine, never reserved.
    w.when(&user("alice"), reserve("test"))
        .err("room.common_name", &[]);
    w.when(&user("bob"), reserve("board"))
        .err("perm.not_owner", &["api_action_denied"]);
    w.when(&user("alice"), reserve("board"))
        .ok(&["room_reserve"]);
    w.when(&user("alice"), reserve("board")).ok(&[]);
    w.when(
        &user("alice"),
        Command::UnreserveRoom {
            room: room("board"),
        },
    )
    .ok(&["room_unreserve"]);
    w.when(
        &user("alice"),
        Command::UnreserveRoom {
            room: room("board"),
        },
    )
    .err("room.not_reserved", &[]);
}

#[test]
fn destroy_cascades_deepest_first() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("a"));
    w.run(&user("alice"), create_child("b", "a"));
    w.run(&user("alice"), create_child("c", "b"));
    w.run(&user("bob"), join("c", "s"));
    w.when(&user("bob"), Command::DestroyRoom { room: room("a") })
        .err("perm.not_owner", &["api_action_denied"]);
    let events = w
        .when(&user("alice"), Command::DestroyRoom { room: room("a") })
        .ok(&["room_delete", "room_delete", "room_delete"]);
    let names: Vec<_> = events.iter().map(|e| e.stream().to_string()).collect();
    assert_eq!(names, ["room:c", "room:b", "room:a"]);
    assert!(w.state.rooms.is_empty());
    assert_eq!(w.state.online, 0);
}

#[test]
fn inactivity_expiry_with_separate_reserved_timeout() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("quick"));
    w.run(&user("alice"), create_room("kept"));
    w.run(&user("alice"), create_room("busy"));
    w.run(
        &user("alice"),
        Command::ReserveRoom {
            room: room("kept"),
            owner_password_hash: hash("pw"),
        },
    );
    w.run(&user("bob"), join("busy", "b"));
    w.advance(59 * 60);
    assert!(w.tick().is_empty());
    w.advance(60);
    let expired = w.tick();
    assert_eq!(types(&expired), ["room_expire"]);
    assert_eq!(expired[0].stream().to_string(), "room:quick");
    assert_eq!(expired[0].actor, Actor::Service("clock".into()));
    // Reserved rooms: 86400 minutes by default.
    w.advance(86_400 * 60);
    let expired = w.tick();
    assert_eq!(types(&expired), ["room_expire"]);
    assert!(matches!(
        expired[0].kind,
        EventKind::RoomExpired { reserved: true, .. }
    ));
    assert!(w.state.rooms.contains_key(&room("busy")));
}

#[test]
fn owner_exit_destroys_like_kamailio_imc() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("chat-000"));
    w.run(
        &user("alice"),
        Command::ConfigureRoom {
            room: room("chat-000"),
            changes: vec![RoomChange::OwnerExitDestroys(true)],
        },
    );
    w.run(&user("alice"), join("chat-000", "a"));
    w.run(&user("bob"), join("chat-000", "b"));
    w.when(&user("bob"), leave("chat-000", "b"))
        .ok(&["room_leave"]);
    w.when(&user("alice"), leave("chat-000", "a"))
        .ok(&["room_leave", "room_delete"]);
    assert!(w.state.rooms.is_empty());
}

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

fn configure(r: &str, changes: Vec<RoomChange>) -> Command {
    Command::ConfigureRoom {
        room: room(r),
        changes,
    }
}

#[test]
fn the_xmpp_room_settings_default_off_and_are_configured_by_owners() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("r"));
    w.run(&user("alice"), grant("r", who("bob"), Role::Moderator));
    // given a new room: no title, no description, the XEP-0045 defaults
    let c = &w.state.rooms[&room("r")].config;
    assert_eq!((&c.name, &c.description), (&None, &None));
    assert!(!c.members_change_subject && !c.persistent && !c.public_addresses);
    // when a moderator tries to change them, then only owners may
    w.when(
        &user("bob"),
        configure("r", vec![RoomChange::Persistent(true)]),
    )
    .err("perm.not_owner", &["api_action_denied"]);
    // when the owner changes them, then one room_modify per change
    let all = vec![
        RoomChange::Name(Some("<i>Daily</i> stand-up".into())),
        RoomChange::Description(Some("Every morning.\nBring news.".into())),
        RoomChange::MembersChangeSubject(true),
        RoomChange::Persistent(true),
        RoomChange::PublicAddresses(true),
    ];
    let events = w.when(&user("alice"), configure("r", all.clone())).ok(&[
        "room_modify",
        "room_modify",
        "room_modify",
        "room_modify",
        "room_modify",
    ]);
    // the title is sanitized as the welcome text is, and journaled as kept
    assert!(matches!(
        &events[0].kind,
        EventKind::RoomModified { change: RoomChange::Name(Some(n)), .. } if n == "Daily stand-up"
    ));
    let c = &w.state.rooms[&room("r")].config;
    assert_eq!(c.name.as_deref(), Some("Daily stand-up"));
    assert_eq!(
        c.description.as_deref(),
        Some("Every morning.\nBring news.")
    );
    assert!(c.members_change_subject && c.persistent && c.public_addresses);
    // the same settings again change nothing (the title as sent sanitizes to the same)
    w.when(&user("alice"), configure("r", all)).ok(&[]);
    // a blank title or description clears it
    w.when(
        &user("alice"),
        configure(
            "r",
            vec![
                RoomChange::Name(Some("   ".into())),
                RoomChange::Description(None),
            ],
        ),
    )
    .ok(&["room_modify", "room_modify"]);
    let c = &w.state.rooms[&room("r")].config;
    assert_eq!((&c.name, &c.description), (&None, &None));
    w.assert_replays(Policy::default());
}

#[test]
fn a_room_title_is_one_bounded_line_and_a_description_bounded_text() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("r"));
    let name = |t: String| configure("r", vec![RoomChange::Name(Some(t))]);
    let description = |t: String| configure("r", vec![RoomChange::Description(Some(t))]);
    let max = model::MAX_ROOM_TITLE_LEN as usize;
    w.when(&user("alice"), name("t".repeat(max)))
        .ok(&["room_modify"]);
    w.when(&user("alice"), name("t".repeat(max + 1)))
        .err("input.invalid", &[]);
    w.when(&user("alice"), name("two\nlines".into()))
        .err("input.forbidden_char", &[]);
    w.when(&user("alice"), name("bell\u{7}".into()))
        .err("input.forbidden_char", &[]);
    let text_max = Policy::default().text_message_length as usize;
    w.when(&user("alice"), description("d".repeat(text_max)))
        .ok(&["room_modify"]);
    w.when(&user("alice"), description("d".repeat(text_max + 1)))
        .err("input.invalid", &[]);
    w.when(&user("alice"), description("esc\u{1b}".into()))
        .err("input.forbidden_char", &[]);
    // a refused change refuses the whole command: nothing before it was applied
    w.when(
        &user("alice"),
        configure(
            "r",
            vec![
                RoomChange::Persistent(true),
                RoomChange::Name(Some("x".repeat(max + 1))),
            ],
        ),
    )
    .err("input.invalid", &[]);
    assert!(!w.state.rooms[&room("r")].config.persistent);
}

#[test]
fn a_persistent_room_is_never_expired_for_inactivity() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("kept"));
    w.run(&user("alice"), create_room("quick"));
    // given "kept" is persistent
    w.run(
        &user("alice"),
        configure("kept", vec![RoomChange::Persistent(true)]),
    );
    // when both stay idle past every timeout
    w.advance(60 * 60);
    let expired = w.tick();
    // then only the other expires, and nothing is ever due for the persistent one
    assert_eq!(types(&expired), ["room_expire"]);
    assert_eq!(expired[0].stream().to_string(), "room:quick");
    w.advance(86_400 * 60 * 2);
    assert!(w.tick().is_empty());
    assert_eq!(next_deadline(&w.state, w.now), None);
    assert!(w.state.rooms.contains_key(&room("kept")));
    // when it stops being persistent, then it expires after the usual timeout from then
    w.run(
        &user("alice"),
        configure("kept", vec![RoomChange::Persistent(false)]),
    );
    w.advance(59 * 60);
    assert!(w.tick().is_empty());
    w.advance(60);
    let expired = w.tick();
    assert_eq!(types(&expired), ["room_expire"]);
    assert!(w.state.rooms.is_empty());
    w.assert_replays(Policy::default());
}

#[test]
fn real_addresses_are_for_moderators_unless_the_room_makes_them_public() {
    use conclave_engine::access::Viewer;
    let mut w = World::new();
    w.run(&user("alice"), create_room("r"));
    w.run(&user("alice"), grant("r", who("mod"), Role::Moderator));
    w.run(&user("mod"), join("r", "m"));
    w.run(&user("bob"), join("r", "b"));
    let (r, bob, moderator) = (room("r"), sip("bob"), sip("mod"));
    let (b, m) = (sid("b"), sid("m"));
    let participant = Viewer::Holder {
        room: &r,
        identity: &bob,
        session: Some(&b),
    };
    let chair = Viewer::Holder {
        room: &r,
        identity: &moderator,
        session: Some(&m),
    };
    let sees = |w: &World, v| w.state.sees_addresses(&r, v, w.now);
    // semi-anonymous by default: moderators and operators only
    assert!(!sees(&w, participant));
    assert!(sees(&w, chair));
    assert!(sees(&w, Viewer::Operator));
    assert!(!sees(&w, Viewer::Stranger));
    // non-anonymous: every participant, still no stranger
    w.run(
        &user("alice"),
        configure("r", vec![RoomChange::PublicAddresses(true)]),
    );
    assert!(sees(&w, participant));
    assert!(!sees(&w, Viewer::Stranger));
}

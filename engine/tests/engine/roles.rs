//! Roles and affiliations: grant, revoke, ranks, and the last owner.

use crate::common::*;
use conclave_engine::*;

fn room_with_roles() -> World {
    let mut w = World::new();
    w.run(&user("owner"), create_room("r"));
    w.run(&user("owner"), grant("r", who("mod"), Role::Moderator));
    w.run(&user("owner"), grant("r", who("mem"), Role::Member));
    w
}

#[test]
fn grants_name_the_actor_and_follow_ranks() {
    let mut w = room_with_roles();
    let ev = w
        .when(&user("mod"), grant("r", who("x"), Role::Moderator))
        .ok(&["peer_role"]);
    assert_eq!(ev[0].actor, user("mod"));
    assert!(matches!(
        &ev[0].kind,
        EventKind::RoleChanged { subject, from: None, to: Some(Role::Moderator), via: RoleVia::Grant, .. }
            if *subject == who("x")
    ));
    w.when(&user("mem"), grant("r", who("y"), Role::Member))
        .err("perm.not_moderator", &["api_action_denied"]);
    w.when(&user("mod"), grant("r", who("y"), Role::Owner))
        .err("perm.not_owner", &["api_action_denied"]);
    w.when(
        &user("mod"),
        Command::RevokeRole {
            room: room("r"),
            subject: who("owner"),
        },
    )
    .err("perm.outranked", &["api_action_denied"]);
    w.when(&user("mod"), grant("r", who("x"), Role::Moderator))
        .ok(&[]);
}

#[test]
fn the_last_owner_cannot_be_removed() {
    let mut w = room_with_roles();
    let revoke_owner = Command::RevokeRole {
        room: room("r"),
        subject: who("owner"),
    };
    w.when(&user("owner"), revoke_owner.clone())
        .err("role.last_owner", &[]);
    w.when(&user("owner"), grant("r", who("owner"), Role::Member))
        .err("role.last_owner", &[]);
    w.when(&user("owner"), ban_room("r", who("owner")))
        .err("role.last_owner", &[]);
    w.run(&user("owner"), grant("r", who("second"), Role::Owner));
    // With two owners, one may step down.
    w.when(&user("owner"), revoke_owner).ok(&["peer_role"]);
    assert_eq!(w.role("r", &who("owner")), None);
    assert_eq!(w.state.rooms[&room("r")].owner_count(), 1);
}

#[test]
fn people_may_step_down_themselves() {
    let mut w = room_with_roles();
    w.when(
        &user("mod"),
        Command::RevokeRole {
            room: room("r"),
            subject: who("mod"),
        },
    )
    .ok(&["peer_role"]);
}

#[test]
fn banned_people_get_no_moderation_rights() {
    let mut w = room_with_roles();
    w.run(&user("owner"), ban_room("r", who("mod")));
    // The ban stripped the moderator role...
    assert_eq!(w.role("r", &who("mod")), Some(Role::Member));
    // ...and it cannot be granted back while banned.
    w.when(&user("owner"), grant("r", who("mod"), Role::Moderator))
        .err("membership.banned", &[]);
    // Nor can the banned person moderate.
    w.when(&user("mod"), kick("r", who("mem")))
        .err("perm.not_moderator", &["api_action_denied"]);
}

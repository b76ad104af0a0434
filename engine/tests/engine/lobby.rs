//! Lobby: knock, admit, reject (Jitsi-style).

use crate::common::*;
use conclave_engine::*;

fn lobby_room() -> World {
    let mut w = World::new();
    w.run(&user("chair"), create_room("l"));
    w.run(
        &user("chair"),
        Command::ConfigureRoom {
            room: room("l"),
            changes: vec![RoomChange::Lobby(true)],
        },
    );
    w
}

fn knock(s: &str) -> Command {
    Command::Knock {
        room: room("l"),
        session: sid(s),
        server_password: None,
    }
}

#[test]
fn knock_then_admit_joins_the_waiting_session() {
    let mut w = lobby_room();
    w.when(&user("bob"), join("l", "b"))
        .err("room.lobby", &["join_denied"]);
    w.when(&user("bob"), knock("b")).ok(&["lobby_knock"]);
    w.when(&user("bob"), knock("b")).ok(&[]);
    let admit = Command::Admit {
        room: room("l"),
        subject: who("bob"),
    };
    w.when(&user("carol"), admit.clone())
        .err("perm.not_moderator", &["api_action_denied"]);
    let ev = w
        .when(&user("chair"), admit.clone())
        .ok(&["lobby_admit", "room_join"]);
    assert!(matches!(&ev[1].kind, EventKind::Joined { session, .. } if *session == sid("b")));
    assert!(w.members("l").contains(&who("bob")));
    w.when(&user("chair"), admit)
        .err("membership.not_knocking", &[]);
    // Owners skip the lobby.
    w.when(&user("chair"), join("l", "c")).ok(&["room_join"]);
}

#[test]
fn reject_knock_and_knock_rules() {
    let mut w = lobby_room();
    w.run(&user("carol"), knock("c"));
    w.when(
        &user("chair"),
        Command::RejectKnock {
            room: room("l"),
            subject: who("carol"),
        },
    )
    .ok(&["lobby_reject"]);
    assert!(w.state.rooms[&room("l")].lobby.is_empty());
    w.run(&user("chair"), ban_room("l", who("eve")));
    w.when(&user("eve"), knock("e"))
        .err("membership.banned", &["join_denied"]);
    w.run(&user("chair"), create_room("open"));
    w.when(
        &user("bob"),
        Command::Knock {
            room: room("open"),
            session: sid("x"),
            server_password: None,
        },
    )
    .err("room.lobby_disabled", &[]);
}

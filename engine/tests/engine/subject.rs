//! The room subject (XEP-0045 subject, a topic): who may set it, what it may hold, and
//! that setting what is already there changes nothing.

use crate::common::*;
use conclave_engine::*;

fn set_subject(r: &str, text: Option<&str>) -> Command {
    Command::SetSubject {
        room: room(r),
        subject: text.map(Into::into),
    }
}

fn configure(r: &str, change: RoomChange) -> Command {
    Command::ConfigureRoom {
        room: room(r),
        changes: vec![change],
    }
}

/// The subject's text as the state holds it.
fn subject(w: &World, r: &str) -> Option<String> {
    w.state.rooms[&room(r)]
        .subject
        .as_ref()
        .map(|s| s.text.clone())
}

/// A room `r` owned by alice (not present), with bob a moderator and carol a member,
/// both present.
fn meeting(r: &str) -> World {
    let mut w = World::new();
    w.run(&user("alice"), create_room(r));
    w.run(&user("alice"), grant(r, who("bob"), Role::Moderator));
    w.run(&user("bob"), join(r, "b"));
    w.run(&user("carol"), join(r, "c"));
    w
}

#[test]
fn a_present_moderator_sets_the_subject() {
    // given a room where bob is a present moderator
    let mut w = meeting("standup");
    w.advance(30);
    // when he sets the subject
    let events = w
        .when(
            &user("bob"),
            set_subject("standup", Some("Sprint 12 review")),
        )
        .ok(&["room_subject"]);
    // then the event names him, person and identity, in the room's stream
    assert_eq!(events[0].stream(), StreamId::Room(room("standup")));
    assert_eq!(
        events[0].kind,
        EventKind::SubjectChanged {
            room: room("standup"),
            subject: Some("Sprint 12 review".into()),
            by: Some(who("bob")),
            address: Some(sip("bob")),
        }
    );
    // and the room holds it, with who set it and when
    let s = w.state.rooms[&room("standup")].subject.clone().unwrap();
    assert_eq!(s.text, "Sprint 12 review");
    assert_eq!(s.by, Some(sip("bob")));
    assert_eq!(s.at, w.now);
    assert_eq!(w.state.rooms[&room("standup")].last_activity, w.now);
    w.assert_replays(Policy::default());
}

#[test]
fn members_may_not_unless_the_room_lets_them_and_visitors_never() {
    let mut w = meeting("standup");
    w.run(&user("alice"), grant("standup", who("dave"), Role::Visitor));
    w.run(&user("dave"), join("standup", "d"));
    // given the default: only moderators change the subject
    assert!(
        !w.state.rooms[&room("standup")]
            .config
            .members_change_subject
    );
    // when a member tries, then it is refused as a lack of rights, and journaled so
    w.when(&user("carol"), set_subject("standup", Some("mine")))
        .err("perm.subject_not_allowed", &["api_action_denied"]);
    // when the owner lets members change it
    w.when(
        &user("alice"),
        configure("standup", RoomChange::MembersChangeSubject(true)),
    )
    .ok(&["room_modify"]);
    // then the member may
    w.when(&user("carol"), set_subject("standup", Some("mine")))
        .ok(&["room_subject"]);
    // and a visitor still may not
    w.when(&user("dave"), set_subject("standup", Some("visitor's")))
        .err("perm.subject_not_allowed", &["api_action_denied"]);
    assert_eq!(subject(&w, "standup").as_deref(), Some("mine"));
    w.assert_replays(Policy::default());
}

#[test]
fn only_people_present_may_set_it_but_operators_need_not_be() {
    let mut w = meeting("standup");
    // given alice owns the room but is not in it, and eve is a stranger
    w.when(&user("alice"), set_subject("standup", Some("owner's")))
        .err("membership.not_member", &[]);
    w.when(&user("eve"), set_subject("standup", Some("stranger's")))
        .err("membership.not_member", &[]);
    // once alice joins, she may
    w.run(&user("alice"), join("standup", "a"));
    w.when(&user("alice"), set_subject("standup", Some("owner's")))
        .ok(&["room_subject"]);
    // an operator may without being present, and is named by no person
    let events = w
        .when(
            &admin(),
            set_subject("standup", Some("maintenance at 18:00")),
        )
        .ok(&["room_subject"]);
    assert!(matches!(
        &events[0].kind,
        EventKind::SubjectChanged {
            by: None,
            address: None,
            ..
        }
    ));
    assert_eq!(
        w.state.rooms[&room("standup")].subject.as_ref().unwrap().by,
        None
    );
    // and in a room that does not exist nobody may
    w.when(&admin(), set_subject("nowhere", Some("x")))
        .err("room.not_found", &[]);
}

#[test]
fn the_same_subject_again_changes_nothing_and_none_or_blank_clears() {
    let mut w = meeting("standup");
    w.run(&user("bob"), set_subject("standup", Some("Agenda")));
    // when the same subject is set again, then nothing is journaled
    w.when(&user("bob"), set_subject("standup", Some("Agenda")))
        .ok(&[]);
    // (HTML is stripped first, so it is the same subject once sanitized)
    w.when(&user("bob"), set_subject("standup", Some("<b>Agenda</b>")))
        .ok(&[]);
    // when it is cleared, then the event says so and the room has none
    let events = w
        .when(&user("bob"), set_subject("standup", None))
        .ok(&["room_subject"]);
    assert!(matches!(
        &events[0].kind,
        EventKind::SubjectChanged { subject: None, .. }
    ));
    assert_eq!(subject(&w, "standup"), None);
    // and clearing what is clear, with None, blanks or what sanitizing empties, is no-op
    w.when(&user("bob"), set_subject("standup", None)).ok(&[]);
    w.when(&user("bob"), set_subject("standup", Some("")))
        .ok(&[]);
    w.when(&user("bob"), set_subject("standup", Some(" \n\t ")))
        .ok(&[]);
    w.when(&user("bob"), set_subject("standup", Some("<i></i>")))
        .ok(&[]);
    // a blank subject clears one that is set
    w.run(&user("bob"), set_subject("standup", Some("Again")));
    w.when(&user("bob"), set_subject("standup", Some("  ")))
        .ok(&["room_subject"]);
    assert_eq!(subject(&w, "standup"), None);
    w.assert_replays(Policy::default());
}

#[test]
fn a_subject_is_sanitized_like_a_welcome_text() {
    let mut w = meeting("standup");
    w.when(
        &user("bob"),
        set_subject(
            "standup",
            Some("<b>Release</b> day\n\tagenda: <script>x()</script>1, 2"),
        ),
    )
    .ok(&["room_subject"]);
    assert_eq!(
        subject(&w, "standup").as_deref(),
        Some("Release day\n\tagenda: 1, 2")
    );
}

#[test]
fn a_subject_is_bounded() {
    let mut w = meeting("standup");
    // at most 1000 characters
    let max = "é".repeat(model::MAX_SUBJECT_LEN as usize);
    w.when(&user("bob"), set_subject("standup", Some(&max)))
        .ok(&["room_subject"]);
    let over = format!("{max}x");
    let r = w
        .when(&user("bob"), set_subject("standup", Some(&over)))
        .err("input.invalid", &[]);
    assert!(matches!(
        r.rejection,
        Rejection::InvalidInput {
            field: "subject",
            ..
        }
    ));
    // or the server's text limit, if it is smaller
    let mut w = given_with(
        Policy {
            text_message_length: 20,
            ..Policy::default()
        },
        vec![],
    );
    w.run(&user("alice"), create_room("r"));
    w.run(&user("alice"), join("r", "a"));
    w.when(&user("alice"), set_subject("r", Some(&"x".repeat(20))))
        .ok(&["room_subject"]);
    w.when(&user("alice"), set_subject("r", Some(&"y".repeat(21))))
        .err("input.invalid", &[]);
}

#[test]
fn a_subject_refuses_control_characters() {
    let mut w = meeting("standup");
    for bad in [
        "bell\u{7}",
        "esc\u{1b}[2J",
        "cr\r",
        "nel\u{85}",
        "\u{202e}reversed",
    ] {
        // when a subject holds a control or bidirectional override, then it is refused
        // at the boundary, naming the field, and nothing is journaled
        let r = w
            .when(&user("bob"), set_subject("standup", Some(bad)))
            .err("input.forbidden_char", &[]);
        assert!(matches!(
            r.rejection,
            Rejection::ForbiddenChar {
                field: "subject",
                ..
            }
        ));
    }
    assert_eq!(subject(&w, "standup"), None);
    // line feeds and tabs are text
    w.when(&user("bob"), set_subject("standup", Some("a\nb\tc")))
        .ok(&["room_subject"]);
}

#[test]
fn the_subject_goes_with_its_room() {
    let mut w = meeting("standup");
    w.run(&user("bob"), set_subject("standup", Some("old topic")));
    w.run(
        &user("alice"),
        Command::DestroyRoom {
            room: room("standup"),
        },
    );
    w.run(&user("alice"), create_room("standup"));
    assert_eq!(subject(&w, "standup"), None);
    w.assert_replays(Policy::default());
}

#[test]
fn evolve_ignores_a_subject_for_a_room_that_is_not_there() {
    // Replay accepts any sequence: a subject for a missing room changes nothing.
    let at = t0();
    let event = Event {
        at,
        actor: admin(),
        kind: EventKind::SubjectChanged {
            room: room("gone"),
            subject: Some("x".into()),
            by: None,
            address: None,
        },
    };
    let w = given(vec![event]);
    assert!(w.state.rooms.is_empty());
    assert_eq!(w.state, State::new(Policy::default()));
}

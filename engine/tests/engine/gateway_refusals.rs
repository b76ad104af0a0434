//! Refusals a gateway makes on its own (a SIP INVITE with no common codec, a REGISTER
//! interval too brief, a failed digest answer) are journaled through the engine's denial
//! path as `api_action_denied`, with the gateway's action and code.

use crate::common::*;
use conclave_engine::*;

fn refusal(room_name: Option<&str>, action: &str, code: &str) -> Command {
    Command::RecordGatewayRefusal {
        room: room_name.map(room),
        action: action.into(),
        code: code.into(),
    }
}

/// The one `api_action_denied` of a refusal: (room, action, subject, code).
fn denied(r: &Rejected) -> (Option<RoomName>, String, Option<Principal>, String) {
    match &r.record[..] {
        [e] => match &e.kind {
            EventKind::ActionDenied {
                room,
                action,
                subject,
                code,
            } => (room.clone(), action.clone(), subject.clone(), code.clone()),
            other => panic!("unexpected {other:?}"),
        },
        other => panic!("expected one event, got {other:?}"),
    }
}

#[test]
fn a_gateway_refusal_is_journaled_with_its_action_and_code() {
    // given a room
    let mut w = World::new();
    w.run(&user("alice"), create_room("standup"));
    // when the SIP gateway reports an INVITE it refused for want of a common codec
    let r = w
        .when(
            &user("bob"),
            refusal(Some("standup"), "sip_invite", "sdp.no_common_codec"),
        )
        .err("gateway.refused", &["api_action_denied"]);
    // then one api_action_denied in the room's stream says what and why, as bob
    assert_eq!(
        r.rejection,
        Rejection::GatewayRefused {
            action: "sip_invite".into(),
            code: "sdp.no_common_codec".into(),
        }
    );
    assert_eq!(
        denied(&r),
        (
            Some(room("standup")),
            "sip_invite".into(),
            None,
            "sdp.no_common_codec".into()
        )
    );
    assert_eq!(r.record[0].actor, user("bob"));
    assert_eq!(r.record[0].stream(), StreamId::Room(room("standup")));
    w.assert_replays(Policy::default());
}

#[test]
fn a_room_that_does_not_exist_is_not_journaled() {
    // given nothing
    let mut w = World::new();
    // when a refused INVITE named a room nobody holds, or none at all (a REGISTER)
    let r = w
        .when(
            &user("mallory"),
            refusal(Some("nowhere"), "sip_invite", "timer.too_small"),
        )
        .err("gateway.refused", &["api_action_denied"]);
    // then the record goes to the server stream without the name
    assert_eq!(denied(&r).0, None);
    assert_eq!(r.record[0].stream(), StreamId::Server);
    let r = w
        .when(
            &user("mallory"),
            refusal(None, "sip_register", "register.interval_too_brief"),
        )
        .err("gateway.refused", &["api_action_denied"]);
    assert_eq!(
        denied(&r),
        (
            None,
            "sip_register".into(),
            None,
            "register.interval_too_brief".into()
        )
    );
    // and no room came to be
    assert!(w.state.rooms.is_empty());
}

#[test]
fn any_actor_may_report_a_refusal() {
    let mut w = World::new();
    for actor in [admin(), Actor::Service("sip".into()), user("bob")] {
        w.when(
            &actor,
            refusal(None, "sip_register", "digest.wrong_response"),
        )
        .err("gateway.refused", &["api_action_denied"]);
    }
}

#[test]
fn codes_and_actions_are_short_lowercase_ascii() {
    let mut w = World::new();
    let long = "a".repeat(65);
    for (action, code) in [
        ("sip_invite", ""),
        ("", "sdp.no_common_codec"),
        ("sip_invite", "SDP.no_common_codec"),
        ("sip invite", "sdp.no_common_codec"),
        ("sip_invite", "sdp/no_common_codec"),
        ("sip_invite", "sdp.no-common-codec"),
        ("sip_invite", "sdp.ñ"),
        ("sip_invite", long.as_str()),
        (long.as_str(), "sdp.no_common_codec"),
    ] {
        // refused at the boundary, nothing journaled
        w.when(&user("bob"), refusal(None, action, code))
            .err("input.invalid", &[]);
    }
    // 64 characters are fine.
    let max = "a".repeat(64);
    w.when(&user("bob"), refusal(None, &max, &max))
        .err("gateway.refused", &["api_action_denied"]);
    assert_eq!(w.journal.len(), 1);
}

#[test]
fn a_room_name_follows_the_lookup_rule() {
    let mut w = World::new();
    let r = w
        .when(
            &user("bob"),
            Command::RecordGatewayRefusal {
                room: Some(RoomName::from_stored("x".repeat(257))),
                action: "sip_invite".into(),
                code: "sdp.no_common_codec".into(),
            },
        )
        .err("input.invalid", &[]);
    assert!(matches!(
        r.rejection,
        Rejection::InvalidInput { field: "room", .. }
    ));
    w.when(
        &user("bob"),
        Command::RecordGatewayRefusal {
            room: Some(RoomName::from_stored(String::new())),
            action: "sip_invite".into(),
            code: "sdp.no_common_codec".into(),
        },
    )
    .err("input.invalid", &[]);
}

#[test]
fn the_command_is_never_accepted_from_json() {
    // NATS and REST deserialize commands: only a gateway inside the process may state
    // what it refused.
    let json = r#"{"record_gateway_refusal": {"room": null, "action": "sip_invite", "code": "sdp.no_common_codec"}}"#;
    assert!(serde_json::from_str::<Command>(json).is_err());
    // It still serializes (logs, tools) under its name.
    let cmd = refusal(None, "sip_invite", "sdp.no_common_codec");
    assert_eq!(cmd.name(), "record_gateway_refusal");
    let v = serde_json::to_value(&cmd).unwrap();
    assert!(v.get("record_gateway_refusal").is_some(), "{v}");
}

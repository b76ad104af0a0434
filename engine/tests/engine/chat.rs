//! Chat: length limit, HTML stripping, bodies as personal content.

use crate::common::*;
use conclave_engine::codec::{decode, encode};
use conclave_engine::*;

fn chat_room(policy: Policy) -> World {
    let mut w = World::with_policy(policy);
    w.run(&user("alice"), create_room("c"));
    w.run(&user("alice"), join("c", "a"));
    w
}

fn body(events: &[Event]) -> Option<String> {
    match &events[0].kind {
        EventKind::MessagePosted { body, .. } => body.clone(),
        _ => None,
    }
}

#[test]
fn members_post_within_the_limit() {
    let mut w = chat_room(Policy::default());
    let ev = w
        .when(&user("alice"), post("c", "hello"))
        .ok(&["chat_message"]);
    assert_eq!(body(&ev).as_deref(), Some("hello"));
    w.when(&user("bob"), post("c", "hi"))
        .err("membership.not_member", &[]);
    w.when(&user("alice"), post("c", &"x".repeat(5000)))
        .ok(&["chat_message"]);
    let r = w
        .when(&user("alice"), post("c", &"é".repeat(5001)))
        .err("chat.too_long", &[]);
    assert_eq!(
        r.rejection,
        Rejection::MessageTooLong {
            len: 5001,
            max: 5000
        }
    );
    w.when(&user("alice"), post("c", "   "))
        .err("chat.empty", &[]);
    w.when(&user("alice"), post("c", "<img src=x>"))
        .err("chat.empty", &[]);
}

#[test]
fn html_is_stripped_unless_allowed() {
    let mut w = chat_room(Policy::default());
    let ev = w
        .when(
            &user("alice"),
            post("c", "<b>bold</b> <script>x()</script>move"),
        )
        .ok(&["chat_message"]);
    assert_eq!(body(&ev).as_deref(), Some("bold move"));
    assert!(matches!(
        ev[0].kind,
        EventKind::MessagePosted {
            html_stripped: true,
            ..
        }
    ));

    let mut w = chat_room(Policy {
        allow_html: true,
        ..Policy::default()
    });
    let ev = w
        .when(&user("alice"), post("c", "<b>bold</b>"))
        .ok(&["chat_message"]);
    assert_eq!(body(&ev).as_deref(), Some("<b>bold</b>"));
}

#[test]
fn bodies_are_personal_content_and_survive_purge() {
    let mut w = chat_room(Policy::default());
    let ev = w.run(&user("alice"), post("c", "secret plans"));
    let enc = encode(&ev[0]).unwrap();
    assert_eq!(enc.event_type, "chat_message");
    let content = enc
        .personal_content
        .clone()
        .expect("body goes to content store");
    let needle = b"secret plans";
    assert!(!enc.payload.windows(needle.len()).any(|w| w == needle));
    let back = decode(
        enc.event_type,
        enc.schema_version,
        &enc.payload,
        Some(&content),
    )
    .unwrap();
    assert_eq!(back, ev[0]);
    // Purged: the event still decodes, without its body.
    let purged = decode(enc.event_type, enc.schema_version, &enc.payload, None).unwrap();
    assert!(matches!(
        purged.kind,
        EventKind::MessagePosted { body: None, .. }
    ));
    // And replaying purged history still rebuilds the same state.
    let mut s = w.state.clone();
    evolve(&mut s, &purged);
}

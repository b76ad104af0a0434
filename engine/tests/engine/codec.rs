//! Codec: golden fixtures from released schema versions must keep decoding, and
//! current-version records must re-encode byte for byte.
//!
//! The fixture `tests/fixtures/golden_release_1.hex` holds one record per line:
//! `event_type schema_version payload_hex content_hex|-`. Regenerate it only when adding
//! *new* event types, with `CONCLAVE_REGEN_GOLDEN=1 cargo test -p conclave-engine golden`
//! — and then keep the old lines: they are what old journals contain.

use conclave_engine::codec::stored::v1;
use conclave_engine::codec::{current_version, decode, encode, CodecError, TYPES};
use conclave_engine::testing::{sample_events, SampleParams};
use conclave_engine::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/golden_release_1.hex"
);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A `peer_kick` record as release 1 wrote it (schema v1, no reason).
fn kick_v1() -> (Vec<u8>, Event) {
    let p = SampleParams::default();
    let env = v1::Envelope {
        at_secs: p.at.timestamp(),
        at_nanos: p.at.timestamp_subsec_nanos(),
        actor: v1::Actor::Identity("sip:mod@example.org".into()),
    };
    let body = v1::Kicked {
        room: "standup".into(),
        subject: v1::Principal::Address("sip:bob@example.org".into()),
    };
    let bytes = bincode::serde::encode_to_vec((env, body), bincode::config::standard()).unwrap();
    let expected = Event {
        at: p.at,
        actor: Actor::Identity(Address::parse("sip:mod@example.org").unwrap()),
        kind: EventKind::Kicked {
            room: RoomName::from_stored("standup".into()),
            subject: Principal::Address(Address::parse("sip:bob@example.org").unwrap()),
            reason: None,
        },
    };
    (bytes, expected)
}

/// The sample (of `SampleParams::default()`) of a type: what the release-1 line of that
/// type was encoded from.
fn sample_of(t: &str) -> Event {
    sample_events(&SampleParams::default())
        .into_iter()
        .find(|e| e.type_name() == t)
        .unwrap_or_else(|| panic!("no sample of {t}"))
}

/// `event` with the invite rule every release-1 room had.
fn with_legacy_invite(mut event: Event) -> Event {
    if let EventKind::RoomCreated { config, .. } = &mut event.kind {
        config.invite = InviteRight::MembersUnlessPrivate;
    }
    event
}

/// A `room_create` record as release 1 wrote it (schema v1, no invite setting), of a
/// private room that, like every room then, let members invite only while public.
fn room_create_v1() -> (Vec<u8>, Event) {
    let p = SampleParams::default();
    let env = v1::Envelope {
        at_secs: p.at.timestamp(),
        at_nanos: p.at.timestamp_subsec_nanos(),
        actor: v1::Actor::Identity("sip:alice@example.org".into()),
    };
    let body = v1::RoomCreated {
        room: "standup".into(),
        parent: None,
        owner: v1::Principal::Address("sip:alice@example.org".into()),
        config: v1::RoomConfig {
            private: true,
            locked: false,
            max_members: None,
            welcome_text: None,
            moderated_chat: false,
            lobby: true,
            default_role: Some(v1::Role::Member),
            owner_exit_destroys: false,
            access_password_hash: Some("fake$pw".into()),
        },
    };
    let bytes = bincode::serde::encode_to_vec((env, body), bincode::config::standard()).unwrap();
    let alice = Address::parse("sip:alice@example.org").unwrap();
    let expected = Event {
        at: p.at,
        actor: Actor::Identity(alice.clone()),
        kind: EventKind::RoomCreated {
            room: RoomName::from_stored("standup".into()),
            parent: None,
            owner: Principal::Address(alice),
            config: RoomConfig {
                private: true,
                lobby: true,
                access_password_hash: Some("fake$pw".into()),
                invite: InviteRight::MembersUnlessPrivate,
                ..RoomConfig::default()
            },
        },
    };
    (bytes, expected)
}

fn fixture_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for e in sample_events(&SampleParams::default()) {
        let enc = encode(&e).unwrap();
        let content = enc.personal_content.as_deref().map_or("-".to_owned(), hex);
        lines.push(format!(
            "{} {} {} {}",
            enc.event_type,
            enc.schema_version,
            hex(&enc.payload),
            content
        ));
        if enc.personal_content.is_some() {
            // The same record after retention purged its content.
            lines.push(format!(
                "{} {} {} -",
                enc.event_type,
                enc.schema_version,
                hex(&enc.payload)
            ));
        }
    }
    lines.push(format!("peer_kick 1 {} -", hex(&kick_v1().0)));
    lines.push(format!(
        "send_invitation 2 {} -",
        hex(&encode(&email_invitation()).unwrap().payload)
    ));
    lines
}

/// An email invitation with a bearer secret's digest (`send_invitation` v2).
fn email_invitation() -> Event {
    let mut e = sample_of("send_invitation");
    if let EventKind::InvitationIssued {
        invitee,
        secret_digest,
        ..
    } = &mut e.kind
    {
        *invitee = Address::parse("mailto:guest@example.org").unwrap();
        *secret_digest = Some(SecretDigest::of(&Secret::new("a-bearer-secret-of-test")));
    }
    e
}

#[test]
fn golden_fixture_keeps_decoding() {
    if std::env::var_os("CONCLAVE_REGEN_GOLDEN").is_some() {
        std::fs::write(FIXTURE, fixture_lines().join("\n") + "\n").unwrap();
    }
    let text = std::fs::read_to_string(FIXTURE).expect("golden fixture present");
    let mut types_seen = std::collections::BTreeSet::new();
    let mut upcasts_checked = std::collections::BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 4, "line {n}");
        let (t, v) = (parts[0], parts[1].parse::<u16>().unwrap());
        let payload = unhex(parts[2]);
        let content = (parts[3] != "-").then(|| unhex(parts[3]));
        let event = decode(t, v, &payload, content.as_deref())
            .unwrap_or_else(|e| panic!("line {n} ({t} v{v}): {e}"));
        types_seen.insert(t.to_owned());
        if Some(v) == current_version(t) {
            // Same version: the bytes must not have changed.
            let again = encode(&event).unwrap();
            assert_eq!(again.event_type, t, "line {n}");
            assert_eq!(
                hex(&again.payload),
                parts[2],
                "line {n}: {t} payload drifted"
            );
            if content.is_some() {
                assert_eq!(again.personal_content, content, "line {n}");
            }
        } else {
            match t {
                "peer_kick" => assert_eq!(event, kick_v1().1, "line {n}: upcast result"),
                "autoban" => assert!(
                    matches!(
                        event.kind,
                        EventKind::AutobanApplied {
                            ends_sessions: true,
                            ..
                        }
                    ),
                    "line {n}: a v1 autoban ended the sessions it matched"
                ),
                // Every room of release 1 keeps the invite rule it had (members unless
                // private), and nothing else of it changes.
                "room_create" => assert_eq!(
                    event,
                    with_legacy_invite(sample_of(t)),
                    "line {n}: a v1 room keeps its invite rule"
                ),
                // No invitation of release 1 had a bearer secret.
                "send_invitation" => assert_eq!(
                    event.kind,
                    sample_of(t).kind,
                    "line {n}: a v1 invitation has no secret digest"
                ),
                "room_modify" => assert!(
                    sample_events(&SampleParams::default()).contains(&event),
                    "line {n}: upcast result {event:?}"
                ),
                other => panic!("line {n}: no upcast expectation for {other} v{v}"),
            }
            upcasts_checked.insert(t.to_owned());
        }
    }
    for t in [
        "peer_kick",
        "autoban",
        "room_create",
        "room_modify",
        "send_invitation",
    ] {
        assert!(upcasts_checked.contains(t), "fixture must hold a v1 {t}");
    }
    for spec in TYPES {
        assert!(
            types_seen.contains(spec.name),
            "fixture lacks {}",
            spec.name
        );
    }
}

#[test]
fn unknown_types_and_versions_are_typed_errors() {
    assert_eq!(
        decode("room_teleport", 1, &[], None),
        Err(CodecError::UnknownType("room_teleport".into()))
    );
    assert_eq!(
        decode("room_join", 9, &[], None),
        Err(CodecError::UnknownVersion {
            event_type: "room_join".into(),
            version: 9
        })
    );
    assert_eq!(
        decode("room_join", 0, &[], None),
        Err(CodecError::UnknownVersion {
            event_type: "room_join".into(),
            version: 0
        })
    );
    assert!(matches!(
        decode("room_join", 1, &[1, 2, 3], None),
        Err(CodecError::Payload { .. })
    ));
    // Trailing bytes are refused: a record must be exactly one value.
    let e = &sample_events(&SampleParams::default())[0];
    let mut enc = encode(e).unwrap();
    enc.payload.push(0);
    assert!(matches!(
        decode(enc.event_type, enc.schema_version, &enc.payload, None),
        Err(CodecError::Payload { .. })
    ));
}

#[test]
fn upcaster_turns_kick_v1_into_v2() {
    let (bytes, expected) = kick_v1();
    assert_eq!(current_version("peer_kick"), Some(2));
    assert_eq!(decode("peer_kick", 1, &bytes, None).unwrap(), expected);
}

#[test]
fn upcaster_gives_release_1_rooms_their_invite_rule() {
    let (bytes, expected) = room_create_v1();
    assert_eq!(current_version("room_create"), Some(2));
    assert_eq!(current_version("room_modify"), Some(2));
    let event = decode("room_create", 1, &bytes, None).unwrap();
    assert_eq!(event, expected);
    // The rule follows the room's private flag, as `decide` did before the setting.
    let EventKind::RoomCreated { mut config, .. } = event.kind else {
        unreachable!()
    };
    assert_eq!(config.invite_role(), Role::Moderator);
    config.private = false;
    assert_eq!(config.invite_role(), Role::Member);
    // A v1 change keeps its meaning.
    let env = v1::Envelope {
        at_secs: 1,
        at_nanos: 0,
        actor: v1::Actor::Admin,
    };
    let change = v1::RoomModified {
        room: "standup".into(),
        change: v1::RoomChange::Private(false),
    };
    let bytes = bincode::serde::encode_to_vec((env, change), bincode::config::standard()).unwrap();
    assert!(matches!(
        decode("room_modify", 1, &bytes, None).unwrap().kind,
        EventKind::RoomModified {
            change: RoomChange::Private(false),
            ..
        }
    ));
}

#[test]
fn every_type_has_one_row_and_every_variant_a_row() {
    let mut names = std::collections::BTreeSet::new();
    for spec in TYPES {
        assert!(names.insert(spec.name), "{} has two rows", spec.name);
        assert!(spec.version >= 1, "{} has version 0", spec.name);
    }
    // The samples cover every variant (the golden fixture checks that every row is
    // reached); each one's domain name must have a row, or encode fails.
    for e in sample_events(&SampleParams::default()) {
        assert!(
            names.contains(e.type_name()),
            "no row for {}",
            e.type_name()
        );
    }
}

/// Every sample of `t` goes through the codec and comes back the same.
fn round_trips(event: &Event) -> codec::Encoded {
    let enc = encode(event).unwrap();
    let back = decode(
        enc.event_type,
        enc.schema_version,
        &enc.payload,
        enc.personal_content.as_deref(),
    )
    .unwrap();
    assert_eq!(&back, event);
    enc
}

#[test]
fn a_subject_change_round_trips_as_room_subject_v1_without_personal_content() {
    let address = Address::parse("xmpp:bob@example.org").unwrap();
    let at = SampleParams::default().at;
    for (actor, subject, by, addr) in [
        (
            Actor::Identity(address.clone()),
            Some("Sprint 12\n\treview".to_owned()),
            Some(Principal::Account(AccountId::from_stored("bob".into()))),
            Some(address.clone()),
        ),
        (Actor::Admin, None, None, None),
    ] {
        let event = Event {
            at,
            actor,
            kind: EventKind::SubjectChanged {
                room: RoomName::from_stored("standup".into()),
                subject,
                by,
                address: addr,
            },
        };
        let enc = round_trips(&event);
        assert_eq!((enc.event_type, enc.schema_version), ("room_subject", 1));
        // A room setting, kept in the payload: retention never empties it.
        assert_eq!(enc.personal_content, None);
    }
    assert_eq!(current_version("room_subject"), Some(1));
}

#[test]
fn the_new_room_changes_round_trip_in_room_modify_v2_after_the_old_ones() {
    let changes = [
        RoomChange::Name(Some("Daily stand-up".into())),
        RoomChange::Name(None),
        RoomChange::Description(Some("Every morning".into())),
        RoomChange::Description(None),
        RoomChange::MembersChangeSubject(true),
        RoomChange::Persistent(true),
        RoomChange::PublicAddresses(false),
    ];
    for change in changes {
        let event = Event {
            at: SampleParams::default().at,
            actor: Actor::Admin,
            kind: EventKind::RoomModified {
                room: RoomName::from_stored("standup".into()),
                change,
            },
        };
        let enc = round_trips(&event);
        assert_eq!((enc.event_type, enc.schema_version), ("room_modify", 2));
    }
    // Appended: the variants stored before them keep their index (`Invite` is 9), so
    // every room_modify already journaled reads as it did.
    let stored = |c: codec::stored::v2::RoomChange| {
        bincode::serde::encode_to_vec(c, bincode::config::standard()).unwrap()[0]
    };
    use codec::stored::v2::{InviteRight as I, RoomChange as C};
    assert_eq!(stored(C::Invite(I::Members)), 9);
    assert_eq!(stored(C::Name(None)), 10);
    assert_eq!(stored(C::PublicAddresses(true)), 14);
}

#[test]
fn room_create_refuses_settings_its_stored_form_cannot_hold() {
    // room_create v2 has no place for the later settings: rooms are created with their
    // defaults, and a configuration that departs from them is refused, never stored
    // without them.
    let mut event = sample_events(&SampleParams::default())
        .into_iter()
        .find(|e| e.type_name() == "room_create")
        .unwrap();
    round_trips(&event);
    let EventKind::RoomCreated { config, .. } = &mut event.kind else {
        unreachable!()
    };
    config.persistent = true;
    assert!(matches!(
        encode(&event),
        Err(CodecError::Encode {
            event_type: "room_create",
            ..
        })
    ));
}

//! Property tests: random command sequences keep the invariants; evolve never panics
//! on arbitrary event sequences; every event variant round-trips through the codec.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration};
use conclave_engine::codec::{decode, encode};
use conclave_engine::testing::{
    sample_events, variant_index, FakeVerifier, SampleParams, EVENT_KIND_COUNT,
};
use conclave_engine::*;
use proptest::prelude::*;

use crate::common::*;

const USERS: [&str; 5] = ["u0", "u1", "u2", "u3", "u4"];
const ROOMS: [&str; 3] = ["r0", "r1", "r2"];

fn small_policy() -> Policy {
    Policy {
        max_users: 6,
        max_members: 3,
        nesting_limit: 2,
        autoban: AutobanPolicy {
            attempts: 3,
            timeframe_secs: 120,
            duration_secs: 60,
        },
        inactivity_timeout_mins: 2,
        reserved_inactivity_timeout_mins: 5,
        common_names: vec!["r2".into()],
        ..Policy::default()
    }
}

/// u0 and u1 have accounts; u0 is also reachable over XMPP.
fn setup() -> World {
    let mut w = World::with_policy(small_policy());
    for (acc, ids) in [
        ("acc0", vec![sip("u0"), xmpp("u0")]),
        ("acc1", vec![sip("u1")]),
    ] {
        w.run(
            &admin(),
            Command::CreateAccount {
                account: aid(acc),
                display_name: None,
            },
        );
        for a in ids {
            w.run(
                &admin(),
                Command::LinkIdentity {
                    account: aid(acc),
                    address: a,
                },
            );
        }
    }
    w
}

type Step = (u8, u8, u8, u8, bool);

fn actor_for(a: u8) -> Actor {
    match a % 8 {
        7 => Actor::Admin,
        6 => Actor::Identity(xmpp("u0")),
        i => user(USERS[usize::from(i) % USERS.len()]),
    }
}

fn subject_for(c: u8) -> Principal {
    if c % 6 == 5 {
        acct("acc1")
    } else {
        who(USERS[usize::from(c) % USERS.len()])
    }
}

fn role_for(c: u8) -> Role {
    [Role::Visitor, Role::Member, Role::Moderator, Role::Owner][usize::from(c) % 4]
}

/// Map a random step onto a command (or a clock advance, returned as `None`).
fn command(w: &World, (kind, a, b, c, flag): Step) -> Option<(Actor, Command)> {
    let actor = actor_for(a);
    let r = room(ROOMS[usize::from(b) % ROOMS.len()]);
    let subject = subject_for(c);
    let session = sid(&format!("s{}", c % 4));
    let pw = |ok: bool| if ok { "pw" } else { "bad" };
    let cmd = match kind % 26 {
        0 | 1 => Command::CreateRoom {
            room: r,
            parent: flag.then(|| room(ROOMS[usize::from(c) % ROOMS.len()])),
            private: c.is_multiple_of(3),
            owner: actor.is_privileged().then(|| subject.clone()),
            max_members: (c.is_multiple_of(2)).then_some(u32::from(c % 4) + 1),
            welcome_text: None,
            access_password_hash: (c.is_multiple_of(5)).then(|| hash("pw")),
            server_password: None,
        },
        2..=4 => Command::Join {
            room: r,
            session,
            credentials: Credentials {
                password: Some(Secret::new(pw(flag))),
                owner_password: (c.is_multiple_of(7)).then(|| Secret::new(pw(flag))),
                ..Credentials::default()
            },
        },
        5 => Command::Leave { room: r, session },
        6 => Command::GrantRole {
            room: r,
            subject,
            role: role_for(c),
        },
        7 => Command::RevokeRole { room: r, subject },
        8 => Command::Kick {
            room: r,
            subject,
            reason: None,
        },
        9 => Command::Ban {
            scope: if flag {
                BanScope::Room(r)
            } else {
                BanScope::Server
            },
            subject,
            reason: None,
            until: (c.is_multiple_of(2)).then(|| w.now + Duration::seconds(30)),
        },
        10 => Command::Unban {
            scope: if flag {
                BanScope::Room(r)
            } else {
                BanScope::Server
            },
            subject,
        },
        11 => Command::Invite {
            room: r,
            invitee: sip(USERS[usize::from(c) % USERS.len()]),
            ttl_secs: Some(u32::from(c) * 10),
            single_use: flag,
            secret: None,
        },
        12 => {
            let id = w
                .state
                .rooms
                .get(&r)
                .and_then(|room| room.invitations.keys().nth(usize::from(c) % 3))
                .cloned()
                .unwrap_or_else(|| InvitationId::parse("none").unwrap());
            if flag {
                Command::AcceptInvitation {
                    room: r,
                    invitation: id,
                }
            } else {
                Command::RevokeInvitation {
                    room: r,
                    invitation: id,
                }
            }
        }
        13 => Command::DestroyRoom { room: r },
        14 => {
            if flag {
                Command::LockRoom { room: r }
            } else {
                Command::UnlockRoom { room: r }
            }
        }
        15 => Command::ConfigureRoom {
            room: r,
            changes: vec![
                RoomChange::MaxMembers(Some(u32::from(c % 4) + 1)),
                RoomChange::Lobby(flag),
                RoomChange::OwnerExitDestroys(c % 2 == 1),
                RoomChange::Persistent(c.is_multiple_of(3)),
            ],
        },
        16 => Command::MuteAudio { room: r, subject },
        17 => Command::Knock {
            room: r,
            session,
            server_password: None,
        },
        18 => Command::Admit { room: r, subject },
        19 if c % 4 == 3 => Command::SetSubject {
            room: r,
            subject: flag.then(|| format!("<i>topic</i> {}", c % 3)),
        },
        19 => Command::PostMessage {
            room: r,
            body: "<b>hi</b>".into(),
        },
        20 => {
            if flag {
                Command::DisableAccount {
                    account: aid("acc1"),
                }
            } else {
                Command::EnableAccount {
                    account: aid("acc1"),
                }
            }
        }
        21 => Command::ReserveRoom {
            room: r,
            owner_password_hash: hash("pw"),
        },
        22 => Command::SetRendezvous {
            account: aid("acc0"),
            room: flag.then_some(r),
        },
        23 => Command::CallAccount {
            account: aid("acc0"),
            session,
            credentials: Credentials::default(),
        },
        24 => Command::AddModerator {
            account: aid("acc0"),
            moderator: subject,
        },
        _ => return None,
    };
    Some((actor, cmd))
}

fn check_invariants(s: &State) -> Result<(), String> {
    let mut sessions = 0u64;
    for (name, r) in &s.rooms {
        if r.owner_count() == 0 {
            return Err(format!("{name} has no owner"));
        }
        if r.members.len() > r.max_members(&s.policy) as usize {
            return Err(format!("{name} over its member limit"));
        }
        if let Some(p) = &r.parent {
            if !s.rooms.get(p).is_some_and(|pr| pr.children.contains(name)) {
                return Err(format!("{name} has a dangling parent"));
            }
        }
        if r.depth > s.policy.nesting_limit {
            return Err(format!("{name} nested too deep"));
        }
        for (p, m) in &r.members {
            if m.sessions.is_empty() {
                return Err(format!("{name}: {p} present without sessions"));
            }
            if !s.bans_for(name, p).is_empty() {
                return Err(format!("{name}: banned {p} present"));
            }
            if s.account_of(p).is_some_and(|a| !a.enabled) {
                return Err(format!("{name}: disabled {p} present"));
            }
            // An autoban refuses new attempts only (as Mumble's): sessions that were
            // present before it may stay, so there is no autoban invariant here.
            sessions += m.sessions.len() as u64;
        }
    }
    if sessions != s.online {
        return Err(format!("online {} != sessions {sessions}", s.online));
    }
    if s.online > u64::from(s.policy.max_users) {
        return Err("over max_users".into());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_keep_invariants(steps in prop::collection::vec(any::<Step>(), 1..120)) {
        let mut w = setup();
        for step in steps {
            match command(&w, step) {
                Some((actor, cmd)) => {
                    let ctx = w.ctx(&actor);
                    let outcome = decide(&w.state, &cmd, &ctx, &FakeVerifier);
                    let events = match outcome {
                        Ok(events) => events,
                        Err(r) => {
                            // Refusals journal only denials and their consequences.
                            for e in &r.record {
                                prop_assert!(matches!(
                                    e.kind,
                                    EventKind::JoinDenied { .. }
                                        | EventKind::ActionDenied { .. }
                                        | EventKind::AutobanApplied { .. }
                                        | EventKind::AutobanLifted { .. }
                                        | EventKind::Unbanned { expired: true, .. }
                                ), "unexpected record {:?}", e.kind);
                            }
                            r.record
                        }
                    };
                    for e in &events {
                        evolve(&mut w.state, e);
                        w.journal.push(e.clone());
                    }
                }
                None => {
                    w.advance(i64::from(step.1 % 4) * 45);
                    w.tick();
                }
            }
            if let Err(msg) = check_invariants(&w.state) {
                prop_assert!(false, "{msg} after {:?}", command(&w, step));
            }
        }
        // Replay is evolve folded over the journal.
        let replayed = replay(State::new(small_policy()), &w.journal);
        prop_assert_eq!(&replayed, &w.state);
        // And the journal survives the codec.
        for e in &w.journal {
            let enc = encode(e).unwrap();
            let back = decode(enc.event_type, enc.schema_version, &enc.payload,
                enc.personal_content.as_deref()).unwrap();
            prop_assert_eq!(&back, e);
        }
    }

    #[test]
    fn evolve_never_panics(
        picks in prop::collection::vec((0usize..64, any::<u8>(), any::<bool>()), 0..200)
    ) {
        let mut state = State::new(small_policy());
        for (i, n, flag) in picks {
            let params = SampleParams {
                room: room(ROOMS[usize::from(n) % 3]),
                account: aid(["acc0", "acc1"][usize::from(n) % 2]),
                address: [sip("u0"), xmpp("u0"), sip("u1")][usize::from(n) % 3].clone(),
                n: u32::from(n % 5),
                flag,
                ..SampleParams::default()
            };
            let samples = sample_events(&params);
            let e = &samples[i % samples.len()];
            evolve(&mut state, e);
            let sessions: u64 = state.rooms.values().map(|r| r.session_count() as u64).sum();
            prop_assert_eq!(sessions, state.online);
        }
    }

    #[test]
    fn every_variant_round_trips(
        room_name in "[a-zA-Z0-9 #@|=-]{1,20}",
        account in "[a-z0-9._-]{1,20}",
        local in "[a-z][a-z0-9._-]{0,11}",
        scheme in 0usize..4,
        text in "\\PC{0,40}",
        n in any::<u32>(),
        flag in any::<bool>(),
        secs in 0i64..4_000_000_000,
        nanos in 0u32..1_000_000_000,
    ) {
        let address = match scheme {
            0 => format!("sip:{local}x@example.org"),
            1 => format!("xmpp:{local}x@example.org"),
            2 => format!("mailto:{local}x@mail.example"),
            _ => format!("web:{local}x"),
        };
        let params = SampleParams {
            at: DateTime::from_timestamp(secs, nanos).unwrap(),
            room: RoomName::from_stored(room_name),
            account: AccountId::from_stored(account),
            address: Address::parse(&address).unwrap(),
            text,
            n: n % 1_000_000,
            flag,
        };
        let samples = sample_events(&params);
        let covered: BTreeSet<usize> = samples.iter().map(|e| variant_index(&e.kind)).collect();
        prop_assert_eq!(covered.len(), EVENT_KIND_COUNT);
        for e in samples {
            let enc = encode(&e).unwrap();
            prop_assert_eq!(enc.event_type, e.type_name());
            let back = decode(enc.event_type, enc.schema_version, &enc.payload,
                enc.personal_content.as_deref()).unwrap();
            prop_assert_eq!(back, e);
        }
    }
}

#[test]
fn rejection_codes_are_all_listed() {
    let samples = [
        Rejection::NotModerator,
        Rejection::RoomFull { max: 1 },
        Rejection::Banned { until: None },
        Rejection::LastOwner,
        Rejection::MessageEmpty,
        Rejection::InvitationExpired,
        Rejection::IdentityRequired,
    ];
    for r in samples {
        assert!(Rejection::ALL_CODES.contains(&r.code()), "{}", r.code());
        assert!(!r.message().is_empty());
    }
}

/// A long deterministic walk through the same command space, checking that the random
/// tests above do reach the interesting paths (not only rejections).
#[test]
fn random_walk_reaches_every_feature() {
    let mut w = setup();
    let mut seen = BTreeSet::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        let step: Step = (b[0], b[1], b[2], b[3], b[4].is_multiple_of(2));
        let events = match command(&w, step) {
            Some((actor, cmd)) => {
                let ctx = w.ctx(&actor);
                match decide(&w.state, &cmd, &ctx, &FakeVerifier) {
                    Ok(e) => e,
                    Err(r) => {
                        seen.insert(r.rejection.code().to_owned());
                        r.record
                    }
                }
            }
            None => {
                w.advance(i64::from(step.1 % 4) * 45);
                tick(&w.state, w.now)
            }
        };
        for e in &events {
            seen.insert(e.type_name().to_owned());
            evolve(&mut w.state, e);
        }
        check_invariants(&w.state).unwrap();
    }
    for t in [
        "room_create",
        "room_join",
        "room_leave",
        "peer_role",
        "peer_kick",
        "ban",
        "unban",
        "send_invitation",
        "invitation_response",
        "invalidate_invitation",
        "room_delete",
        "room_expire",
        "room_modify",
        "room_reserve",
        "audio_mute",
        "lobby_knock",
        "lobby_admit",
        "chat_message",
        "room_subject",
        "autoban",
        "autoban_lift",
        "member_off_limit",
        "join_denied",
        "api_action_denied",
        "account_disable",
        "rendezvous_change",
        "moderator_add",
        "role.last_owner",
        "membership.banned",
        "room.full",
    ] {
        assert!(seen.contains(t), "walk never produced {t}; saw {seen:?}");
    }
}

/// The service checkpoints `State`; it must survive bincode (serde) intact.
#[test]
fn state_checkpoints_round_trip() {
    let mut w = setup();
    w.run(&user("u2"), create_room("r0"));
    w.run(&user("u0"), join("r0", "s0"));
    w.run(&user("u2"), ban_room("r0", who("u3")));
    let cfg = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(&w.state, cfg).unwrap();
    let (back, _): (State, usize) = bincode::serde::decode_from_slice(&bytes, cfg).unwrap();
    assert_eq!(back, w.state);
}

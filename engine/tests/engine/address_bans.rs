//! Address bans (Mumble's bans name an address as well as a user): a banned guest
//! cannot come back under a new name from the same place; others elsewhere can; the
//! people already in the room from that address keep their sessions; timed ones end on
//! the clock; only operators name addresses; with obfuscation on the ban is the hash.

use crate::common::*;
use conclave_engine::model::AddressTarget;
use conclave_engine::policy::stored_remote_addr;
use conclave_engine::*;

const HOME: &str = "192.0.2.10:5060";
const ELSEWHERE: &str = "198.51.100.7:5060";

fn ban_address(
    scope: BanScope,
    target: AddressTarget,
    until: Option<i64>,
    now: chrono::DateTime<chrono::Utc>,
) -> Command {
    Command::BanAddress {
        scope,
        target,
        reason: Some("flooding".into()),
        until: until.map(|s| now + chrono::Duration::seconds(s)),
    }
}

fn of_in(r: &str, p: Principal) -> Command {
    ban_address(BanScope::Room(room(r)), AddressTarget::Of(p), None, t0())
}

fn from(w: &mut World, remote: &str) {
    w.remote = Some(remote.to_owned());
}

/// The stored form of an address as the test world stores it (default policy:
/// obfuscated, with the context's key).
fn stored(raw: &str) -> String {
    stored_remote_addr(raw, true, &IpKey([0; 32]))
}

/// Alice's room, with bob (a guest) in it from HOME.
fn standup_with_bob() -> World {
    let mut w = World::new();
    w.run(&user("alice"), create_room("standup"));
    from(&mut w, HOME);
    w.run(&user("bob"), join("standup", "b1"));
    w
}

#[test]
fn a_guest_banned_by_address_cannot_come_back_under_a_new_name_from_there() {
    // given bob in alice's room, from HOME
    let mut w = standup_with_bob();
    // when alice (the owner) bans bob's address
    let events = w
        .when(&user("alice"), of_in("standup", who("bob")))
        .ok(&["address_ban"]);
    // then the ban holds the address as stored (a hash), made from bob, and bob is out
    assert!(matches!(
        &events[0].kind,
        EventKind::AddressBanned { remote, subject: Some(s), .. }
            if *remote == stored(HOME) && *s == who("bob")
    ));
    assert!(!w.members("standup").contains(&who("bob")));
    // bob comes back as "robert" from the same address: refused as banned, journaled
    let r = w
        .when(&user("robert"), join("standup", "r1"))
        .err("membership.banned", &["join_denied"]);
    assert!(matches!(
        &r.record[0].kind,
        EventKind::JoinDenied { reason: DenyReason::Banned, remote: Some(rm), .. } if *rm == stored(HOME)
    ));
    // knocking from there is refused too
    w.run(
        &user("alice"),
        Command::ConfigureRoom {
            room: room("standup"),
            changes: vec![RoomChange::Lobby(true)],
        },
    );
    w.when(
        &user("mallory"),
        Command::Knock {
            room: room("standup"),
            session: sid("k1"),
            server_password: None,
        },
    )
    .err("membership.banned", &["join_denied"]);
    w.run(
        &user("alice"),
        Command::ConfigureRoom {
            room: room("standup"),
            changes: vec![RoomChange::Lobby(false)],
        },
    );
    // from another address, anyone (bob included) is welcome
    from(&mut w, ELSEWHERE);
    w.when(&user("robert"), join("standup", "r2"))
        .ok(&["room_join"]);
    w.when(&user("bob"), join("standup", "b2"))
        .ok(&["room_join"]);
    w.assert_replays(Policy::default());
}

#[test]
fn others_at_the_address_keep_their_sessions_until_they_reconnect() {
    // given bob and carol in the room from the same address (a shared NAT)
    let mut w = standup_with_bob();
    w.run(&user("carol"), join("standup", "c1"));
    // when alice bans bob's address
    w.when(&user("alice"), of_in("standup", who("bob")))
        .ok(&["address_ban"]);
    // then bob is out, carol stays
    assert_eq!(w.members("standup"), vec![who("carol")]);
    // and carol's next session from there is refused (as in Mumble: on reconnect)
    w.when(&user("carol"), join("standup", "c2"))
        .err("membership.banned", &["join_denied"]);
    w.assert_replays(Policy::default());
}

#[test]
fn a_timed_address_ban_ends_at_its_deadline() {
    let mut w = standup_with_bob();
    let now = w.now;
    w.when(
        &user("alice"),
        ban_address(
            BanScope::Room(room("standup")),
            AddressTarget::Of(who("bob")),
            Some(60),
            now,
        ),
    )
    .ok(&["address_ban"]);
    // the deadline is the ban's end, on the virtual clock
    assert_eq!(
        next_deadline(&w.state, w.now),
        Some(now + chrono::Duration::seconds(60))
    );
    w.advance(59);
    assert!(w.tick().is_empty());
    w.when(&user("robert"), join("standup", "r1"))
        .err("membership.banned", &["join_denied"]);
    w.advance(1);
    let lifted = w.tick();
    assert_eq!(types(&lifted), ["address_unban"]);
    assert!(matches!(
        &lifted[0].kind,
        EventKind::AddressUnbanned { expired: true, .. }
    ));
    w.when(&user("robert"), join("standup", "r2"))
        .ok(&["room_join"]);
    w.assert_replays(Policy::default());
}

#[test]
fn an_expired_address_ban_found_by_a_join_is_lifted_on_the_way() {
    let mut w = standup_with_bob();
    let now = w.now;
    w.run(
        &user("alice"),
        ban_address(
            BanScope::Room(room("standup")),
            AddressTarget::Of(who("bob")),
            Some(10),
            now,
        ),
    );
    w.advance(20);
    // no tick yet: the join lifts it and gets in
    w.when(&user("bob"), join("standup", "b2"))
        .ok(&["address_unban", "room_join"]);
}

#[test]
fn moderators_ban_only_the_address_of_someone_present_never_an_ip() {
    let mut w = standup_with_bob();
    w.run(
        &user("alice"),
        grant("standup", who("dave"), Role::Moderator),
    );
    // a moderator naming an IP address: refused for lack of rights, and journaled
    w.when(
        &user("dave"),
        ban_address(
            BanScope::Room(room("standup")),
            AddressTarget::Ip("192.0.2.10".into()),
            None,
            t0(),
        ),
    )
    .err("perm.not_admin", &["api_action_denied"]);
    // someone not present: no address is known
    w.when(&user("dave"), of_in("standup", who("erin")))
        .err("ban.no_known_address", &[]);
    // a member cannot ban addresses at all
    w.when(&user("bob"), of_in("standup", who("dave")))
        .err("perm.not_moderator", &["api_action_denied"]);
    // nor can a moderator ban one who outranks them
    w.run(&user("alice"), join("standup", "a1"));
    w.when(&user("dave"), of_in("standup", who("alice")))
        .err("perm.outranked", &["api_action_denied"]);
    // the server scope is for operators
    w.when(
        &user("dave"),
        ban_address(BanScope::Server, AddressTarget::Of(who("bob")), None, t0()),
    )
    .err("perm.not_admin", &["api_action_denied"]);
    // but the address of bob, present, is theirs to ban
    w.when(&user("dave"), of_in("standup", who("bob")))
        .ok(&["address_ban"]);
}

#[test]
fn with_obfuscation_on_an_operators_ip_ban_is_the_hash_and_matches_it() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("standup"));
    assert!(w.state.policy.obfuscate_ips);
    // when an operator bans an IP address server-wide
    let events = w
        .when(
            &admin(),
            ban_address(
                BanScope::Server,
                AddressTarget::Ip("192.0.2.10".into()),
                None,
                t0(),
            ),
        )
        .ok(&["address_ban"]);
    // then it is kept as the keyed hash joins from it store, never in plain
    let EventKind::AddressBanned { remote, id, .. } = &events[0].kind else {
        unreachable!()
    };
    assert!(remote.starts_with("h:"), "{remote}");
    assert_eq!(*remote, stored(HOME));
    assert!(!format!("{events:?}").contains("192.0.2.10"));
    let id = id.clone();
    // and a join from that address (any port) is refused, as is creating a room there
    from(&mut w, "192.0.2.10:40000");
    w.when(&user("zed"), join("standup", "z1"))
        .err("membership.banned", &["join_denied"]);
    w.when(&user("zed"), create_room("elsewhere"))
        .err("membership.banned", &["join_denied"]);
    // a network cannot be banned while addresses are obfuscated
    w.when(
        &admin(),
        ban_address(
            BanScope::Server,
            AddressTarget::Ip("192.0.2.0/24".into()),
            None,
            t0(),
        ),
    )
    .err("ban.network_while_obfuscated", &[]);
    // a moderator cannot lift a server ban; the operator lifts it by its id
    w.when(
        &user("alice"),
        Command::UnbanAddress {
            scope: BanScope::Server,
            address: id.clone(),
        },
    )
    .err("perm.not_admin", &["api_action_denied"]);
    w.when(
        &admin(),
        Command::UnbanAddress {
            scope: BanScope::Server,
            address: id,
        },
    )
    .ok(&["address_unban"]);
    w.when(&user("zed"), join("standup", "z2"))
        .ok(&["room_join"]);
    w.assert_replays(Policy::default());
}

#[test]
fn with_obfuscation_off_an_operator_may_ban_a_network() {
    let policy = Policy {
        obfuscate_ips: false,
        ..Policy::default()
    };
    let mut w = World::with_policy(policy.clone());
    w.run(&user("alice"), create_room("standup"));
    w.when(
        &admin(),
        ban_address(
            BanScope::Room(room("standup")),
            AddressTarget::Ip("192.0.2.77/24".into()),
            None,
            t0(),
        ),
    )
    .ok(&["address_ban"]);
    assert!(w.state.rooms[&room("standup")]
        .address_bans
        .contains_key("192.0.2.0/24"));
    from(&mut w, "192.0.2.200:1234");
    w.when(&user("zed"), join("standup", "z1"))
        .err("membership.banned", &["join_denied"]);
    from(&mut w, ELSEWHERE);
    w.when(&user("zed"), join("standup", "z2"))
        .ok(&["room_join"]);
    // the operator lifts it by the network as given
    w.when(
        &admin(),
        Command::UnbanAddress {
            scope: BanScope::Room(room("standup")),
            address: "192.0.2.1/24".into(),
        },
    )
    .ok(&["address_unban"]);
    w.assert_replays(policy);
}

#[test]
fn a_moderator_lifts_a_room_address_ban_by_its_listed_id() {
    let mut w = standup_with_bob();
    let events = w.run(&user("alice"), of_in("standup", who("bob")));
    let EventKind::AddressBanned { id, .. } = &events[0].kind else {
        unreachable!()
    };
    w.run(
        &user("alice"),
        grant("standup", who("dave"), Role::Moderator),
    );
    // a plain IP is not theirs to name, even to lift
    w.when(
        &user("dave"),
        Command::UnbanAddress {
            scope: BanScope::Room(room("standup")),
            address: "192.0.2.10".into(),
        },
    )
    .err("ban.not_found", &[]);
    w.when(
        &user("dave"),
        Command::UnbanAddress {
            scope: BanScope::Room(room("standup")),
            address: id.clone(),
        },
    )
    .ok(&["address_unban"]);
    w.when(&user("bob"), join("standup", "b2"))
        .ok(&["room_join"]);
}

#[test]
fn a_server_address_ban_made_from_a_person_ends_their_sessions_everywhere() {
    let mut w = standup_with_bob();
    w.run(&user("alice"), create_room("retro"));
    w.run(&user("bob"), join("retro", "b2"));
    w.run(&user("carol"), join("retro", "c1"));
    w.when(
        &admin(),
        ban_address(BanScope::Server, AddressTarget::Of(who("bob")), None, t0()),
    )
    .ok(&["address_ban"]);
    assert!(w.members("standup").is_empty());
    assert_eq!(w.members("retro"), vec![who("carol")]);
    assert_eq!(w.state.online, 1);
    w.assert_replays(Policy::default());
}

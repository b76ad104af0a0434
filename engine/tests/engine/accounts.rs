//! Accounts: create, link identities, display names, enable/disable, allow-lists,
//! per-account moderators, rendezvous.

use crate::common::*;
use conclave_engine::*;

fn with_alice_account() -> World {
    let mut w = World::new();
    w.run(
        &admin(),
        Command::CreateAccount {
            account: aid("alice"),
            display_name: Some("Alice".into()),
        },
    );
    w.run(
        &admin(),
        Command::LinkIdentity {
            account: aid("alice"),
            address: sip("alice"),
        },
    );
    w.run(
        &admin(),
        Command::LinkIdentity {
            account: aid("alice"),
            address: xmpp("alice"),
        },
    );
    w
}

#[test]
fn create_account_is_operator_only_and_unique() {
    let mut w = World::new();
    let create = Command::CreateAccount {
        account: aid("alice"),
        display_name: None,
    };
    w.when(&user("bob"), create.clone())
        .err("perm.not_admin", &["api_action_denied"]);
    w.when(&admin(), create.clone()).ok(&["account_create"]);
    w.when(&admin(), create).err("account.exists", &[]);
    assert!(w.state.accounts[&aid("alice")].enabled);
}

#[test]
fn given_events_then_link_conflicts() {
    // given(events): the past as journaled facts.
    let fact = |kind| Event {
        at: t0(),
        actor: admin(),
        kind,
    };
    let mut w = given(vec![
        fact(EventKind::AccountCreated {
            account: aid("alice"),
            display_name: None,
        }),
        fact(EventKind::AccountCreated {
            account: aid("bob"),
            display_name: None,
        }),
        fact(EventKind::IdentityLinked {
            account: aid("alice"),
            address: sip("alice"),
        }),
        fact(EventKind::IdentityLinked {
            account: aid("alice"),
            address: xmpp("alice"),
        }),
    ]);
    w.when(
        &admin(),
        Command::LinkIdentity {
            account: aid("bob"),
            address: sip("alice"),
        },
    )
    .err("identity.already_linked", &[]);
    // Linking again to the same account is a harmless no-op.
    w.when(
        &admin(),
        Command::LinkIdentity {
            account: aid("alice"),
            address: sip("alice"),
        },
    )
    .ok(&[]);
    w.when(
        &admin(),
        Command::UnlinkIdentity {
            account: aid("bob"),
            address: sip("alice"),
        },
    )
    .err("identity.not_linked", &[]);
    w.when(
        &admin(),
        Command::UnlinkIdentity {
            account: aid("alice"),
            address: xmpp("alice"),
        },
    )
    .ok(&["identity_unlink"]);
}

#[test]
fn display_name_by_holder_spaces_allowed() {
    let mut w = with_alice_account();
    let set = |n: &str| Command::SetDisplayName {
        account: aid("alice"),
        display_name: Some(n.into()),
    };
    // Any of the account's identities may act for it, on any protocol.
    w.when(&Actor::Identity(xmpp("alice")), set("Alice.L"))
        .ok(&["display_name_change"]);
    // A display name is not a user name: spaces are fine (Jami), padding is not.
    w.when(&user("alice"), set("Alice L"))
        .ok(&["display_name_change"]);
    w.when(&user("alice"), set(" Alice"))
        .err("input.invalid", &[]);
    w.when(&user("mallory"), set("evil"))
        .err("perm.not_owner", &["api_action_denied"]);
    assert_eq!(
        w.state.accounts[&aid("alice")].display_name.as_deref(),
        Some("Alice L")
    );
}

#[test]
fn disabled_account_is_disconnected_and_denied() {
    let mut w = with_alice_account();
    w.run(&user("owner"), create_room("r"));
    w.run(&Actor::Identity(xmpp("alice")), join("r", "x1"));
    w.run(&user("alice"), join("r", "s1"));
    assert_eq!(
        w.state.rooms[&room("r")].members[&acct("alice")]
            .sessions
            .len(),
        2
    );
    w.when(
        &admin(),
        Command::DisableAccount {
            account: aid("alice"),
        },
    )
    .ok(&["account_disable"]);
    assert!(!w.members("r").contains(&acct("alice")));
    w.when(&user("alice"), join("r", "s2"))
        .err("account.disabled", &["join_denied"]);
    w.when(
        &admin(),
        Command::EnableAccount {
            account: aid("alice"),
        },
    )
    .ok(&["account_enable"]);
    w.when(&user("alice"), join("r", "s2")).ok(&["room_join"]);
    w.assert_replays(Policy::default());
}

#[test]
fn rendezvous_allowed_contacts_and_account_moderators() {
    let mut w = with_alice_account();
    // Rendezvous mode creates the account's conference room.
    w.when(
        &user("alice"),
        Command::SetRendezvous {
            account: aid("alice"),
            room: Some(room("alice-rv")),
        },
    )
    .ok(&["room_create", "rendezvous_change"]);
    let call = |s: &str| Command::CallAccount {
        account: aid("alice"),
        session: sid(s),
        credentials: Credentials::default(),
    };
    w.when(&user("bob"), call("b1")).ok(&["room_join"]);
    // Allow-list: only listed contacts may call.
    w.when(
        &user("alice"),
        Command::AllowContact {
            account: aid("alice"),
            contact: who("carol"),
        },
    )
    .ok(&["contact_allow"]);
    w.when(&user("dave"), call("d1"))
        .err("perm.not_allowed", &["join_denied"]);
    w.when(&user("carol"), call("c1")).ok(&["room_join"]);
    // Per-account moderator (Jami add-moderator) may kick in the account's room.
    w.when(&user("carol"), kick("alice-rv", who("bob")))
        .err("perm.not_moderator", &["api_action_denied"]);
    w.when(
        &admin(),
        Command::AddModerator {
            account: aid("alice"),
            moderator: who("carol"),
        },
    )
    .ok(&["moderator_add"]);
    w.when(&user("carol"), kick("alice-rv", who("bob")))
        .ok(&["peer_kick"]);
    // Ban-contact at account scope strips moderation rights (Jami).
    w.when(
        &admin(),
        Command::Ban {
            scope: BanScope::Account(aid("alice")),
            subject: who("carol"),
            reason: None,
            until: None,
        },
    )
    .ok(&["ban"]);
    assert!(w.state.accounts[&aid("alice")].moderators.is_empty());
    assert!(!w.members("alice-rv").contains(&who("carol")));
    w.when(&user("carol"), call("c2"))
        .err("membership.banned", &["join_denied"]);
    w.when(
        &user("alice"),
        Command::OpenContacts {
            account: aid("alice"),
        },
    )
    .ok(&["contacts_open"]);
    w.when(&user("dave"), call("d2")).ok(&["room_join"]);
    w.assert_replays(Policy::default());
}

#[test]
fn calling_an_account_without_rendezvous() {
    let mut w = with_alice_account();
    w.when(
        &user("bob"),
        Command::CallAccount {
            account: aid("alice"),
            session: sid("b"),
            credentials: Credentials::default(),
        },
    )
    .err("account.not_rendezvous", &[]);
}

#[test]
fn a_ban_holds_on_every_protocol_of_the_person() {
    let mut w = with_alice_account();
    w.run(&user("owner"), create_room("r"));
    // Banned through the SIP identity...
    w.when(&user("owner"), ban_room("r", who("alice")))
        .ok(&["ban"]);
    assert!(w.state.rooms[&room("r")].bans.contains_key(&acct("alice")));
    // ...refused on XMPP too.
    w.when(&Actor::Identity(xmpp("alice")), join("r", "x"))
        .err("membership.banned", &["join_denied"]);
}

#[test]
fn linking_moves_rules_from_the_address_to_the_account() {
    let mut w = World::new();
    w.run(&user("owner"), create_room("r"));
    w.run(
        &user("owner"),
        ban_room("r", Principal::Address(xmpp("zed"))),
    );
    w.run(
        &admin(),
        Command::CreateAccount {
            account: aid("zed"),
            display_name: None,
        },
    );
    w.run(
        &admin(),
        Command::LinkIdentity {
            account: aid("zed"),
            address: xmpp("zed"),
        },
    );
    w.run(
        &admin(),
        Command::LinkIdentity {
            account: aid("zed"),
            address: sip("zed"),
        },
    );
    // The ban made against the XMPP address now stops the SIP identity.
    w.when(&user("zed"), join("r", "z"))
        .err("membership.banned", &["join_denied"]);
    w.assert_replays(Policy::default());
}

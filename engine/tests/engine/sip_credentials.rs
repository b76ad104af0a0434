//! SIP digest credentials: an operator provisions a `sip:` identity with HA1 values
//! (linking it if needed); they live exactly as long as the identity's link.

use crate::common::*;
use conclave_engine::sip_digest::{ha1, DigestAlgorithm};
use conclave_engine::*;

fn set(account: &str, address: Address, password: &str) -> Command {
    Command::SetSipCredential {
        account: aid(account),
        realm: "example.org".into(),
        ha1_md5: ha1(
            DigestAlgorithm::Md5,
            address.local(),
            "example.org",
            password,
        ),
        ha1_sha256: ha1(
            DigestAlgorithm::Sha256,
            address.local(),
            "example.org",
            password,
        ),
        address,
    }
}

fn clear(account: &str, address: Address) -> Command {
    Command::ClearSipCredential {
        account: aid(account),
        address,
    }
}

fn with_accounts() -> World {
    let mut w = World::new();
    for a in ["alice", "bob"] {
        w.run(
            &admin(),
            Command::CreateAccount {
                account: aid(a),
                display_name: None,
            },
        );
    }
    w
}

#[test]
fn setting_a_credential_links_the_identity_and_stores_the_ha1_values() {
    // Given an account without identities,
    let mut w = with_accounts();
    // when an operator sets SIP credentials for sip:alice,
    w.when(&admin(), set("alice", sip("alice"), "pw"))
        .ok(&["identity_link", "sip_credential_set"]);
    // then the identity is linked and the credential is there, for that account.
    assert_eq!(w.state.identities[&sip("alice")], aid("alice"));
    let c = w.state.sip_credential(&sip("alice")).unwrap();
    assert_eq!(c.account, aid("alice"));
    assert_eq!(c.realm, "example.org");
    assert_eq!(
        c.ha1_md5,
        ha1(DigestAlgorithm::Md5, "alice", "example.org", "pw")
    );
    assert_eq!(w.state.sip_credentials_of(&aid("alice")).count(), 1);
    w.assert_replays(Policy::default());
}

#[test]
fn setting_it_again_replaces_it_and_the_same_values_are_a_no_op() {
    let mut w = with_accounts();
    w.run(&admin(), set("alice", sip("alice"), "pw"));
    w.when(&admin(), set("alice", sip("alice"), "pw")).ok(&[]);
    w.when(&admin(), set("alice", sip("alice"), "new"))
        .ok(&["sip_credential_set"]);
    assert_eq!(
        w.state.sip_credential(&sip("alice")).unwrap().ha1_md5,
        ha1(DigestAlgorithm::Md5, "alice", "example.org", "new")
    );
}

#[test]
fn only_operators_set_or_clear_credentials() {
    let mut w = with_accounts();
    w.run(&admin(), set("alice", sip("alice"), "pw"));
    w.when(
        &Actor::Identity(sip("alice")),
        set("alice", sip("alice"), "x"),
    )
    .err("perm.not_admin", &["api_action_denied"]);
    w.when(&Actor::Identity(sip("alice")), clear("alice", sip("alice")))
        .err("perm.not_admin", &["api_action_denied"]);
    assert!(w.state.sip_credential(&sip("alice")).is_some());
}

#[test]
fn an_identity_of_another_account_is_refused() {
    let mut w = with_accounts();
    w.run(&admin(), set("bob", sip("alice"), "pw"));
    w.when(&admin(), set("alice", sip("alice"), "pw"))
        .err("identity.already_linked", &[]);
    assert_eq!(
        w.state.sip_credential(&sip("alice")).unwrap().account,
        aid("bob")
    );
}

#[test]
fn bad_inputs_are_refused_before_anything_is_journaled() {
    let mut w = with_accounts();
    // Not a sip: identity.
    w.when(&admin(), set("alice", xmpp("alice"), "pw"))
        .err("input.invalid", &[]);
    let good = set("alice", sip("alice"), "pw");
    let with = |f: &dyn Fn(&mut Command)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let cases: Vec<(Command, &str)> = vec![
        (
            with(&|c| {
                if let Command::SetSipCredential { ha1_md5, .. } = c {
                    *ha1_md5 = ha1_md5.to_uppercase();
                }
            }),
            "input.invalid",
        ),
        (
            with(&|c| {
                if let Command::SetSipCredential { ha1_sha256, .. } = c {
                    ha1_sha256.truncate(32);
                }
            }),
            "input.invalid",
        ),
        (
            with(&|c| {
                if let Command::SetSipCredential { realm, .. } = c {
                    realm.clear();
                }
            }),
            "input.invalid",
        ),
        (
            with(&|c| {
                if let Command::SetSipCredential { realm, .. } = c {
                    *realm = "a".repeat(256);
                }
            }),
            "input.invalid",
        ),
        (
            with(&|c| {
                if let Command::SetSipCredential { realm, .. } = c {
                    *realm = "exa\"mple".into();
                }
            }),
            "input.invalid",
        ),
        (
            with(&|c| {
                if let Command::SetSipCredential { realm, .. } = c {
                    *realm = "exa\nmple".into();
                }
            }),
            "input.forbidden_char",
        ),
    ];
    for (cmd, code) in cases {
        w.when(&admin(), cmd).err(code, &[]);
    }
    // An unknown account.
    w.when(&admin(), set("carol", sip("carol"), "pw"))
        .err("account.not_found", &[]);
    assert!(w.state.sip_credentials.is_empty());
    assert!(w.state.identities.is_empty());
}

#[test]
fn clearing_removes_the_credential_and_keeps_the_link() {
    let mut w = with_accounts();
    w.run(&admin(), set("alice", sip("alice"), "pw"));
    w.when(&admin(), clear("alice", sip("alice")))
        .ok(&["sip_credential_clear"]);
    assert!(w.state.sip_credential(&sip("alice")).is_none());
    assert_eq!(w.state.identities[&sip("alice")], aid("alice"));
    // Again: nothing to clear, nothing journaled.
    w.when(&admin(), clear("alice", sip("alice"))).ok(&[]);
    // Not linked to that account.
    w.when(&admin(), clear("bob", sip("alice")))
        .err("identity.not_linked", &[]);
    w.assert_replays(Policy::default());
}

#[test]
fn unlinking_the_identity_ends_its_credential() {
    // Given sip:alice with credentials,
    let mut w = with_accounts();
    w.run(&admin(), set("alice", sip("alice"), "pw"));
    // when the identity is unlinked,
    w.when(
        &admin(),
        Command::UnlinkIdentity {
            account: aid("alice"),
            address: sip("alice"),
        },
    )
    .ok(&["identity_unlink"]);
    // then the credential is gone, and linking it again does not bring it back.
    assert!(w.state.sip_credential(&sip("alice")).is_none());
    w.run(
        &admin(),
        Command::LinkIdentity {
            account: aid("bob"),
            address: sip("alice"),
        },
    );
    assert!(w.state.sip_credential(&sip("alice")).is_none());
    w.assert_replays(Policy::default());
}

#[test]
fn an_erasure_of_the_person_ends_their_credentials() {
    let mut w = with_accounts();
    w.run(&admin(), set("alice", sip("alice"), "pw"));
    w.run(&admin(), set("bob", sip("bob"), "pw"));
    w.when(
        &admin(),
        Command::RecordContentPurge {
            subject: Some(who("alice")),
            before: None,
            records: 1,
            up_to_seq: 3,
        },
    )
    .ok(&["content_purge"]);
    assert!(w.state.sip_credential(&sip("alice")).is_none());
    assert!(w.state.sip_credential(&sip("bob")).is_some());
}

#[test]
fn replayed_facts_never_give_a_credential_to_an_unlinked_identity() {
    // Given a set event whose link is missing (a journal decide would never write),
    let w = given(vec![
        Event {
            at: t0(),
            actor: admin(),
            kind: EventKind::AccountCreated {
                account: aid("alice"),
                display_name: None,
            },
        },
        Event {
            at: t0(),
            actor: admin(),
            kind: EventKind::SipCredentialSet {
                account: aid("alice"),
                address: sip("alice"),
                realm: "example.org".into(),
                ha1_md5: "0".repeat(32),
                ha1_sha256: "0".repeat(64),
            },
        },
    ]);
    // then evolve ignores it.
    assert!(w.state.sip_credential(&sip("alice")).is_none());
}

//! Passwords: server password (Mumble), room access and owner passwords (VROOM). Hashes
//! arrive computed; attempts are checked through the injected verifier.

use crate::common::*;
use conclave_engine::*;

#[test]
fn server_password_applies_to_unregistered_identities() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("r"));
    w.when(
        &user("alice"),
        Command::SetServerPassword {
            hash: Some(hash("srv")),
        },
    )
    .err("perm.not_admin", &["api_action_denied"]);
    w.when(
        &admin(),
        Command::SetServerPassword {
            hash: Some(hash("srv")),
        },
    )
    .ok(&["server_modify"]);
    w.when(&user("bob"), join("r", "b"))
        .err("auth.password_required", &["join_denied"]);
    let creds = |pw: &str| Credentials {
        server_password: Some(Secret::new(pw)),
        ..Credentials::default()
    };
    w.when(&user("bob"), join_with("r", "b", creds("nope")))
        .err("auth.wrong_password", &["join_denied"]);
    w.when(&user("bob"), join_with("r", "b", creds("srv")))
        .ok(&["room_join"]);
    // Registered people (enabled accounts) skip it.
    w.run(
        &admin(),
        Command::CreateAccount {
            account: aid("carol"),
            display_name: None,
        },
    );
    w.run(
        &admin(),
        Command::LinkIdentity {
            account: aid("carol"),
            address: sip("carol"),
        },
    );
    w.when(&user("carol"), join("r", "c")).ok(&["room_join"]);
}

#[test]
fn room_access_password() {
    let mut w = World::new();
    w.run(
        &user("alice"),
        Command::CreateRoom {
            room: room("r"),
            parent: None,
            private: false,
            owner: None,
            max_members: None,
            welcome_text: None,
            access_password_hash: Some(hash("door")),
            server_password: None,
        },
    );
    w.when(&user("bob"), join("r", "b"))
        .err("auth.password_required", &["join_denied"]);
    let r = w
        .when(&user("bob"), join_with("r", "b", with_password("window")))
        .err("auth.wrong_password", &["join_denied"]);
    assert_eq!(r.rejection, Rejection::WrongPassword(PasswordKind::Room));
    w.when(&user("bob"), join_with("r", "b", with_password("door")))
        .ok(&["room_join"]);
    // Affiliated people need no password.
    w.when(&user("alice"), join("r", "a")).ok(&["room_join"]);
    // Clearing the password through configure.
    w.when(
        &user("alice"),
        Command::ConfigureRoom {
            room: room("r"),
            changes: vec![RoomChange::AccessPassword(None)],
        },
    )
    .ok(&["room_modify"]);
    w.when(&user("dan"), join("r", "d")).ok(&["room_join"]);
}

#[test]
fn owner_password_grants_the_owner_role() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("board"));
    w.when(
        &user("bob"),
        join_with(
            "board",
            "b0",
            Credentials {
                owner_password: Some(Secret::new("x")),
                ..Credentials::default()
            },
        ),
    )
    .err("auth.wrong_password", &["join_denied"]);
    w.run(
        &user("alice"),
        Command::ReserveRoom {
            room: room("board"),
            owner_password_hash: hash("chair"),
        },
    );
    let owner_pw = |pw: &str| Credentials {
        owner_password: Some(Secret::new(pw)),
        ..Credentials::default()
    };
    w.when(&user("bob"), join_with("board", "b1", owner_pw("wrong")))
        .err("auth.wrong_password", &["join_denied"]);
    let events = w
        .when(&user("bob"), join_with("board", "b1", owner_pw("chair")))
        .ok(&["peer_role", "room_join"]);
    assert!(matches!(
        events[0].kind,
        EventKind::RoleChanged {
            to: Some(Role::Owner),
            via: RoleVia::OwnerPassword,
            ..
        }
    ));
    assert_eq!(w.role("board", &who("bob")), Some(Role::Owner));
}

#[test]
fn hashes_are_validated_not_trusted_blindly() {
    let mut w = World::new();
    w.run(&user("alice"), create_room("r"));
    w.when(
        &user("alice"),
        Command::ReserveRoom {
            room: room("r"),
            owner_password_hash: String::new(),
        },
    )
    .err("input.invalid", &[]);
    w.when(
        &admin(),
        Command::SetServerPassword {
            hash: Some("a b".into()),
        },
    )
    .err("input.invalid", &[]);
}

#[test]
fn secrets_never_show_in_debug_output() {
    let c = with_password("hunter2");
    assert!(!format!("{c:?}").contains("hunter2"));
}

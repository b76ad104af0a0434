//! Authentication against a real nats-server without the `nk` and `nsc` tools: an nkey
//! user (keys made with the nkeys crate), and operator mode with a credentials file
//! whose JWTs are signed here. Each shows that the gateway connects and publishes with
//! the right key, and reports `nats.auth` (not connected, no hang) with a wrong one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use conclave_gateway_nats::{start, NatsAuth, NatsConfig, NatsHandle, Secret};
use nkeys::KeyPair;
use serde_json::{json, Value};
use support::{eventually, exec, open_engine, NatsServer};

/// Core NATS (no stream needed), publishing on.
fn config(url: String, dir: &Path, auth: NatsAuth) -> NatsConfig {
    let mut c = NatsConfig::new(url, dir.join("nats-cursor"));
    c.jetstream = false;
    c.auth = auth;
    c
}

/// Connected, and a record journaled after the start reaches the server (core NATS
/// moves the cursor only after a round trip through it).
async fn publishes(handle: &NatsHandle, engine: &conclave_engine::service::Engine) {
    eventually(10, || handle.status().connected).await;
    exec(
        engine,
        json!({"create_room": {"room": "auth", "private": false, "owner": "sip:alice@example.org"}}),
    )
    .await;
    let head = engine.head();
    eventually(10, || handle.status().cursor == head).await;
    assert!(handle.status().published_total >= 1);
}

/// Refused: not connected, `last_error` says `nats.auth` and names the way, not the key.
async fn refused(handle: &NatsHandle, names: &str, secret: &str) {
    eventually(10, || {
        handle
            .status()
            .last_error
            .is_some_and(|e| e.code == "nats.auth")
    })
    .await;
    let status = handle.status();
    assert!(!status.connected);
    let message = status.last_error.unwrap().message;
    assert!(message.contains("refused the credentials"), "{message}");
    assert!(message.contains(names), "{message}");
    assert!(!message.contains(secret), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nkey_users_connect_with_their_seed_and_are_refused_with_another() {
    let dir = tempfile::tempdir().unwrap();
    let user = KeyPair::new_user();
    let conf = format!(
        "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
        user.public_key()
    );
    let Some(server) = NatsServer::start_with_config(dir.path(), &conf) else {
        return;
    };
    // The seed from a file, as `nk -gen user > user.nk` writes it.
    let seed_file = dir.path().join("user.nk");
    std::fs::write(&seed_file, format!("{}\n", user.seed().unwrap())).unwrap();
    let good = NatsAuth {
        nkey_seed: Some(Secret::File(seed_file)),
        ..Default::default()
    };
    let engine = open_engine(&dir.path().join("data"));
    let handle = start(
        engine.clone(),
        config(server.url(), &dir.path().join("a"), good),
    )
    .await
    .unwrap();
    publishes(&handle, &engine).await;
    handle.shutdown().await;
    engine.shutdown();

    let other = KeyPair::new_user();
    let other_seed = other.seed().unwrap();
    let bad = NatsAuth {
        nkey_seed: Some(Secret::Value(other_seed.clone())),
        ..Default::default()
    };
    let engine = open_engine(&dir.path().join("data-2"));
    let handle = start(
        engine.clone(),
        config(server.url(), &dir.path().join("b"), bad),
    )
    .await
    .unwrap();
    refused(
        &handle,
        &format!("nkey {}", other.public_key()),
        &other_seed,
    )
    .await;
    handle.shutdown().await;
    engine.shutdown();
}

fn b64url(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A NATS JWT (`ed25519-nkey`) for `subject`, signed by `signer`.
fn jwt(signer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64url(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let claims = json!({
        "jti": format!("{}{}", name.to_uppercase(), now),
        "iat": now,
        "iss": signer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let body = format!("{header}.{}", b64url(claims.to_string().as_bytes()));
    let signature = signer.sign(body.as_bytes()).unwrap();
    format!("{body}.{}", b64url(&signature))
}

/// A user of `account`, as `nsc generate creds` writes it.
fn creds(account: &KeyPair, user: &KeyPair) -> String {
    let user_jwt = jwt(
        account,
        &user.public_key(),
        "conclave",
        json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
               "type": "user", "version": 2}),
    );
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        user.seed().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_files_work_in_operator_mode() {
    let dir = tempfile::tempdir().unwrap();
    let operator = KeyPair::new_operator();
    let account = KeyPair::new_account();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "op",
        json!({"type": "operator", "version": 2}),
    );
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "acc",
        json!({"limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1,
                          "exports": -1, "wildcards": true, "conn": -1, "leaf": -1},
               "default_permissions": {"pub": {}, "sub": {}},
               "type": "account", "version": 2}),
    );
    let conf = format!(
        "operator: {operator_jwt}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {account_jwt}\n}}\n",
        account.public_key()
    );
    let Some(server) = NatsServer::start_with_config(dir.path(), &conf) else {
        return;
    };
    let good_file = dir.path().join("conclave.creds");
    std::fs::write(&good_file, creds(&account, &KeyPair::new_user())).unwrap();
    let engine = open_engine(&dir.path().join("data"));
    let handle = start(
        engine.clone(),
        config(
            server.url(),
            &dir.path().join("a"),
            NatsAuth {
                credentials_file: Some(good_file),
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    publishes(&handle, &engine).await;
    handle.shutdown().await;
    engine.shutdown();

    // A user signed by an account the server does not know.
    let stranger = KeyPair::new_account();
    let bad_file = dir.path().join("stranger.creds");
    let user = KeyPair::new_user();
    std::fs::write(&bad_file, creds(&stranger, &user)).unwrap();
    let engine = open_engine(&dir.path().join("data-2"));
    let handle = start(
        engine.clone(),
        config(
            server.url(),
            &dir.path().join("b"),
            NatsAuth {
                credentials_file: Some(bad_file.clone()),
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    refused(
        &handle,
        &format!("credentials file {}", bad_file.display()),
        &user.seed().unwrap(),
    )
    .await;
    handle.shutdown().await;
    engine.shutdown();
}

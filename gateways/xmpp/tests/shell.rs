//! The connection shell against a scripted component server on loopback: the XEP-0114
//! handshake, a refused secret, an oversized stanza, reconnection. The real prosody
//! is in tests/e2e/test_xmpp_component.py.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use conclave_engine::service::{Engine, EngineConfig, GatewayScope};
use conclave_engine::Scheme;
use conclave_gateway_xmpp::{ComponentSecret, XmppConfig, XmppGateway};
use conclave_journal::SyncMode;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEAD: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='conference.localhost' id='sid-1'>";

async fn start(secret: &str) -> (XmppGateway, TcpListener, Engine, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.journal.sync = SyncMode::None;
    let engine = Engine::open(config).unwrap();
    let handle = engine.gateway(GatewayScope {
        name: "xmpp".into(),
        schemes: vec![Scheme::Xmpp],
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = XmppConfig::new(
        "conference.localhost".into(),
        ComponentSecret::new(secret.into()),
        listener.local_addr().unwrap().to_string(),
    );
    c.backoff_min = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(100);
    c.io_timeout = Duration::from_secs(5);
    (XmppGateway::start(c, handle), listener, engine, dir)
}

/// Reads until `needle` has arrived; returns everything read.
async fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !String::from_utf8_lossy(&got).contains(needle) {
            let n = s.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before {needle:?}: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in {}", String::from_utf8_lossy(&got)));
    String::from_utf8(got).unwrap()
}

/// Accepts the component and answers its handshake; returns the digest it sent.
async fn accept(listener: &TcpListener) -> (TcpStream, String) {
    let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .unwrap()
        .unwrap();
    let header = read_until(&mut s, "'>").await;
    assert!(
        header.contains("xmlns='jabber:component:accept'"),
        "{header}"
    );
    assert!(header.contains("to='conference.localhost'"), "{header}");
    s.write_all(HEAD.as_bytes()).await.unwrap();
    let hs = read_until(&mut s, "</handshake>").await;
    let digest = hs
        .split("<handshake>")
        .nth(1)
        .unwrap()
        .split("</handshake>")
        .next()
        .unwrap()
        .to_owned();
    (s, digest)
}

async fn wait(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn expected_digest(secret: &str) -> String {
    Sha1::digest(format!("sid-1{secret}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn handshake_then_disco_then_reconnect_after_the_server_drops() {
    let (gw, listener, _engine, _dir) = start("sesame").await;
    let (mut s, digest) = accept(&listener).await;
    assert_eq!(digest, expected_digest("sesame"));
    assert!(!gw.status().connected());
    s.write_all(b"<handshake/>").await.unwrap();
    wait("connected", || gw.status().connected()).await;

    s.write_all(b"<iq type='get' id='q1' from='a@localhost/r' to='conference.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq> ")
        .await
        .unwrap();
    let reply = read_until(&mut s, "</iq>").await;
    assert!(
        reply.contains("type='result'") && reply.contains("id='q1'"),
        "{reply}"
    );
    assert!(reply.contains("category='conference'"), "{reply}");
    let m = gw.metrics();
    assert!(m.contains("conclave_xmpp_connected 1"), "{m}");
    assert!(m.contains("conclave_xmpp_stanzas_in_total 1"), "{m}");
    assert!(m.contains("conclave_xmpp_stanzas_out_total 1"), "{m}");

    // The server goes away: disconnected, then a new connection with a new handshake.
    drop(s);
    wait("disconnected", || !gw.status().connected()).await;
    let (mut s, _) = accept(&listener).await;
    s.write_all(b"<handshake/>").await.unwrap();
    wait("reconnected", || gw.status().connected()).await;
    assert!(gw.status().reconnects() >= 1);
    let h = gw.health();
    assert_eq!(h["state"], "connected");
    assert_eq!(h["last_error"]["code"], "xmpp.closed");

    gw.shutdown().await;
    let tail = read_until(&mut s, "</stream:stream>").await;
    assert!(tail.contains("</stream:stream>"));
    assert_eq!(gw.health()["state"], "stopped");
}

#[tokio::test]
async fn a_refused_secret_is_reported_and_retried() {
    let (gw, listener, _engine, _dir) = start("wrong").await;
    for _ in 0..2 {
        let (mut s, _) = accept(&listener).await;
        s.write_all(b"<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
            .await
            .unwrap();
    }
    wait("the refusal in health", || {
        gw.health()["last_error"]["code"] == "xmpp.handshake_refused"
    })
    .await;
    assert!(!gw.status().connected());
    assert!(gw.health()["last_error"]["message"]
        .as_str()
        .unwrap()
        .contains("not-authorized"));
    assert!(!format!("{:?} {}", gw.health(), gw.metrics()).contains("wrong"));
    gw.shutdown().await;
}

#[tokio::test]
async fn an_oversized_stanza_closes_the_connection() {
    let (gw, listener, _engine, _dir) = start("sesame").await;
    let (mut s, _) = accept(&listener).await;
    s.write_all(b"<handshake/>").await.unwrap();
    wait("connected", || gw.status().connected()).await;
    let big = format!(
        "<message from='a@b' to='r@conference.localhost'><body>{}",
        "x".repeat(70_000)
    );
    let _ = s.write_all(big.as_bytes()).await;
    wait("dropped", || {
        gw.health()["last_error"]["code"] == "xmpp.stanza_too_large"
    })
    .await;
    // And it comes back.
    let (mut s2, _) = accept(&listener).await;
    s2.write_all(b"<handshake/>").await.unwrap();
    wait("reconnected", || gw.status().connected()).await;
    gw.shutdown().await;
}

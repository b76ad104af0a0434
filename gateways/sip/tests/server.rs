//! The whole gateway (shell, transactions, transaction user) on loopback sockets against
//! a real engine: what a SIP client sees, without SIPp. The SIPp and RTP end-to-end
//! tests are in tests/e2e.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use conclave_engine::service::{Engine, EngineConfig, GatewayScope};
use conclave_engine::{RoomName, Scheme};
use conclave_gateway_sip::config::SipConfig;
use conclave_gateway_sip::server::SipServer;
use conclave_journal::SyncMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

struct Gateway {
    engine: Engine,
    server: SipServer,
    _dir: tempfile::TempDir,
}

async fn start() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.journal.sync = SyncMode::None;
    let engine = Engine::open(config).unwrap();
    let handle = engine.gateway(GatewayScope {
        name: "sip".into(),
        schemes: vec![Scheme::Sip],
    });
    let mut sip = SipConfig::new([7; 32]);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    sip.udp = Some(any);
    sip.tcp = Some(any);
    sip.open_registration = true;
    let server = SipServer::start(sip, handle, None).await.unwrap();
    Gateway {
        engine,
        server,
        _dir: dir,
    }
}

fn message(
    from: &str,
    to: &str,
    branch: &str,
    body: &str,
    local: SocketAddr,
    transport: &str,
) -> String {
    format!(
        "MESSAGE sip:{to}@localhost SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{from}@localhost>;tag=t{branch}\r\n\
         To: <sip:{to}@localhost>\r\n\
         Call-ID: {branch}@test\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn recv(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The next message that is not a provisional response.
async fn next_final_or_request(sock: &UdpSocket) -> String {
    loop {
        let m = recv(sock).await;
        if !m.starts_with("SIP/2.0 1") {
            return m;
        }
    }
}

#[tokio::test]
async fn a_message_creates_a_room_and_the_notice_comes_back_from_the_room() {
    let g = start().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let to = g.server.local().udp.unwrap();
    let req = message("alice", "chat-manager", "a1", "#create tea", me, "UDP");
    sock.send_to(req.as_bytes(), to).await.unwrap();

    let answer = next_final_or_request(&sock).await;
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    let notice = next_final_or_request(&sock).await;
    assert!(
        notice.starts_with("MESSAGE sip:alice@localhost"),
        "{notice}"
    );
    assert!(
        notice.contains("From: <sip:chat-tea@localhost>"),
        "{notice}"
    );
    assert!(notice.ends_with("*** Room was created"), "{notice}");
    assert!(g
        .engine
        .read(|s| s.rooms.contains_key(&RoomName::from_stored("tea".into()))));
    g.server.shutdown().await;
}

#[tokio::test]
async fn a_retransmitted_message_is_answered_again_and_journaled_once() {
    let g = start().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let to = g.server.local().udp.unwrap();
    let req = message("bob", "chat-manager", "b1", "#create lake", me, "UDP");
    sock.send_to(req.as_bytes(), to).await.unwrap();
    let first = next_final_or_request(&sock).await;
    let _notice = next_final_or_request(&sock).await;
    let head = g.engine.head();
    sock.send_to(req.as_bytes(), to).await.unwrap();
    let again = next_final_or_request(&sock).await;
    assert_eq!(first, again);
    assert_eq!(
        g.engine.head(),
        head,
        "a retransmission is not a new command"
    );
    g.server.shutdown().await;
}

#[tokio::test]
async fn options_and_a_malformed_request_over_udp_and_tcp() {
    let g = start().await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let udp = g.server.local().udp.unwrap();
    let options = format!(
        "OPTIONS sip:localhost SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKo1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:x@localhost>;tag=1\r\nTo: <sip:localhost>\r\n\
         Call-ID: o1@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(options.as_bytes(), udp).await.unwrap();
    let answer = recv(&sock).await;
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    assert!(answer.contains("Allow: INVITE"), "{answer}");
    // CSeq names another method: 400, and nothing else happens.
    let bad = options
        .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
        .replace("o1", "o2");
    sock.send_to(bad.as_bytes(), udp).await.unwrap();
    let answer = recv(&sock).await;
    assert!(answer.starts_with("SIP/2.0 400"), "{answer}");

    // TCP: the same OPTIONS works; garbage closes the connection.
    let tcp = g.server.local().tcp.unwrap();
    assert_eq!(tcp.port(), udp.port(), "one port for both transports");
    let mut conn = TcpStream::connect(tcp).await.unwrap();
    let local = conn.local_addr().unwrap();
    let options_tcp = options
        .replace(&format!("UDP {me}"), &format!("TCP {local}"))
        .replace("o1", "o3");
    conn.write_all(options_tcp.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 200"));
    conn.write_all(b"\x00\x01garbage that is not SIP at all\r\n\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was closed");
    g.server.shutdown().await;
}

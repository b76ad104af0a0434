//! The web listener against real sockets on the loopback, with timeouts of a fraction of
//! a second: what a stranger can hold open, and for how long. Each wait reads the socket
//! until it closes, bounded by a generous limit, rather than sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::{Extension, Router};
use conclave_gateway_web::proxy::{ForwardedHeader, PeerAddr, TrustedProxies};
use conclave_gateway_web::{Transport, TransportSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Far longer than any deadline under test: a test that waits this long has failed.
const LIMIT: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(LIMIT, self.served)
            .await
            .expect("serve returns")
            .unwrap()
            .unwrap();
    }
}

fn quick() -> TransportSettings {
    TransportSettings {
        header_read_timeout: Duration::from_millis(400),
        body_read_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(400),
        ..TransportSettings::default()
    }
}

/// A router that tells who is calling, echoes a body, and streams slowly.
fn probe_router(dropped: Arc<AtomicBool>) -> Router {
    Router::new()
        .route(
            "/who",
            get(
                |ConnectInfo(client): ConnectInfo<SocketAddr>,
                 Extension(PeerAddr(peer)): Extension<PeerAddr>| async move {
                    format!("{client} {peer}")
                },
            ),
        )
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "done"
            }),
        )
        .route(
            // Quiet for longer than the idle timeout, then one chunk.
            "/late",
            get(|| async {
                let s = futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    Ok::<_, std::convert::Infallible>("late")
                });
                Body::from_stream(s)
            }),
        )
        .route(
            // Endless, as fast as the peer reads; says when it is dropped.
            "/flood",
            get(move || {
                let guard = DropFlag(dropped.clone());
                async move {
                    let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
                    let s = futures_util::stream::unfold(guard, move |g| {
                        let c = chunk.clone();
                        async move { Some((Ok::<_, std::convert::Infallible>(c), g)) }
                    });
                    Body::from_stream(s)
                }
            }),
        )
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn start(settings: TransportSettings, router: Router) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(
        Transport::new(settings).serve(listener, router, async move {
            let _ = rx.await;
        }),
    );
    Server {
        addr,
        stop: Some(tx),
        served,
    }
}

/// Reads until the server closes the connection; what arrived and how long it took.
async fn read_to_close(s: &mut TcpStream) -> (Vec<u8>, Duration) {
    let t = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(LIMIT, s.read(&mut buf)).await {
            Err(_) => panic!("still open after {LIMIT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, t.elapsed()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response whose body is `Content-Length` long.
async fn read_response(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let len = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if out.len() >= head_end + 4 + len {
                return text;
            }
        }
        let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(n > 0, "closed before a whole answer: {out:?}");
        out.extend_from_slice(&buf[..n]);
    }
}

async fn get_on(s: &mut TcpStream, path: &str, extra: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n{extra}\r\n").as_bytes())
        .await
        .unwrap();
    read_response(s).await
}

fn status(resp: &str) -> &str {
    resp.split(' ').nth(1).unwrap_or("")
}

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_after_the_header_timeout() {
    let server = start(quick(), probe_router(Arc::default())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let (got, took) = read_to_close(&mut s).await;
    assert!(got.is_empty());
    assert!(took >= Duration::from_millis(300), "{took:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_sent_a_byte_at_a_time_is_dropped_when_its_time_is_up() {
    let server = start(quick(), probe_router(Arc::default())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let t = Instant::now();
    let head = b"GET /who HTTP/1.1\r\nhost: x\r\nx-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    let mut buf = [0u8; 256];
    for b in head.iter() {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        // The pace of the trickle: a read that waits 20 ms for the server to hang up.
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => panic!("an answer to half a head: {:?}", &buf[..n]),
            Err(_) => {}
        }
    }
    let took = t.elapsed();
    assert!(closed, "the trickle outlived its {took:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_waits_the_idle_timeout_not_the_header_timeout() {
    let settings = TransportSettings {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(1200),
        ..quick()
    };
    let server = start(settings, probe_router(Arc::default())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(status(&get_on(&mut s, "/who", "").await), "200");
    // Longer than the header timeout, shorter than the idle one: still open.
    let mut buf = [0u8; 16];
    assert!(
        tokio::time::timeout(Duration::from_millis(600), s.read(&mut buf))
            .await
            .is_err(),
        "closed while idle for less than the idle timeout"
    );
    assert_eq!(status(&get_on(&mut s, "/who", "").await), "200");
    // Then nothing: closed after the idle timeout.
    let (got, took) = read_to_close(&mut s).await;
    assert!(got.is_empty());
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_answered_408_and_the_connection_closed() {
    let server = start(quick(), probe_router(Arc::default())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nab")
        .await
        .unwrap();
    let t = Instant::now();
    // Trickle the rest; the server answers and hangs up meanwhile.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let _ = s.write_all(b"c").await;
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => assert!(t.elapsed() < LIMIT, "still open"),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert_eq!(status(&text), "408", "{text}");
    assert!(text.contains("input.timeout"), "{text}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    // A body that arrives in time is read as usual.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let resp = read_response(&mut s).await;
    assert_eq!(body(&resp), "hello");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_over_the_cap_is_refused_at_once() {
    let settings = TransportSettings {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        ..TransportSettings::default()
    };
    let server = start(settings, probe_router(Arc::default())).await;
    let mut a = TcpStream::connect(server.addr).await.unwrap();
    let mut b = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(status(&get_on(&mut a, "/who", "").await), "200");
    assert_eq!(status(&get_on(&mut b, "/who", "").await), "200");
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    let (got, took) = read_to_close(&mut c).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.is_empty() || status(&text) == "503", "{text}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // A freed slot is taken again.
    drop(a);
    let t = Instant::now();
    loop {
        let mut d = TcpStream::connect(server.addr).await.unwrap();
        d.write_all(b"GET /who HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let (got, _) = read_to_close_or_answer(&mut d).await;
        if status(&got) == "200" {
            break;
        }
        assert!(t.elapsed() < LIMIT, "the freed slot never came back: {got}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_slot() {
    let settings = TransportSettings {
        max_connections: 100,
        max_connections_per_address: 2,
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        ..TransportSettings::default()
    };
    let server = start(settings, probe_router(Arc::default())).await;
    let mut a = connect_from("127.0.0.1", server.addr).await;
    let mut b = connect_from("127.0.0.1", server.addr).await;
    assert_eq!(status(&get_on(&mut a, "/who", "").await), "200");
    assert_eq!(status(&get_on(&mut b, "/who", "").await), "200");
    // A third from the same address is closed at once...
    let mut c = connect_from("127.0.0.1", server.addr).await;
    let (got, took) = read_to_close(&mut c).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.is_empty() || status(&text) == "503", "{text}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // ...while another address is served.
    let mut d = connect_from("127.0.0.2", server.addr).await;
    assert_eq!(status(&get_on(&mut d, "/who", "").await), "200");
    server.stop().await;
}

/// A whole answer, or what came before the connection closed.
async fn read_to_close_or_answer(s: &mut TcpStream) -> (String, Duration) {
    let t = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&out).to_string();
        if text.contains("\r\n\r\n") && status(&text) == "200" {
            return (text, t.elapsed());
        }
        match tokio::time::timeout(LIMIT, s.read(&mut buf)).await {
            Err(_) => panic!("neither answered nor closed"),
            Ok(Ok(0)) | Ok(Err(_)) => return (text, t.elapsed()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_comes_from_trusted_proxies_only() {
    // Nobody trusted (the default): the header is ignored.
    let server = start(quick(), probe_router(Arc::default())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let local = s.local_addr().unwrap();
    let resp = get_on(&mut s, "/who", "x-forwarded-for: 198.51.100.7\r\n").await;
    assert_eq!(body(&resp), format!("{local} {local}"));
    server.stop().await;
    // The loopback trusted: the header names the client, the peer stays the proxy.
    let settings = TransportSettings {
        trusted_proxies: TrustedProxies::parse(&["127.0.0.1"], ForwardedHeader::XForwardedFor)
            .unwrap(),
        ..quick()
    };
    let server = start(settings, probe_router(Arc::default())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let local = s.local_addr().unwrap();
    let resp = get_on(
        &mut s,
        "/who",
        "x-forwarded-for: 203.0.113.1, 198.51.100.7\r\n",
    )
    .await;
    assert_eq!(body(&resp), format!("198.51.100.7:0 {local}"));
    let resp = get_on(&mut s, "/who", "x-forwarded-for: \"][::\r\n").await;
    assert_eq!(body(&resp), format!("{local} {local}"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_streaming_answer_is_not_cut_by_the_idle_timeout() {
    let server = start(quick(), probe_router(Arc::default())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /late HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (got, took) = read_to_close(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("late"), "{text}");
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_dropped() {
    let dropped = Arc::new(AtomicBool::new(false));
    let server = start(quick(), probe_router(dropped.clone())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /flood HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read: once the socket buffers are full the server's writes block, and the
    // idle timeout later it lets go.
    let t = Instant::now();
    while !dropped.load(Ordering::SeqCst) {
        assert!(t.elapsed() < LIMIT, "the flood never stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(s);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_request_in_flight_finish() {
    let settings = TransportSettings {
        header_read_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        ..TransportSettings::default()
    };
    let mut server = start(settings, probe_router(Arc::default())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = server.stop.take().unwrap().send(());
    // The answer arrives, then the connection closes (not kept alive while draining).
    let (got, took) = read_to_close(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert_eq!(status(&text), "200", "{text}");
    assert!(text.ends_with("done"), "{text}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    tokio::time::timeout(LIMIT, server.served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_router_serves_through_the_transport() {
    let (router, _engine, _dir) = common::setup();
    let transport = Transport::new(quick());
    let status_source = transport.status();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(transport.serve(listener, router, async move {
        let _ = rx.await;
    }));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let resp = get_on(&mut s, "/about/health", "").await;
    assert_eq!(status(&resp), "200", "{resp}");
    // The silent one is counted as a header timeout.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let _ = read_to_close(&mut silent).await;
    let health = status_source.health();
    assert_eq!(health["timeouts"]["header"], 1, "{health}");
    assert!(health["accepted"].as_u64().unwrap() >= 2, "{health}");
    let metrics = status_source.metrics();
    assert!(
        metrics.contains("conclave_web_timeouts_total{phase=\"header\"} 1"),
        "{metrics}"
    );
    let _ = tx.send(());
    drop(s);
    tokio::time::timeout(LIMIT, served)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_head_is_refused() {
    let server = start(quick(), probe_router(Arc::default())).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let big = "a".repeat(conclave_gateway_web::MAX_HEAD_BYTES + 1);
    // The server may answer and hang up before it has read all of it.
    let _ = s
        .write_all(format!("GET /who HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes())
        .await;
    let (got, _) = read_to_close(&mut s).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.is_empty() || status(&text) == "431", "{text}");
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let fits = "a".repeat(conclave_gateway_web::MAX_HEAD_BYTES - 200);
    let resp = get_on(&mut s, "/who", &format!("x-big: {fits}\r\n")).await;
    assert_eq!(status(&resp), "200");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_small_pieces_and_chunked_arrive_whole() {
    let settings = TransportSettings {
        body_read_timeout: Duration::from_secs(10),
        ..quick()
    };
    let server = start(settings, probe_router(Arc::default())).await;
    // 50 000 bytes in 1000-byte writes.
    let sent: String = (0..50_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(
        format!(
            "POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
            sent.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    for piece in sent.as_bytes().chunks(1000) {
        s.write_all(piece).await.unwrap();
        tokio::task::yield_now().await;
    }
    let resp = read_response(&mut s).await;
    assert_eq!(body(&resp), sent);
    // Chunked, with trailers.
    s.write_all(
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ntrailer: x-t\r\n\r\n\
          5\r\nhello\r\n1\r\n,\r\n6\r\n world\r\n0\r\nx-t: 1\r\n\r\n",
    )
    .await
    .unwrap();
    let resp = read_response(&mut s).await;
    assert_eq!(body(&resp), "hello, world");
    server.stop().await;
}

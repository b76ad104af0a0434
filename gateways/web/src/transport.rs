//! The web listener: our own accept loop over hyper's HTTP/1 connections, so that what a
//! stranger can hold open is bounded in number and in time.
//!
//! - **Connections**: at most `max_connections` at once (accepted, TLS or not, WebSocket
//!   upgrades included, until their socket closes). One more is accepted and closed at
//!   once (plain HTTP: after a `503 server.too_many_connections` written without
//!   waiting), never queued.
//! - **Header read**: a request's head must arrive within `header_read_timeout`, timed
//!   from the TCP accept for the first request (so it also bounds the TLS handshake: a
//!   client that connects and never says hello is dropped), and from the first byte of
//!   the next request on a kept-alive connection. A head sent a byte at a time
//!   (slowloris) is dropped when its time is up, however steadily the bytes come.
//! - **Body read**: the whole request body must arrive within `body_read_timeout` of its
//!   head; past it the request is answered `408 input.timeout` and the connection closed.
//! - **Idle**: a kept-alive connection with no request for `idle_timeout` is closed.
//! - **Stalled writes**: a peer that stops reading (an answer, an event stream, a
//!   WebSocket) for `idle_timeout` while we have bytes to send is dropped. A stream that
//!   is merely quiet is never cut: no deadline runs while a request is being handled or
//!   an answer streamed unless a write is blocked, and event streams send a keepalive every
//!   20 s anyway. An upgraded WebSocket has no read deadline either; its handler pings.
//!
//! Deadlines live in the connection's I/O wrapper ([`Tracked`]): a read or write that
//! would wait past its deadline fails with `TimedOut`, which ends hyper's connection (or
//! the TLS handshake, or the WebSocket). No task per connection watches the clock.
//!
//! The client address of each request comes from [`crate::proxy::client_addr`] and is
//! handed to handlers as `ConnectInfo<SocketAddr>`, the TCP peer as
//! [`crate::proxy::PeerAddr`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::error::ApiError;
use crate::proxy::{client_addr, PeerAddr, TrustedProxies};
use crate::tls::TlsConfig;
use crate::{StatusSource, SHUTDOWN_GRACE};

/// Largest request head (request line and headers): what hyper buffers per connection.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the web listener treats connections. `Default` is what the server runs with
/// unless configured.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Time for a request's head to arrive (from the accept for a connection's first
    /// request, TLS handshake included; from its first byte for later ones).
    pub header_read_timeout: Duration,
    /// Time for a request's whole body to arrive, from its head.
    pub body_read_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request, and a blocked write
    /// may wait for the peer to read.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one TCP peer address (a listed reverse proxy is not
    /// held to it), so that one address cannot take every slot.
    pub max_connections_per_address: usize,
    /// Reverse proxies whose forwarding header names the client.
    pub trusted_proxies: TrustedProxies,
    /// TLS, or plain HTTP when `None`.
    pub tls: Option<TlsConfig>,
}

impl Default for TransportSettings {
    fn default() -> Self {
        TransportSettings {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_connections_per_address: 256,
            trusted_proxies: TrustedProxies::default(),
            tls: None,
        }
    }
}

/// What the listener has seen, for `/metrics` and `/about/health`.
struct Stats {
    open: AtomicUsize,
    max: usize,
    tls: bool,
    accepted: AtomicU64,
    refused: AtomicU64,
    header_timeouts: AtomicU64,
    idle_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
    write_timeouts: AtomicU64,
    tls_failures: AtomicU64,
    /// Seconds since `started` of the last warning about refused connections, plus one
    /// (0: none yet).
    last_refusal_warning: AtomicU64,
    started: Instant,
}

impl Stats {
    fn new(max: usize, tls: bool) -> Stats {
        Stats {
            open: AtomicUsize::new(0),
            max,
            tls,
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
            body_timeouts: AtomicU64::new(0),
            write_timeouts: AtomicU64::new(0),
            tls_failures: AtomicU64::new(0),
            last_refusal_warning: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Whether a warning about refused connections is due (one per 10 s at most: a flood
    /// must not flood the log too).
    fn refusal_warning_due(&self) -> bool {
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.last_refusal_warning.load(Ordering::Relaxed);
        (last == 0 || now >= last + 10)
            && self
                .last_refusal_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    fn count(&self, kind: Timeout) {
        let c = match kind {
            Timeout::Header => &self.header_timeouts,
            Timeout::Idle => &self.idle_timeouts,
            Timeout::Body => &self.body_timeouts,
            Timeout::Write => &self.write_timeouts,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The listener's status source (`web_transport` in health, `conclave_web_*` metrics).
struct TransportStatus(Arc<Stats>);

impl StatusSource for TransportStatus {
    fn name(&self) -> String {
        "web_transport".to_owned()
    }

    fn health(&self) -> Value {
        let s = &self.0;
        json!({
            "tls": s.tls,
            "connections": s.open.load(Ordering::Relaxed),
            "max_connections": s.max,
            "accepted": s.accepted.load(Ordering::Relaxed),
            "refused": s.refused.load(Ordering::Relaxed),
            "timeouts": {
                "header": s.header_timeouts.load(Ordering::Relaxed),
                "idle": s.idle_timeouts.load(Ordering::Relaxed),
                "body": s.body_timeouts.load(Ordering::Relaxed),
                "write": s.write_timeouts.load(Ordering::Relaxed),
            },
            "tls_handshake_failures": s.tls_failures.load(Ordering::Relaxed),
        })
    }

    fn metrics(&self) -> String {
        let s = &self.0;
        let l = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "# HELP conclave_web_connections Open connections of the web listener.\n\
             # TYPE conclave_web_connections gauge\n\
             conclave_web_connections {}\n\
             # HELP conclave_web_connections_max Most connections the web listener holds at once.\n\
             # TYPE conclave_web_connections_max gauge\n\
             conclave_web_connections_max {}\n\
             # HELP conclave_web_connections_accepted_total Connections accepted.\n\
             # TYPE conclave_web_connections_accepted_total counter\n\
             conclave_web_connections_accepted_total {}\n\
             # HELP conclave_web_connections_refused_total Connections closed at once because max_connections were open.\n\
             # TYPE conclave_web_connections_refused_total counter\n\
             conclave_web_connections_refused_total {}\n\
             # HELP conclave_web_timeouts_total Connections or requests ended by a timeout, by phase.\n\
             # TYPE conclave_web_timeouts_total counter\n\
             conclave_web_timeouts_total{{phase=\"header\"}} {}\n\
             conclave_web_timeouts_total{{phase=\"idle\"}} {}\n\
             conclave_web_timeouts_total{{phase=\"body\"}} {}\n\
             conclave_web_timeouts_total{{phase=\"write\"}} {}\n\
             # HELP conclave_web_tls_handshake_failures_total TLS handshakes that failed (timeouts are counted as header timeouts).\n\
             # TYPE conclave_web_tls_handshake_failures_total counter\n\
             conclave_web_tls_handshake_failures_total {}\n",
            s.open.load(Ordering::Relaxed),
            s.max,
            l(&s.accepted),
            l(&s.refused),
            l(&s.header_timeouts),
            l(&s.idle_timeouts),
            l(&s.body_timeouts),
            l(&s.write_timeouts),
            l(&s.tls_failures),
        )
    }
}

/// The web listener: settings and counters. Build it, register [`Transport::status`]
/// with the router, then [`Transport::serve`].
pub struct Transport {
    settings: TransportSettings,
    stats: Arc<Stats>,
}

impl Transport {
    /// A listener with `settings` (a `max_connections` of 0 counts as 1).
    pub fn new(mut settings: TransportSettings) -> Transport {
        settings.max_connections = settings.max_connections.max(1);
        let stats = Stats::new(settings.max_connections, settings.tls.is_some());
        Transport {
            settings,
            stats: Arc::new(stats),
        }
    }

    /// Its contribution to `/about/health` and `/metrics`.
    pub fn status(&self) -> Arc<dyn StatusSource> {
        Arc::new(TransportStatus(self.stats.clone()))
    }

    /// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight
    /// requests finish for at most [`SHUTDOWN_GRACE`] and closes what is left.
    pub async fn serve(
        self,
        listener: TcpListener,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let settings = self.settings;
        let shared = Arc::new(Shared {
            router,
            timeouts: Timeouts {
                header: settings.header_read_timeout,
                body: settings.body_read_timeout,
                idle: settings.idle_timeout,
            },
            trusted: settings.trusted_proxies,
            tls: settings.tls.as_ref().map(TlsConfig::acceptor),
            stats: self.stats,
        });
        let permits = Arc::new(Semaphore::new(settings.max_connections));
        let per_address = Arc::new(PerAddress::new(settings.max_connections_per_address));
        let (stop_tx, stop_rx) = watch::channel(Stop::Run);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        accept_error(e).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                refuse(stream, &shared);
                continue;
            };
            let from = if shared.trusted.trusts(peer.ip()) {
                None
            } else {
                match per_address.take(peer.ip()) {
                    Some(slot) => Some(slot),
                    None => {
                        refuse(stream, &shared);
                        continue;
                    }
                }
            };
            shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
            shared.stats.open.fetch_add(1, Ordering::Relaxed);
            let guard = ConnGuard {
                _permit: permit,
                _from: from,
                stats: shared.stats.clone(),
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(connection(
                stream,
                peer,
                guard,
                shared.clone(),
                stop_rx.clone(),
                done_tx.clone(),
            ));
        }
        drop(listener);
        let _ = stop_tx.send(Stop::Drain);
        drop(done_tx);
        // Every connection task holds a sender: `recv` answers `None` once all are gone.
        if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "closing the connections still open after the shutdown grace");
            let _ = stop_tx.send(Stop::Close);
        }
        Ok(())
    }
}

/// What the connections are told at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Run,
    /// Finish the request in flight, keep no connection alive.
    Drain,
    /// Close now.
    Close,
}

/// Errors of `accept` that concern one connection only; others (out of descriptors)
/// are waited out, as hyper's and axum's servers do.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Closes a connection over the cap at once; plain HTTP clients get a 503 if it fits in
/// the socket's buffer without waiting.
fn refuse(stream: TcpStream, shared: &Shared) {
    let stats = &shared.stats;
    stats.refused.fetch_add(1, Ordering::Relaxed);
    if shared.tls.is_none() {
        let body = r#"{"error":{"code":"server.too_many_connections","message":"too many connections are open; try again later","correlation_id":null}}"#;
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.try_write(answer.as_bytes());
    }
    if stats.refusal_warning_due() {
        tracing::warn!(
            max_connections = stats.max,
            refused_so_far = stats.refused.load(Ordering::Relaxed),
            "connection limit reached; refusing new connections"
        );
    }
}

/// Holds a connection's slot until its socket is dropped (after a WebSocket upgrade, by
/// the WebSocket's task).
struct ConnGuard {
    _permit: OwnedSemaphorePermit,
    /// The connection's place in its address's share (none for a trusted proxy).
    _from: Option<AddressSlot>,
    stats: Arc<Stats>,
}

/// Connections open per TCP peer address; an entry leaves the map when its count
/// reaches zero, so the map never holds more addresses than connections are open.
struct PerAddress {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
}

impl PerAddress {
    fn new(max: usize) -> Self {
        PerAddress {
            max: max.max(1),
            open: std::sync::Mutex::default(),
        }
    }

    /// A place for one more connection from `ip`, if it has fewer than `max` open.
    fn take(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            if *n == 0 {
                open.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            ip,
            of: self.clone(),
        })
    }
}

/// One connection's place in its address's share; dropping it gives it back.
struct AddressSlot {
    ip: std::net::IpAddr,
    of: Arc<PerAddress>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.of.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header: Duration,
    body: Duration,
    idle: Duration,
}

/// What every connection task shares.
struct Shared {
    router: Router,
    timeouts: Timeouts,
    trusted: TrustedProxies,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stats: Arc<Stats>,
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    guard: ConnGuard,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Stop>,
    _done: mpsc::Sender<()>,
) {
    let accepted = Instant::now();
    let activity = Arc::new(Activity::new());
    let io = Tracked::new(stream, activity.clone(), &shared, guard);
    match &shared.tls {
        None => serve_http(io, peer, activity, shared, stop).await,
        Some(acceptor) => {
            // The handshake is part of the first request's head time.
            let deadline = accepted + shared.timeouts.header;
            let handshake = tokio::time::timeout_at(deadline, acceptor.accept(io));
            let tls = tokio::select! {
                r = handshake => r,
                _ = stop.wait_for(|s| *s != Stop::Run) => return,
            };
            match tls {
                Ok(Ok(tls)) => serve_http(tls, peer, activity, shared, stop).await,
                Ok(Err(e)) => {
                    // A read deadline inside the handshake is already counted.
                    if e.kind() != io::ErrorKind::TimedOut {
                        shared.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    shared.stats.count(Timeout::Header);
                    tracing::debug!(%peer, "TLS handshake timed out");
                }
            }
        }
    }
}

async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<Stop>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req| handle(req, peer, activity.clone(), shared.clone()))
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    // Our deadlines, not hyper's (whose header timer also cuts idle keep-alives short).
    http.header_read_timeout(None)
        .keep_alive(true)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = http.serve_connection(TokioIo::new(io), svc).with_upgrades();
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            changed = stop.changed() => {
                let now = if changed.is_ok() { *stop.borrow_and_update() } else { Stop::Close };
                match now {
                    Stop::Run => {}
                    Stop::Drain if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    Stop::Drain => {}
                    Stop::Close => return,
                }
            }
        }
    }
}

/// One request: the client address, the body deadline, the phase bookkeeping, then the
/// router.
async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    activity: Arc<Activity>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible> {
    let guard = RequestGuard::begin(activity);
    let client = client_addr(peer, req.headers(), &shared.trusted);
    let timed_out = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = DeadlineBody::new(body, shared.timeouts.body, timed_out.clone());
    let mut req = Request::from_parts(parts, Body::new(body));
    req.extensions_mut().insert(ConnectInfo(client));
    req.extensions_mut().insert(PeerAddr(peer));
    let resp = match shared.router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let resp = if timed_out.load(Ordering::Relaxed) {
        shared.stats.count(Timeout::Body);
        body_timeout(&resp, shared.timeouts.body)
    } else {
        resp
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        guard.upgrading();
    }
    Ok(resp.map(|b| {
        Body::new(GuardedBody {
            inner: b,
            _guard: guard,
        })
    }))
}

/// `408 input.timeout`, closing the connection (the rest of the body is not read).
fn body_timeout(original: &Response<Body>, limit: Duration) -> Response<Body> {
    let mut e = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "input.timeout",
        format!(
            "the request body did not arrive within {} s",
            limit.as_secs_f64()
        ),
    );
    if let Some(id) = original
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
    {
        e = e.with_correlation(id);
    }
    let mut resp = e.into_response();
    let h = resp.headers_mut();
    h.insert("connection", HeaderValue::from_static("close"));
    // What the router's answers carry (`security_headers`), and CORS's if it added any.
    for (name, value) in original.headers() {
        if name.as_str().starts_with("access-control-")
            || matches!(
                name.as_str(),
                "x-content-type-options" | "cache-control" | "vary"
            )
        {
            h.insert(name.clone(), value.clone());
        }
    }
    resp
}

/// A request body that fails once its deadline has passed, and hands its data over in
/// pieces of at least [`COALESCE`] bytes (or what is left at its end).
///
/// Why gather: hyper hands each read of a body as a slice of its (at least 8 KiB) read
/// buffer, and with `http1::Builder` the next read then allocates a fresh buffer, so a body
/// trickled a byte per TCP segment kept a buffer alive per byte while the handler collected
/// it (measured: 4 KiB of resident memory per byte sent). Gathered, a body costs its own
/// size. Every route reads its body whole, so nothing waits on a piece being handed over.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
    /// Data read but not handed over yet.
    gathered: Vec<u8>,
    /// Trailers that came after gathered data, handed over next.
    trailers: Option<Frame<Bytes>>,
    done: bool,
}

/// Data is handed over in pieces of at least this many bytes (but the last).
const COALESCE: usize = 16 * 1024;

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration, timed_out: Arc<AtomicBool>) -> Self {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            timed_out,
            gathered: Vec::new(),
            trailers: None,
            done: false,
        }
    }

    fn hand_over(&mut self) -> Frame<Bytes> {
        Frame::data(Bytes::from(std::mem::take(&mut self.gathered)))
    }
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Some(t) = this.trailers.take() {
            return Poll::Ready(Some(Ok(t)));
        }
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) if this.gathered.is_empty() && data.len() >= COALESCE => {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(data) => {
                        this.gathered.extend_from_slice(&data);
                        if this.gathered.len() >= COALESCE {
                            return Poll::Ready(Some(Ok(this.hand_over())));
                        }
                    }
                    Err(trailers) if this.gathered.is_empty() => {
                        return Poll::Ready(Some(Ok(trailers)));
                    }
                    Err(trailers) => {
                        this.trailers = Some(trailers);
                        return Poll::Ready(Some(Ok(this.hand_over())));
                    }
                },
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if this.gathered.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(this.hand_over())));
                }
                Poll::Pending => {
                    if this.deadline.as_mut().poll(cx).is_ready() {
                        this.done = true;
                        this.gathered = Vec::new();
                        this.timed_out.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.trailers.is_none()
            && (self.done || (self.gathered.is_empty() && self.inner.is_end_stream()))
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let held = u64::try_from(self.gathered.len()).unwrap_or(u64::MAX);
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(held));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(held).max(hint.lower()));
        }
        hint
    }
}

/// A response body that tells the connection when it is done (sent or dropped).
struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Where a connection is between requests: what its reads may wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the first request's head has arrived (TLS handshake included).
    First,
    /// Kept alive, waiting for the next request since the instant given.
    Idle(Instant),
    /// The next request's head has been arriving since the instant given.
    Head(Instant),
    /// Requests in flight (handled, or their answers being sent); `upgrade` once an
    /// answer is `101 Switching Protocols`.
    Busy { requests: u32, upgrade: bool },
    /// Handed over to a WebSocket (or another upgraded protocol).
    Upgraded,
}

/// The phase of one connection, shared by its I/O and its requests.
struct Activity {
    phase: Mutex<Phase>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            phase: Mutex::new(Phase::First),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Phase) -> T) -> T {
        let mut p = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut p)
    }

    /// Bytes arrived.
    fn on_read(&self) {
        self.with(|p| {
            if let Phase::Idle(_) = p {
                *p = Phase::Head(Instant::now());
            }
        });
    }

    /// When a read waiting now must give up, and what that would be.
    fn read_deadline(&self, accepted: Instant, t: &Timeouts) -> Option<(Instant, Timeout)> {
        self.with(|p| match *p {
            Phase::First => Some((accepted + t.header, Timeout::Header)),
            Phase::Idle(since) => Some((since + t.idle, Timeout::Idle)),
            Phase::Head(since) => Some((since + t.header, Timeout::Header)),
            Phase::Busy { .. } | Phase::Upgraded => None,
        })
    }
}

/// A request in flight; dropped with its answer's body.
struct RequestGuard {
    activity: Arc<Activity>,
}

impl RequestGuard {
    fn begin(activity: Arc<Activity>) -> RequestGuard {
        activity.with(|p| {
            *p = match *p {
                Phase::Busy { requests, upgrade } => Phase::Busy {
                    requests: requests.saturating_add(1),
                    upgrade,
                },
                Phase::Upgraded => Phase::Upgraded,
                _ => Phase::Busy {
                    requests: 1,
                    upgrade: false,
                },
            }
        });
        RequestGuard { activity }
    }

    fn upgrading(&self) {
        self.activity.with(|p| {
            if let Phase::Busy { upgrade, .. } = p {
                *upgrade = true;
            }
        });
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.activity.with(|p| {
            if let Phase::Busy { requests, upgrade } = *p {
                *p = if requests > 1 {
                    Phase::Busy {
                        requests: requests - 1,
                        upgrade,
                    }
                } else if upgrade {
                    Phase::Upgraded
                } else {
                    Phase::Idle(Instant::now())
                };
            }
        });
    }
}

/// Which deadline ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timeout {
    Header,
    Idle,
    Body,
    Write,
}

impl Timeout {
    fn error(self) -> io::Error {
        let what = match self {
            Timeout::Header => "the request head did not arrive in time",
            Timeout::Idle => "the connection was idle too long",
            Timeout::Body => "the request body did not arrive in time",
            Timeout::Write => "the peer stopped reading",
        };
        io::Error::new(io::ErrorKind::TimedOut, what)
    }
}

/// A connection's socket with its deadlines (see the module documentation) and its slot
/// under the connection cap.
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    accepted: Instant,
    timeouts: Timeouts,
    stats: Arc<Stats>,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    /// Since when writes have been blocked (none since the last progress).
    write_blocked: Option<Instant>,
    _guard: ConnGuard,
}

impl<S> Tracked<S> {
    fn new(inner: S, activity: Arc<Activity>, shared: &Shared, guard: ConnGuard) -> Self {
        Tracked {
            inner,
            activity,
            accepted: Instant::now(),
            timeouts: shared.timeouts,
            stats: shared.stats.clone(),
            read_timer: None,
            write_timer: None,
            write_blocked: None,
            _guard: guard,
        }
    }

    /// `Pending`, or the timeout error once `deadline` has passed.
    fn wait(
        timer: &mut Option<Pin<Box<Sleep>>>,
        deadline: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if t.deadline() != deadline {
            t.as_mut().reset(deadline);
        }
        t.as_mut().poll(cx)
    }

    fn write_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let since = *self.write_blocked.get_or_insert_with(Instant::now);
        match Self::wait(&mut self.write_timer, since + self.timeouts.idle, cx) {
            Poll::Ready(()) => {
                self.stats.count(Timeout::Write);
                Poll::Ready(Err(Timeout::Write.error()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.write_pending(cx),
            ready => {
                self.write_blocked = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.on_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some((deadline, kind)) =
                    this.activity.read_deadline(this.accepted, &this.timeouts)
                else {
                    return Poll::Pending;
                };
                match Self::wait(&mut this.read_timer, deadline, cx) {
                    Poll::Ready(()) => {
                        this.stats.count(kind);
                        Poll::Ready(Err(kind.error()))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(r, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.wrote(r, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.wrote(r, cx)
    }
}

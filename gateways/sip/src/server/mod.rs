//! The shell: sockets, the core task that owns the transaction layer, and the tasks of
//! the transaction user. The only place the SIP gateway touches the network.
//!
//! - UDP: one socket; a receive task parses each datagram (a malformed request gets its
//!   stateless 400 from there) and hands messages to the core.
//! - TCP: an accept loop with a connection cap; each connection has a reader (framing,
//!   idle timeout) and a writer; the core sends through the writer's queue.
//! - The core task feeds the transaction layer with messages, handler commands and its
//!   own deadline (computed by the layer, never a fixed tick), and carries its outputs
//!   out: bytes to sockets, new requests to handler tasks (bounded: beyond the limit a
//!   request is answered 503 at once), responses to the handlers waiting for them.

mod tcp;
mod udp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use conclave_engine::context::{Actor, Origin};
use conclave_engine::service::{GatewayHandle, Request};
use conclave_engine::Command;
use conclave_media::MediaNode;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::app::{self, App, ClientOutcome, CoreCommand, LocalAddrs, Outbox};
use crate::config::SipConfig;
use crate::transaction::{ClientKey, Output, Peer, TimerConfig, TransactionLayer, Transport};
use crate::wire;

/// Handler tasks running at once, at most.
const MAX_HANDLERS: usize = 4096;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding SIP {transport} to {addr}: {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl StartError {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::Bind { .. } => "sip.bind",
        }
    }
}

/// A message for the core task from a socket.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub peer: Peer,
    pub message: rsip::SipMessage,
}

/// The running gateway.
pub struct SipServer {
    app: Arc<App>,
    local: LocalAddrs,
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    tcp_open: Arc<AtomicU64>,
}

impl SipServer {
    /// Binds the sockets, ends the sessions a previous run left behind, and starts
    /// serving.
    pub async fn start(
        config: SipConfig,
        handle: GatewayHandle,
        media: Option<MediaNode>,
    ) -> Result<SipServer, StartError> {
        let udp_socket = match config.udp {
            Some(addr) => Some(Arc::new(tokio::net::UdpSocket::bind(addr).await.map_err(
                |source| StartError::Bind {
                    transport: "UDP",
                    addr,
                    source,
                },
            )?)),
            None => None,
        };
        // Port 0 asks for a free port: TCP takes the one UDP got, so that one address
        // serves both transports as SIP expects.
        let tcp_addr = match (
            config.tcp,
            udp_socket.as_ref().and_then(|s| s.local_addr().ok()),
        ) {
            (Some(t), Some(u)) if t.port() == 0 && t.ip() == u.ip() => Some(u),
            (t, _) => t,
        };
        let tcp_listener =
            match tcp_addr {
                Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(
                    |source| StartError::Bind {
                        transport: "TCP",
                        addr,
                        source,
                    },
                )?),
                None => None,
            };
        let local = LocalAddrs {
            udp: udp_socket.as_ref().and_then(|s| s.local_addr().ok()),
            tcp: tcp_listener.as_ref().and_then(|l| l.local_addr().ok()),
        };
        end_previous_sessions(&handle).await;

        let (cmd_tx, cmd_rx) = mpsc::channel::<CoreCommand>(8192);
        let (in_tx, in_rx) = mpsc::channel::<Inbound>(8192);
        let (stop, stop_rx) = watch::channel(false);
        let app = Arc::new(App::new(
            config.clone(),
            handle,
            media,
            Outbox::new(cmd_tx),
            local,
        ));
        let connections = tcp::Connections::default();
        let tcp_open = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        if let Some(sock) = &udp_socket {
            tasks.push(tokio::spawn(udp::receive(
                sock.clone(),
                in_tx.clone(),
                app.clone(),
                stop_rx.clone(),
            )));
        }
        if let Some(listener) = tcp_listener {
            tasks.push(tokio::spawn(tcp::accept(
                listener,
                in_tx.clone(),
                connections.clone(),
                app.clone(),
                tcp::Limits {
                    max_connections: config.max_tcp_connections,
                    idle: config.tcp_idle_timeout,
                },
                tcp_open.clone(),
                stop_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(core(
            app.clone(),
            in_rx,
            cmd_rx,
            udp_socket,
            connections,
            stop_rx.clone(),
        )));
        tasks.push(tokio::spawn(app::fanout::run(app.clone())));
        tasks.push(tokio::spawn(app::register::expiry_loop(app.clone())));
        tasks.push(tokio::spawn(app::call::timer_loop(app.clone())));
        tasks.push(tokio::spawn(app::call::media_events(app.clone())));
        tasks.push(tokio::spawn(app::leases::run(app.clone())));
        tracing::info!(udp = ?local.udp, tcp = ?local.tcp, domain = %config.addressing.domain, "SIP gateway listening");
        Ok(SipServer {
            app,
            local,
            stop,
            tasks: std::sync::Mutex::new(tasks),
            tcp_open,
        })
    }

    /// Where it listens.
    pub fn local(&self) -> LocalAddrs {
        self.local
    }

    /// Health details.
    pub fn health(&self) -> serde_json::Value {
        let calls = app::lock(&self.app.calls).len();
        let bindings = app::lock(&self.app.registrar).len();
        serde_json::json!({
            "status": "ok",
            "udp": self.local.udp.map(|a| a.to_string()),
            "tcp": self.local.tcp.map(|a| a.to_string()),
            "domain": self.app.config.addressing.domain,
            "registrations": bindings,
            "calls": calls,
            "tcp_connections": self.tcp_open.load(Ordering::Relaxed),
        })
    }

    /// Prometheus lines.
    pub fn metrics(&self) -> String {
        let calls = app::lock(&self.app.calls).len() as u64;
        let bindings = app::lock(&self.app.registrar).len() as u64;
        self.app.metrics.render(&[
            ("conclave_sip_calls", "SIP calls in progress", calls),
            (
                "conclave_sip_registrations",
                "SIP registrar bindings",
                bindings,
            ),
            (
                "conclave_sip_tcp_connections",
                "open SIP TCP connections",
                self.tcp_open.load(Ordering::Relaxed),
            ),
        ])
    }

    /// Stops the sockets and tasks. Calls are not sent BYE: the next start ends their
    /// sessions (`gateway_restarted`), and phones notice the silence (RTP timeout).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *app::lock(&self.tasks));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

/// A previous run's SIP sessions cannot be resumed (its dialogs and bindings were in
/// memory): end them now, journaled as `gateway_restarted`.
async fn end_previous_sessions(handle: &GatewayHandle) {
    let req = Request::new(
        Command::EndGatewaySessions {
            gateway: "sip".into(),
        },
        Actor::Service("sip".into()),
        Origin {
            gateway: "sip".into(),
            protocol: "sip".into(),
            remote_addr: None,
        },
    );
    if let Err(e) = handle.execute(req).await {
        tracing::warn!(error = %e, "ending the previous run's SIP sessions failed");
    }
}

/// The core task: the one owner of the transaction layer.
async fn core(
    app: Arc<App>,
    mut inbound: mpsc::Receiver<Inbound>,
    mut commands: mpsc::Receiver<CoreCommand>,
    udp: Option<Arc<tokio::net::UdpSocket>>,
    connections: tcp::Connections,
    mut stop: watch::Receiver<bool>,
) {
    let mut layer = TransactionLayer::new(TimerConfig {
        max_transactions: app.config.max_transactions,
        max_transactions_per_address: app.config.max_transactions_per_address,
        ..TimerConfig::default()
    });
    let mut pending: HashMap<ClientKey, oneshot::Sender<ClientOutcome>> = HashMap::new();
    let handlers = Arc::new(Semaphore::new(MAX_HANDLERS));
    loop {
        let deadline = layer.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            msg = inbound.recv() => match msg {
                Some(m) => layer.handle_message(Instant::now(), m.peer, m.message),
                None => return,
            },
            cmd = commands.recv() => match cmd {
                Some(CoreCommand::Respond { key, response }) => {
                    layer.respond(Instant::now(), &key, response)
                }
                Some(CoreCommand::Send { to, request, done }) => {
                    if layer.transaction_count() >= app.config.max_transactions {
                        // Not sent at all: a drop, not a timeout.
                        let _ = done.send(ClientOutcome::NotSent);
                    } else {
                        let key = layer.send_request(Instant::now(), to, request);
                        pending.insert(key, done);
                    }
                }
                None => return,
            },
            () = sleep => layer.handle_timeout(Instant::now()),
            _ = stop.changed() => return,
        }
        while let Some(out) = layer.poll_output() {
            match out {
                Output::Transmit { to, bytes } => transmit(&udp, &connections, &to, bytes),
                Output::Request { key, from, request } => {
                    match handlers.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let app = app.clone();
                            tokio::spawn(async move {
                                app.on_request(key, from, request).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            let resp = app::reply::header(
                                app::reply::status(&request, 503, "Service Unavailable"),
                                "Retry-After",
                                "5",
                            );
                            layer.respond(Instant::now(), &key, resp);
                        }
                    }
                }
                // Dialog events share the handlers' bound: a flood of stray ACKs costs
                // at most that many tasks (a dropped ACK is retransmitted with our 2xx).
                Output::Ack { request, .. } => {
                    spawn_bounded(&handlers, app.clone().on_ack(request));
                }
                Output::Cancelled { invite } => {
                    spawn_bounded(&handlers, app.clone().on_cancelled(invite));
                }
                Output::AckTimeout { invite } => {
                    spawn_bounded(&handlers, app.clone().on_ack_timeout(invite));
                }
                Output::Response { key, response } => {
                    let code = response.status_code.code();
                    if code >= 200 {
                        if let Some(done) = pending.remove(&key) {
                            let _ = done.send(ClientOutcome::Answered(code));
                        }
                    }
                }
                Output::Timeout { key } => {
                    if let Some(done) = pending.remove(&key) {
                        let _ = done.send(ClientOutcome::TimedOut);
                    }
                }
            }
        }
    }
}

/// Runs `work` as a task holding one of the handler permits; drops it when none is free.
fn spawn_bounded(
    handlers: &Arc<Semaphore>,
    work: impl std::future::Future<Output = ()> + Send + 'static,
) {
    match handlers.clone().try_acquire_owned() {
        Ok(permit) => {
            tokio::spawn(async move {
                work.await;
                drop(permit);
            });
        }
        Err(_) => tracing::debug!("SIP handlers busy; a dialog event was dropped"),
    }
}

fn transmit(
    udp: &Option<Arc<tokio::net::UdpSocket>>,
    connections: &tcp::Connections,
    to: &Peer,
    bytes: Vec<u8>,
) {
    match to.transport {
        Transport::Udp => {
            if let Some(sock) = udp {
                // UDP is lossy anyway: a full send buffer drops, retransmission timers
                // cover it.
                if let Err(e) = sock.try_send_to(&bytes, to.addr) {
                    tracing::debug!(to = %to.addr, error = %e, "SIP UDP send failed");
                }
            }
        }
        Transport::Tcp => connections.send(to, bytes),
    }
}

/// Bytes of a stateless answer to a malformed request, for the socket tasks.
pub(crate) fn stateless_400(bytes: &[u8], err: &wire::WireError) -> Option<Vec<u8>> {
    wire::stateless_answer(bytes, err)
}

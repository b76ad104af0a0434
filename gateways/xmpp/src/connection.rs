//! The thin shell: one TCP connection to the XMPP server's component port at a time,
//! the XEP-0114 handshake, frames through the core, and reconnection with capped,
//! jittered exponential backoff while the server is down or restarting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_engine::ids::RoomName;
use conclave_engine::service::{
    hash_password, EngineError, FeedEvent, FeedFilter, FeedSubscription, GatewayHandle, Outcome,
    Request,
};
use conclave_engine::{Actor, Command, Origin, RoomChange};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::archive::{ArchiveError, ArchivedMessage, MamPage};
use crate::core::{Core, PublicRoom, NS_COMPONENT};
use crate::error::XmppError;
use crate::framer::{Frame, Framer};
use crate::mam::MamQuery;
use crate::muc::{Action, Archive, Ctx, Exec, Muc, MucConfig};
use crate::xml::{parse_element, Element};
use crate::XmppConfig;

const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// Bytes read at once; the framer bounds what accumulates.
const READ_CHUNK: usize = 16 * 1024;

/// Connection state shared with health and metrics.
#[derive(Debug, Default)]
pub struct Status {
    connected: AtomicBool,
    stopped: AtomicBool,
    reconnects: AtomicU64,
    stanzas_in: AtomicU64,
    stanzas_out: AtomicU64,
    occupants: AtomicU64,
    rooms: AtomicU64,
    in_flight: AtomicU64,
    last_error: Mutex<Option<(String, String)>>,
}

impl Status {
    /// Whether the component is connected and authenticated.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Connection attempts after the first (each after a failure or a lost connection).
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    fn set_error(&self, e: &XmppError) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some((e.code().to_owned(), e.to_string()));
        }
    }

    /// The health document under `sources.xmpp`. Being disconnected does not make the
    /// server unhealthy: the other protocols go on, and the component comes back.
    pub fn health(&self, config: &XmppConfig) -> serde_json::Value {
        let last_error = self
            .last_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .map(|(code, message)| serde_json::json!({ "code": code, "message": message }));
        let state = if self.stopped.load(Ordering::Relaxed) {
            "stopped"
        } else if self.connected() {
            "connected"
        } else {
            "connecting"
        };
        serde_json::json!({
            "status": "ok",
            "state": state,
            "connected": self.connected(),
            "component_domain": config.component_domain,
            "server": config.server,
            "reconnects": self.reconnects(),
            "stanzas_in": self.stanzas_in.load(Ordering::Relaxed),
            "stanzas_out": self.stanzas_out.load(Ordering::Relaxed),
            "occupants": self.occupants.load(Ordering::Relaxed),
            "rooms": self.rooms.load(Ordering::Relaxed),
            "commands_in_flight": self.in_flight.load(Ordering::Relaxed),
            "last_error": last_error,
        })
    }

    /// Prometheus lines.
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        let lines: [(&str, &str, &str, u64); 7] = [
            (
                "conclave_xmpp_connected",
                "gauge",
                "1 while the XMPP component is connected and authenticated",
                u64::from(self.connected()),
            ),
            (
                "conclave_xmpp_reconnects_total",
                "counter",
                "XMPP component connection attempts after the first",
                self.reconnects(),
            ),
            (
                "conclave_xmpp_stanzas_in_total",
                "counter",
                "stanzas received from the XMPP server",
                self.stanzas_in.load(Ordering::Relaxed),
            ),
            (
                "conclave_xmpp_stanzas_out_total",
                "counter",
                "stanzas sent to the XMPP server",
                self.stanzas_out.load(Ordering::Relaxed),
            ),
            (
                "conclave_xmpp_occupants",
                "gauge",
                "XMPP clients in rooms (one per full JID and room)",
                self.occupants.load(Ordering::Relaxed),
            ),
            (
                "conclave_xmpp_rooms",
                "gauge",
                "rooms with at least one XMPP occupant",
                self.rooms.load(Ordering::Relaxed),
            ),
            (
                "conclave_xmpp_commands_in_flight",
                "gauge",
                "engine commands the XMPP gateway is waiting on",
                self.in_flight.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in lines {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        out
    }
}

/// The running component.
pub struct XmppGateway {
    config: XmppConfig,
    status: Arc<Status>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl XmppGateway {
    /// Starts connecting in the background (call inside a Tokio runtime); a server that
    /// is down is not an error here, it is retried with backoff.
    pub fn start(config: XmppConfig, handle: GatewayHandle) -> Self {
        let status = Arc::new(Status::default());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(config.clone(), handle, status.clone(), stop_rx));
        XmppGateway {
            config,
            status,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Shared connection state.
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// Health details.
    pub fn health(&self) -> serde_json::Value {
        self.status.health(&self.config)
    }

    /// Prometheus lines.
    pub fn metrics(&self) -> String {
        self.status.metrics()
    }

    /// Closes the stream politely (bounded in time) and ends the task.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(mut task) = task {
            if tokio::time::timeout(Duration::from_secs(3), &mut task)
                .await
                .is_err()
            {
                task.abort();
                let _ = task.await;
            }
        }
        self.status.connected.store(false, Ordering::Relaxed);
        self.status.stopped.store(true, Ordering::Relaxed);
    }
}

/// The reconnect loop. The MUC core and the feed live across connections: while the
/// server is away the core keeps following the engine (its stanzas have nowhere to go
/// and are dropped), and on reconnecting it re-announces every room to its occupants.
async fn run(
    config: XmppConfig,
    handle: GatewayHandle,
    status: Arc<Status>,
    mut stop: watch::Receiver<bool>,
) {
    end_previous_sessions(&handle).await;
    let mut driver = Driver::new(&config, handle, status.clone());
    let mut delay = config.backoff_min;
    let mut first = true;
    loop {
        if *stop.borrow() {
            return;
        }
        if !first {
            status.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        let outcome = session(&config, &mut driver, &status, &mut stop, &mut delay).await;
        status.connected.store(false, Ordering::Relaxed);
        match outcome {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(code = e.code(), error = %e, server = %config.server, "XMPP component connection lost or refused; retrying");
                status.set_error(&e);
            }
        }
        let wait = tokio::time::sleep(jitter(delay));
        tokio::pin!(wait);
        delay = (delay * 2).min(config.backoff_max);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                _ = stop.changed() => return,
                input = driver.background() => {
                    if input.is_err() {
                        return;
                    }
                    // Nobody to send to: dropped; `resync` repairs on reconnect.
                    let _ = driver.flush();
                }
            }
        }
    }
}

/// A previous run's XMPP occupants cannot be resumed (nicknames and full JIDs were in
/// memory): end their sessions now, journaled as `gateway_restarted`.
async fn end_previous_sessions(handle: &GatewayHandle) {
    let req = Request::new(
        Command::EndGatewaySessions {
            gateway: "xmpp".into(),
        },
        Actor::Service("xmpp".into()),
        origin(),
    );
    if let Err(e) = handle.execute(req).await {
        tracing::warn!(error = %e, "ending the previous run's XMPP sessions failed");
    }
}

fn origin() -> Origin {
    Origin {
        gateway: "xmpp".into(),
        protocol: "xmpp".into(),
        // The XMPP server authenticated the user; it does not tell components from
        // where they connect.
        remote_addr: None,
    }
}

/// Full jitter in the upper half: `[d/2, d]`, so that many components restarted at
/// once do not reconnect in step, and the wait never collapses to nothing.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 4];
    let r = if getrandom::fill(&mut b).is_ok() {
        u32::from_le_bytes(b)
    } else {
        u32::MAX / 2
    };
    let half = d / 2;
    half + half.mul_f64(f64::from(r) / f64::from(u32::MAX))
}

/// Commands in flight above which new stanzas are refused with `resource-constraint`
/// (the engine is slower than the clients; they retry).
const MAX_IN_FLIGHT: usize = 20_000;

type CommandResult = (u64, Result<Outcome, EngineError>);

/// What the connection loop waits on besides the socket.
enum Input {
    Event(Arc<FeedEvent>),
    Result(CommandResult),
    Renew,
}

/// The core, the MUC core and their inputs: the engine's feed, command results and the
/// lease clock.
struct Driver {
    core: Core,
    muc: Muc,
    handle: GatewayHandle,
    feed: FeedSubscription,
    results_tx: mpsc::UnboundedSender<CommandResult>,
    results_rx: mpsc::UnboundedReceiver<CommandResult>,
    renew: tokio::time::Interval,
    status: Arc<Status>,
}

impl Driver {
    fn new(config: &XmppConfig, handle: GatewayHandle, status: Arc<Status>) -> Self {
        let mut nonce = [0u8; 8];
        let _ = getrandom::fill(&mut nonce);
        let mut muc_config = MucConfig::new(&config.component_domain);
        if let Some(d) = &config.user_domains {
            muc_config.user_domains.clone_from(d);
        }
        let feed = handle.subscribe(handle.engine().head() + 1, FeedFilter::all());
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let lease = handle.engine().read(|s| s.policy.session_lease_secs);
        let every = if lease == 0 {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(u64::from(lease / 4).max(1))
        };
        let mut renew = tokio::time::interval(every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Driver {
            core: Core::new(&config.component_domain),
            muc: Muc::new(muc_config, u64::from_le_bytes(nonce)),
            handle,
            feed,
            results_tx,
            results_rx,
            renew,
            status,
        }
    }

    /// Waits for the next input that is not a stanza and applies it.
    async fn background(&mut self) -> Result<(), EngineError> {
        let input = tokio::select! {
            e = self.feed.next() => Input::Event(e?),
            Some(r) = self.results_rx.recv() => Input::Result(r),
            _ = self.renew.tick() => Input::Renew,
        };
        self.apply(input);
        // Whatever else is committed already goes in the same batch.
        while let Some(e) = self.feed.try_next()? {
            self.apply(Input::Event(e));
        }
        Ok(())
    }

    fn apply(&mut self, input: Input) {
        let engine = self.handle.engine().clone();
        let archive = JournalArchive { engine: &engine };
        let now = engine.now();
        let muc = &mut self.muc;
        match input {
            Input::Event(e) => engine.read(|st| {
                muc.event(
                    &e.event,
                    e.record.meta.correlation_id.as_deref(),
                    &Ctx {
                        state: st,
                        now,
                        archive: &archive,
                    },
                );
            }),
            Input::Result((token, r)) => engine.read(|st| {
                muc.result(
                    token,
                    &r,
                    &Ctx {
                        state: st,
                        now,
                        archive: &archive,
                    },
                );
            }),
            // Without leases (an operator may turn them off) there is nothing to renew.
            Input::Renew => {
                if engine.read(|s| s.policy.session_lease_secs) > 0 {
                    muc.renew_all();
                }
            }
        }
    }

    /// A stanza from the server: the component domain's own, or the MUC's.
    fn stanza(&mut self, el: &Element) -> Vec<Element> {
        let engine = self.handle.engine().clone();
        let to_room = el
            .get_attr("to")
            .and_then(crate::muc::jid::Jid::parse)
            .is_some_and(|j| j.node.is_some());
        if !to_room {
            return self.core.handle(el, || public_rooms(&self.handle));
        }
        let kind = el.get_attr("type").unwrap_or("");
        if self.muc.in_flight() >= MAX_IN_FLIGHT && kind != "error" && kind != "result" {
            return vec![crate::muc::stanzas::error_reply(
                el,
                "wait",
                "resource-constraint",
                Some("the service is busy; retry in a moment"),
            )];
        }
        let archive = JournalArchive { engine: &engine };
        let now = engine.now();
        let muc = &mut self.muc;
        engine.read(|st| {
            muc.stanza(
                el,
                &Ctx {
                    state: st,
                    now,
                    archive: &archive,
                },
            )
        });
        self.flush()
    }

    /// After (re)connecting.
    fn resync(&mut self) -> Vec<Element> {
        let engine = self.handle.engine().clone();
        let archive = JournalArchive { engine: &engine };
        let now = engine.now();
        let muc = &mut self.muc;
        engine.read(|st| {
            muc.resync(&Ctx {
                state: st,
                now,
                archive: &archive,
            })
        });
        self.flush()
    }

    /// Starts the commands the core asked for; returns the stanzas to send.
    fn flush(&mut self) -> Vec<Element> {
        let mut out = Vec::new();
        for action in self.muc.drain() {
            match action {
                Action::Send(el) => out.push(el),
                Action::Execute(exec) => self.spawn(*exec),
            }
        }
        let occupants = self.muc.occupants();
        let gauges = [
            (&self.status.occupants, occupants.count()),
            (&self.status.rooms, occupants.rooms().count()),
            (&self.status.in_flight, self.muc.in_flight()),
        ];
        for (gauge, value) in gauges {
            gauge.store(value as u64, Ordering::Relaxed);
        }
        out
    }

    /// Runs a command. Commands are queued in the engine in the order the core asked
    /// for them (one client's messages stay in order); their answers come back as they
    /// are durable. A room password is hashed first, off this task.
    fn spawn(&self, exec: Exec) {
        let tx = self.results_tx.clone();
        if exec.password.is_none() {
            let Exec {
                token,
                actor,
                command,
                correlation,
                ..
            } = exec;
            let mut req = Request::new(command, actor, origin());
            req.correlation_id = correlation;
            let answer = self.handle.submit(req);
            tokio::spawn(async move {
                let _ = tx.send((token, answer.await));
            });
            return;
        }
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let Exec {
                token,
                actor,
                mut command,
                password,
                correlation,
            } = exec;
            if let (Some(p), Command::ConfigureRoom { changes, .. }) = (password, &mut command) {
                let plaintext = p.expose().to_owned();
                match tokio::task::spawn_blocking(move || hash_password(&plaintext)).await {
                    Ok(Ok(hash)) => changes.push(RoomChange::AccessPassword(Some(hash))),
                    _ => {
                        let _ = tx.send((
                            token,
                            Err(EngineError::Task("hashing the room password failed".into())),
                        ));
                        return;
                    }
                }
            }
            let mut req = Request::new(command, actor, origin());
            req.correlation_id = correlation;
            let r = handle.execute(req).await;
            let _ = tx.send((token, r));
        });
    }
}

/// The archive the MUC core reads: the engine's journal.
struct JournalArchive<'a> {
    engine: &'a conclave_engine::service::Engine,
}

impl Archive for JournalArchive<'_> {
    fn recent(&self, room: &RoomName, max: usize) -> Vec<ArchivedMessage> {
        crate::archive::recent(self.engine, room, max).unwrap_or_else(|e| {
            tracing::warn!(error = %e, room = %room.as_str(), "reading room history failed");
            Vec::new()
        })
    }

    fn query(&self, room: &RoomName, q: &MamQuery) -> Result<MamPage, ArchiveError> {
        crate::archive::query(self.engine, room, q)
    }
}

/// One connection: `Ok(())` only when asked to stop.
async fn session(
    config: &XmppConfig,
    driver: &mut Driver,
    status: &Status,
    stop: &mut watch::Receiver<bool>,
    delay: &mut Duration,
) -> Result<(), XmppError> {
    let mut stream = tokio::time::timeout(config.io_timeout, TcpStream::connect(&config.server))
        .await
        .map_err(|_| XmppError::Timeout("connecting"))??;
    let _ = stream.set_nodelay(true);
    let mut framer = Framer::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='{NS_COMPONENT}' xmlns:stream='{NS_STREAMS}' to='{}'>",
        crate::xml::escape(&config.component_domain)
    );
    write(&mut stream, config, header.as_bytes()).await?;

    // Handshake, bounded in time as a whole.
    let prefixes = vec![("stream".to_owned(), NS_STREAMS.to_owned())];
    let handshake = async {
        let mut id: Option<String> = None;
        loop {
            while let Some(frame) = framer.next_frame()? {
                match frame {
                    Frame::StreamOpen(head) => {
                        let el =
                            parse_element(&format!("{}/>", head.trim_end_matches('>')), "", &[])?;
                        if el.name != "stream" || el.ns != NS_STREAMS {
                            return Err(XmppError::BadStreamHeader("not an XMPP stream".into()));
                        }
                        let sid = el
                            .get_attr("id")
                            .map(str::to_owned)
                            .ok_or_else(|| XmppError::BadStreamHeader("no stream id".into()))?;
                        let digest = Sha1::digest(format!("{sid}{}", config.secret.expose()));
                        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                        write(
                            &mut stream,
                            config,
                            format!("<handshake>{hex}</handshake>").as_bytes(),
                        )
                        .await?;
                        id = Some(sid);
                    }
                    Frame::Stanza(text) => {
                        let el = parse_element(&text, NS_COMPONENT, &prefixes)?;
                        if el.name == "handshake" && el.ns == NS_COMPONENT && id.is_some() {
                            return Ok(());
                        }
                        if el.name == "error" && el.ns == NS_STREAMS {
                            return Err(XmppError::HandshakeRefused(stream_error(&el)));
                        }
                    }
                    Frame::StreamClose => return Err(XmppError::Closed),
                }
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(XmppError::Closed);
            }
            framer.push(chunk.get(..n).unwrap_or_default());
        }
    };
    tokio::time::timeout(config.io_timeout, handshake)
        .await
        .map_err(|_| XmppError::Timeout("handshake"))??;

    status.connected.store(true, Ordering::Relaxed);
    *delay = config.backoff_min;
    tracing::info!(server = %config.server, domain = %config.component_domain, "XMPP component connected");

    let resync = driver.resync();
    write_all(&mut stream, config, status, &resync).await?;
    loop {
        while let Some(frame) = framer.next_frame()? {
            match frame {
                Frame::StreamOpen(_) => {
                    return Err(XmppError::Malformed("a second stream header".into()))
                }
                Frame::StreamClose => return Err(XmppError::Closed),
                Frame::Stanza(text) => {
                    status.stanzas_in.fetch_add(1, Ordering::Relaxed);
                    let el = match parse_element(&text, NS_COMPONENT, &prefixes) {
                        Ok(el) => el,
                        Err(e) => {
                            // The server framed it, so it is well-formed enough to go on
                            // from; one bad stanza does not cost every user the service.
                            tracing::warn!(code = e.code(), error = %e, "unparsable stanza ignored");
                            continue;
                        }
                    };
                    if el.name == "error" && el.ns == NS_STREAMS {
                        return Err(XmppError::StreamError(stream_error(&el)));
                    }
                    let out = driver.stanza(&el);
                    write_all(&mut stream, config, status, &out).await?;
                }
            }
        }
        tokio::select! {
            read = stream.read(&mut chunk) => {
                let n = read?;
                if n == 0 {
                    return Err(XmppError::Closed);
                }
                framer.push(chunk.get(..n).unwrap_or_default());
            }
            input = driver.background() => {
                if input.is_err() {
                    // The engine stopped: so does the component.
                    return Ok(());
                }
                let out = driver.flush();
                write_all(&mut stream, config, status, &out).await?;
            }
            _ = stop.changed() => {
                // Close our side, then give the server a moment to close its own, so
                // that it logs a clean end rather than a broken connection.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    stream.write_all(b"</stream:stream>").await?;
                    while stream.read(&mut chunk).await? > 0 {}
                    Ok::<(), std::io::Error>(())
                })
                .await;
                return Ok(());
            }
        }
    }
}

/// Writes stanzas in one write.
async fn write_all(
    stream: &mut TcpStream,
    config: &XmppConfig,
    status: &Status,
    out: &[Element],
) -> Result<(), XmppError> {
    if out.is_empty() {
        return Ok(());
    }
    let mut buf = String::new();
    for el in out {
        buf.push_str(&el.to_xml(NS_COMPONENT));
    }
    write(stream, config, buf.as_bytes()).await?;
    status
        .stanzas_out
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    Ok(())
}

async fn write(stream: &mut TcpStream, config: &XmppConfig, bytes: &[u8]) -> Result<(), XmppError> {
    tokio::time::timeout(config.io_timeout, stream.write_all(bytes))
        .await
        .map_err(|_| XmppError::Timeout("writing"))??;
    Ok(())
}

/// The condition of a `<stream:error>`, with its text if any.
fn stream_error(el: &Element) -> String {
    let condition = el
        .elements()
        .find(|c| c.name != "text")
        .map_or("undefined-condition", |c| c.name.as_str());
    match el.elements().find(|c| c.name == "text") {
        Some(t) => format!("{condition}: {}", t.text_content()),
        None => condition.to_owned(),
    }
}

/// The engine's rooms that strangers may see (private rooms are not listed).
fn public_rooms(handle: &GatewayHandle) -> Vec<PublicRoom> {
    handle.engine().read(|st| {
        st.list_rooms()
            .filter(|(_, r)| !r.config.private)
            .take(crate::core::MAX_ITEMS)
            .map(|(n, _)| PublicRoom {
                name: n.as_str().to_owned(),
            })
            .collect()
    })
}

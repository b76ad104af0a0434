//! The tokio shell around the sans-IO core: UDP sockets, the media clock thread, the
//! event fan-out to the gateway.
//!
//! Each leg binds an even RTP port and the next odd port for RTCP. One tokio task per
//! socket feeds received datagrams into the core (behind a mutex, held for microseconds).
//! Mixing runs on a dedicated OS thread, not a tokio worker, so a large mix never stalls
//! signalling: it sleeps until the next 20 ms deadline of a drift-free clock, runs the
//! frame, and sends with non-blocking `send_to` (a full socket buffer drops the packet
//! and counts it). Lock order is always core → sockets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::bridge::Bridge;
use crate::clock::MediaClock;
use crate::conference::{
    ntp_from_system, Channel, Direction, LegId, LegParams, MediaEvent, Output,
};
use crate::error::MediaError;
use crate::g711::G711;
use crate::hold_music;
use crate::mixer::MediaCore;

/// The media node's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Address the RTP/RTCP sockets bind to.
    pub bind: IpAddr,
    /// Address written into SDP (differs from `bind` behind NAT or with 0.0.0.0).
    pub announce: IpAddr,
    /// Inclusive port range; legs take an even port and the next odd one.
    pub port_min: u16,
    pub port_max: u16,
    /// Packetization time; only 20 is supported.
    pub ptime_ms: u32,
    /// The longest jitter buffer playout delay (20..=300, rounded to whole frames): each
    /// leg's delay adapts between 20 ms and this (see `jitter`).
    pub jitter_ms: u32,
    /// Seconds without RTP/RTCP from a sending phone before `RtpTimeout`.
    pub rtp_timeout_secs: u32,
    /// 8 kHz mono 16-bit WAV played to a caller who is alone in a conference.
    pub hold_music: Option<PathBuf>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            announce: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: 16384,
            port_max: 32767,
            ptime_ms: 20,
            jitter_ms: 60,
            rtp_timeout_secs: 30,
            hold_music: None,
        }
    }
}

/// What `open_leg` gives the gateway for its SDP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegInfo {
    pub id: LegId,
    /// Announce address and RTP port (for `c=` and `m=`).
    pub local: SocketAddr,
    /// Announce address and RTCP port (RTP port + 1; for `a=rtcp:` if wanted).
    pub local_rtcp: SocketAddr,
}

/// Node-wide figures for /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaStats {
    pub legs: u64,
    pub conferences: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rtcp_in: u64,
    pub rtcp_out: u64,
    /// Packets that arrived after their playout time.
    pub late: u64,
    /// Frames missing at playout (concealed).
    pub lost: u64,
    pub duplicate: u64,
    /// Frames dropped because a phone sent faster than real time.
    pub overflow: u64,
    pub malformed: u64,
    /// Datagrams from an address other than the leg's remote.
    pub foreign_source: u64,
    pub dtmf_digits: u64,
    pub timeouts: u64,
    /// Datagrams the OS refused to send.
    pub send_errors: u64,
    /// Events no subscriber had room for.
    pub events_dropped: u64,
    pub frames: u64,
    /// Frames skipped because the mixer thread was too late.
    pub frames_skipped: u64,
}

struct LegSockets {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for LegSockets {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Inner {
    config: MediaConfig,
    core: Mutex<MediaCore>,
    sockets: Mutex<HashMap<LegId, LegSockets>>,
    subscribers: Mutex<Vec<mpsc::Sender<MediaEvent>>>,
    next_leg: AtomicU64,
    port_cursor: Mutex<u32>,
    stopping: AtomicBool,
    send_errors: AtomicU64,
    events_dropped: AtomicU64,
    frames: AtomicU64,
    frames_skipped: AtomicU64,
    mixer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Browsers and recordings on the same clock as the mix (see `bridge`).
    bridge: Bridge,
}

/// A poisoned lock only means another thread panicked mid-update of counters or maps
/// that stay consistent; keep serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Capacity of each subscriber's event queue.
const EVENT_QUEUE: usize = 1024;

/// The media node handle; clones share one node.
#[derive(Clone)]
pub struct MediaNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MediaNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaNode")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn validate(c: &MediaConfig) -> Result<(), MediaError> {
    let bad = |m: &str| Err(MediaError::InvalidConfig(m.to_owned()));
    if c.ptime_ms != 20 {
        return bad("ptime_ms must be 20");
    }
    if !(20..=300).contains(&c.jitter_ms) {
        return bad("jitter_ms must be within 20..=300");
    }
    if c.rtp_timeout_secs == 0 {
        return bad("rtp_timeout_secs must be positive");
    }
    if c.port_min == 0 || c.port_min > c.port_max {
        return bad("port range must be non-empty and start above 0");
    }
    let lo = u32::from(c.port_min) + u32::from(c.port_min) % 2;
    if lo + 1 > u32::from(c.port_max) {
        return bad("port range holds no even/odd RTP/RTCP pair");
    }
    if c.announce.is_unspecified() {
        return bad("announce address must be a concrete address");
    }
    Ok(())
}

impl MediaNode {
    /// The address written into SDP for this node's legs.
    pub fn announce(&self) -> IpAddr {
        self.inner.config.announce
    }

    /// Validates the configuration, loads the hold music and starts the mixer thread.
    pub async fn start(config: MediaConfig) -> Result<MediaNode, MediaError> {
        validate(&config)?;
        let music = match &config.hold_music {
            Some(path) => {
                let path = path.clone();
                Some(
                    tokio::task::spawn_blocking(move || hold_music::load(&path))
                        .await
                        .map_err(|e| MediaError::Internal(e.to_string()))??,
                )
            }
            None => None,
        };
        let anchor = (Instant::now(), ntp_from_system(SystemTime::now()));
        let inner = Arc::new(Inner {
            config,
            core: Mutex::new(MediaCore::new(music, anchor)),
            sockets: Mutex::new(HashMap::new()),
            subscribers: Mutex::new(Vec::new()),
            next_leg: AtomicU64::new(1),
            port_cursor: Mutex::new(0),
            stopping: AtomicBool::new(false),
            send_errors: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            mixer: Mutex::new(None),
            bridge: Bridge::new(),
        });
        let weak = Arc::downgrade(&inner);
        let handle = std::thread::Builder::new()
            .name("conclave-media-mixer".into())
            .spawn(move || mixer_thread(weak))
            .map_err(|e| MediaError::Internal(e.to_string()))?;
        *lock(&inner.mixer) = Some(handle);
        Ok(MediaNode { inner })
    }

    /// The bridge to the SFU and the room recorder, driven by this node's mixer clock.
    pub fn bridge(&self) -> &Bridge {
        &self.inner.bridge
    }

    /// A new leg in `conference` (created on first use) for `participant` (the
    /// session the gateway holds for the call: the bridge publishes the caller's audio
    /// to browsers under it), on a fresh even RTP port and the odd port after it for
    /// RTCP.
    pub async fn open_leg(
        &self,
        conference: &str,
        participant: &str,
        codec: G711,
        payload_type: u8,
        dtmf_payload_type: Option<u8>,
    ) -> Result<LegInfo, MediaError> {
        let inner = &self.inner;
        if inner.stopping.load(Ordering::SeqCst) {
            return Err(MediaError::ShutDown);
        }
        // payload types 64..=95 would be taken for RTCP on a muxed port (RFC 5761 §4)
        let valid = |pt: u8| pt <= 127 && !(64..=95).contains(&pt);
        if !valid(payload_type) {
            return Err(MediaError::InvalidPayloadType(payload_type));
        }
        if let Some(pt) = dtmf_payload_type {
            if !valid(pt) || pt == payload_type {
                return Err(MediaError::InvalidPayloadType(pt));
            }
        }
        let (rtp, rtcp, port) = self.bind_pair()?;
        let id = LegId(inner.next_leg.fetch_add(1, Ordering::SeqCst));
        let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::with_capacity(2);
        for (sock, channel) in [(&rtp, Channel::Rtp), (&rtcp, Channel::Rtcp)] {
            let clone = match sock.try_clone().and_then(tokio::net::UdpSocket::from_std) {
                Ok(c) => c,
                Err(e) => {
                    for t in &tasks {
                        t.abort();
                    }
                    return Err(MediaError::Internal(e.to_string()));
                }
            };
            tasks.push(tokio::spawn(recv_loop(
                Arc::downgrade(inner),
                id,
                channel,
                clone,
            )));
        }
        lock(&inner.sockets).insert(id, LegSockets { rtp, rtcp, tasks });
        let c = &inner.config;
        let params = LegParams::random(
            codec,
            payload_type,
            dtmf_payload_type,
            Duration::from_millis(u64::from(c.jitter_ms)),
            Duration::from_secs(u64::from(c.rtp_timeout_secs)),
        );
        lock(&inner.core).add_leg(conference, id, params, Instant::now());
        inner.bridge.leg_opened(id, conference, participant);
        if inner.stopping.load(Ordering::SeqCst) {
            let _ = self.close_leg(id);
            return Err(MediaError::ShutDown);
        }
        Ok(LegInfo {
            id,
            local: SocketAddr::new(c.announce, port),
            local_rtcp: SocketAddr::new(c.announce, port.wrapping_add(1)),
        })
    }

    /// Binds the next free even/odd port pair, rotating through the range.
    fn bind_pair(&self) -> Result<(UdpSocket, UdpSocket, u16), MediaError> {
        let c = &self.inner.config;
        let lo = u32::from(c.port_min) + u32::from(c.port_min) % 2;
        let pairs = (u32::from(c.port_max).saturating_sub(lo + 1)) / 2 + 1;
        let mut cursor = lock(&self.inner.port_cursor);
        for attempt in 0..pairs {
            let idx = (*cursor + attempt) % pairs;
            let Ok(port) = u16::try_from(lo + 2 * idx) else {
                continue;
            };
            let bind = |p: u16| {
                let addr = SocketAddr::new(c.bind, p);
                UdpSocket::bind(addr).map_err(|e| (addr, e))
            };
            let pair = bind(port).and_then(|a| bind(port.wrapping_add(1)).map(|b| (a, b)));
            match pair {
                Ok((a, b)) => {
                    a.set_nonblocking(true)
                        .and_then(|_| b.set_nonblocking(true))
                        .map_err(|e| MediaError::Internal(e.to_string()))?;
                    *cursor = idx + 1;
                    return Ok((a, b, port));
                }
                Err((_, e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
                    ) => {}
                Err((addr, source)) => return Err(MediaError::Bind { addr, source }),
            }
        }
        Err(MediaError::PortsExhausted {
            min: c.port_min,
            max: c.port_max,
        })
    }

    fn known(&self, leg: LegId, ok: bool) -> Result<(), MediaError> {
        if ok {
            Ok(())
        } else {
            Err(MediaError::UnknownLeg(leg))
        }
    }

    /// Where the phone wants RTP (from its SDP); RTCP defaults to RTP port + 1, or pass
    /// the RTP address itself for rtcp-mux.
    pub fn set_remote(
        &self,
        leg: LegId,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
    ) -> Result<(), MediaError> {
        let ok = lock(&self.inner.core).set_remote(leg, rtp, rtcp);
        self.known(leg, ok)
    }

    /// Server-enforced mute: the leg's audio is mixed for nobody from the next frame.
    pub fn set_muted(&self, leg: LegId, muted: bool) -> Result<(), MediaError> {
        let ok = lock(&self.inner.core).set_muted(leg, muted);
        self.known(leg, ok)
    }

    /// The direction from the phone's latest SDP (hold = sendonly or inactive).
    pub fn set_direction(&self, leg: LegId, direction: Direction) -> Result<(), MediaError> {
        let ok = lock(&self.inner.core).set_direction(leg, direction, Instant::now());
        self.known(leg, ok)
    }

    /// Ends a leg and frees its ports; the conference goes when its last leg does.
    pub fn close_leg(&self, leg: LegId) -> Result<(), MediaError> {
        let ok = lock(&self.inner.core).remove_leg(leg);
        self.inner.bridge.leg_closed(leg);
        let sockets = lock(&self.inner.sockets).remove(&leg);
        drop(sockets);
        self.known(leg, ok)
    }

    /// A new subscription to DTMF and timeout events (each subscriber gets every event;
    /// a subscriber that falls 1024 events behind loses the excess, counted).
    pub fn events(&self) -> mpsc::Receiver<MediaEvent> {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        lock(&self.inner.subscribers).push(tx);
        rx
    }

    pub fn stats(&self) -> MediaStats {
        let inner = &self.inner;
        let (c, legs, conferences) = {
            let core = lock(&inner.core);
            (core.counters(), core.leg_count(), core.conference_count())
        };
        MediaStats {
            legs: legs as u64,
            conferences: conferences as u64,
            packets_in: c.packets_in,
            packets_out: c.packets_out,
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            rtcp_in: c.rtcp_in,
            rtcp_out: c.rtcp_out,
            late: c.jitter.late,
            lost: c.jitter.lost,
            duplicate: c.jitter.duplicate,
            overflow: c.jitter.overflow,
            malformed: c.malformed,
            foreign_source: c.foreign_source,
            dtmf_digits: c.dtmf_digits,
            timeouts: c.timeouts,
            send_errors: inner.send_errors.load(Ordering::Relaxed),
            events_dropped: inner.events_dropped.load(Ordering::Relaxed),
            frames: inner.frames.load(Ordering::Relaxed),
            frames_skipped: inner.frames_skipped.load(Ordering::Relaxed),
        }
    }

    /// Stops the mixer thread, closes every leg and refuses new ones.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.stopping.store(true, Ordering::SeqCst);
        let handle = lock(&inner.mixer).take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        let ids: Vec<LegId> = lock(&inner.sockets).keys().copied().collect();
        for id in ids {
            let _ = self.close_leg(id);
        }
        lock(&inner.subscribers).clear();
    }
}

impl Inner {
    fn dispatch(&self, events: Vec<MediaEvent>) {
        if events.is_empty() {
            return;
        }
        let mut subs = lock(&self.subscribers);
        for e in events {
            subs.retain(|tx| match tx.try_send(e.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.events_dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
    }
}

async fn recv_loop(inner: Weak<Inner>, leg: LegId, channel: Channel, sock: tokio::net::UdpSocket) {
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%leg, error = %e, "media recv error");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let data = buf.get(..n).unwrap_or(&[]);
        let mut events = Vec::new();
        lock(&inner.core).receive(leg, channel, from, data, Instant::now(), &mut |o| {
            if let Output::Event(e) = o {
                events.push(e);
            }
        });
        inner.dispatch(events);
    }
}

fn mixer_thread(inner: Weak<Inner>) {
    let mut clock = MediaClock::new(Instant::now(), Duration::from_millis(20));
    let mut events = Vec::new();
    let mut captured = Vec::new();
    loop {
        let Some(node) = inner.upgrade() else {
            return;
        };
        if node.stopping.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let due = clock.due(now);
        for _ in 0..due {
            let now = Instant::now();
            let mut plan = node.bridge.plan();
            let mut core = lock(&node.core);
            for (conference, input) in plan.inputs.drain(..) {
                core.bridge(&conference, input);
            }
            let sockets = lock(&node.sockets);
            core.tick(now, &mut |o| match o {
                Output::Transmit {
                    leg,
                    channel,
                    dest,
                    data,
                } => {
                    let sent = sockets.get(&leg).map(|s| {
                        let sock = match channel {
                            Channel::Rtp => &s.rtp,
                            Channel::Rtcp => &s.rtcp,
                        };
                        sock.send_to(data, dest)
                    });
                    if !matches!(sent, Some(Ok(_))) {
                        node.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Output::Event(e) => events.push(e),
                Output::Captured { leg, pcm } => captured.push((leg, *pcm)),
            });
            drop(sockets);
            drop(core);
            node.bridge.after_tick(plan, &captured);
            captured.clear();
            node.frames.fetch_add(1, Ordering::Relaxed);
            node.dispatch(std::mem::take(&mut events));
        }
        node.frames_skipped
            .store(clock.skipped(), Ordering::Relaxed);
        let wait = clock
            .next_deadline()
            .saturating_duration_since(Instant::now());
        drop(node);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

//! The clients process of the SFU benchmark: synthetic publishers and subscribers
//! (webrtc-crate peers, as in the SFU tests) and the raw relay's UDP senders and
//! receivers, driven by the parent over stdin/stdout, so that their SRTP, interceptors
//! and sockets cost the parent nothing.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;

use crate::common::{client, count, local_track, payload_type, Received, LOCAL};
use crate::signal;
use crate::wire::{emit, id, op, stdin_lines};
use crate::PAYLOAD;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What one peer received, per remote track (`common::count` fills it).
type Tracks = Arc<Mutex<Vec<Arc<Received>>>>;

#[derive(Default)]
struct State {
    /// Each peer's inbox of relayed signalling, by id.
    peers: Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>,
    /// What each peer received, per remote track.
    received: Mutex<Vec<Tracks>>,
    /// Stops the publishers' writers (`stop` with id `writers`).
    stop_writers: Arc<AtomicBool>,
    /// Stops the relay's threads (`stop` with id `relay`).
    stop_relay: Arc<AtomicBool>,
    /// The relay's senders, bound at `relay` and started at `relay_start`.
    relay_senders: Mutex<Vec<UdpSocket>>,
}

/// The child's main loop: one command per stdin line until EOF.
pub async fn run() {
    let state = Arc::new(State::default());
    let mut commands = stdin_lines();
    while let Some(cmd) = commands.recv().await {
        match op(&cmd) {
            "publisher" | "subscriber" => {
                let (tx, rx) = mpsc::unbounded_channel();
                lock(&state.peers).insert(id(&cmd).to_owned(), tx);
                tokio::spawn(peer(state.clone(), cmd, rx));
            }
            "answer" | "candidate" | "server_offer" => {
                if let Some(tx) = lock(&state.peers).get(id(&cmd)) {
                    let _ = tx.send(cmd.clone());
                }
            }
            "status" => {
                let (mut tracks, mut flowing) = (0, 0);
                for list in lock(&state.received).iter() {
                    for r in lock(list).iter() {
                        tracks += 1;
                        flowing += usize::from(r.packets.load(Ordering::Relaxed) > 0);
                    }
                }
                emit(
                    &json!({"op": "status", "id": "", "tracks": tracks, "tracks_flowing": flowing}),
                );
            }
            "relay" => relay(&state, &cmd),
            "relay_start" => {
                let port = cmd["port"].as_u64().and_then(|p| u16::try_from(p).ok());
                if let Some(port) = port {
                    relay_start(&state, port);
                }
            }
            "stop" => {
                let flag = if id(&cmd) == "relay" {
                    &state.stop_relay
                } else {
                    &state.stop_writers
                };
                flag.store(true, Ordering::Relaxed);
                emit(&json!({"op": "stopped", "id": id(&cmd)}));
            }
            other => eprintln!("sfu bench clients: unknown command {other}"),
        }
    }
}

/// One synthetic peer: a publisher (a video track written as fast as its connection
/// takes packets, once connected) or a subscriber (an idle audio track, so it has
/// something to offer); both count what they receive.
async fn peer(state: Arc<State>, cmd: Value, mut inbox: mpsc::UnboundedReceiver<Value>) {
    let who = id(&cmd).to_owned();
    if let Err(e) = peer_inner(&state, &cmd, &who, &mut inbox).await {
        eprintln!("sfu bench clients: {who}: {e}");
    }
}

async fn peer_inner(
    state: &Arc<State>,
    cmd: &Value,
    who: &str,
    inbox: &mut mpsc::UnboundedReceiver<Value>,
) -> Result<(), String> {
    let ssrc = cmd["ssrc"]
        .as_u64()
        .and_then(|s| u32::try_from(s).ok())
        .ok_or("no ssrc")?;
    let publisher = op(cmd) == "publisher";
    let (mut c, tracks) = client(who).await;
    let track = if publisher {
        local_track(who, RtpCodecKind::Video, "video/VP8", 90_000, 0, ssrc)
    } else {
        local_track(who, RtpCodecKind::Audio, "audio/opus", 48_000, 2, ssrc)
    };
    let sender =
        c.pc.add_track(track.clone())
            .await
            .map_err(|e| e.to_string())?;
    count(&mut c, tracks);
    lock(&state.received).push(c.received.clone());
    signal::offer(&c, who).await?;
    let (up, who2, stop) = (
        c.connected.clone(),
        who.to_owned(),
        state.stop_writers.clone(),
    );
    tokio::spawn(async move {
        if !signal::connected(up, &who2).await {
            eprintln!("sfu bench clients: {who2} never connected");
            return;
        }
        if !publisher {
            return;
        }
        let pt = payload_type(&sender).await;
        let body = payload();
        let mut seq: u16 = 0;
        while !stop.load(Ordering::Relaxed) {
            let packet = rtp::Packet {
                header: rtp::Header {
                    version: 2,
                    payload_type: pt,
                    sequence_number: seq,
                    timestamp: u32::from(seq) * 30,
                    ssrc,
                    ..Default::default()
                },
                payload: body.clone(),
            };
            if track.write_rtp(packet).await.is_err() {
                return;
            }
            seq = seq.wrapping_add(1);
        }
    });
    signal::follow(&c, who, inbox).await
}

/// A VP8-typed body: a payload descriptor with S=1, then zeros.
fn payload() -> Bytes {
    let mut p = vec![0u8; PAYLOAD];
    p[..4].copy_from_slice(&[0x10, 0x00, 0x9d, 0x01]);
    Bytes::from(p)
}

/// The relay's ends: `receivers` sockets that drain what the relay sends them, and
/// `pubs` sender sockets, bound now so the parent knows their addresses; replies
/// `relay_ready` with both lists of ports.
fn relay(state: &Arc<State>, cmd: &Value) {
    let n = |k: &str| cmd[k].as_u64().unwrap_or(0) as usize;
    let mut sinks = Vec::new();
    for _ in 0..n("receivers") {
        let Ok(s) = UdpSocket::bind((LOCAL, 0)) else {
            eprintln!("sfu bench clients: no receiver socket");
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        sinks.push(s.local_addr().map_or(0, |a| a.port()));
        let stop = state.stop_relay.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let _ = s.recv(&mut buf);
            }
        });
    }
    let mut senders = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..n("pubs") {
        let Ok(s) = UdpSocket::bind((LOCAL, 0)) else {
            eprintln!("sfu bench clients: no sender socket");
            return;
        };
        ports.push(s.local_addr().map_or(0, |a| a.port()));
        senders.push(s);
    }
    *lock(&state.relay_senders) = senders;
    emit(&json!({"op": "relay_ready", "id": id(cmd), "sinks": sinks, "senders": ports}));
}

/// Each relay sender sends 1,000-byte RTP-shaped datagrams to the relay at `port`, as
/// fast as it can (yielding every 64, as the SFU's publishers are paced a little by
/// their connections), until stopped.
fn relay_start(state: &Arc<State>, port: u16) {
    for (i, s) in std::mem::take(&mut *lock(&state.relay_senders))
        .into_iter()
        .enumerate()
    {
        let stop = state.stop_relay.clone();
        std::thread::spawn(move || {
            let mut packet = vec![0u8; 12 + PAYLOAD];
            packet[0] = 0x80;
            packet[8..12].copy_from_slice(&(i as u32).to_be_bytes());
            let mut n: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                packet[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                let _ = s.send_to(&packet, (LOCAL, port));
                n = n.wrapping_add(1);
                if n.is_multiple_of(64) {
                    std::thread::yield_now();
                }
            }
        });
    }
}

//! The clients process of the bridge benchmark: synthetic browsers (webrtc peers
//! publishing Opus) and UDP phones (PCMU), driven by the parent over stdin/stdout, so
//! that their SRTP, Opus encoding and sockets cost the parent nothing.
//!
//! Two modes per client, chosen by the parent: *load* (one second of speech-like audio
//! encoded once and replayed, received packets only counted) for the CPU rooms, and
//! *latency* (live silence/tone schedule, received audio decoded and watched for tone
//! onsets) for the mouth-to-ear figures.

use std::collections::HashMap;
use std::f64::consts::PI;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use conclave_media::audio::{
    OpusDecoder, OpusEncoder, FRAME_NARROW, FRAME_WIDE, RATE_NARROW, RATE_WIDE,
};
use conclave_media::rtp::{RtpHeader, RtpPacket};
use conclave_media::G711;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemoteEvent;

use crate::common::{client, local_track, payload_type, LOCAL};
use crate::signal;
use crate::wire::{emit, id, op, stdin_lines};

/// The phones' tone (12 whole cycles per 20 ms frame: one payload repeats seamlessly).
pub const PHONE_HZ: f64 = 600.0;
/// The browsers' tone (20 whole cycles per frame).
pub const BROWSER_HZ: f64 = 1000.0;
/// Peak level of both tones (-10 dBFS).
const AMPLITUDE: f64 = 0.3 * 32767.0;
/// Opus bitrate of a synthetic browser (what Chromium sends for speech, about).
const BROWSER_BPS: i32 = 32_000;
/// The detection block: 2.5 ms.
const BLOCK: Duration = Duration::from_micros(2500);
/// RMS above which a block is "tone" (-30 dBFS; the tone is about -13 dBFS RMS).
const ONSET_RMS: f64 = 1000.0;
/// Quiet needed before the next onset counts.
const REARM: Duration = Duration::from_millis(100);
/// Tone on, then off, per onset.
const TONE_ON: Duration = Duration::from_millis(200);
const TONE_OFF: Duration = Duration::from_millis(300);
/// Onsets at the start of a latency run not reported (playout queues settling).
pub const DISCARDED_ONSETS: usize = 2;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn tone(out: &mut [i16], rate: u32, freq: f64, start: usize) {
    for (i, s) in out.iter_mut().enumerate() {
        let t = (start + i) as f64 / f64::from(rate);
        *s = (AMPLITUDE * (2.0 * PI * freq * t).sin()) as i16;
    }
}

/// One second of a deterministic speech-like signal at `rate` (8 or 48 kHz): a voiced
/// source (10 harmonics of a fundamental gliding 110–190 Hz) under a 4 Hz syllable
/// envelope, plus a little noise, peaking near -10 dBFS. Pure tones are pathological
/// for Opus (a 600 Hz sine costs its encoder about 4× a G.711-quantized one), so the
/// CPU rooms and the loop all code this instead.
pub fn voice(rate: u32) -> Vec<i16> {
    const WIDE: usize = 48_000;
    let mut out = Vec::with_capacity(WIDE);
    let (mut phase, mut seed) = (0.0f64, 0x1234_5678u32);
    for i in 0..WIDE {
        let t = i as f64 / WIDE as f64;
        let f0 = 150.0 + 40.0 * (2.0 * PI * 0.7 * t).sin();
        phase += 2.0 * PI * f0 / WIDE as f64;
        let voiced: f64 = (1..=10)
            .map(|k| (phase * f64::from(k)).sin() / f64::from(k))
            .sum();
        let envelope = (0.5 + 0.5 * (2.0 * PI * 4.0 * t).sin()).max(0.05);
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = (f64::from(seed >> 8) / f64::from(1u32 << 24)) * 2.0 - 1.0;
        out.push((AMPLITUDE * 0.5 * (envelope * voiced + 0.05 * noise)) as i16);
    }
    let step = WIDE / rate as usize;
    out.into_iter().step_by(step.max(1)).collect()
}

/// Finds tone onsets in received audio: the first block above [`ONSET_RMS`] after at
/// least [`REARM`] of blocks below half of it.
#[derive(Default)]
struct Detector {
    armed: bool,
    quiet: Duration,
    onsets: Vec<Instant>,
}

impl Detector {
    /// `pcm` arrived at `at`; block `k` of it would be heard at `at + k × BLOCK`.
    fn feed(&mut self, at: Instant, pcm: &[i16], rate: u32) {
        let per_block = (rate as usize * BLOCK.as_micros() as usize) / 1_000_000;
        for (k, block) in pcm.chunks(per_block.max(1)).enumerate() {
            let energy: f64 = block.iter().map(|&s| f64::from(s).powi(2)).sum();
            let rms = (energy / block.len() as f64).sqrt();
            if rms > ONSET_RMS {
                if self.armed {
                    self.onsets.push(at + BLOCK * k as u32);
                    self.armed = false;
                }
                self.quiet = Duration::ZERO;
            } else if rms < ONSET_RMS / 2.0 {
                self.quiet += BLOCK;
                if self.quiet >= REARM {
                    self.armed = true;
                }
            }
        }
    }
}

/// The latency run's shared state: whether the talkers talk, when each direction's
/// tone started, and what each listener detected.
#[derive(Default)]
struct Schedule {
    on: AtomicBool,
    phone_sent: Mutex<Vec<Instant>>,
    browser_sent: Mutex<Vec<Instant>>,
    phone_heard: Mutex<Detector>,
    browser_heard: Mutex<Detector>,
}

/// Per sent onset, the delay to the first detected onset within 400 ms (ms), after
/// the first [`DISCARDED_ONSETS`].
fn delays(sent: &[Instant], heard: &[Instant]) -> Vec<f64> {
    sent.iter()
        .skip(DISCARDED_ONSETS)
        .filter_map(|s| {
            heard
                .iter()
                .find(|h| **h >= *s && h.duration_since(*s) < Duration::from_millis(400))
                .map(|h| h.duration_since(*s).as_secs_f64() * 1e3)
        })
        .collect()
}

#[derive(Default)]
struct State {
    browsers: Mutex<HashMap<String, mpsc::UnboundedSender<Value>>>,
    /// Packets per track received by any browser.
    tracks: Mutex<Vec<Arc<AtomicU64>>>,
    /// Packets per phone received.
    phones: Mutex<Vec<Arc<AtomicU64>>>,
    decoded: AtomicU64,
    schedule: Schedule,
}

/// The child's main loop: one command per stdin line until EOF.
pub async fn run() {
    let state = Arc::new(State::default());
    let mut commands = stdin_lines();
    while let Some(cmd) = commands.recv().await {
        match op(&cmd) {
            "browser" => {
                let (tx, rx) = mpsc::unbounded_channel();
                lock(&state.browsers).insert(id(&cmd).to_owned(), tx);
                let latency = cmd["latency"].as_bool().unwrap_or(false);
                tokio::spawn(browser(state.clone(), id(&cmd).to_owned(), latency, rx));
            }
            "answer" | "candidate" | "server_offer" => {
                if let Some(tx) = lock(&state.browsers).get(id(&cmd)) {
                    let _ = tx.send(cmd.clone());
                }
            }
            "phone" => {
                let port = cmd["port"].as_u64().and_then(|p| u16::try_from(p).ok());
                let latency = cmd["latency"].as_bool().unwrap_or(false);
                if let Some(port) = port {
                    tokio::spawn(phone(state.clone(), id(&cmd).to_owned(), port, latency));
                }
            }
            "status" => {
                let flowing = |v: &Mutex<Vec<Arc<AtomicU64>>>| {
                    lock(v)
                        .iter()
                        .filter(|c| c.load(Ordering::Relaxed) > 0)
                        .count()
                };
                emit(&json!({
                    "op": "status", "id": "",
                    "tracks_flowing": flowing(&state.tracks),
                    "phones_hearing": flowing(&state.phones),
                    "decoded": state.decoded.load(Ordering::Relaxed),
                }));
            }
            "latency" => {
                let onsets = cmd["onsets"].as_u64().unwrap_or(20) as usize;
                tokio::spawn(latency(state.clone(), onsets));
            }
            other => eprintln!("bridge bench clients: unknown command {other}"),
        }
    }
}

/// Talks `onsets` times (tone on, then off), then reports both directions' delays.
async fn latency(state: Arc<State>, onsets: usize) {
    let s = &state.schedule;
    // A second of silence first, so every detector is armed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..onsets {
        s.on.store(true, Ordering::SeqCst);
        tokio::time::sleep(TONE_ON).await;
        s.on.store(false, Ordering::SeqCst);
        tokio::time::sleep(TONE_OFF).await;
    }
    let up = delays(&lock(&s.phone_sent), &lock(&s.browser_heard).onsets);
    let down = delays(&lock(&s.browser_sent), &lock(&s.phone_heard).onsets);
    emit(&json!({"op": "latency", "id": "", "up": up, "down": down}));
}

/// One synthetic browser: offers its Opus track, follows the SFU's renegotiations,
/// publishes once connected, and counts (load) or decodes (latency) what it receives.
async fn browser(
    state: Arc<State>,
    id: String,
    latency: bool,
    mut inbox: mpsc::UnboundedReceiver<Value>,
) {
    if let Err(e) = browser_inner(&state, &id, latency, &mut inbox).await {
        eprintln!("bridge bench clients: browser {id}: {e}");
    }
}

async fn browser_inner(
    state: &Arc<State>,
    id: &str,
    latency: bool,
    inbox: &mut mpsc::UnboundedReceiver<Value>,
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let (c, mut tracks) = client(id).await;
    let ssrc = 5000 + lock(&state.browsers).len() as u32;
    let track = local_track(id, RtpCodecKind::Audio, "audio/opus", 48_000, 2, ssrc);
    let sender = c.pc.add_track(track.clone()).await.map_err(|e| err(&e))?;
    signal::offer(&c, id).await?;

    // What arrives: the callers' tracks.
    let st = state.clone();
    tokio::spawn(async move {
        while let Some(remote) = tracks.recv().await {
            let count = Arc::new(AtomicU64::new(0));
            lock(&st.tracks).push(count.clone());
            let st = st.clone();
            tokio::spawn(async move {
                let mut dec = if latency {
                    OpusDecoder::new().ok()
                } else {
                    None
                };
                let mut pcm = [0i16; FRAME_WIDE];
                while let Some(event) = remote.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(p) = event {
                        let at = Instant::now();
                        count.fetch_add(1, Ordering::Relaxed);
                        if let Some(dec) = dec.as_mut() {
                            if dec.decode(&p.payload, &mut pcm).is_ok() {
                                st.decoded.fetch_add(1, Ordering::Relaxed);
                                lock(&st.schedule.browser_heard).feed(at, &pcm, RATE_WIDE);
                            }
                        }
                    }
                }
            });
        }
    });

    // Publish once connected.
    let (st, id2, up) = (state.clone(), id.to_owned(), c.connected.clone());
    tokio::spawn(async move {
        if !signal::connected(up, &id2).await {
            eprintln!("bridge bench clients: browser {id2} never connected");
            return;
        }
        let pt = payload_type(&sender).await;
        publish(st, track, pt, ssrc, latency).await;
    });
    signal::follow(&c, id, inbox).await
}

/// One Opus packet every 20 ms: a pre-encoded tone loop (load), or live silence/tone
/// following the schedule, recording when each tone starts (latency).
async fn publish(
    state: Arc<State>,
    track: Arc<webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP>,
    pt: u8,
    ssrc: u32,
    latency: bool,
) {
    let Ok(mut enc) = OpusEncoder::new(BROWSER_BPS) else {
        return;
    };
    let mut pcm = [0i16; FRAME_WIDE];
    let mut out = [0u8; 1500];
    // Load mode: one second of voice, encoded once, replayed.
    let mut looped = Vec::new();
    if !latency {
        for frame in voice(RATE_WIDE).chunks_exact(FRAME_WIDE) {
            pcm.copy_from_slice(frame);
            if let Ok(len) = enc.encode(&pcm, &mut out) {
                looped.push(Bytes::copy_from_slice(&out[..len]));
            }
        }
        if looped.is_empty() {
            return;
        }
    }
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut was_on = false;
    for n in 0u32.. {
        tick.tick().await;
        let payload = if latency {
            let on = state.schedule.on.load(Ordering::SeqCst);
            if on {
                tone(&mut pcm, RATE_WIDE, BROWSER_HZ, n as usize * FRAME_WIDE);
            } else {
                pcm.fill(0);
            }
            let Ok(len) = enc.encode(&pcm, &mut out) else {
                return;
            };
            if on && !was_on {
                lock(&state.schedule.browser_sent).push(Instant::now());
            }
            was_on = on;
            Bytes::copy_from_slice(&out[..len])
        } else {
            looped[n as usize % looped.len()].clone()
        };
        let packet = rtp::Packet {
            header: rtp::Header {
                version: 2,
                payload_type: pt,
                sequence_number: n as u16,
                timestamp: n.wrapping_mul(FRAME_WIDE as u32),
                ssrc,
                ..Default::default()
            },
            payload,
        };
        if track.write_rtp(packet).await.is_err() {
            return;
        }
    }
}

/// One UDP phone on the node's leg at `port`: PCMU every 20 ms (looped speech-like
/// audio, or silence/tone following the schedule), counting (and in latency mode decoding) what
/// the mixer sends back.
async fn phone(state: Arc<State>, id: String, port: u16, latency: bool) {
    let Ok(socket) = UdpSocket::bind((LOCAL, 0)).await else {
        eprintln!("bridge bench clients: phone {id}: no socket");
        return;
    };
    let socket = Arc::new(socket);
    let Ok(local) = socket.local_addr() else {
        return;
    };
    emit(&json!({"op": "phone_ready", "id": id, "port": local.port()}));
    let count = Arc::new(AtomicU64::new(0));
    lock(&state.phones).push(count.clone());
    let (rx, st) = (socket.clone(), state.clone());
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        let mut pcm = [0i16; FRAME_NARROW];
        while let Ok((n, _)) = rx.recv_from(&mut buf).await {
            let at = Instant::now();
            count.fetch_add(1, Ordering::Relaxed);
            if latency {
                if let Ok(p) = RtpPacket::parse(&buf[..n]) {
                    let len = p.payload.len().min(FRAME_NARROW);
                    G711::Pcmu.decode(&p.payload[..len], &mut pcm[..len]);
                    lock(&st.schedule.phone_heard).feed(at, &pcm[..len], RATE_NARROW);
                }
            }
        }
    });
    let node: SocketAddr = (LOCAL, port).into();
    // Load mode: one second of voice in μ-law, replayed; latency mode: a tone (a whole
    // number of cycles per frame, so one payload repeats seamlessly).
    let mut pcm = [0i16; FRAME_NARROW];
    let mut steady = Vec::new();
    if latency {
        tone(&mut pcm, RATE_NARROW, PHONE_HZ, 0);
        let mut p = [0u8; FRAME_NARROW];
        G711::Pcmu.encode(&pcm, &mut p);
        steady.push(p);
    } else {
        for frame in voice(RATE_NARROW).chunks_exact(FRAME_NARROW) {
            let mut p = [0u8; FRAME_NARROW];
            G711::Pcmu.encode(frame, &mut p);
            steady.push(p);
        }
    }
    let mut silence = [0u8; FRAME_NARROW];
    G711::Pcmu.encode(&[0i16; FRAME_NARROW], &mut silence);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut was_on = false;
    let mut buf = [0u8; 12 + FRAME_NARROW];
    for n in 0u32.. {
        tick.tick().await;
        let on = !latency || state.schedule.on.load(Ordering::SeqCst);
        let h = RtpHeader {
            marker: n == 0,
            payload_type: 0,
            sequence: n as u16,
            timestamp: n.wrapping_mul(FRAME_NARROW as u32),
            ssrc: 77 + port as u32,
        };
        let Ok(len) = h.write(
            if on {
                &steady[n as usize % steady.len()]
            } else {
                &silence
            },
            &mut buf,
        ) else {
            return;
        };
        if latency && on && !was_on {
            lock(&state.schedule.phone_sent).push(Instant::now());
        }
        was_on = on;
        if socket.send_to(&buf[..len], node).await.is_err() {
            return;
        }
    }
}

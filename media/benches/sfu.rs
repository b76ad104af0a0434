//! The SFU's packet rate per CPU-second, SRTP included, against a raw UDP relay of the
//! same packets in the same run.
//!
//! Run: `cargo bench -p conclave-media --bench sfu`. Prints a table.
//!
//! SFU rows: synthetic publishers and subscribers on the same webrtc crate as the SFU
//! (`tests/common`), all on 127.0.0.1. Each publisher writes 1,000-byte VP8-typed RTP
//! packets as fast as its connection takes them; the SFU decrypts each once and
//! encrypts it per subscriber. Relay rows: the same packets over plain UDP, one
//! relay thread copying each datagram to every subscriber socket.
//!
//! CPU is the whole process's (user + system, from /proc/self/stat), endpoints
//! included, for both: the webrtc crate runs every connection's SRTP and interceptors
//! on one process-wide reactor pool, so the SFU's share cannot be told from the
//! clients' by thread. The synthetic clients do about as much SRTP work as the SFU
//! (one encryption per packet published, one decryption per packet received), so the
//! SFU alone costs roughly half the CPU per packet shown. "per CPU-s" is packets
//! forwarded per second of CPU: packets per second per busy core.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use conclave_media::SfuLimits;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_local::TrackLocal;

const PAYLOAD: usize = 1000;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(4);
/// Packets per second of one subscribed stream in a call: ~1 Mbit/s video + audio.
const CALL_PPS: f64 = 150.0;

/// Process CPU seconds (user + system) from /proc/self/stat, at 100 ticks a second.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After ")": state is field 3, utime 14, stime 15 (1-based) → indices 11, 12.
    (tick(11) + tick(12)) / 100.0
}

struct Run {
    forwarded: u64,
    dropped: u64,
    wall: f64,
    cpu: f64,
}

impl Run {
    fn per_cpu(&self) -> f64 {
        self.forwarded as f64 / self.cpu.max(1e-9)
    }
}

fn payload() -> Bytes {
    let mut p = vec![0u8; PAYLOAD];
    p[..4].copy_from_slice(&[0x10, 0x00, 0x9d, 0x01]);
    Bytes::from(p)
}

/// `pubs` participants publish one video track each; `subs` more only subscribe. With
/// `subs == 0` every publisher receives every other (N×N).
async fn sfu_run(ports: (u16, u16), pubs: usize, subs: usize) -> Run {
    let limits = SfuLimits {
        subscriber_queue: 4096,
        ..SfuLimits::default()
    };
    let sfu = sfu(ports, limits).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut clients = Vec::new();
    for i in 0..pubs {
        let (mut c, tracks) = client(&format!("P{i}")).await;
        let ssrc = 10_000 + i as u32;
        let track = local_track(
            &format!("p{i}"),
            RtpCodecKind::Video,
            "video/VP8",
            90_000,
            0,
            ssrc,
        );
        let sender = c.pc.add_track(track.clone()).await.unwrap();
        count(&mut c, tracks);
        join(&sfu, "bench", &mut c).await;
        let pt = payload_type(&sender).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
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
        }));
        clients.push(c);
    }
    for i in 0..subs {
        let (mut c, tracks) = client(&format!("S{i}")).await;
        // An idle audio track, so the client has something to offer.
        c.pc.add_track(local_track(
            &format!("s{i}"),
            RtpCodecKind::Audio,
            "audio/opus",
            48_000,
            2,
            20_000 + i as u32,
        ))
        .await
        .unwrap();
        count(&mut c, tracks);
        join(&sfu, "bench", &mut c).await;
        clients.push(c);
    }
    let expect = if subs == 0 { pubs - 1 } else { pubs };
    for c in clients.iter_mut() {
        if c.id.starts_with('S') || subs == 0 {
            wait_until(c, "every publisher's video", |c| {
                let r = c.received.lock().unwrap();
                r.len() == expect && r.iter().all(|t| t.packets.load(Ordering::Relaxed) > 0)
            })
            .await;
        }
    }
    tokio::time::sleep(WARMUP).await;
    let totals = |s: &serde_json::Value| {
        (
            s["packets_forwarded"].as_u64().unwrap_or(0),
            s["packets_dropped"].as_u64().unwrap_or(0),
        )
    };
    let (f0, d0) = totals(&sfu.stats());
    let (c0, t0) = (cpu_secs(), Instant::now());
    tokio::time::sleep(MEASURE).await;
    let (f1, d1) = totals(&sfu.stats());
    let (c1, wall) = (cpu_secs(), t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        let _ = w.await;
    }
    for c in &clients {
        sfu.disconnect(&c.id).await;
        let _ = c.pc.close().await;
    }
    Run {
        forwarded: f1 - f0,
        dropped: d1 - d0,
        wall,
        cpu: c1 - c0,
    }
}

/// The same packets over plain UDP: each publisher thread sends to the relay, which
/// copies every datagram to each subscriber socket but the sender's own (N×N).
fn relay_run(pubs: usize, subs: usize) -> Run {
    let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
    relay
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let forwarded = Arc::new(AtomicU64::new(0));
    // Receivers: one per subscriber; N×N: each publisher also receives.
    let receivers = if subs == 0 { pubs } else { subs };
    let mut sinks = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..receivers {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        sinks.push(s.local_addr().unwrap());
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let _ = s.recv(&mut buf);
            }
        }));
    }
    let mut senders = Vec::new();
    for i in 0..pubs {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        senders.push(s.local_addr().unwrap());
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut packet = vec![0u8; 12 + PAYLOAD];
            packet[0] = 0x80;
            packet[8..12].copy_from_slice(&(i as u32).to_be_bytes());
            let mut n: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                packet[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                let _ = s.send_to(&packet, relay_addr);
                n = n.wrapping_add(1);
                // Paced a little, as the SFU's publishers are by their connections.
                if n.is_multiple_of(64) {
                    std::thread::yield_now();
                }
            }
        }));
    }
    {
        let (stop, forwarded, sinks, senders) = (
            stop.clone(),
            forwarded.clone(),
            sinks.clone(),
            senders.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok((len, from)) = relay.recv_from(&mut buf) else {
                    continue;
                };
                let me = senders.iter().position(|s| *s == from);
                for (j, sink) in sinks.iter().enumerate() {
                    if subs == 0 && Some(j) == me {
                        continue;
                    }
                    if relay.send_to(&buf[..len], sink).is_ok() {
                        forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    std::thread::sleep(WARMUP);
    let (f0, c0, t0) = (
        forwarded.load(Ordering::Relaxed),
        cpu_secs(),
        Instant::now(),
    );
    std::thread::sleep(MEASURE);
    let (f1, c1, wall) = (
        forwarded.load(Ordering::Relaxed),
        cpu_secs(),
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Run {
        forwarded: f1 - f0,
        dropped: 0,
        wall,
        cpu: c1 - c0,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "SFU forwarding, SRTP included, vs a raw UDP relay of the same 1,000-byte packets ({}s each, {} cores)",
        MEASURE.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<12} {:>8} {:>12} {:>12} {:>12} {:>12} {:>7} {:>10} {:>10} {:>9}",
        "layout",
        "streams",
        "SFU pkt/s",
        "SFU /CPU-s",
        "relay pkt/s",
        "relay /CPU-s",
        "ratio",
        "µs/pkt",
        "CPU/sub %",
        "dropped"
    );
    let cases: [(&str, usize, usize); 4] = [
        ("1×1", 1, 1),
        ("1×4", 1, 4),
        ("1×12", 1, 12),
        ("4×4 (N×N)", 4, 0),
    ];
    let only = std::env::var("SFU_BENCH_CASE").ok();
    let mut port = 40_000u16;
    for (label, pubs, subs) in cases {
        if only.as_deref().is_some_and(|o| o != label) {
            continue;
        }
        let streams = if subs == 0 {
            pubs * (pubs - 1)
        } else {
            pubs * subs
        };
        let s = sfu_run((port, port + 99), pubs, subs).await;
        port += 100;
        let r = tokio::task::spawn_blocking(move || relay_run(pubs, subs))
            .await
            .unwrap();
        let us = 1e6 / s.per_cpu();
        println!(
            "{:<12} {:>8} {:>12.0} {:>12.0} {:>12.0} {:>12.0} {:>6.0}% {:>10.1} {:>10.2} {:>9}",
            label,
            streams,
            s.forwarded as f64 / s.wall,
            s.per_cpu(),
            r.forwarded as f64 / r.wall,
            r.per_cpu(),
            100.0 * s.per_cpu() / r.per_cpu(),
            us,
            // One subscribed stream at CALL_PPS, whole-process CPU, as % of a core.
            us * CALL_PPS / 1e4,
            s.dropped,
        );
    }
    println!("CPU/sub %: one subscriber of a {CALL_PPS} packet/s stream (~1 Mbit/s video + audio), from µs/pkt; endpoints' SRTP included (see the header)");
}

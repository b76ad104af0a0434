//! The SFU's packet rate per CPU-second of its own, SRTP included, against a raw UDP
//! relay of the same packets in the same run.
//!
//! Run: `cargo bench -p conclave-media --bench sfu` (about a minute; prints a markdown
//! table). `SFU_BENCH_CASE=1×4` runs one layout.
//!
//! Two processes: this one runs the SFU (and, for the baseline, the relay) and measures
//! its own CPU (user + system, /proc/self/stat); the synthetic publishers and
//! subscribers (webrtc-crate peers, `tests/common`) and the relay's UDP senders and
//! receivers run in a child (this binary re-executed, `sfu/clients.rs`), driven over
//! its stdin/stdout as JSON lines (`support/wire.rs`, `support/signal.rs`). So the
//! clients' SRTP (one encryption per packet published, one decryption per packet
//! received) is not counted: only the SFU's one decryption per packet in and one
//! encryption per packet forwarded, its interceptors and its sockets.
//!
//! SFU rows: each publisher writes 1,000-byte VP8-typed RTP packets as fast as its
//! connection takes them. Relay rows: the same-sized datagrams over plain UDP, one
//! relay thread here copying each to every receiver socket (`recv_from`, then a
//! `send_to` per receiver). "per CPU-s" is packets forwarded per second of this
//! process's CPU: packets per second per busy core.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "sfu/clients.rs"]
mod clients;
#[path = "support/signal.rs"]
mod signal;
#[path = "support/wire.rs"]
mod wire;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{GUARD, LOCAL};
use conclave_media::{Sfu, SfuLimits};
use serde_json::{json, Value};
use wire::{pid_cpu, process_cpu, Link};

/// RTP payload bytes of every packet, SFU and relay alike.
pub const PAYLOAD: usize = 1000;
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
/// Packets per second of one subscribed stream in a call: ~1 Mbit/s video + audio.
const CALL_PPS: f64 = 150.0;
/// Set to `clients` in the clients child.
const ROLE_VAR: &str = "CONCLAVE_SFU_BENCH_ROLE";

/// What one measured window saw: packets forwarded, this process's CPU, the child's.
struct Run {
    forwarded: u64,
    dropped: u64,
    wall: f64,
    cpu: f64,
    clients_cpu: f64,
}

impl Run {
    fn per_cpu(&self) -> f64 {
        self.forwarded as f64 / self.cpu.max(1e-9)
    }
    fn rate(&self) -> f64 {
        self.forwarded as f64 / self.wall
    }
}

/// Warm-up, then a `MEASURE` window of `counters` (forwarded, dropped) and both
/// processes' CPU.
async fn window(link: &Link, counters: impl Fn() -> (u64, u64)) -> Run {
    tokio::time::sleep(WARMUP).await;
    let pid = link.pid();
    let ((f0, d0), c0, k0, t0) = (counters(), process_cpu(), pid_cpu(pid), Instant::now());
    tokio::time::sleep(MEASURE).await;
    let ((f1, d1), c1, k1, wall) = (
        counters(),
        process_cpu(),
        pid_cpu(pid),
        t0.elapsed().as_secs_f64(),
    );
    Run {
        forwarded: f1 - f0,
        dropped: d1 - d0,
        wall,
        cpu: c1 - c0,
        clients_cpu: k1 - k0,
    }
}

async fn status(link: &Link) -> Value {
    link.request(wire::status_request(), "status", GUARD)
        .await
        .unwrap()
}

/// `pubs` participants publish one video track each; `subs` more only subscribe. With
/// `subs == 0` every publisher receives every other (N×N).
async fn sfu_run(sfu: &Sfu, link: &Arc<Link>, pubs: usize, subs: usize) -> Run {
    for i in 0..pubs {
        let request = json!({"op": "publisher", "id": format!("P{i}"), "ssrc": 10_000 + i});
        signal::join(sfu, link, "bench", request).await;
    }
    for i in 0..subs {
        let request = json!({"op": "subscriber", "id": format!("S{i}"), "ssrc": 20_000 + i});
        signal::join(sfu, link, "bench", request).await;
    }
    let streams = if subs == 0 {
        pubs * (pubs - 1)
    } else {
        pubs * subs
    } as u64;
    let end = Instant::now() + GUARD;
    loop {
        let st = status(link).await;
        if st["tracks_flowing"].as_u64() == Some(streams) {
            break;
        }
        assert!(
            Instant::now() < end,
            "timed out waiting for {streams} flowing streams: {st}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let totals = || {
        let s = sfu.stats();
        (
            s["packets_forwarded"].as_u64().unwrap_or(0),
            s["packets_dropped"].as_u64().unwrap_or(0),
        )
    };
    let run = window(link, totals).await;
    link.request(json!({"op": "stop", "id": "writers"}), "stopped", GUARD)
        .await
        .unwrap();
    for id in (0..pubs)
        .map(|i| format!("P{i}"))
        .chain((0..subs).map(|i| format!("S{i}")))
    {
        sfu.disconnect(&id).await;
    }
    run
}

/// The same packets over plain UDP: the child's sender sockets send to the relay here,
/// which copies every datagram to each of the child's receiver sockets but the
/// sender's own (N×N).
async fn relay_run(link: &Arc<Link>, pubs: usize, subs: usize) -> Run {
    let relay = UdpSocket::bind((LOCAL, 0)).unwrap();
    relay
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = relay.local_addr().unwrap().port();
    // Receivers: one per subscriber; N×N: each publisher also receives.
    let receivers = if subs == 0 { pubs } else { subs };
    let ready = link
        .request(
            json!({"op": "relay", "id": "relay", "pubs": pubs, "receivers": receivers}),
            "relay_ready",
            GUARD,
        )
        .await
        .unwrap();
    let addrs = |k: &str| -> Vec<SocketAddr> {
        ready[k]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| u16::try_from(p).ok())
            .map(|p| (LOCAL, p).into())
            .collect()
    };
    let (sinks, senders) = (addrs("sinks"), addrs("senders"));
    assert_eq!((sinks.len(), senders.len()), (receivers, pubs), "{ready}");
    let stop = Arc::new(AtomicBool::new(false));
    let forwarded = Arc::new(AtomicU64::new(0));
    let thread = {
        let (stop, forwarded) = (stop.clone(), forwarded.clone());
        std::thread::spawn(move || {
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
        })
    };
    link.send(&json!({"op": "relay_start", "id": "relay", "port": port}))
        .unwrap();
    let run = window(link, || (forwarded.load(Ordering::Relaxed), 0)).await;
    stop.store(true, Ordering::Relaxed);
    link.request(json!({"op": "stop", "id": "relay"}), "stopped", GUARD)
        .await
        .unwrap();
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .unwrap();
    run
}

/// One layout: a fresh SFU and clients process, the SFU window, then the relay's.
async fn layout(port: u16, pubs: usize, subs: usize) -> (Run, Run) {
    let limits = SfuLimits {
        subscriber_queue: 4096,
        ..SfuLimits::default()
    };
    let sfu = common::sfu((port, port + 99), limits).await;
    let (link, unsolicited) = Link::spawn(ROLE_VAR).unwrap();
    signal::answer_server_offers(&sfu, unsolicited, "sfu");
    let s = sfu_run(&sfu, &link, pubs, subs).await;
    let r = relay_run(&link, pubs, subs).await;
    tokio::task::spawn_blocking(move || link.close())
        .await
        .unwrap();
    (s, r)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if wire::is_clients(ROLE_VAR) {
        clients::run().await;
        return;
    }
    let started = Instant::now();
    println!(
        "SFU forwarding, SRTP included, vs a raw UDP relay of the same {PAYLOAD}-byte packets; \
         this process's CPU only, the clients in a second process ({} s windows, {} cores, load average {})",
        MEASURE.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    println!();
    println!("| layout | streams out | SFU pkt/s | SFU pkt / CPU-s | relay pkt/s | relay pkt / CPU-s | SFU / relay (per CPU-s) | µs / pkt (SFU) | CPU / subscriber | SFU process CPU % | clients CPU % (SFU, relay) | dropped |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
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
        let (s, r) = layout(port, pubs, subs).await;
        port += 100;
        let us = 1e6 / s.per_cpu();
        println!(
            "| {label} | {streams} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}% | {:.1} | {:.2}% | {:.0} | {:.0}, {:.0} | {} |",
            s.rate(),
            s.per_cpu(),
            r.rate(),
            r.per_cpu(),
            100.0 * s.per_cpu() / r.per_cpu(),
            us,
            // One subscribed stream at CALL_PPS, the SFU's CPU, as % of a core.
            us * CALL_PPS / 1e4,
            100.0 * s.cpu / s.wall,
            100.0 * s.clients_cpu / s.wall,
            100.0 * r.clients_cpu / r.wall,
            s.dropped,
        );
    }
    println!();
    println!(
        "CPU / subscriber: one subscriber of a {CALL_PPS} packet/s stream (~1 Mbit/s video + audio), from µs / pkt, as % of a core. \
         total {:.0} s; load average at end {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
}

//! The SIP ↔ browser bridge (issue 15): CPU per transcoded leg and bridged rooms per
//! core against a bare transcoding loop in the same run, and the mouth-to-ear delay the
//! bridge adds, on loopback.
//!
//! Run: `cargo bench -p conclave-media --bench bridge` (about 3 minutes; prints
//! markdown tables). `BRIDGE_BENCH_ONLY=rooms` or `=latency` runs one part.
//!
//! Two processes: this one runs the media node and the SFU and measures its own CPU
//! (user + system, /proc/self/stat); the synthetic browsers and phones run in a child
//! (this binary re-executed, `bridge/clients.rs`), driven over its stdin/stdout as
//! JSON lines (`support/wire.rs`, `support/signal.rs`), so their SRTP, Opus encoding and sockets are not
//! counted (the SFU benchmark's flaw).
//!
//! - **Loop**: `audio::transcode_loop_frame` on one thread, thread CPU time. One
//!   iteration = one browser leg-frame (Opus decode + 48→8 kHz) plus one caller
//!   leg-frame (8→48 kHz + Opus encode), so a leg-frame costs half an iteration. Its
//!   halves are also timed alone, to weigh the loop like a room (1 decode, N encodes).
//! - **Rooms**: R rooms, each 1 browser publishing Opus and N phones sending PCMU, all
//!   every 20 ms; first *plain* (bridge not attached: SFU ingest + G.711 mixing), then
//!   *bridged* (`attach`: each room decodes 1 browser and encodes N callers, and
//!   the SFU forwards the N caller tracks to the browser).
//! - **Latency**: 1 browser + 1 phone; each talks silence, then a tone at a known
//!   instant; the other side detects the onset (2.5 ms blocks) in what it receives.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "bridge/clients.rs"]
mod clients;
#[path = "support/signal.rs"]
mod signal;
#[path = "support/wire.rs"]
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_media::audio::{
    transcode_loop_frame, Downsampler, OpusDecoder, OpusEncoder, Upsampler, FRAME_NARROW,
    FRAME_WIDE, RATE_NARROW, RATE_WIDE,
};
use conclave_media::bridge::BridgeStats;
use conclave_media::{MediaConfig, MediaNode, MediaStats, Sfu, SfuLimits, G711};
use serde_json::{json, Value};

use common::{GUARD, LOCAL};
use wire::{process_cpu, thread_cpu, Link};

/// Warm-up, then the CPU window of each room layout.
const WARMUP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
/// CPU seconds each loop measurement runs for.
const LOOP_CPU: f64 = 1.0;
/// Leg-frame duration.
const FRAME_S: f64 = 0.02;
/// Callers per room, and room counts tried per N.
const CALLERS: [usize; 3] = [1, 4, 8];
const ROOMS: [usize; 3] = [1, 5, 10];
/// A layout is skipped when its estimated CPU would exceed this share of one core.
const CORE_BUDGET: f64 = 0.9;
/// Onsets per latency run (the first `clients::DISCARDED_ONSETS` are dropped).
const ONSETS: usize = 20 + clients::DISCARDED_ONSETS;
const JITTER_MS: [u32; 3] = [20, 40, 60];
/// Bitrate of the bridge's caller tracks (`bridge/outbound.rs`), for the loop.
const CALLER_BPS: i32 = 24_000;
/// Set to `clients` in the clients child.
const ROLE_VAR: &str = "CONCLAVE_BRIDGE_BENCH_ROLE";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if wire::is_clients(ROLE_VAR) {
        clients::run().await;
        return;
    }
    let only = std::env::var("BRIDGE_BENCH_ONLY").ok();
    let started = Instant::now();
    println!(
        "Bridge benchmark: {} cores, {} s windows; the clients in a second process",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        MEASURE.as_secs()
    );
    let before = tokio::task::spawn_blocking(bare_loop).await.unwrap();
    println!("load average at start: {}", loadavg());
    let mut rows = Vec::new();
    let mut lat = Vec::new();
    let mut ports = 20_000u16;
    if only.as_deref() != Some("latency") {
        for n in CALLERS {
            let mut per_room: Option<f64> = None;
            for r in ROOMS {
                if let Some(c) = per_room {
                    if c * r as f64 > CORE_BUDGET {
                        rows.push(Row::skipped(n, r, c * r as f64));
                        continue;
                    }
                }
                let row = rooms(ports, n, r).await;
                ports += 400;
                per_room = Some(row.bridged.share() / r as f64);
                eprintln!(
                    "rooms N={n} R={r}: {:.1}% plain, {:.1}% bridged",
                    100.0 * row.plain.share(),
                    100.0 * row.bridged.share()
                );
                rows.push(Row::Done(Box::new(row)));
            }
        }
    }
    if only.as_deref() != Some("rooms") {
        for j in JITTER_MS {
            let l = latency(ports, j).await;
            ports += 400;
            eprintln!("latency jitter_ms={j}: up {:?} down {:?}", l.up, l.down);
            lat.push(l);
        }
    }
    let after = tokio::task::spawn_blocking(bare_loop).await.unwrap();
    report(&before, &after, &rows, &lat);
    println!(
        "total {:.0} s; load average at end: {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );
}

/// CPU seconds per frame of the bare loop and of its halves.
struct LoopCost {
    iteration: f64,
    decode_down: f64,
    up_encode: f64,
}

impl LoopCost {
    /// The brief's unit: one leg-frame is half an iteration.
    fn per_leg_frame(&self) -> f64 {
        self.iteration / 2.0
    }
}

/// One second of voice as the browsers send it (32 kbit/s Opus).
fn browser_packets() -> Vec<Vec<u8>> {
    let mut enc = OpusEncoder::new(32_000).unwrap();
    let mut pcm = [0i16; FRAME_WIDE];
    let mut out = [0u8; 1500];
    clients::voice(RATE_WIDE)
        .chunks_exact(FRAME_WIDE)
        .map(|frame| {
            pcm.copy_from_slice(frame);
            let len = enc.encode(&pcm, &mut out).unwrap();
            out[..len].to_vec()
        })
        .collect()
}

/// One second of voice as the mixer captures a phone: through μ-law and back.
fn caller_frames() -> Vec<[i16; FRAME_NARROW]> {
    clients::voice(RATE_NARROW)
        .chunks_exact(FRAME_NARROW)
        .map(|frame| {
            let (mut mu, mut pcm) = ([0u8; FRAME_NARROW], [0i16; FRAME_NARROW]);
            G711::Pcmu.encode(frame, &mut mu);
            G711::Pcmu.decode(&mu, &mut pcm);
            pcm
        })
        .collect()
}

/// Runs `step` until it has used `LOOP_CPU` of this thread's CPU; seconds per call.
fn per_call(mut step: impl FnMut(usize)) -> f64 {
    for i in 0..200 {
        step(i); // warm caches and codec state
    }
    let c0 = thread_cpu();
    let mut calls = 0usize;
    loop {
        for _ in 0..100 {
            step(calls);
            calls += 1;
        }
        let used = thread_cpu() - c0;
        if used >= LOOP_CPU {
            return used / calls as f64;
        }
    }
}

fn bare_loop() -> LoopCost {
    let packets = browser_packets();
    let mut dec = OpusDecoder::new().unwrap();
    let mut down = Downsampler::new().unwrap();
    let mut up = Upsampler::new().unwrap();
    let mut enc = OpusEncoder::new(CALLER_BPS).unwrap();
    let mut out = [0u8; 1500];
    let iteration = per_call(|i| {
        let p = &packets[i % packets.len()];
        transcode_loop_frame(&mut dec, &mut down, &mut up, &mut enc, p, &mut out).unwrap();
    });
    let mut wide = [0i16; FRAME_WIDE];
    let mut narrow = [0i16; FRAME_NARROW];
    let decode_down = per_call(|i| {
        dec.decode(&packets[i % packets.len()], &mut wide).unwrap();
        down.process(&wide, &mut narrow).unwrap();
    });
    // The callers' side starts from what the mixer captures: μ-law-decoded voice.
    let callers = caller_frames();
    let up_encode = per_call(|i| {
        up.process(&callers[i % callers.len()], &mut wide).unwrap();
        enc.encode(&wide, &mut out).unwrap();
    });
    LoopCost {
        iteration,
        decode_down,
        up_encode,
    }
}

/// What one CPU window saw.
#[derive(Clone, Copy)]
struct Window {
    cpu: f64,
    wall: f64,
    bridge: BridgeStats,
    media: MediaStats,
}

impl Window {
    /// Parent CPU as a share of one core.
    fn share(&self) -> f64 {
        self.cpu / self.wall
    }
    /// Browser leg-frames decoded and caller leg-frames encoded in the window.
    fn leg_frames(&self) -> u64 {
        self.bridge.browser_packets + self.bridge.caller_frames
    }
}

fn bridge_delta(a: &BridgeStats, b: &BridgeStats) -> BridgeStats {
    BridgeStats {
        browser_packets: b.browser_packets - a.browser_packets,
        caller_frames: b.caller_frames - a.caller_frames,
        underruns: b.underruns - a.underruns,
        dropped: b.dropped - a.dropped,
        concealed: b.concealed - a.concealed,
        late: b.late - a.late,
        decode_errors: b.decode_errors - a.decode_errors,
        encode_errors: b.encode_errors - a.encode_errors,
        ..*b
    }
}

/// Warm-up, then a fixed window of the parent's CPU and the node's counters.
async fn window(node: &MediaNode) -> Window {
    tokio::time::sleep(WARMUP).await;
    let (b0, m0, c0, t0) = (
        node.bridge().stats(),
        node.stats(),
        process_cpu(),
        Instant::now(),
    );
    tokio::time::sleep(MEASURE).await;
    let (b1, m1, c1, wall) = (
        node.bridge().stats(),
        node.stats(),
        process_cpu(),
        t0.elapsed().as_secs_f64(),
    );
    let mut media = m1;
    media.packets_in = m1.packets_in - m0.packets_in;
    media.packets_out = m1.packets_out - m0.packets_out;
    media.frames = m1.frames - m0.frames;
    Window {
        cpu: c1 - c0,
        wall,
        bridge: bridge_delta(&b0, &b1),
        media,
    }
}

/// One room layout, plain then bridged.
struct Rooms {
    n: usize,
    r: usize,
    plain: Window,
    bridged: Window,
}

/// A table row: a measured layout, or one skipped for the CPU budget.
enum Row {
    Done(Box<Rooms>),
    Skipped { n: usize, r: usize, estimate: f64 },
}

impl Row {
    fn skipped(n: usize, r: usize, estimate: f64) -> Row {
        Row::Skipped { n, r, estimate }
    }
}

/// Polls `cond` every 20 ms until it holds, or panics after `GUARD`.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + GUARD;
    while Instant::now() < end {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn status(link: &Link) -> Value {
    link.request(wire::status_request(), "status", GUARD)
        .await
        .unwrap()
}

/// A node (jitter buffer `jitter_ms`) and an SFU on loopback, in `ports..ports+400`,
/// with a clients process whose SFU answers are relayed.
async fn setup(ports: u16, jitter_ms: u32) -> (MediaNode, Sfu, Arc<Link>) {
    let node = MediaNode::start(MediaConfig {
        bind: LOCAL,
        announce: LOCAL,
        port_min: ports,
        port_max: ports + 249,
        jitter_ms,
        ..MediaConfig::default()
    })
    .await
    .unwrap();
    let sfu = common::sfu((ports + 250, ports + 399), SfuLimits::default()).await;
    let (link, unsolicited) = Link::spawn(ROLE_VAR).unwrap();
    signal::answer_server_offers(&sfu, unsolicited, "bridge");
    (node, sfu, link)
}

/// Browser `id` joins `room` through the clients process; returns once connected.
async fn join(sfu: &Sfu, link: &Arc<Link>, room: &str, id: &str, latency: bool) {
    let request = json!({"op": "browser", "id": id, "latency": latency});
    signal::join(sfu, link, room, request).await;
}

/// Phone `id` calls into `room`: a PCMU leg on the node, a UDP socket in the child.
async fn call(node: &MediaNode, link: &Link, room: &str, id: &str, latency: bool) {
    let leg = node.open_leg(room, id, G711::Pcmu, 0, None).await.unwrap();
    let ready = link
        .request(
            json!({"op": "phone", "id": id, "port": leg.local.port(), "latency": latency}),
            "phone_ready",
            GUARD,
        )
        .await
        .unwrap();
    let port = ready["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap();
    node.set_remote(leg.id, (LOCAL, port).into(), None).unwrap();
}

async fn teardown(node: MediaNode, sfu: Sfu, link: Arc<Link>, browsers: &[String]) {
    for b in browsers {
        sfu.disconnect(b).await;
    }
    tokio::task::spawn_blocking(move || link.close())
        .await
        .unwrap();
    node.shutdown().await;
}

/// R rooms of 1 browser + N phones: a plain window, then attach, then a bridged one.
async fn rooms(ports: u16, n: usize, r: usize) -> Rooms {
    let (node, sfu, link) = setup(ports, MediaConfig::default().jitter_ms).await;
    let mut browsers = Vec::new();
    for i in 0..r {
        let room = format!("r{i}");
        let b = format!("b{i}");
        join(&sfu, &link, &room, &b, false).await;
        browsers.push(b);
        for j in 0..n {
            call(&node, &link, &room, &format!("r{i}-c{j}"), false).await;
        }
    }
    let want = (r * n) as u64;
    let p0 = node.stats().packets_in;
    eventually("every phone's packets at the node", || async {
        node.stats().packets_in >= p0 + want * 25
    })
    .await;
    let plain = window(&node).await;

    node.bridge().attach(&sfu);
    let l = link.clone();
    let node2 = node.clone();
    eventually("every caller's track at its browser", move || {
        let (l, node) = (l.clone(), node2.clone());
        async move {
            let s = node.bridge().stats();
            let st = status(&l).await;
            s.callers == want
                && s.browser_inputs == r as u64
                && st["tracks_flowing"].as_u64() == Some(want)
        }
    })
    .await;
    let bridged = window(&node).await;
    teardown(node, sfu, link, &browsers).await;
    Rooms {
        n,
        r,
        plain,
        bridged,
    }
}

/// One latency run: delays per direction (ms) and what the playout queues did.
struct Latency {
    jitter_ms: u32,
    up: Vec<f64>,
    down: Vec<f64>,
    /// The bridge's browser playout queue: underruns, frames dropped.
    underruns: u64,
    dropped: u64,
    /// The phone leg's jitter buffer: late plus lost packets.
    late_lost: u64,
}

/// One browser and one phone bridged with the node's jitter buffer at `jitter_ms`:
/// one-way delays in ms, phone→browser ("up") and browser→phone ("down").
async fn latency(ports: u16, jitter_ms: u32) -> Latency {
    let (node, sfu, link) = setup(ports, jitter_ms).await;
    node.bridge().attach(&sfu);
    join(&sfu, &link, "lat", "b", true).await;
    call(&node, &link, "lat", "lat-c", true).await;
    let l = link.clone();
    eventually("audio both ways", move || {
        let l = l.clone();
        async move {
            let st = status(&l).await;
            st["tracks_flowing"].as_u64() == Some(1)
                && st["phones_hearing"].as_u64() == Some(1)
                && st["decoded"].as_u64().unwrap_or(0) >= 25
        }
    })
    .await;
    let (b0, m0) = (node.bridge().stats(), node.stats());
    let within = Duration::from_millis(600 * ONSETS as u64) + GUARD;
    let v = link
        .request(
            json!({"op": "latency", "id": "", "onsets": ONSETS}),
            "latency",
            within,
        )
        .await
        .unwrap();
    let list = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let (b1, m1) = (node.bridge().stats(), node.stats());
    let out = Latency {
        jitter_ms,
        up: list("up"),
        down: list("down"),
        underruns: b1.underruns - b0.underruns,
        dropped: b1.dropped - b0.dropped,
        late_lost: (m1.late + m1.lost) - (m0.late + m0.lost),
    };
    teardown(node, sfu, link, &["b".to_owned()]).await;
    out
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn report(before: &LoopCost, after: &LoopCost, rows: &[Row], lat: &[Latency]) {
    let ms = |s: f64| s * 1e3;
    // The loop figure used for ratios: the mean of the runs before and after.
    let lp = LoopCost {
        iteration: (before.iteration + after.iteration) / 2.0,
        decode_down: (before.decode_down + after.decode_down) / 2.0,
        up_encode: (before.up_encode + after.up_encode) / 2.0,
    };
    println!();
    println!("Bare loop (one thread, thread CPU): µs per 20 ms frame, before / after the rooms");
    println!();
    println!(
        "| work | before µs | after µs | leg-frames / CPU-s (mean) | CPU-s per leg-second (mean) |"
    );
    println!("| --- | --- | --- | --- | --- |");
    let line = |name: &str, b: f64, a: f64, legs: f64| {
        let per_leg = (b + a) / 2.0 / legs;
        println!(
            "| {name} | {:.1} | {:.1} | {:.0} | {:.4} |",
            b * 1e6,
            a * 1e6,
            1.0 / per_leg,
            per_leg / FRAME_S
        );
    };
    line(
        "iteration = 1 browser leg + 1 caller leg",
        before.iteration,
        after.iteration,
        2.0,
    );
    line(
        "browser leg: decode + 48→8 kHz",
        before.decode_down,
        after.decode_down,
        1.0,
    );
    line(
        "caller leg: 8→48 kHz + encode",
        before.up_encode,
        after.up_encode,
        1.0,
    );

    println!();
    println!(
        "Bridged rooms (parent = node + SFU only; 1 browser + N phones per room; legs = R×(N+1))"
    );
    println!();
    println!("| N | R | legs | plain CPU % | bridged CPU % | leg-frames/s | bridged ms CPU / leg-s | added ms CPU / leg-s | bridged rooms / core | loop / bridged | loop / added | room-weighted loop / added | underruns, dropped |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        match row {
            Row::Skipped { n, r, estimate } => println!(
                "| {n} | {r} | {} | | ≈{:.0} (skipped: over {:.0}% of a core) | | | | | | | | |",
                r * (n + 1),
                100.0 * estimate,
                100.0 * CORE_BUDGET
            ),
            Row::Done(x) => {
                let b = &x.bridged;
                let legs = b.leg_frames() as f64;
                // CPU seconds per leg-frame (all of the parent's CPU, and the bridge's addition).
                let total = b.cpu / legs.max(1.0);
                let added_cpu = b.cpu - x.plain.share() * b.wall;
                let added = added_cpu / legs.max(1.0);
                let weighted = b.bridge.browser_packets as f64 * lp.decode_down
                    + b.bridge.caller_frames as f64 * lp.up_encode;
                println!(
                    "| {} | {} | {} | {:.1} | {:.1} | {:.0} (of {}) | {:.3} | {:.3} | {:.1} | {:.0}% | {:.0}% | {:.0}% | {}, {} |",
                    x.n,
                    x.r,
                    x.r * (x.n + 1),
                    100.0 * x.plain.share(),
                    100.0 * b.share(),
                    legs / b.wall,
                    x.r * (x.n + 1) * 50,
                    ms(total / FRAME_S),
                    ms(added / FRAME_S),
                    x.r as f64 / b.share(),
                    100.0 * lp.per_leg_frame() / total,
                    100.0 * lp.per_leg_frame() / added,
                    100.0 * weighted / added_cpu.max(1e-9),
                    b.bridge.underruns,
                    b.bridge.dropped,
                );
            }
        }
    }
    println!();
    println!("Added mouth-to-ear delay through the bridge, loopback, one-way, ms (raw: send of the first tone packet → its onset block heard)");
    println!();
    println!("| jitter_ms | phone→browser p50 | p95 | n | browser→phone p50 | p95 | n | both p95 under 60 ms | bridge queue underruns, drops | phone leg late + lost |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for l in lat {
        let (j, up, down) = (l.jitter_ms, &l.up, &l.down);
        let (u50, u95, d50, d95) = (
            percentile(up, 50.0),
            percentile(up, 95.0),
            percentile(down, 50.0),
            percentile(down, 95.0),
        );
        println!(
            "| {j} | {u50:.1} | {u95:.1} | {} | {d50:.1} | {d95:.1} | {} | {} | {}, {} | {} |",
            up.len(),
            down.len(),
            if u95 < 60.0 && d95 < 60.0 {
                "yes"
            } else {
                "no"
            },
            l.underruns,
            l.dropped,
            l.late_lost,
        );
    }
}

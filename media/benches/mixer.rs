//! G.711 callers mixed in real time on one core: the `Conference` core (RTP parse,
//! jitter buffer, mix, encode, RTP build) against a bare decode-sum-encode loop.
//!
//! Run: `cargo bench -p conclave-media --bench mixer`. Prints a table; time per frame is
//! the best of 15 batches on one thread (the unpreempted run approximates CPU time),
//! the two loops alternating so both meet the same background load.
//!
//! Both loops use the crate's table-driven G.711 and i32 accumulation; the core adds
//! what a real node does per packet: RTP parse, source check, RTCP reception
//! statistics, jitter buffer push/pop, RTP packet build and hand-off per leg.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::needless_range_loop)]

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use conclave_media::conference::{Channel, Conference, LegId, LegParams, Output};
use conclave_media::rtp::RtpHeader;
use conclave_media::G711;

const FRAME: Duration = Duration::from_millis(20);
const SAMPLES: usize = 160;

/// Runs `a` and `b` in alternating batches of `frames` calls each and returns, for
/// each, the least wall-clock nanoseconds per call over 15 batches: on a shared machine
/// the minimum is the run that was not preempted (approximately this thread's CPU time),
/// and alternating exposes both to the same background load.
fn measure_pair(frames: u32, mut a: impl FnMut(u32), mut b: impl FnMut(u32)) -> (f64, f64) {
    let (mut best_a, mut best_b) = (f64::MAX, f64::MAX);
    let mut frame = 0u32;
    for _ in 0..15 {
        for (f, best) in [
            (&mut a as &mut dyn FnMut(u32), &mut best_a),
            (&mut b, &mut best_b),
        ] {
            let t = Instant::now();
            for i in 0..frames {
                f(frame + i);
            }
            *best = best.min(t.elapsed().as_nanos() as f64 / f64::from(frames));
        }
        frame += frames;
    }
    (best_a, best_b)
}

/// Distinct μ-law tone frames per caller (8 frames cycled).
fn caller_frames(n: usize) -> Vec<[[u8; SAMPLES]; 8]> {
    (0..n)
        .map(|c| {
            let freq = 200.0 + 37.0 * c as f32;
            let mut frames = [[0u8; SAMPLES]; 8];
            for (k, fr) in frames.iter_mut().enumerate() {
                let pcm: Vec<i16> = (0..SAMPLES)
                    .map(|i| {
                        let t = (k * SAMPLES + i) as f32 / 8000.0;
                        (300.0 * (std::f32::consts::TAU * freq * t).sin()) as i16
                    })
                    .collect();
                G711::Pcmu.encode(&pcm, fr);
            }
            frames
        })
        .collect()
}

/// The baseline: decode N frames, sum, subtract own, encode N frames, per group.
fn bare(n: usize, group: usize) -> impl FnMut(u32) {
    let input = caller_frames(n);
    let mut pcm = vec![[0i16; SAMPLES]; n];
    let mut out = vec![[0u8; SAMPLES]; n];
    move |f| {
        let k = (f % 8) as usize;
        for g in (0..n).step_by(group) {
            let end = (g + group).min(n);
            let mut total = [0i32; SAMPLES];
            for c in g..end {
                G711::Pcmu.decode(&input[c][k], &mut pcm[c]);
                for (t, &s) in total.iter_mut().zip(pcm[c].iter()) {
                    *t += i32::from(s);
                }
            }
            for c in g..end {
                let mut mixed = [0i16; SAMPLES];
                for ((m, &t), &own) in mixed.iter_mut().zip(total.iter()).zip(pcm[c].iter()) {
                    *m = (t - i32::from(own)).clamp(-32768, 32767) as i16;
                }
                G711::Pcmu.encode(&mixed, &mut out[c]);
            }
        }
        black_box(&out);
    }
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10000 + (i % 50000) as u16))
}

/// The core: every caller's packet goes through `receive` (RTP parse, jitter buffer),
/// then `tick` mixes, encodes and builds each caller's RTP packet.
fn core(n: usize, group: usize) -> impl FnMut(u32) {
    let input = caller_frames(n);
    let t0 = Instant::now();
    let mut confs: Vec<Conference> = Vec::new();
    for g in (0..n).step_by(group) {
        let mut c = Conference::new(None, (t0, 0), "bench");
        for i in g..(g + group).min(n) {
            let id = LegId(i as u64);
            let p = LegParams {
                codec: G711::Pcmu,
                payload_type: 0,
                dtmf_payload_type: Some(101),
                ssrc: i as u32,
                initial_seq: 0,
                initial_timestamp: 0,
                jitter: Duration::from_millis(40),
                rtp_timeout: Duration::from_secs(3600),
            };
            c.add_leg(id, p, t0);
            c.set_remote(id, addr(i), None);
        }
        confs.push(c);
    }
    // the phones' packets, built once (8 per caller); each frame only patches the
    // sequence number and timestamp, as the network would hand them over
    let mut packets: Vec<[[u8; 12 + SAMPLES]; 8]> = input
        .iter()
        .enumerate()
        .map(|(i, frames)| {
            let mut out = [[0u8; 12 + SAMPLES]; 8];
            for (k, p) in out.iter_mut().enumerate() {
                let h = RtpHeader {
                    marker: false,
                    payload_type: 0,
                    sequence: 0,
                    timestamp: 0,
                    ssrc: 0x1000 + i as u32,
                };
                h.write(&frames[k], p).unwrap();
            }
            out
        })
        .collect();
    let mut sent = 0usize;
    let mut run = move |f: u32| {
        let now = t0 + FRAME * f;
        let k = (f % 8) as usize;
        for (gi, c) in confs.iter_mut().enumerate() {
            for i in gi * group..(gi * group + group).min(n) {
                let packet = &mut packets[i][k];
                packet[2..4].copy_from_slice(&(f as u16).to_be_bytes());
                packet[4..8].copy_from_slice(&f.wrapping_mul(160).to_be_bytes());
                c.receive(
                    LegId(i as u64),
                    Channel::Rtp,
                    addr(i),
                    packet,
                    now,
                    &mut |_| {},
                );
            }
            c.tick(now, &mut |o| {
                if let Output::Transmit { data, .. } = o {
                    sent += data.len();
                }
            });
        }
        black_box(sent);
    };
    // warm up past the jitter buffer's playout delay
    for f in 0..10 {
        run(f);
    }
    move |f| run(f + 10)
}

fn main() {
    println!("G.711 conference mixing: CPU time per 20 ms frame (best of 15 batches, one thread)");
    println!(
        "{:<22} {:>6} {:>12} {:>12} {:>14} {:>14} {:>8}",
        "layout", "N", "bare µs", "core µs", "bare callers", "core callers", "ratio"
    );
    let mut worst_ratio = f64::MAX;
    let mut worst_callers = f64::MAX;
    for &(label, grouped) in &[("one conference", false), ("conferences of 10", true)] {
        for &n in &[10usize, 100, 500, 1000] {
            // MIXER_BENCH_N=1000 [MIXER_BENCH_GROUPED=1] runs one row (for profiling)
            let grouped_only = std::env::var_os("MIXER_BENCH_GROUPED").is_some();
            if std::env::var("MIXER_BENCH_N")
                .is_ok_and(|v| v != n.to_string() || grouped != grouped_only)
            {
                continue;
            }
            let group = if grouped { 10 } else { n };
            // batches of at least ~5 ms so switching between the two stays negligible
            let frames = (100_000 / n).clamp(50, 5000) as u32;
            let (b, c) = measure_pair(frames, bare(n, group), core(n, group));
            let per_core = |ns: f64| n as f64 * FRAME.as_nanos() as f64 / ns;
            let ratio = b / c;
            worst_ratio = worst_ratio.min(ratio);
            worst_callers = worst_callers.min(per_core(c));
            println!(
                "{:<22} {:>6} {:>12.1} {:>12.1} {:>14.0} {:>14.0} {:>7.0}%",
                label,
                n,
                b / 1000.0,
                c / 1000.0,
                per_core(b),
                per_core(c),
                ratio * 100.0
            );
        }
    }
    println!(
        "worst core/bare throughput ratio {:.0}% (target >= 80%), worst callers per core {:.0} (target >= 500)",
        worst_ratio * 100.0,
        worst_callers
    );
}

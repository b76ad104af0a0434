//! Engine benchmark: commands through the whole engine (decide, durable append, project)
//! next to the journal's own durable append rate in the same run, and cold start.
//!
//! Run: `cargo bench -p conclave-engine --bench engine` (`BENCH_SCALE=0.2` for a quick
//! pass, `BENCH_COLD_EVENTS=1000000` for the cold-start journal size, 0 to skip it;
//! `BENCH_CLIENTS=256` for one row only). Each row runs `BENCH_ROUNDS` rounds (default
//! 3) of the engine and then the journal alone, back to back, and prints the round with
//! the median ratio: the machine's disk speed drifts by 2x within minutes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use chrono::Utc;
use conclave_engine::command::Command;
use conclave_engine::service::{Engine, EngineConfig, Request};
use conclave_engine::{Actor, Origin, Principal, RoomName};
use conclave_journal::{
    AppendRequest, ExpectedVersion, Journal, JournalConfig, Metadata, NewRecord, SyncMode,
};
use hdrhistogram::Histogram;

fn scale() -> f64 {
    std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64 * scale()) as usize).max(1)
}

fn origin() -> Origin {
    Origin {
        gateway: "bench".into(),
        protocol: "none".into(),
        remote_addr: Some("127.0.0.1:40000".into()),
    }
}

fn room(i: usize) -> RoomName {
    RoomName::lookup(&format!("room{i}")).unwrap()
}

fn create(i: usize) -> Request {
    Request::new(
        Command::CreateRoom {
            room: room(i),
            parent: None,
            private: false,
            owner: Some(Principal::parse(&format!("sip:owner{i}@example.org")).unwrap()),
            max_members: None,
            welcome_text: None,
            access_password_hash: None,
        },
        Actor::Admin,
        origin(),
    )
}

/// Alternating lock/unlock: one event per command, a typical moderation action.
fn toggle(i: usize, n: usize) -> Request {
    let command = if n % 2 == 0 {
        Command::LockRoom { room: room(i) }
    } else {
        Command::UnlockRoom { room: room(i) }
    };
    Request::new(command, Actor::Admin, origin())
}

struct Run {
    per_sec: f64,
    avg_group: f64,
    p50_us: u64,
    p99_us: u64,
    record_bytes: usize,
}

fn engine_run(rt: &tokio::runtime::Runtime, clients: usize, total: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    for i in 0..clients {
        engine.execute_blocking(create(i)).unwrap();
    }
    let per_client = (total / clients).max(1);
    let started = Instant::now();
    let hist = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..clients {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).unwrap();
                for n in 0..per_client {
                    let t = Instant::now();
                    let out = engine.execute(toggle(i, n)).await.unwrap();
                    assert_eq!(out.events.len(), 1);
                    h.record(t.elapsed().as_micros().max(1) as u64).unwrap();
                }
                h
            }));
        }
        let mut all = Histogram::<u64>::new(3).unwrap();
        for t in tasks {
            all.add(t.await.unwrap()).unwrap();
        }
        all
    });
    let elapsed = started.elapsed().as_secs_f64();
    let stats = engine.journal().stats();
    let last = engine
        .journal()
        .get(engine.journal().head())
        .unwrap()
        .unwrap();
    let record_bytes = last.payload.len()
        + last.stream.len()
        + last.event_type.len()
        + last.meta.actor.as_ref().map_or(0, String::len)
        + last.meta.remote_addr.as_ref().map_or(0, String::len)
        + last.meta.correlation_id.as_ref().map_or(0, String::len);
    Run {
        per_sec: (clients * per_client) as f64 / elapsed,
        avg_group: stats.appends as f64 / stats.groups.max(1) as f64,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        record_bytes,
    }
}

/// The journal alone: the same number of writers appending records of the same size.
/// Returns appends/s and the average group commit size.
fn journal_run(
    rt: &tokio::runtime::Runtime,
    writers: usize,
    total: usize,
    bytes: usize,
) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    let per_writer = (total / writers).max(1);
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..writers {
            let j = j.clone();
            tasks.push(tokio::spawn(async move {
                let stream = format!("room:room{w}");
                for _ in 0..per_writer {
                    let rec = NewRecord {
                        stream: stream.clone(),
                        event_type: "room_modify".into(),
                        schema_version: 1,
                        timestamp: Utc::now(),
                        payload: vec![1; bytes],
                        content: None,
                        meta: Metadata::default(),
                    };
                    j.append(AppendRequest::to_stream(
                        stream.clone(),
                        ExpectedVersion::Any,
                        vec![rec],
                    ))
                    .await
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let stats = j.stats();
    (
        (writers * per_writer) as f64 / started.elapsed().as_secs_f64(),
        stats.appends as f64 / stats.groups.max(1) as f64,
    )
}

/// Builds a journal of `events` engine events (fast, not durable), then measures how long
/// opening the engine on it takes with its checkpoint, and without.
fn cold_start(events: usize) -> (usize, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let rooms = 500;
    {
        let mut config = EngineConfig::new(dir.path());
        config.journal.sync = SyncMode::None;
        let engine = Engine::open(config).unwrap();
        for i in 0..rooms {
            engine.execute_blocking(create(i)).unwrap();
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..rooms {
                let engine = engine.clone();
                tasks.push(tokio::spawn(async move {
                    for n in 0..events / rooms {
                        engine.execute(toggle(i, n)).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        engine.shutdown();
    }
    let started = Instant::now();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    let with_checkpoint = started.elapsed().as_secs_f64();
    let head = engine.head() as usize;
    drop(engine);
    std::fs::remove_dir_all(dir.path().join("projections")).unwrap();
    let started = Instant::now();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    let without = started.elapsed().as_secs_f64();
    assert_eq!(engine.head() as usize, head);
    (head, with_checkpoint, without)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "machine: {} cores; BENCH_SCALE={}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        scale()
    );
    println!();
    println!("| clients (one room each) | engine commands/s (avg group) | p50 | p99 | journal alone, same writers and record size (avg group) | engine / journal |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let only: Option<usize> = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok());
    for (clients, total) in [(1, 2_000), (16, 20_000), (256, 100_000)] {
        if only.is_some_and(|n| n != clients) {
            continue;
        }
        let total = scaled(total);
        let rounds = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3usize)
            .max(1);
        let mut runs: Vec<(f64, Run, f64, f64)> = (0..rounds)
            .map(|_| {
                let e = engine_run(&rt, clients, total);
                let (j, j_group) = journal_run(&rt, clients, total, e.record_bytes);
                (e.per_sec / j, e, j, j_group)
            })
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let all: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.0}%", 100.0 * r.0))
            .collect();
        let (ratio, e, j, j_group) = &runs[runs.len() / 2];
        println!(
            "| {clients} | {:.0}/s ({:.1}) | {} us | {} us | {j:.0}/s ({j_group:.1}) | {:.0}% (rounds: {}) |",
            e.per_sec,
            e.avg_group,
            e.p50_us,
            e.p99_us,
            100.0 * ratio,
            all.join(", ")
        );
    }
    let events: usize = std::env::var("BENCH_COLD_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| scaled(1_000_000));
    if events == 0 {
        return;
    }
    let (head, with, without) = cold_start(events);
    println!();
    println!("| cold start, {head} events in the journal | time to open the engine |");
    println!("| --- | --- |");
    println!("| with its checkpoint | {:.3} s |", with);
    println!("| without a checkpoint (full replay) | {:.3} s |", without);
}

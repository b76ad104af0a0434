//! Engine benchmark: commands through the whole engine (decide, durable append, project)
//! next to the journal's own durable append rate in the same run, with and without a live
//! subscriber of the whole committed feed; memory per session; cold start.
//!
//! Run: `cargo bench -p conclave-engine --bench engine`. Knobs: `BENCH_SCALE=0.2` for a
//! quick pass; `BENCH_CLIENTS=256` for one row only; `BENCH_ROUNDS` (default 3);
//! `BENCH_FEED_JSON=1` to have the subscriber also build each event's JSON view, as the
//! web gateway's streams do; `BENCH_THREADS=1` to print each run's CPU by thread to
//! stderr; `BENCH_SESSIONS=10000` for the memory measurement, 0 to skip it
//! (`BENCH_MEMORY_FEED_CAPACITY` to run it with another feed ring size);
//! `BENCH_COLD_EVENTS=1000000` for the cold-start journal size, 0 to skip it.
//!
//! Each row runs `BENCH_ROUNDS` rounds of the engine without and with the subscriber (in
//! alternating order) and then the journal alone, back to back, and prints for each the
//! round with the median ratio: the machine's disk speed drifts by 2x within minutes.
//! The subscriber's lag is `FeedEvent::committed_at` (set by the completer right after
//! applying the event) to receipt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use conclave_engine::command::{Command, Credentials};
use conclave_engine::policy::DEFAULT_SESSION_LEASE_SECS;
use conclave_engine::service::{Engine, EngineConfig, FeedFilter, Request};
use conclave_engine::{Actor, Address, Origin, Principal, RoomName, SessionId};
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
            server_password: None,
        },
        Actor::Admin,
        origin(),
    )
}

/// Alternating lock/unlock: one event per command, a typical moderation action.
fn toggle(i: usize, n: usize) -> Request {
    let command = if n.is_multiple_of(2) {
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
    /// The process's CPU time per command (every thread), in µs.
    cpu_us: f64,
    feed: Option<FeedRun>,
}

/// What the live subscriber of the whole feed saw during an engine run.
struct FeedRun {
    events: u64,
    /// Time from the completer building the event (right after applying it) to the
    /// subscriber receiving it.
    lag: Histogram<u64>,
    /// Events no one else held when received: read back from the journal because the
    /// subscriber was behind the ring (or evicted from the ring just as it got them).
    from_journal: u64,
    /// How long after the last client's last answer the subscriber had every event.
    catch_up: Duration,
}

/// A subscriber of every committed event from `from` on, consuming each one (its JSON
/// view too if `BENCH_FEED_JSON` is set) until told the last sequence to expect.
fn subscriber(
    engine: &Engine,
    from: u64,
    done: tokio::sync::oneshot::Receiver<u64>,
) -> tokio::task::JoinHandle<(u64, Histogram<u64>, u64, Instant)> {
    let mut sub = engine.subscribe(from, FeedFilter::all());
    let json = std::env::var("BENCH_FEED_JSON").is_ok_and(|v| v != "0");
    tokio::spawn(async move {
        let mut done = done;
        let mut lag = Histogram::<u64>::new(3).unwrap();
        let (mut events, mut from_journal, mut last) = (0u64, 0u64, from.saturating_sub(1));
        let mut stop: Option<u64> = None;
        while stop.is_none_or(|s| last < s) {
            tokio::select! {
                e = sub.next() => {
                    let e = e.unwrap();
                    lag.record(e.committed_at.elapsed().as_micros().max(1) as u64)
                        .unwrap();
                    // The ring holds one reference to each event it still has.
                    if Arc::strong_count(&e) == 1 {
                        from_journal += 1;
                    }
                    if json {
                        std::hint::black_box(e.text(conclave_engine::service::FeedView::Participant));
                    }
                    assert_eq!(e.seq(), last + 1);
                    last = e.seq();
                    events += 1;
                }
                s = &mut done, if stop.is_none() => stop = Some(s.unwrap()),
            }
        }
        (events, lag, from_journal, Instant::now())
    })
}

/// Run time and run-queue wait (ns) of each of this process's threads, by thread id,
/// with the thread's name (from `/proc/self/task/*/schedstat`).
type Threads = std::collections::BTreeMap<u64, (String, u64, u64)>;

fn threads() -> Threads {
    let mut out = Threads::new();
    for task in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = task.path();
        let (Some(tid), Ok(name), Ok(stat)) = (
            task.file_name().to_str().and_then(|t| t.parse().ok()),
            std::fs::read_to_string(p.join("comm")),
            std::fs::read_to_string(p.join("schedstat")),
        ) else {
            continue;
        };
        let mut v = stat.split_whitespace().filter_map(|x| x.parse().ok());
        let (run, wait) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
        out.insert(tid, (name.trim().to_string(), run, wait));
    }
    out
}

/// CPU used by the process's threads since `before`: (run, run-queue wait) in seconds,
/// and the same by thread name (tokio's workers and sled's I/O threads each summed).
fn cpu_since(before: &Threads) -> (f64, f64, Vec<(String, f64, f64)>) {
    let mut by_name = std::collections::BTreeMap::<String, (f64, f64)>::new();
    for (tid, (name, run, wait)) in threads() {
        let (r0, w0) = before.get(&tid).map_or((0, 0), |t| (t.1, t.2));
        let name = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        let e = by_name.entry(name.to_string()).or_default();
        e.0 += run.saturating_sub(r0) as f64 / 1e9;
        e.1 += wait.saturating_sub(w0) as f64 / 1e9;
    }
    let run = by_name.values().map(|v| v.0).sum();
    let wait = by_name.values().map(|v| v.1).sum();
    (
        run,
        wait,
        by_name.into_iter().map(|(n, (r, w))| (n, r, w)).collect(),
    )
}

/// CPU per operation in µs; with `BENCH_THREADS=1` also prints each thread's share of
/// one core over `wall` (and how long it waited for a core) to stderr.
fn cpu_per_op(what: &str, before: &Threads, wall: Duration, ops: usize) -> f64 {
    let (run, wait, names) = cpu_since(before);
    if std::env::var("BENCH_THREADS").is_ok_and(|v| v != "0") {
        let wall = wall.as_secs_f64();
        let parts: Vec<String> = names
            .iter()
            .filter(|(_, r, _)| *r / wall >= 0.01)
            .map(|(n, r, w)| {
                format!(
                    "{n} {:.0}% ({:.2} us/op; waited {:.0}%)",
                    100.0 * r / wall,
                    1e6 * r / ops as f64,
                    100.0 * w / wall
                )
            })
            .collect();
        eprintln!(
            "  {what}: {:.0}/s, CPU {:.0}% of one core (waited {:.0}%): {}",
            ops as f64 / wall,
            100.0 * run / wall,
            100.0 * wait / wall,
            parts.join(", ")
        );
    }
    1e6 * run / ops as f64
}

fn engine_run(rt: &tokio::runtime::Runtime, clients: usize, total: usize, feed: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    for i in 0..clients {
        engine.execute_blocking(create(i)).unwrap();
    }
    let per_client = (total / clients).max(1);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let sub = feed.then(|| {
        let _guard = rt.enter();
        subscriber(&engine, engine.head() + 1, done_rx)
    });
    let threads_before = threads();
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
    let finished = Instant::now();
    let elapsed = (finished - started).as_secs_f64();
    let cpu_us = cpu_per_op(
        &format!(
            "engine{}, {clients} clients",
            if feed { " + subscriber" } else { "" }
        ),
        &threads_before,
        finished - started,
        clients * per_client,
    );
    let feed = sub.map(|sub| {
        done_tx.send(engine.head()).unwrap();
        let (events, lag, from_journal, at) = rt.block_on(sub).unwrap();
        assert_eq!(events, (clients * per_client) as u64);
        FeedRun {
            events,
            lag,
            from_journal,
            catch_up: at.saturating_duration_since(finished),
        }
    });
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
        cpu_us,
        feed,
    }
}

/// The journal alone: the same number of writers appending records of the same size.
/// Returns appends/s, the average group commit size and the process's CPU per append in
/// µs.
fn journal_run(
    rt: &tokio::runtime::Runtime,
    writers: usize,
    total: usize,
    bytes: usize,
) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    let per_writer = (total / writers).max(1);
    let threads_before = threads();
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
    let wall = started.elapsed();
    let cpu_us = cpu_per_op(
        &format!("journal alone, {writers} writers"),
        &threads_before,
        wall,
        writers * per_writer,
    );
    let stats = j.stats();
    (
        (writers * per_writer) as f64 / wall.as_secs_f64(),
        stats.appends as f64 / stats.groups.max(1) as f64,
        cpu_us,
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

/// Resident memory of this process, in KiB (`VmRSS`).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

const MEMORY_ROOMS: usize = 100;

/// One side of the memory measurement, run in a child process of its own so that no
/// earlier allocation is reused: an engine with `MEMORY_ROOMS` rooms, then either
/// `sessions` guests joining (spread over the rooms, with the server's default session
/// lease) or, for the baseline, `events` lock/unlock commands (the same journal and feed
/// traffic without sessions). Checkpoints are off, so the checkpoint thread stays idle.
/// Prints: RSS before and after in KiB, events journaled, sessions online, and the size of
/// the committed state's checkpoint encoding.
fn memory_child(sessions: usize, events: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.checkpoint_every = u64::MAX;
    config.policy.max_users = u32::MAX;
    config.policy.session_lease_secs = DEFAULT_SESSION_LEASE_SECS;
    if let Some(c) = std::env::var("BENCH_MEMORY_FEED_CAPACITY")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        config.feed_capacity = c;
    }
    let engine = Engine::open(config).unwrap();
    for i in 0..MEMORY_ROOMS {
        engine.execute_blocking(create(i)).unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let idle = || std::thread::sleep(Duration::from_millis(500));
    idle();
    let head0 = engine.head();
    let rss0 = rss_kib();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..MEMORY_ROOMS {
            let engine = engine.clone();
            tasks.push(tokio::spawn(async move {
                if sessions > 0 {
                    for k in (i..sessions).step_by(MEMORY_ROOMS) {
                        engine.execute(join(i, k)).await.unwrap();
                    }
                } else {
                    for n in 0..events.div_ceil(MEMORY_ROOMS) {
                        engine.execute(toggle(i, n)).await.unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    idle();
    let rss1 = rss_kib();
    let (online, state_bytes) = engine.read(|s| {
        let bytes = bincode::serde::encode_to_vec(s, bincode::config::standard()).unwrap();
        (s.online, bytes.len())
    });
    // One more copy of the committed state, kept while measuring: what one copy costs.
    let copy = engine.read(|s| s.clone());
    let rss2 = rss_kib();
    drop(copy);
    println!(
        "{rss0} {rss1} {} {online} {state_bytes} {rss2}",
        engine.head() - head0
    );
}

/// A guest joining room `i` with session `k`, as the web gateway would.
fn join(i: usize, k: usize) -> Request {
    Request::new(
        Command::Join {
            room: room(i),
            session: SessionId::parse(&format!("web-{:016x}", k as u64 * 0x9e37_79b9_7f4a_7c15))
                .unwrap(),
            credentials: Credentials::default(),
        },
        Actor::Identity(Address::parse(&format!("web:guest{k}")).unwrap()),
        origin(),
    )
}

/// Runs `memory_child` in a fresh process and returns its figures.
fn memory_side(sessions: usize, events: usize) -> [u64; 6] {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("BENCH_MEMORY_CHILD", format!("{sessions} {events}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    [v[0], v[1], v[2], v[3], v[4], v[5]]
}

fn memory(sessions: usize) {
    let [s0, s1, s_events, online, s_bytes, s2] = memory_side(sessions, 0);
    assert_eq!(online, sessions as u64);
    let [b0, b1, b_events, _, b_bytes, b2] = memory_side(0, s_events as usize);
    let per_k = |kib: i64| kib as f64 * 1000.0 / sessions as f64 / 1024.0;
    let growth = s1 as i64 - s0 as i64;
    let base = b1 as i64 - b0 as i64;
    println!();
    println!(
        "| memory, {sessions} guests over {MEMORY_ROOMS} rooms ({s_events} events) | resident (VmRSS) before → after | growth | per 1000 sessions |"
    );
    println!("| --- | --- | --- | --- |");
    println!(
        "| with the sessions | {:.1} → {:.1} MiB | {:.1} MiB | {:.2} MiB |",
        s0 as f64 / 1024.0,
        s1 as f64 / 1024.0,
        growth as f64 / 1024.0,
        per_k(growth)
    );
    println!(
        "| baseline: {b_events} lock/unlock events, no sessions | {:.1} → {:.1} MiB | {:.1} MiB | |",
        b0 as f64 / 1024.0,
        b1 as f64 / 1024.0,
        base as f64 / 1024.0
    );
    println!(
        "| **sessions, net of the baseline** | | {:.1} MiB | **{:.2} MiB** |",
        (growth - base) as f64 / 1024.0,
        per_k(growth - base)
    );
    println!(
        "| one more copy of the committed state (`State::clone`), sessions / baseline | | {:.1} MiB / {:.1} MiB | {:.2} MiB |",
        (s2 - s1) as f64 / 1024.0,
        (b2 - b1) as f64 / 1024.0,
        per_k(s2 as i64 - s1 as i64 - (b2 as i64 - b1 as i64))
    );
    println!(
        "| committed state's checkpoint encoding | {:.1} KiB → {:.1} KiB | | {:.1} KiB |",
        b_bytes as f64 / 1024.0,
        s_bytes as f64 / 1024.0,
        (s_bytes as f64 - b_bytes as f64) * 1000.0 / sessions as f64 / 1024.0
    );
}

/// One round of a row: the engine without and with a subscriber, then the journal alone.
struct Round {
    plain: Run,
    fed: Run,
    journal: f64,
    journal_group: f64,
    journal_cpu_us: f64,
}

impl Round {
    fn ratio(&self, fed: bool) -> f64 {
        self.run(fed).per_sec / self.journal
    }

    fn run(&self, fed: bool) -> &Run {
        if fed {
            &self.fed
        } else {
            &self.plain
        }
    }
}

fn us(h: &Histogram<u64>, q: f64) -> String {
    let v = h.value_at_quantile(q);
    if v >= 10_000 {
        format!("{:.1} ms", v as f64 / 1000.0)
    } else {
        format!("{v} us")
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Ok(args) = std::env::var("BENCH_MEMORY_CHILD") {
        let v: Vec<usize> = args
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        memory_child(v[0], v[1]);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "machine: {} cores; BENCH_SCALE={}; feed subscriber builds JSON: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        scale(),
        std::env::var("BENCH_FEED_JSON").is_ok_and(|v| v != "0")
    );
    println!();
    println!("| clients (one room each) | run | engine commands/s (avg group) | p50 | p99 | CPU per command | subscriber lag p50 / p99 / max (events from the journal; catch-up after the last answer) | journal alone, same writers and record size (avg group; CPU per append) | engine / journal | with / without subscriber |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
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
        let runs: Vec<Round> = (0..rounds)
            .map(|r| {
                let (plain, fed) = if r.is_multiple_of(2) {
                    let p = engine_run(&rt, clients, total, false);
                    (p, engine_run(&rt, clients, total, true))
                } else {
                    let f = engine_run(&rt, clients, total, true);
                    (engine_run(&rt, clients, total, false), f)
                };
                let (journal, journal_group, journal_cpu_us) =
                    journal_run(&rt, clients, total, plain.record_bytes);
                Round {
                    plain,
                    fed,
                    journal,
                    journal_group,
                    journal_cpu_us,
                }
            })
            .collect();
        let mut cost: Vec<f64> = runs
            .iter()
            .map(|r| r.fed.per_sec / r.plain.per_sec)
            .collect();
        cost.sort_by(f64::total_cmp);
        for fed in [false, true] {
            let mut order: Vec<&Round> = runs.iter().collect();
            order.sort_by(|a, b| a.ratio(fed).total_cmp(&b.ratio(fed)));
            let all: Vec<String> = order
                .iter()
                .map(|r| format!("{:.0}%", 100.0 * r.ratio(fed)))
                .collect();
            let round = order[order.len() / 2];
            let e = round.run(fed);
            let (label, lag, cost) = match &e.feed {
                None => ("engine".to_string(), String::new(), String::new()),
                Some(f) => (
                    "engine + 1 subscriber, whole feed".to_string(),
                    format!(
                        "{} / {} / {} ({}; {:.1} ms)",
                        us(&f.lag, 0.5),
                        us(&f.lag, 0.99),
                        us(&f.lag, 1.0),
                        f.from_journal,
                        f.catch_up.as_secs_f64() * 1000.0
                    ),
                    format!(
                        "{:.0}% (rounds: {})",
                        100.0 * cost[cost.len() / 2],
                        cost.iter()
                            .map(|c| format!("{:.0}%", 100.0 * c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            };
            if let Some(f) = &e.feed {
                debug_assert!(f.events > 0);
            }
            let ratio = 100.0 * round.ratio(fed);
            println!(
                "| {clients} | {label} | {:.0}/s ({:.1}) | {} us | {} us | {:.1} us | {lag} | {:.0}/s ({:.1}; {:.1} us) | {ratio:.0}% (rounds: {}) | {cost} |",
                e.per_sec,
                e.avg_group,
                e.p50_us,
                e.p99_us,
                e.cpu_us,
                round.journal,
                round.journal_group,
                round.journal_cpu_us,
                all.join(", ")
            );
        }
    }
    let sessions: usize = std::env::var("BENCH_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    if sessions > 0 {
        memory(sessions);
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

//! Outbox benchmark against a real nats-server (loopback): how fast the outbox publishes
//! and how long a record waits between its durable append and its JetStream ack, next to
//! a raw async-nats publish loop with the same payload size in the same run.
//!
//! `cargo bench -p conclave-gateway-nats --bench outbox` (env: BENCH_RECORDS, BENCH_RATE,
//! BENCH_SECS). Prints a Markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::message::PublishMessage;
use conclave_engine::service::Engine;
use conclave_gateway_nats::{setup_stream, start, NatsAuth, NatsConfig, NatsTls, StreamOptions};
use hdrhistogram::Histogram;
use serde_json::json;
use support::{exec, exec_as, person, NatsServer};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Row {
    name: String,
    events: u64,
    secs: f64,
    lag: Option<Histogram<u64>>,
}

fn print(rows: &[Row]) {
    println!(
        "| scenario | events | seconds | events/s | p50 lag (ms) | p99 lag (ms) | max lag (ms) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let (p50, p99, max) = match &r.lag {
            Some(h) => (
                format!("{:.2}", h.value_at_quantile(0.5) as f64 / 1000.0),
                format!("{:.2}", h.value_at_quantile(0.99) as f64 / 1000.0),
                format!("{:.2}", h.max() as f64 / 1000.0),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {:.2} | {:.0} | {p50} | {p99} | {max} |",
            r.name,
            r.events,
            r.secs,
            r.events as f64 / r.secs
        );
    }
}

async fn prepare(engine: &Engine) {
    exec(
        engine,
        json!({"create_room": {"room": "bench", "private": false, "owner": "sip:alice@example.org"}}),
    )
    .await;
    exec_as(
        engine,
        person("sip:alice@example.org"),
        json!({"join": {"room": "bench", "session": "s1", "credentials": {}}}),
    )
    .await;
}

async fn post(engine: &Engine, i: u64) {
    exec_as(
        engine,
        person("sip:alice@example.org"),
        json!({"post_message": {"room": "bench", "body": format!("message {i} {}", "x".repeat(200))}}),
    )
    .await;
}

/// Fills the journal with `n` chat records, `conc` commands at a time.
async fn fill(engine: &Engine, n: u64, conc: u64) {
    let mut tasks = Vec::new();
    for w in 0..conc {
        let e = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < n {
                post(&e, i).await;
                i += conc;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Catch-up: the journal already holds `n` records; time until all are acknowledged.
async fn catch_up(url: &str, dir: &std::path::Path, n: u64, jetstream: bool, window: usize) -> Row {
    let prefix = fresh_stream(url, &format!("catchup{jetstream}{window}")).await;
    let engine = support::open_engine(&dir.join(format!("data-{jetstream}-{window}")));
    prepare(&engine).await;
    fill(&engine, n, 64).await;
    let head = engine.journal().head();
    let mut cfg = NatsConfig::new(url, dir.join(format!("cursor-{jetstream}-{window}")));
    cfg.jetstream = jetstream;
    cfg.window = window;
    cfg.subject_prefix = prefix;
    let t0 = Instant::now();
    let h = start(engine.clone(), cfg).await.unwrap();
    let mut w = h.cursor_watch();
    while *w.borrow_and_update() < head {
        w.changed().await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    h.shutdown().await;
    engine.shutdown();
    Row {
        name: format!(
            "outbox catch-up, {} window {window}",
            if jetstream { "JetStream" } else { "core NATS" }
        ),
        events: head,
        secs,
        lag: None,
    }
}

/// Steady load: `rate` commands/s for `secs`; lag from the record's arrival on a journal
/// subscription (durable) to the cursor passing it (JetStream ack).
async fn steady(url: &str, dir: &std::path::Path, rate: u64, secs: u64) -> Row {
    let prefix = fresh_stream(url, &format!("steady{rate}")).await;
    let engine = support::open_engine(&dir.join(format!("data-steady-{rate}")));
    prepare(&engine).await;
    let mut cfg = NatsConfig::new(url, dir.join(format!("cursor-steady-{rate}")));
    cfg.window = 256;
    cfg.subject_prefix = prefix;
    let h = start(engine.clone(), cfg).await.unwrap();
    let mut w = h.cursor_watch();
    let start_head = engine.journal().head();
    while *w.borrow_and_update() < start_head {
        w.changed().await.unwrap();
    }
    let appended: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let tail = {
        let appended = appended.clone();
        let mut sub = engine.journal().subscribe(start_head + 1);
        tokio::spawn(async move {
            while let Ok(r) = sub.next().await {
                appended.lock().unwrap().insert(r.seq, Instant::now());
            }
        })
    };
    let total = rate * secs;
    let issuer = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut inflight = Vec::new();
            for i in 0..total {
                tick.tick().await;
                let e = engine.clone();
                inflight.push(tokio::spawn(async move { post(&e, i).await }));
            }
            for t in inflight {
                t.await.unwrap();
            }
        })
    };
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let t0 = Instant::now();
    let mut seen = start_head;
    let target = start_head + total;
    while seen < target {
        w.changed().await.unwrap();
        let now = Instant::now();
        let c = *w.borrow_and_update();
        let map = appended.lock().unwrap();
        for seq in seen + 1..=c {
            // The tail task may not have stamped it yet: then the lag is ~0.
            let lag = map
                .get(&seq)
                .map_or(0, |t| now.duration_since(*t).as_micros() as u64);
            hist.record(lag.max(1)).unwrap();
        }
        seen = c;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    issuer.await.unwrap();
    tail.abort();
    h.shutdown().await;
    engine.shutdown();
    Row {
        name: format!("outbox steady {rate} cmd/s, JetStream window 256 (append→ack lag)"),
        events: total,
        secs: elapsed,
        lag: Some(hist),
    }
}

/// Baseline: raw async-nats JetStream publishes of a 700-byte payload.
async fn raw(url: &str, n: u64, window: usize) -> Row {
    let prefix = fresh_stream(url, &format!("raw{window}")).await;
    let subject = format!("{prefix}.events.raw");
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let payload = bytes::Bytes::from(vec![b'x'; 700]);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut inflight = std::collections::VecDeque::new();
    let t0 = Instant::now();
    for i in 0..n {
        let p = PublishMessage::build()
            .payload(payload.clone())
            .message_id(i.to_string());
        let sent = Instant::now();
        inflight.push_back((sent, js.send_publish(subject.clone(), p).await.unwrap()));
        if inflight.len() >= window {
            let (sent, f) = inflight.pop_front().unwrap();
            f.await.unwrap();
            hist.record(sent.elapsed().as_micros() as u64).unwrap();
        }
    }
    while let Some((sent, f)) = inflight.pop_front() {
        f.await.unwrap();
        hist.record(sent.elapsed().as_micros() as u64).unwrap();
    }
    Row {
        name: format!("raw async-nats JetStream publish, window {window} (publish→ack)"),
        events: n,
        secs: t0.elapsed().as_secs_f64(),
        lag: Some(hist),
    }
}

/// A stream of its own per scenario, so message ids (journal sequences) never collide.
async fn fresh_stream(url: &str, tag: &str) -> String {
    let prefix = format!("bench{tag}");
    let options = StreamOptions {
        name: prefix.to_uppercase(),
        subject_prefix: prefix.clone(),
        ..StreamOptions::default()
    };
    setup_stream(url, &NatsAuth::default(), &NatsTls::default(), &options)
        .await
        .unwrap();
    prefix
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env("BENCH_RECORDS", 20_000);
    let rate = env("BENCH_RATE", 1000);
    let secs = env("BENCH_SECS", 10);
    let dir = tempfile::tempdir().unwrap();
    let Some(server) = NatsServer::start(&dir.path().join("js")) else {
        return;
    };
    let url = server.url();
    let rows = vec![
        raw(&url, n, 256).await,
        raw(&url, n / 10, 1).await,
        catch_up(&url, dir.path(), n, true, 256).await,
        catch_up(&url, dir.path(), n / 10, true, 1).await,
        catch_up(&url, dir.path(), n, false, 256).await,
        steady(&url, dir.path(), rate, secs).await,
    ];
    print(&rows);
}

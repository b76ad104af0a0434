//! Journal benchmark: prints one table comparing the journal with raw sled in the same run.
//!
//! Run: `cargo bench -p conclave-journal --bench journal` (set `BENCH_SCALE=0.2` for a
//! quick pass). Every figure is measured on a fresh database in a temporary directory.
//! Write throughput is measured in `BENCH_ROUNDS` rounds (default 3), each the journal
//! and then raw sled back to back; the round with the median ratio is printed, so a
//! burst of load from elsewhere on the machine moves one round, not the result.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::Utc;
use conclave_journal::storage::sled_config;
use conclave_journal::{
    AppendRequest, ExpectedVersion, Journal, JournalConfig, Metadata, NewRecord, SyncMode,
};
use hdrhistogram::Histogram;

const PAYLOAD: usize = 200;

fn scale() -> f64 {
    std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64 * scale()) as usize).max(1)
}

fn config(sync: SyncMode) -> JournalConfig {
    JournalConfig {
        sync,
        ..JournalConfig::default()
    }
}

fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3usize)
        .max(1)
}

/// Which stream each append goes to.
#[derive(Clone, Copy)]
enum Streams {
    /// One stream per writer: the index stores a run per stream per batch.
    PerWriter,
    /// A new stream for every append: every index run holds one entry, the worst case.
    PerAppend,
}

fn request(writer: usize, i: usize, streams: Streams) -> AppendRequest {
    let stream = match streams {
        Streams::PerWriter => format!("room:{writer}"),
        Streams::PerAppend => format!("room:{writer}:{i}"),
    };
    AppendRequest::to_stream(
        stream.clone(),
        ExpectedVersion::Any,
        vec![NewRecord {
            stream,
            event_type: "room_join".into(),
            schema_version: 1,
            timestamp: Utc::now(),
            payload: vec![(i % 251) as u8; PAYLOAD],
            content: None,
            meta: Metadata {
                actor: Some(format!("sip:user{writer}@example.org")),
                gateway: Some("bench".into()),
                protocol: Some("none".into()),
                remote_addr: Some("k:3f2a9c".into()),
                correlation_id: Some(format!("c-{writer}-{i}")),
                causation_id: None,
                authorized_by: None,
            },
        }],
    )
}

struct Throughput {
    per_sec: f64,
    avg_group: f64,
    record_bytes: usize,
}

fn durable_appends(
    rt: &tokio::runtime::Runtime,
    writers: usize,
    total: usize,
    streams: Streams,
) -> Throughput {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    let per_writer = (total / writers).max(1);
    let started = Instant::now();
    rt.block_on(async {
        let mut handles = Vec::new();
        for w in 0..writers {
            let j = j.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..per_writer {
                    j.append(request(w, i, streams)).await.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let stats = j.stats();
    // The first append had the writer to itself, so its chunk holds one record: the
    // chunk minus its format byte and frame length is the stored size of a record.
    let record_bytes = {
        let (_, chunk) = j.storage().chunks(1).next().unwrap().unwrap();
        let second_starts_chunk = j.storage().chunks(2).next().unwrap().unwrap().0 == 2;
        assert!(second_starts_chunk || writers > 1);
        chunk.len().saturating_sub(5)
    };
    Throughput {
        per_sec: stats.appends as f64 / elapsed,
        avg_group: stats.appends as f64 / stats.groups as f64,
        record_bytes,
    }
}

/// sled's default segment size; the journal uses larger ones (see its storage module).
const SLED_DEFAULT_SEGMENT: usize = 512 * 1024;

/// Raw sled with the journal's settings, or with sled's default segment size.
fn raw_sled(path: &std::path::Path, default_segments: bool) -> sled::Db {
    let config = sled_config(path, JournalConfig::default().cache_capacity);
    let config = if default_segments {
        config.segment_size(SLED_DEFAULT_SEGMENT)
    } else {
        config
    };
    config.open().unwrap()
}

/// What raw sled's flush is followed by.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RawSync {
    /// `Db::flush` alone: the log written, then only `sync_file_range`.
    SledFlush,
    /// `Db::flush`, then `fdatasync` of the log file: durable across a power cut, the
    /// same system calls as the journal's flush.
    Fdatasync,
}

/// Raw sled: insert `batch` values of `bytes` each as one batch, flush, repeat. The
/// better of the journal's sled settings and sled's default segment size.
fn raw_sled_batched(batch: usize, bytes: usize, total: usize, sync: RawSync) -> f64 {
    let journal_settings = raw_sled_batched_with(batch, bytes, total, false, sync);
    let default_segments = raw_sled_batched_with(batch, bytes, total, true, sync);
    journal_settings.max(default_segments)
}

fn raw_sled_batched_with(
    batch: usize,
    bytes: usize,
    total: usize,
    default_segments: bool,
    sync: RawSync,
) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = raw_sled(dir.path(), default_segments);
    let log = std::fs::File::open(dir.path().join("db")).unwrap();
    let tree = db.open_tree("raw").unwrap();
    let value = vec![7u8; bytes];
    let started = Instant::now();
    let mut seq = 0u64;
    while (seq as usize) < total {
        let mut b = sled::Batch::default();
        for _ in 0..batch {
            seq += 1;
            b.insert(&seq.to_be_bytes()[..], value.clone());
        }
        tree.apply_batch(b).unwrap();
        db.flush().unwrap();
        if sync == RawSync::Fdatasync {
            log.sync_data().unwrap();
        }
    }
    seq as f64 / started.elapsed().as_secs_f64()
}

/// Latency of `n` appends made one after the other by a single writer: (p50, p99) in
/// microseconds.
fn single_writer_latency(rt: &tokio::runtime::Runtime, n: usize) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    let mut hist = Histogram::<u64>::new(3).unwrap();
    rt.block_on(async {
        for i in 0..n {
            let t = Instant::now();
            j.append(request(0, i, Streams::PerWriter)).await.unwrap();
            hist.record((t.elapsed().as_micros() as u64).max(1))
                .unwrap();
        }
    });
    (hist.value_at_quantile(0.5), hist.value_at_quantile(0.99))
}

fn latency_at_load(rt: &tokio::runtime::Runtime, rate: u64, seconds: u64) -> (u64, u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    let hist = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let interval = Duration::from_nanos(1_000_000_000 / rate);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let total = rate * seconds;
        for i in 0..total as usize {
            ticker.tick().await;
            let j = j.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                j.append(request(i % 64, i, Streams::PerWriter))
                    .await
                    .unwrap();
                let _ = tx.send(t.elapsed().as_micros() as u64);
            });
        }
        drop(tx);
        let mut hist = Histogram::<u64>::new(3).unwrap();
        while let Some(us) = rx.recv().await {
            hist.record(us.max(1)).unwrap();
        }
        hist
    });
    (
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.len(),
    )
}

/// Raw sled scan of `n` values of `bytes` each, one key per record: what reading these
/// records back from sled costs with nothing on top. sled's default segment size, which
/// scans one-key-per-record data about twice as fast as the journal's larger segments.
fn raw_sled_scan(n: usize, bytes: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = raw_sled(dir.path(), true);
    let tree = db.open_tree("raw").unwrap();
    let value = vec![7u8; bytes];
    for start in (0..n).step_by(1000) {
        let mut b = sled::Batch::default();
        for i in start..(start + 1000).min(n) {
            b.insert(&(i as u64).to_be_bytes()[..], value.clone());
        }
        tree.apply_batch(b).unwrap();
    }
    db.flush().unwrap();
    let _ = tree.iter().count();
    let started = Instant::now();
    let mut total = 0usize;
    for kv in tree.iter() {
        total += kv.unwrap().1.len();
    }
    assert_eq!(total, n * bytes);
    n as f64 / started.elapsed().as_secs_f64()
}

/// (verify rate, decode rate) over a journal of `records` records.
fn verify_and_decode(rt: &tokio::runtime::Runtime, records: usize) -> (f64, f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::None)).unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for w in 0..64 {
            let j = j.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..records / 64 {
                    j.append(request(w, i, Streams::PerWriter)).await.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    // Reopen so sled's background flush of what was just written does not overlap.
    drop(j);
    let j = Journal::open(dir.path(), config(SyncMode::None)).unwrap();
    let n = j.head() as f64;
    // Warm the cache once so neither measurement pays for the first read from disk.
    let _ = j.verify().unwrap();
    let started = Instant::now();
    let report = j.verify().unwrap();
    let verify = n / started.elapsed().as_secs_f64();
    assert!(report.is_ok());
    let started = Instant::now();
    let decoded = j.iter_from(1).filter(|r| r.is_ok()).count();
    let decode = decoded as f64 / started.elapsed().as_secs_f64();
    (verify, decode, n as usize)
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
    println!("| measurement | result | baseline (same run) | ratio |");
    println!("| --- | --- | --- | --- |");
    let only_verify = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "verify");
    let mut record_bytes = 349;
    let only_256 = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "256");
    let write_runs: &[(usize, usize, Streams, &str)] = if only_verify {
        &[]
    } else if only_256 {
        &[(256, 100_000, Streams::PerWriter, "")]
    } else {
        &[
            (1, 2_000, Streams::PerWriter, ""),
            (16, 20_000, Streams::PerWriter, ""),
            (256, 100_000, Streams::PerWriter, ""),
            (256, 100_000, Streams::PerAppend, ", a new stream each"),
        ]
    };
    for &(writers, total, streams, label) in write_runs {
        let total = scaled(total);
        // (ratio, journal, raw durable, group, raw flush only) of each round; the median
        // round is printed.
        let mut runs: Vec<(f64, f64, f64, f64, f64)> = (0..rounds())
            .map(|_| {
                let t = durable_appends(&rt, writers, total, streams);
                if writers == 1 {
                    record_bytes = t.record_bytes;
                }
                let group = t.avg_group.round().max(1.0) as usize;
                let raw = raw_sled_batched(group, record_bytes, total, RawSync::Fdatasync);
                let flush_only = raw_sled_batched(group, record_bytes, total, RawSync::SledFlush);
                (t.per_sec / raw, t.per_sec, raw, t.avg_group, flush_only)
            })
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let all: Vec<String> = runs
            .iter()
            .map(|r| format!("{:.0}%", 100.0 * r.0))
            .collect();
        let (ratio, per_sec, raw, avg_group, flush_only) = runs[runs.len() / 2];
        println!(
            "| durable appends, {writers} writers{label} (avg group {avg_group:.1}) | {per_sec:.0}/s | raw sled insert+flush+fdatasync, batches of {:.0}: {raw:.0}/s (flush without fdatasync: {flush_only:.0}/s) | {:.0}% (rounds: {}) |",
            avg_group.round().max(1.0),
            100.0 * ratio,
            all.join(", ")
        );
    }
    if only_256 {
        return;
    }
    if !only_verify {
        let n = scaled(2_000);
        let (p50, p99) = single_writer_latency(&rt, n);
        println!("| append latency, 1 writer, one append at a time ({n} appends) | p50 {p50} us, p99 {p99} us | | |");
        let (p50, p99, n) = latency_at_load(&rt, 1_000, (3.0 * scale()).ceil() as u64);
        println!("| append latency at 1000 appends/s offered ({n} appends) | p50 {p50} us, p99 {p99} us | | |");
    }
    let (verify, decode, n) = verify_and_decode(&rt, scaled(500_000));
    let scan = raw_sled_scan(n, record_bytes);
    println!(
        "| full scan + decode + verify, {n} records | {:.0} records/s | raw sled scan, one key per record: {:.0} records/s | {:.0}% |",
        verify,
        scan,
        100.0 * verify / scan
    );
    println!(
        "| full scan + decode to owned records (no verify) | {:.0} records/s | raw sled scan, one key per record: {:.0} records/s | {:.0}% |",
        decode,
        scan,
        100.0 * decode / scan
    );
    println!();
    println!("stored record size: {record_bytes} bytes ({PAYLOAD}-byte payload)");
}

//! Group commit under concurrency, and tailing with a live hand-over.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::*;
use conclave_journal::{ExpectedVersion, Journal, SyncMode};
use proptest::prelude::*;

fn run_concurrent(tasks: usize, per_task: usize, sync: SyncMode) {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(sync)).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..tasks {
            let j = j.clone();
            handles.push(tokio::spawn(async move {
                let stream = format!("room:{t}");
                let mut seqs = Vec::new();
                for i in 0..per_task {
                    let payload = format!("{t}/{i}");
                    let done = j
                        .append(one(
                            &stream,
                            ExpectedVersion::Exact(i as u64),
                            payload.as_bytes(),
                        ))
                        .await
                        .unwrap();
                    seqs.push(done.records[0].seq);
                }
                seqs
            }));
        }
        let mut all = HashSet::new();
        for h in handles {
            let seqs = h.await.unwrap();
            // Each writer's own appends are in order.
            assert!(seqs.windows(2).all(|w| w[0] < w[1]));
            all.extend(seqs);
        }
        let total = tasks * per_task;
        assert_eq!(all.len(), total);
        assert_eq!(all, (1..=total as u64).collect::<HashSet<_>>());
    });
    assert_eq!(j.head(), (tasks * per_task) as u64);
    let report = j.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.records_checked, (tasks * per_task) as u64);
    for t in 0..tasks {
        let stream = j.read_stream(&format!("room:{t}"), 1).unwrap();
        let payloads: Vec<String> = stream
            .iter()
            .map(|r| String::from_utf8(r.payload.clone()).unwrap())
            .collect();
        let want: Vec<String> = (0..per_task).map(|i| format!("{t}/{i}")).collect();
        assert_eq!(payloads, want);
    }
}

#[test]
fn concurrent_durable_appends_are_gap_free() {
    run_concurrent(64, 20, SyncMode::Always);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn concurrent_appends_are_gap_free_for_any_shape(tasks in 1usize..40, per_task in 1usize..30) {
        run_concurrent(tasks, per_task, SyncMode::None);
    }
}

#[test]
fn conflicting_writers_on_one_stream_never_both_win() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for t in 0..32u8 {
            let j = j.clone();
            handles.push(tokio::spawn(async move {
                j.append(one("room:contested", ExpectedVersion::NoStream, &[t]))
                    .await
            }));
        }
        let mut wins = 0;
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => wins += 1,
                Err(e) => assert_eq!(e.code(), "journal.conflict"),
            }
        }
        assert_eq!(wins, 1);
    });
    assert_eq!(j.head(), 1);
}

#[test]
fn tail_hands_over_from_disk_to_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    for i in 0..700u32 {
        j.append_blocking(one("room:a", ExpectedVersion::Any, &i.to_be_bytes()))
            .unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async {
        let total = 2000u64;
        // Two subscribers: one from the start, one from the middle of history.
        let mut from_start = j.subscribe(1);
        let mut from_middle = j.subscribe(350);
        let writer = {
            let j = j.clone();
            tokio::spawn(async move {
                for i in 700..total as u32 {
                    j.append(one("room:b", ExpectedVersion::Any, &i.to_be_bytes()))
                        .await
                        .unwrap();
                }
            })
        };
        for want in 1..=total {
            let r = from_start.next().await.unwrap();
            assert_eq!(r.seq, want);
        }
        for want in 350..=total {
            let r = from_middle.next().await.unwrap();
            assert_eq!(r.seq, want);
        }
        writer.await.unwrap();
        assert!(from_start.try_next().unwrap().is_none());
        j.append(one("room:c", ExpectedVersion::Any, b"late"))
            .await
            .unwrap();
        assert_eq!(from_start.next().await.unwrap().seq, total + 1);
    });
}

/// A database closed a moment ago may still be locked by sled's threads: opening it
/// again waits for the lock (briefly) instead of failing. Here the lock is held, on
/// purpose, by a journal still open while the second open starts.
#[test]
fn reopening_waits_for_a_lock_released_a_moment_later() {
    let dir = tempfile::tempdir().unwrap();
    let first = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    let (started, opened) = std::sync::mpsc::channel();
    let path = dir.path().to_owned();
    let second = std::thread::spawn(move || {
        started.send(()).unwrap();
        Journal::open(&path, config(SyncMode::Always)).map(|_| ())
    });
    opened.recv().unwrap();
    // Hold the lock while the other thread tries, then let it go.
    std::thread::sleep(std::time::Duration::from_millis(100));
    drop(first);
    second.join().unwrap().unwrap();
}

//! Crash safety: a child process appends durably and prints every acknowledgement; it is
//! killed with SIGKILL at random moments. After each kill every acknowledged record must
//! be present with the acknowledged hash, the chain must verify, and appends continue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use conclave_journal::{ExpectedVersion, Journal, SyncMode};

const CHILD_ENV: &str = "CONCLAVE_CRASH_CHILD_DIR";
const WRITERS: usize = 8;

/// The child: not a test of its own; run only by `acknowledged_records_survive_sigkill`.
#[test]
#[ignore = "child process of acknowledged_records_survive_sigkill"]
fn crash_child_appender() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let j = Journal::open(&dir, config(SyncMode::Always)).unwrap();
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let j = j.clone();
            s.spawn(move || {
                let mut i = 0u64;
                loop {
                    let mut req = one(&format!("room:{w}"), ExpectedVersion::Any, &i.to_be_bytes());
                    if i.is_multiple_of(5) {
                        req.records[0].content = Some(format!("said {i}").into_bytes());
                    }
                    if i % 50 == 7 {
                        // Near the record size limit, so chunks reach their size limit.
                        req.records[0].payload = vec![w as u8; 60 * 1024];
                    }
                    let done = j.append_blocking(req).unwrap();
                    let r = &done.records[0];
                    println!("ack {} {}", r.seq, hex(&r.hash));
                    i += 1;
                }
            });
        }
    });
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn random_below(n: u64) -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b) % n
}

#[test]
fn acknowledged_records_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: BTreeMap<u64, String> = BTreeMap::new();
    let rounds = 24;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "crash_child_appender",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ack ") {
                    let (seq, hash) = rest.split_once(' ').unwrap();
                    if tx
                        .send((seq.parse::<u64>().unwrap(), hash.to_string()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        });
        // Kill after a random number of acknowledgements (sometimes before the first).
        let kill_after = random_below(400);
        let started = Instant::now();
        let mut seen = 0;
        while seen < kill_after && started.elapsed() < Duration::from_secs(20) {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok((seq, hash)) => {
                    acked.insert(seq, hash);
                    seen += 1;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("child exited by itself"),
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        // Acknowledgements printed before the kill still count.
        for (seq, hash) in rx.try_iter() {
            acked.insert(seq, hash);
        }

        let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
        let max_acked = acked.keys().next_back().copied().unwrap_or(0);
        assert!(
            j.head() >= max_acked,
            "round {round}: head {} < acknowledged {max_acked}",
            j.head()
        );
        for (seq, hash) in &acked {
            let r = j
                .get(*seq)
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: acknowledged {seq} lost"));
            assert_eq!(&hex(&r.hash), hash, "round {round}: record {seq} changed");
        }
        let report = j.verify().unwrap();
        assert!(report.is_ok(), "round {round}: {report:?}");
        // The stream index (written off the durable path) caught up on open.
        for w in 0..WRITERS {
            let stream = format!("room:{w}");
            let records = j.read_stream(&stream, 1).unwrap();
            let versions: Vec<u64> = records.iter().map(|r| r.stream_version).collect();
            assert_eq!(
                versions,
                (1..=versions.len() as u64).collect::<Vec<_>>(),
                "round {round}"
            );
            assert_eq!(
                j.stream_version(&stream),
                versions.len() as u64,
                "round {round}"
            );
        }
        // Appends continue after recovery.
        let next = j
            .append_blocking(one("room:after", ExpectedVersion::Any, b"after"))
            .unwrap();
        assert_eq!(next.records[0].seq, j.head());
        acked.insert(next.records[0].seq, hex(&next.records[0].hash));
    }
    assert!(
        acked.len() > rounds,
        "the children acknowledged almost nothing"
    );
}

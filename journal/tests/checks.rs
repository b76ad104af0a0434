//! The journal checks itself, and reading it never touches the evidence: the head witness
//! outside the database directory, verification on a private copy (every file byte for
//! byte unchanged, also on a read-only file system), damage named by sequence and place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use conclave_journal::{
    ExpectedVersion, Journal, JournalConfig, JournalCopy, JournalError, SyncMode, VerifyProblem,
};

/// Every file under `dir` (relative path) with its length and blake3 hash.
fn hash_tree(dir: &Path) -> BTreeMap<PathBuf, (u64, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    (0, "dir".into()),
                );
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    (
                        bytes.len() as u64,
                        blake3::hash(&bytes).to_hex().to_string(),
                    ),
                );
            }
        }
    }
    out
}

fn with_witness(witness: &Path) -> JournalConfig {
    JournalConfig {
        head_witness: Some(witness.to_path_buf()),
        ..config(SyncMode::Always)
    }
}

fn append_n(j: &Journal, from: u64, n: u64) {
    for i in from..from + n {
        let mut r = one(
            &format!("room:{}", i % 3),
            ExpectedVersion::Any,
            format!("payload {i}").as_bytes(),
        );
        if i.is_multiple_of(4) {
            r.records[0].content = Some(format!("chat body {i}").into_bytes());
        }
        j.append_blocking(r).unwrap();
    }
}

/// A data directory with a journal of `n` records and its head witness.
fn data_dir(n: u64) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let data = tempfile::tempdir().unwrap();
    let journal = data.path().join("journal");
    let witness = data.path().join("journal-head");
    let j = Journal::open(&journal, with_witness(&witness)).unwrap();
    append_n(&j, 0, n);
    drop(j);
    (data, journal, witness)
}

#[test]
fn a_new_journal_writes_its_head_witness() {
    let (_data, journal, witness) = data_dir(5);
    let marker = conclave_journal::read_head_marker(&journal.join("conclave-head")).unwrap();
    assert_eq!(marker.map(|m| m.0), Some(5));
    assert_eq!(
        conclave_journal::read_head_marker(&witness).unwrap(),
        marker,
        "the witness names the same durable head as the marker inside"
    );
    // And it opens again.
    assert_eq!(
        Journal::open(&journal, with_witness(&witness))
            .unwrap()
            .head(),
        5
    );
}

#[test]
fn a_journal_deleted_with_its_directory_is_refused_and_not_recreated() {
    let (_data, journal, witness) = data_dir(5);
    std::fs::remove_dir_all(&journal).unwrap();
    let err = Journal::open(&journal, with_witness(&witness))
        .err()
        .unwrap();
    assert_eq!(
        err,
        JournalError::Truncated {
            acknowledged: 5,
            found: 0
        }
    );
    assert_eq!(err.code(), "journal.truncated");
    let msg = err.to_string();
    assert!(msg.contains("expected head: at least 5"), "{msg}");
    assert!(msg.contains("found head: 0"), "{msg}");
    assert!(!journal.exists(), "refusing must not create a new database");
    // An emptied directory is missing too.
    std::fs::create_dir(&journal).unwrap();
    assert_eq!(
        Journal::open(&journal, with_witness(&witness))
            .err()
            .map(|e| e.code()),
        Some("journal.truncated")
    );
    // Without the witness (before it existed), the loss went unnoticed: the control.
    std::fs::remove_dir_all(&journal).unwrap();
    assert_eq!(
        Journal::open(&journal, config(SyncMode::Always))
            .unwrap()
            .head(),
        0
    );
}

#[test]
fn a_journal_rolled_back_to_an_older_copy_is_refused_by_its_witness() {
    let (data, journal, witness) = data_dir(3);
    let old = data.path().join("old");
    conclave_journal::copy_journal_dir(&journal, &old).unwrap();
    {
        let j = Journal::open(&journal, with_witness(&witness)).unwrap();
        append_n(&j, 3, 4);
    }
    std::fs::remove_dir_all(&journal).unwrap();
    std::fs::rename(&old, &journal).unwrap();
    // The old copy carries its own, older, marker: only the witness can tell.
    assert_eq!(
        Journal::open(&journal, with_witness(&witness)).err(),
        Some(JournalError::Truncated {
            acknowledged: 7,
            found: 3
        })
    );
    assert_eq!(
        JournalCopy::open(&journal, config(SyncMode::None))
            .unwrap()
            .head(),
        3,
        "the control: the marker inside agrees with the old copy"
    );
}

#[test]
fn a_journal_replaced_by_another_of_the_same_length_is_refused_by_its_witness() {
    let (data, journal, witness) = data_dir(4);
    let other = data.path().join("other");
    {
        let j = Journal::open(&other, config(SyncMode::Always)).unwrap();
        append_n(&j, 100, 4);
    }
    std::fs::remove_dir_all(&journal).unwrap();
    std::fs::rename(&other, &journal).unwrap();
    assert_eq!(
        Journal::open(&journal, with_witness(&witness)).err(),
        Some(JournalError::Truncated {
            acknowledged: 4,
            found: 4
        })
    );
}

/// Where `needle` occurs in `file`.
fn occurrences(file: &Path, needle: &[u8]) -> Vec<usize> {
    let bytes = std::fs::read(file).unwrap();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(p) = bytes[from..]
        .windows(needle.len())
        .position(|w| w == needle)
    {
        found.push(from + p);
        from += p + needle.len();
    }
    found
}

/// Flips the low bit of the byte at `at` of `file`.
fn flip(file: &Path, at: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(file, bytes).unwrap();
}

/// Flips every occurrence of `needle` in `file`; returns how many.
fn flip_occurrences(file: &Path, needle: &[u8]) -> usize {
    let found = occurrences(file, needle);
    for at in &found {
        flip(file, at + 7);
    }
    found.len()
}

/// A journal of `small` short records (payload `needle-<seq>`) then `big` records of 40 KB,
/// reopened twice so that sled's snapshot covers all of it: more than one 8 MiB sled
/// segment, so that damage in the first one can be off sled's recovery path and only be
/// met when its page is read.
fn big_journal(dir: &Path, small: u64, big: u64) {
    {
        let j = Journal::open(dir, config(SyncMode::None)).unwrap();
        for i in 1..=small + big {
            let mut payload = format!("needle-{i:06}-").into_bytes();
            if i > small {
                payload.resize(40_000, b'y');
            }
            j.append_blocking(one(
                &format!("room:{}", i % 7),
                ExpectedVersion::Any,
                &payload,
            ))
            .unwrap();
        }
    }
    for _ in 0..2 {
        assert_eq!(
            Journal::open(dir, config(SyncMode::None)).unwrap().head(),
            small + big
        );
    }
}

/// A flipped byte in a page sled does not read on open (the brief's "starts healthy,
/// then answers 500"): opening succeeds, verification names the first record it cannot
/// read, the damage is remembered, and the original is left as it was.
///
/// sled keeps older copies of a page in its log, and its segment cleaner may move the
/// live one to the log's tail (on its recovery path) at any time, so each copy of the
/// target record's bytes is damaged on its own, and a journal whose live copy was moved
/// is built again: every outcome is checked, and the live copy off the recovery path
/// must turn up within a few journals.
#[test]
fn damage_sled_does_not_check_on_open_is_named_by_verify_and_remembered() {
    for _attempt in 0..8 {
        if damage_off_the_recovery_path() {
            return;
        }
    }
    panic!("no journal had the live copy of record 10's page off sled's recovery path");
}

/// One journal; true if damaging one copy of record 10's bytes gave the case wanted.
fn damage_off_the_recovery_path() -> bool {
    let template = tempfile::tempdir().unwrap();
    big_journal(template.path(), 50, 300);
    let spots = occurrences(&template.path().join("db"), b"needle-000010");
    assert!(!spots.is_empty());
    let mut found = false;
    for at in spots {
        let dir = tempfile::tempdir().unwrap();
        conclave_journal::copy_journal_dir(template.path(), dir.path()).unwrap();
        flip(&dir.path().join("db"), at + 7);
        let before = hash_tree(dir.path());
        let copy = match JournalCopy::open(dir.path(), config(SyncMode::None)) {
            Ok(copy) => copy,
            Err(e) => {
                // On sled's recovery path: refused when opening, naming the original.
                assert_eq!(e.code(), "journal.open_failed", "{e}");
                assert!(e.to_string().contains(&dir.path().display().to_string()));
                assert_eq!(hash_tree(dir.path()), before);
                continue;
            }
        };
        assert_eq!(
            copy.head(),
            350,
            "sled opens: the damage is off its recovery path"
        );
        assert_eq!(copy.damage(), None);
        let report = copy.verify().unwrap();
        let Some(failure) = report.first_failure.clone() else {
            continue; // a dead copy of the page
        };
        found = true;
        // sled keeps up to 17 chunks per leaf page: the first record it cannot read is
        // the first of the damaged page, at or before record 10.
        assert!((2..=10).contains(&failure.seq), "{failure:?}");
        assert_eq!(report.records_checked, failure.seq - 1);
        match &failure.problem {
            VerifyProblem::Unreadable(why) => {
                assert!(why.contains("checksum") && why.contains("byte"), "{why}")
            }
            other => panic!("expected unreadable, got {other:?}"),
        }
        assert_eq!(failure.problem.code(), "journal.storage");
        assert!(failure
            .to_string()
            .contains(&format!("record {}", failure.seq)));
        // A verification that finds damage, and a read that meets it, are remembered.
        assert_eq!(copy.damage().and_then(|d| d.seq), Some(failure.seq));
        assert!(copy.get(10).is_err());
        drop(copy);
        assert_eq!(hash_tree(dir.path()), before, "the original was only read");
    }
    found
}

#[test]
fn a_flipped_record_is_named_with_its_place_in_its_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let (j, raw) = open_raw(dir.path());
    append_n(&j, 0, 12);
    let key = record_key(7);
    let mut bytes = raw.raw_tree().get(key).unwrap().unwrap().to_vec();
    let len = bytes.len();
    bytes[len - 40] ^= 1;
    raw.raw_tree().insert(key, bytes).unwrap();
    let failure = j.verify().unwrap().first_failure.unwrap();
    assert_eq!(failure.seq, 7);
    let at = failure
        .location
        .expect("a record that was read has a place");
    assert_eq!(at.chunk, 7);
    assert!(at.start < at.end && at.end <= len, "{at:?} in {len} bytes");
    assert_eq!(
        at.to_string(),
        format!("chunk 7 bytes {}..{}", at.start, at.end)
    );
    assert_eq!(j.damage().and_then(|d| d.seq), Some(7));
    // A read that meets the damage on its own is remembered too.
    let dir2 = tempfile::tempdir().unwrap();
    let (j2, raw2) = open_raw(dir2.path());
    append_n(&j2, 0, 4);
    let mut bytes = raw2
        .raw_tree()
        .get(record_key(3))
        .unwrap()
        .unwrap()
        .to_vec();
    bytes[0] = 9;
    raw2.raw_tree().insert(record_key(3), bytes).unwrap();
    assert_eq!(j2.damage(), None);
    assert!(j2.read_range(1, 4).is_err());
    let damage = j2.damage().unwrap();
    assert_eq!(
        (damage.seq, damage.code),
        (Some(3), "journal.unsupported_format")
    );
}

#[test]
fn verifying_a_copy_leaves_every_file_unchanged() {
    // A good journal.
    let (data, journal, _witness) = data_dir(40);
    let before = hash_tree(data.path());
    {
        let copy = JournalCopy::open(&journal, config(SyncMode::None)).unwrap();
        assert!(copy.verify().unwrap().is_ok());
        assert_eq!(copy.head(), 40);
        assert!(!copy.path().starts_with(data.path()));
    }
    assert_eq!(hash_tree(data.path()), before);

    // A damaged one: a flipped byte on sled's recovery path. Opening it in place zeroes
    // everything after the damage (the control shows the hashing sees that); the copy
    // leaves it as it was.
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    for i in 1..=300u64 {
        j.append_blocking(one(
            "room:a",
            ExpectedVersion::Any,
            format!("needle-{i:06}-payload").as_bytes(),
        ))
        .unwrap();
    }
    drop(j);
    assert!(flip_occurrences(&dir.path().join("db"), b"needle-000150") >= 1);
    let damaged = hash_tree(dir.path());
    let copied = JournalCopy::open(dir.path(), config(SyncMode::None));
    // sled's recovery stops at the damage, so the copy is refused as shorter than its
    // marker (or does not open at all): either way, named, not a crash.
    match &copied {
        Ok(copy) => assert!(!copy.verify().unwrap().is_ok()),
        Err(e) => assert!(
            matches!(e.code(), "journal.truncated" | "journal.open_failed"),
            "{e}"
        ),
    }
    if let Err(JournalError::Open { path, .. }) = &copied {
        assert_eq!(
            path,
            &dir.path().display().to_string(),
            "names the original"
        );
    }
    drop(copied);
    if let Ok(copy) = JournalCopy::open_without_marker(dir.path(), config(SyncMode::None)) {
        assert!(copy.head() < 300);
        assert!(copy.verify().unwrap().is_ok(), "what is left verifies");
    }
    assert_eq!(
        hash_tree(dir.path()),
        damaged,
        "the copies left the evidence alone"
    );
    let _ = Journal::open(dir.path(), config(SyncMode::None));
    assert_ne!(
        hash_tree(dir.path()),
        damaged,
        "the control: opening the original in place rewrites it"
    );
}

/// Removes write permission from everything under `dir` (chmod -R a-w); returns false if
/// that does not stop this process from writing there (root).
#[cfg(unix)]
fn write_protect(dir: &Path, on: bool) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    let mut all = Vec::new();
    while let Some(d) = stack.pop() {
        all.push(d.clone());
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                all.push(p);
            }
        }
    }
    // Directories last when protecting, first when unprotecting.
    if !on {
        all.reverse();
    }
    for p in all.iter().rev() {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        let mode = if on { mode & !0o222 } else { mode | 0o200 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    if !on {
        return true;
    }
    let probe = dir.join("write-probe");
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(_) => true,
    }
}

#[cfg(unix)]
#[test]
fn verifying_a_read_only_journal_works_on_a_copy() {
    let (data, journal, _witness) = data_dir(20);
    let before = hash_tree(data.path());
    if !write_protect(data.path(), true) {
        write_protect(data.path(), false);
        eprintln!(
            "SKIPPED: write protection does not bind for this user (root): chmod -R a-w \
             cannot make the directory read-only here"
        );
        return;
    }
    let copied = JournalCopy::open(&journal, config(SyncMode::None)).map(|c| {
        let ok = c.verify().map(|r| r.is_ok());
        (c.head(), ok)
    });
    // The control: opening in place needs to write.
    let in_place = Journal::open(&journal, config(SyncMode::None)).map(|_| ());
    write_protect(data.path(), false);
    assert_eq!(copied.unwrap(), (20, Ok(true)));
    assert!(in_place.is_err(), "sled cannot open a read-only directory");
    assert_eq!(hash_tree(data.path()), before);
}

#[test]
fn a_missing_journal_is_a_clear_error_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = JournalCopy::open(&missing, config(SyncMode::None))
        .err()
        .unwrap();
    assert_eq!(err.code(), "journal.open_failed");
    assert!(err.to_string().contains("nope") && err.to_string().contains("no such directory"));
    assert!(!missing.exists());
    let err = JournalCopy::open(dir.path(), config(SyncMode::None))
        .err()
        .unwrap();
    assert!(err.to_string().contains("no journal database"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_copy_can_be_read_while_the_journal_is_open_and_locked() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    append_n(&j, 0, 9);
    let copy = JournalCopy::open(dir.path(), config(SyncMode::None)).unwrap();
    assert_eq!(copy.head(), 9);
    assert!(copy.verify().unwrap().is_ok());
    let path = copy.path().to_path_buf();
    drop(copy);
    assert!(!path.exists(), "the copy is removed with its handle");
}

/// The cost of a verification, the work `serve` now does at every start. Run with
/// `cargo test --release -p conclave-journal --test checks -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_verify_cost() {
    let n: u64 = std::env::var("VERIFY_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    // Records per group commit (and so per chunk): 1 is the worst case, a server that
    // commits one command at a time.
    let group: u64 = std::env::var("VERIFY_GROUP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::None)).unwrap();
    let mut seq = 0;
    let started = std::time::Instant::now();
    while seq < n {
        // Records of about 300 bytes, a quarter with personal content, like the engine's
        // events.
        let batch = group.min(n - seq);
        let records = (0..batch)
            .map(|i| {
                let mut r = rec(
                    &format!("room:{}", (seq + i) % 500),
                    "chat_posted",
                    &[b'x'; 200],
                );
                if (seq + i).is_multiple_of(4) {
                    r.content = Some(vec![b'c'; 120]);
                }
                r
            })
            .collect();
        j.append_blocking(conclave_journal::AppendRequest {
            expected: Vec::new(),
            expected_head: None,
            records,
        })
        .unwrap();
        seq += batch;
    }
    eprintln!(
        "wrote {n} records in groups of {group} in {:?}",
        started.elapsed()
    );
    drop(j);
    let size: u64 = hash_tree(dir.path()).values().map(|(len, _)| len).sum();
    for round in 0..3 {
        let started = std::time::Instant::now();
        let j = Journal::open(dir.path(), config(SyncMode::None)).unwrap();
        let opened = started.elapsed();
        let report = j.verify().unwrap();
        assert!(report.is_ok());
        eprintln!(
            "round {round}: open {opened:?}, verify {} records ({} MB on disk) in {:?}",
            report.records_checked,
            size / 1_000_000,
            started.elapsed() - opened
        );
    }
    let started = std::time::Instant::now();
    let copy = JournalCopy::open(dir.path(), config(SyncMode::None)).unwrap();
    let copied = started.elapsed();
    assert!(copy.verify().unwrap().is_ok());
    eprintln!(
        "copy + open {copied:?}, then verify: {:?} in all",
        started.elapsed()
    );
}

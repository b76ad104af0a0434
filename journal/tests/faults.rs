//! The writer's failure paths, driven by a storage that fails on command: after a
//! failed write or flush nothing more is acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, one};
use conclave_journal::storage::{FaultyStorage, SledStorage};
use conclave_journal::{
    ExpectedVersion, Journal, JournalConfig, JournalError, RecoveryBackoff, SyncMode,
};

fn open(dir: &std::path::Path) -> (Journal, Arc<FaultyStorage<SledStorage>>) {
    let storage = Arc::new(FaultyStorage::new(
        SledStorage::open(dir, 8 * 1024 * 1024).unwrap(),
    ));
    let journal = Journal::with_storage(storage.clone(), config(SyncMode::Always)).unwrap();
    (journal, storage)
}

#[test]
fn a_group_staged_during_a_failed_flush_is_not_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, storage) = open(dir.path());
    storage.hold_flush();
    let first = journal
        .submit(one("a", ExpectedVersion::Any, b"1"))
        .unwrap();
    storage.wait_until(|s| s.flushes() == 1);
    // While the first group's flush is held, the second is staged (applied to the
    // tree) and queued for the flusher.
    let second = journal
        .submit(one("b", ExpectedVersion::Any, b"2"))
        .unwrap();
    storage.wait_until(|s| s.writes() == 2);
    storage.release_flush(true);

    assert!(matches!(first.wait(), Err(JournalError::Storage(_))));
    assert!(matches!(second.wait(), Err(JournalError::Poisoned(_))));
    assert_eq!(
        journal.head(),
        0,
        "the committed head moved past failed records"
    );
}

#[test]
fn a_failed_flush_refuses_every_later_append() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, storage) = open(dir.path());
    storage.release_flush(true);
    assert!(journal
        .append_blocking(one("a", ExpectedVersion::Any, b"1"))
        .is_err());
    let later = journal.append_blocking(one("a", ExpectedVersion::Any, b"2"));
    assert!(matches!(later, Err(JournalError::Poisoned(_))), "{later:?}");
    assert_eq!(journal.head(), 0);
}

#[test]
fn a_failed_write_fails_its_group_and_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, storage) = open(dir.path());
    journal
        .append_blocking(one("a", ExpectedVersion::Any, b"1"))
        .unwrap();
    storage.fail_write(1);
    let failed = journal.append_blocking(one("a", ExpectedVersion::Any, b"2"));
    assert!(
        matches!(failed, Err(JournalError::Storage(_))),
        "{failed:?}"
    );
    let later = journal.append_blocking(one("a", ExpectedVersion::Any, b"3"));
    assert!(matches!(later, Err(JournalError::Poisoned(_))), "{later:?}");
    assert_eq!(journal.head(), 1);
}

#[test]
fn reopening_after_a_failure_accepts_appends_again() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (journal, storage) = open(dir.path());
        journal
            .append_blocking(one("a", ExpectedVersion::Any, b"1"))
            .unwrap();
        storage.release_flush(true);
        assert!(journal
            .append_blocking(one("a", ExpectedVersion::Any, b"2"))
            .is_err());
    }
    let (journal, _storage) = open(dir.path());
    // What reopening finds is what was durable: the failed record may or may not be
    // there, but the acknowledged one is, and the journal takes new appends.
    assert!(journal.head() >= 1);
    let next = journal
        .append_blocking(one("a", ExpectedVersion::Any, b"3"))
        .unwrap();
    assert_eq!(next.records[0].seq, journal.head());
}

/// A journal on a storage that can be made "full", with quick recovery attempts.
fn open_recovering(dir: &std::path::Path) -> (Journal, Arc<FaultyStorage<SledStorage>>) {
    let storage = Arc::new(FaultyStorage::new(
        SledStorage::open(dir, 8 * 1024 * 1024).unwrap(),
    ));
    let journal = Journal::with_storage(
        storage.clone(),
        JournalConfig {
            recovery: RecoveryBackoff {
                first: Duration::from_millis(20),
                max: Duration::from_millis(100),
            },
            ..config(SyncMode::Always)
        },
    )
    .unwrap();
    (journal, storage)
}

fn with_content(stream: &str, payload: &[u8], content: &[u8]) -> conclave_journal::AppendRequest {
    let mut r = common::rec(stream, "test_event", payload);
    r.content = Some(content.to_vec());
    conclave_journal::AppendRequest::to_stream(stream, ExpectedVersion::Any, vec![r])
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_full_disk_refuses_appends_then_the_journal_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, storage) = open_recovering(dir.path());
    let mut sub = journal.subscribe(1);
    for p in [b"1", b"2"] {
        journal
            .append_blocking(one("a", ExpectedVersion::Any, p))
            .unwrap();
    }
    let refused_content = b"refused personal content".to_vec();

    storage.set_full(true);
    // The write lands in sled's memory, its flush fails: refused, never acknowledged.
    let failed = journal.append_blocking(with_content("a", b"refused", &refused_content));
    assert_eq!(failed.map_err(|e| e.code()), Err("journal.storage"));
    let later = journal.append_blocking(one("b", ExpectedVersion::Any, b"refused too"));
    assert_eq!(later.map_err(|e| e.code()), Err("journal.poisoned"));
    let failure = journal.write_failure().expect("writes are refused");
    assert!(failure.retrying, "{failure:?}");
    assert!(failure.reason.contains("No space left"), "{failure:?}");

    // The refused record is in sled's tree (and reaches the disk when sled flushes in
    // the background or closes): recovery has to remove it.
    assert_eq!(
        journal.storage().chunks(3).next().map(|c| c.unwrap().0),
        Some(3)
    );
    // Recovery is attempted with backoff and fails while the disk is full.
    let before = storage.reopens();
    storage.wait_until(|s| s.reopens() >= before + 2);
    assert!(journal.write_failure().is_some());
    assert_eq!(
        journal.recover_now().map_err(|e| e.code()),
        Err("journal.storage")
    );
    // Reads go on from what was acknowledged, and nothing is taken for damage.
    assert_eq!(journal.head(), 2);
    let read: Vec<_> = journal.read_range(1, 10).unwrap();
    assert_eq!(read.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(journal.stream_version("a"), 2);
    assert_eq!(journal.damage(), None);

    // Space is freed: the journal reopens its storage by itself, without a restart.
    storage.set_full(false);
    wait_for("recovery", || journal.write_failure().is_none());
    assert_eq!(journal.head(), 2, "a refused record became visible");
    let next = journal
        .append_blocking(one("a", ExpectedVersion::Exact(2), b"3"))
        .unwrap();
    assert_eq!(next.records[0].seq, 3);
    assert_eq!(next.records[0].stream_version, 3);
    assert_eq!(journal.stream_version("b"), 0);
    // A subscription opened before the failure follows on, without the refused records.
    let mut seen = Vec::new();
    while let Some(r) = sub.try_next().unwrap() {
        seen.push((r.seq, r.payload.clone()));
    }
    assert_eq!(
        seen,
        vec![(1, b"1".to_vec()), (2, b"2".to_vec()), (3, b"3".to_vec())]
    );
    assert!(journal.verify().unwrap().is_ok());
    assert_eq!(journal.damage(), None);
    drop(sub);
    drop(journal);
    drop(storage);

    // After a restart: what was acknowledged is there, what was refused is not, and the
    // refused record's personal content is gone with it.
    let (journal, storage) = open(dir.path());
    assert_eq!(journal.head(), 3);
    let all = journal.read_range(1, 10).unwrap();
    let payloads: Vec<_> = all.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(payloads, vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
    assert!(journal.verify().unwrap().is_ok());
    assert_eq!(journal.read_stream("b", 1).unwrap(), Vec::new());
    assert_eq!(journal.read_stream("a", 1).unwrap().len(), 3);
    drop(journal);
    drop(storage);
    let tree = SledStorage::open(dir.path(), 8 * 1024 * 1024)
        .unwrap()
        .raw_tree();
    let leaked = tree.iter().values().any(|v| {
        v.unwrap()
            .windows(refused_content.len())
            .any(|w| w == refused_content)
    });
    assert!(!leaked, "the refused record's content is still stored");
}

#[test]
fn a_journal_opened_read_only_never_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, storage) = open_recovering(dir.path());
    journal.refuse_writes("read-only start");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(storage.reopens(), 0);
    let failure = journal.write_failure().unwrap();
    assert!(!failure.retrying);
    assert_eq!(
        journal.recover_now().map_err(|e| e.code()),
        Err("journal.poisoned")
    );
    assert_eq!(storage.reopens(), 0);
}

//! The writer's failure paths, driven by a storage that fails on command: after a
//! failed write or flush nothing more is acknowledged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{config, one};
use conclave_journal::storage::{FaultyStorage, SledStorage};
use conclave_journal::{ExpectedVersion, Journal, JournalError, SyncMode};

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

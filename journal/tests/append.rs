//! Appends, reads, optimistic concurrency and atomicity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use conclave_journal::{AppendRequest, ExpectedVersion, Journal, JournalError, SyncMode};

#[test]
fn sequences_and_stream_versions_start_at_one_and_have_no_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    assert_eq!(j.head(), 0);
    let a = j
        .append_blocking(one("room:a", ExpectedVersion::NoStream, b"1"))
        .unwrap();
    let b = j
        .append_blocking(one("room:b", ExpectedVersion::NoStream, b"2"))
        .unwrap();
    let c = j
        .append_blocking(one("room:a", ExpectedVersion::Exact(1), b"3"))
        .unwrap();
    let seqs: Vec<_> = [&a, &b, &c].iter().map(|x| x.records[0].seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    let versions: Vec<_> = [&a, &b, &c]
        .iter()
        .map(|x| x.records[0].stream_version)
        .collect();
    assert_eq!(versions, vec![1, 1, 2]);
    assert_eq!(b.records[0].prev_hash, a.records[0].hash);
    assert_eq!(j.head(), 3);
    assert_eq!(j.stream_version("room:a"), 2);
    assert_eq!(j.stream_version("room:zzz"), 0);
    let all = j.read_range(1, 100).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2], c.records[0]);
    let a_stream = j.read_stream("room:a", 1).unwrap();
    assert_eq!(
        a_stream
            .iter()
            .map(|r| r.payload.clone())
            .collect::<Vec<_>>(),
        vec![b"1".to_vec(), b"3".to_vec()]
    );
    assert_eq!(j.read_stream("room:a", 2).unwrap().len(), 1);
    assert!(j.verify().unwrap().is_ok());
}

#[test]
fn stream_names_that_are_prefixes_of_each_other_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::None)).unwrap();
    j.append_blocking(one("room:1", ExpectedVersion::Any, b"x"))
        .unwrap();
    j.append_blocking(one("room:10", ExpectedVersion::Any, b"y"))
        .unwrap();
    assert_eq!(j.read_stream("room:1", 0).unwrap().len(), 1);
    assert_eq!(j.read_stream("room:10", 0).unwrap().len(), 1);
}

#[test]
fn a_conflict_is_typed_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    j.append_blocking(one("room:a", ExpectedVersion::NoStream, b"1"))
        .unwrap();
    let err = j
        .append_blocking(one("room:a", ExpectedVersion::NoStream, b"2"))
        .unwrap_err();
    assert_eq!(err.code(), "journal.conflict");
    assert!(matches!(err, JournalError::Conflict { actual: 1, .. }));
    let err = j
        .append_blocking(one("room:a", ExpectedVersion::Exact(7), b"2"))
        .unwrap_err();
    assert!(matches!(err, JournalError::Conflict { .. }));
    assert_eq!(j.head(), 1);
    assert_eq!(j.stream_version("room:a"), 1);
    // The next good append takes the next sequence: nothing was consumed.
    let ok = j
        .append_blocking(one("room:a", ExpectedVersion::Exact(1), b"3"))
        .unwrap();
    assert_eq!(ok.records[0].seq, 2);
    assert!(j.verify().unwrap().is_ok());
}

#[test]
fn a_multi_record_append_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    let req = AppendRequest {
        expected: vec![
            ("room:a".into(), ExpectedVersion::NoStream),
            ("server".into(), ExpectedVersion::NoStream),
        ],
        expected_head: Some(0),
        records: vec![
            rec("room:a", "room_create", b"a"),
            rec("server", "room_count", b"b"),
            rec("room:a", "room_join", b"c"),
        ],
    };
    let done = j.append_blocking(req.clone()).unwrap();
    assert_eq!(
        done.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(done.records[2].stream_version, 2);
    // The same request again conflicts on the first expectation and adds nothing.
    assert!(j.append_blocking(req).is_err());
    // A batch whose last record is invalid adds nothing either.
    let bad = AppendRequest {
        expected: vec![],
        expected_head: None,
        records: vec![rec("room:a", "ok", b"1"), rec("", "no_stream", b"2")],
    };
    let err = j.append_blocking(bad).unwrap_err();
    assert_eq!(err.code(), "journal.invalid_record");
    assert_eq!(j.head(), 3);
    assert_eq!(j.stream_version("room:a"), 2);
    assert!(j.verify().unwrap().is_ok());
}

#[test]
fn oversized_and_nameless_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(SyncMode::None);
    cfg.max_record_bytes = 100;
    let j = Journal::open(dir.path(), cfg).unwrap();
    let big = one("room:a", ExpectedVersion::Any, &[0u8; 200]);
    assert_eq!(
        j.append_blocking(big).unwrap_err().code(),
        "journal.invalid_record"
    );
    let mut nameless = one("room:a", ExpectedVersion::Any, b"");
    nameless.records[0].event_type.clear();
    assert_eq!(
        j.append_blocking(nameless).unwrap_err().code(),
        "journal.invalid_record"
    );
    assert_eq!(j.head(), 0);
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let last_hash;
    {
        let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
        for i in 0..10u8 {
            j.append_blocking(one("room:a", ExpectedVersion::Exact(u64::from(i)), &[i]))
                .unwrap();
        }
        last_hash = j.get(10).unwrap().unwrap().hash;
    }
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    assert_eq!(j.head(), 10);
    assert_eq!(j.stream_version("room:a"), 10);
    let next = j
        .append_blocking(one("room:a", ExpectedVersion::Exact(10), b"n"))
        .unwrap();
    assert_eq!(next.records[0].seq, 11);
    assert_eq!(next.records[0].prev_hash, last_hash);
    assert!(j.verify().unwrap().is_ok());
}

#[test]
fn batch_mode_acknowledges_and_flushes_later() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = Journal::open(
            dir.path(),
            config(SyncMode::Batch {
                max_delay: std::time::Duration::from_millis(5),
            }),
        )
        .unwrap();
        for _ in 0..50 {
            j.append_blocking(one("room:a", ExpectedVersion::Any, b"x"))
                .unwrap();
        }
    }
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    assert_eq!(j.head(), 50);
    assert!(j.verify().unwrap().is_ok());
}

#[test]
fn a_pipelined_writer_chains_appends_on_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Three appends submitted before any is acknowledged; the second expects a head
        // that the first will not produce, so it fails, and so does the third that was
        // built on the second.
        let mut first = one("room:a", ExpectedVersion::Any, b"1");
        first.expected_head = Some(0);
        let mut second = one("room:a", ExpectedVersion::Any, b"2");
        second.expected_head = Some(5);
        let mut third = one("room:b", ExpectedVersion::Any, b"3");
        third.expected_head = Some(6);
        let (a, b, c) = tokio::join!(j.append(first), j.append(second), j.append(third));
        assert_eq!(a.unwrap().last_seq(), 1);
        assert_eq!(
            b.unwrap_err(),
            JournalError::HeadConflict {
                expected: 5,
                actual: 1
            }
        );
        assert_eq!(c.unwrap_err().code(), "journal.head_conflict");
    });
    assert_eq!(j.head(), 1);
}

/// sled 0.34 stores a log item over a quarter segment (a large value, or a whole tree
/// node when it rewrites one) as a separate file that it never fsyncs; the journal's
/// limits must keep every write below that size, whatever the records look like.
#[test]
fn no_write_becomes_an_unsynced_sled_blob_file() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::None)).unwrap();
    let max = conclave_journal::JournalConfig::default().max_record_bytes;
    let big = |stream: &str, fill: u8| {
        let mut r = rec(stream, "big", &[]);
        r.payload = vec![fill; max - stream.len() - "big".len() - 64];
        r
    };
    // Full chunks of small records, chunks of one maximal record, and maximal content.
    for i in 0..120u8 {
        let stream = format!("room:{i}");
        let records = (0..200).map(|_| rec(&stream, "small", &[i; 400])).collect();
        j.append_blocking(AppendRequest::to_stream(
            stream.as_str(),
            ExpectedVersion::Any,
            records,
        ))
        .unwrap();
        j.append_blocking(AppendRequest::to_stream(
            stream.as_str(),
            ExpectedVersion::Any,
            vec![big(&stream, i)],
        ))
        .unwrap();
        let mut with_content = rec(&stream, "said", b"");
        with_content.content = Some(vec![i; max - 200]);
        j.append_blocking(AppendRequest::to_stream(
            stream.as_str(),
            ExpectedVersion::Any,
            vec![with_content],
        ))
        .unwrap();
    }
    drop(j);
    let j = Journal::open(dir.path(), config(SyncMode::None)).unwrap();
    assert!(j.verify().unwrap().is_ok());
    let blobs: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(blobs.is_empty(), "sled wrote blob files: {blobs:?}");
}

#[test]
fn a_record_size_limit_above_what_storage_can_sync_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(SyncMode::Always);
    cfg.max_record_bytes = conclave_journal::MAX_RECORD_BYTES_LIMIT + 1;
    let err = Journal::open(dir.path(), cfg).err().unwrap();
    assert_eq!(err.code(), "journal.open_failed");
    assert!(err.to_string().contains("max_record_bytes"), "{err}");
}

#[test]
fn a_database_created_with_sleds_old_segment_size_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let db = conclave_journal::storage::sled_config(dir.path(), 8 * 1024 * 1024)
        .segment_size(512 * 1024)
        .open()
        .unwrap();
    db.open_tree("journal").unwrap();
    db.flush().unwrap();
    drop(db);
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    j.append_blocking(one("room:a", ExpectedVersion::NoStream, b"x"))
        .unwrap();
    drop(j);
    let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
    assert_eq!(j.stream_version("room:a"), 1);
}

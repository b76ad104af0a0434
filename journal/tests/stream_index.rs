//! The stream index: reads by stream through stored runs match a full scan, old and
//! stale indexes are rebuilt on open, and damaged runs are typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use conclave_journal::{AppendRequest, ExpectedVersion, Journal, JournalError, Record, SyncMode};

/// The sled key of a stream index entry or run: `s`, u16 length, stream, version.
fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut k = vec![b's'];
    k.extend_from_slice(&(stream.len() as u16).to_be_bytes());
    k.extend_from_slice(stream.as_bytes());
    k.extend_from_slice(&version.to_be_bytes());
    k
}

const STREAMS: [&str; 4] = ["room:1", "room:10", "room:b", "account:x"];

/// Appends `n` records spread over [`STREAMS`] in an uneven pattern, several per request.
fn fill(j: &Journal, n: usize, salt: usize) {
    let mut i = 0;
    while i < n {
        let stream = STREAMS[(i * 7 + salt) % 3 + usize::from(i.is_multiple_of(11))];
        let count = 1 + (i + salt) % 3;
        let records = (0..count)
            .map(|k| rec(stream, "e", format!("{i}-{k}").as_bytes()))
            .collect();
        j.append_blocking(AppendRequest::to_stream(
            stream,
            ExpectedVersion::Any,
            records,
        ))
        .unwrap();
        i += count;
    }
}

/// What a stream read must return: a full scan, filtered.
fn scanned(j: &Journal, stream: &str, from_version: u64) -> Vec<Record> {
    filtered(&j.read_range(1, u64::MAX).unwrap(), stream, from_version)
}

fn filtered(records: &[Record], stream: &str, from_version: u64) -> Vec<Record> {
    records
        .iter()
        .filter(|r| r.stream == stream && r.stream_version >= from_version)
        .cloned()
        .collect()
}

fn assert_streams_match_scan(j: &Journal) {
    let records = j.read_range(1, u64::MAX).unwrap();
    for stream in STREAMS {
        let all = filtered(&records, stream, 0);
        assert_eq!(
            j.stream_version(stream),
            all.last().map_or(0, |r| r.stream_version)
        );
        for from in [0, 1, 2, 3, 255, 256, 257, 300, 511, 600, 10_000] {
            assert_eq!(
                j.read_stream(stream, from).unwrap(),
                filtered(&records, stream, from),
                "{stream} from {from}"
            );
        }
    }
}

#[test]
fn stream_reads_through_stored_runs_match_a_full_scan() {
    let dir = tempfile::tempdir().unwrap();
    // Several opens: each close writes the pending index entries as one batch, so runs
    // break at batch boundaries; the first batch has runs longer than the run limit.
    for (n, salt) in [(1500, 0), (40, 1), (1, 2), (700, 3)] {
        let j = Journal::open(dir.path(), config(SyncMode::None)).unwrap();
        fill(&j, n, salt);
        assert_streams_match_scan(&j);
    }
    let j = Journal::open(dir.path(), config(SyncMode::None)).unwrap();
    // After open the index covers every record: reads come from the runs alone.
    assert_eq!(j.storage().indexed_up_to().unwrap(), j.head());
    assert_streams_match_scan(&j);
    // A stream's head as of any sequence number, answered from the runs.
    let records = j.read_range(1, u64::MAX).unwrap();
    for stream in STREAMS {
        for max_seq in (0..=j.head()).step_by(37) {
            let expected = records
                .iter()
                .rev()
                .find(|r| r.stream == stream && r.seq <= max_seq)
                .map(|r| r.stream_version)
                .unwrap_or(0);
            assert_eq!(j.storage().stream_head(stream, max_seq).unwrap(), expected);
        }
    }
}

#[test]
fn a_layout_1_database_gets_its_stream_index_rebuilt_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, raw) = open_raw(dir.path());
        fill(&j, 300, 0);
        let records = j.read_range(1, u64::MAX).unwrap();
        drop(j);
        // Rewrite the index the way layout 1 stored it: one key per record, the value
        // the sequence number as 8 big-endian bytes.
        let tree = raw.raw_tree();
        for k in tree.scan_prefix(b"s").keys() {
            tree.remove(k.unwrap()).unwrap();
        }
        for r in &records {
            tree.insert(
                stream_key(&r.stream, r.stream_version),
                &r.seq.to_be_bytes()[..],
            )
            .unwrap();
        }
        tree.insert(b"mindexed", &(records.len() as u64).to_be_bytes()[..])
            .unwrap();
        tree.insert(b"mlayout", &1u32.to_be_bytes()[..]).unwrap();
        tree.flush().unwrap();
    }
    let (j, raw) = open_raw(dir.path());
    assert_eq!(
        raw.raw_tree().get(b"mlayout").unwrap().unwrap().as_ref(),
        &2u32.to_be_bytes()[..]
    );
    assert_streams_match_scan(&j);
    fill(&j, 20, 5);
    assert_streams_match_scan(&j);
}

#[test]
fn an_index_ahead_of_the_journal_is_dropped_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, raw) = open_raw(dir.path());
        fill(&j, 100, 0);
        let head = j.head();
        let version = j.stream_version("room:b");
        drop(j);
        // Index entries for records that do not exist: as if the index outlived them.
        let stale = [0x01, (head + 1) as u8, 1, 1];
        raw.raw_tree()
            .insert(stream_key("room:b", version + 1), &stale[..])
            .unwrap();
        raw.raw_tree()
            .insert(b"mindexed", &(head + 3).to_be_bytes()[..])
            .unwrap();
        raw.raw_tree().flush().unwrap();
    }
    let before = {
        let (j, _raw) = open_raw(dir.path());
        assert_eq!(j.storage().indexed_up_to().unwrap(), j.head());
        assert_streams_match_scan(&j);
        let before = j.stream_version("room:b");
        j.append_blocking(one("room:b", ExpectedVersion::Exact(before), b"next"))
            .unwrap();
        before
    };
    let (j, _raw) = open_raw(dir.path());
    assert_eq!(j.stream_version("room:b"), before + 1);
    assert_streams_match_scan(&j);
}

#[test]
fn a_damaged_run_is_a_typed_error_naming_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    {
        let j = Journal::open(dir.path(), config(SyncMode::Always)).unwrap();
        fill(&j, 30, 0);
    }
    let (j, raw) = open_raw(dir.path());
    let (k, _) = raw
        .raw_tree()
        .scan_prefix(&stream_key("room:b", 0)[..9])
        .next()
        .unwrap()
        .unwrap();
    raw.raw_tree().insert(k, &[0x01, 0x80][..]).unwrap();
    let err = j.read_stream("room:b", 1).unwrap_err();
    assert!(
        matches!(err, JournalError::Storage(ref m) if m.contains("room:b") && m.contains("truncated")),
        "{err}"
    );
    // A run whose versions would pass u64::MAX is damage too, not an overflow.
    raw.raw_tree()
        .insert(stream_key("room:b", u64::MAX), &[0x01, 0x05, 0x01][..])
        .unwrap();
    let err = j.storage().stream_head("room:b", u64::MAX).unwrap_err();
    assert!(err.to_string().contains("overflow"), "{err}");
    // Other streams are unaffected.
    assert_eq!(
        j.read_stream("room:1", 1).unwrap(),
        scanned(&j, "room:1", 1)
    );
}

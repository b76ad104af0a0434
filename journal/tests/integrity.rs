//! Tamper evidence, purge, and hostile storage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use conclave_journal::{Content, ExpectedVersion, Journal, JournalError, SyncMode, VerifyProblem};
use proptest::prelude::*;

fn filled(
    dir: &std::path::Path,
    n: u64,
) -> (
    Journal,
    std::sync::Arc<conclave_journal::storage::SledStorage>,
) {
    let (j, raw) = open_raw(dir);
    for i in 0..n {
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
    (j, raw)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Flipping any one byte of any stored record makes verify name exactly that record.
    #[test]
    fn one_flipped_byte_is_named_by_sequence(target in 1u64..=20, pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let dir = tempfile::tempdir().unwrap();
        let (j, raw) = filled(dir.path(), 20);
        let tree = raw.raw_tree();
        let key = record_key(target);
        let mut bytes = tree.get(key).unwrap().unwrap().to_vec();
        let at = pos.index(bytes.len());
        bytes[at] ^= 1 << bit;
        tree.insert(key, bytes).unwrap();
        let report = j.verify().unwrap();
        let failure = report.first_failure.expect("tampering must be found");
        prop_assert_eq!(failure.seq, target, "{:?}", failure);
        prop_assert_eq!(report.records_checked, target - 1);
    }
}

#[test]
fn a_deleted_record_is_reported_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (j, raw) = filled(dir.path(), 10);
    raw.raw_tree().remove(record_key(6)).unwrap();
    let failure = j.verify().unwrap().first_failure.unwrap();
    assert_eq!(failure.seq, 6);
    assert_eq!(
        failure.problem,
        VerifyProblem::Missing {
            next_found: Some(7)
        }
    );
    assert!(failure.to_string().contains("record 6"));
}

#[test]
fn a_truncated_tail_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (j, raw) = filled(dir.path(), 10);
    raw.raw_tree().remove(record_key(10)).unwrap();
    let failure = j.verify().unwrap().first_failure.unwrap();
    assert_eq!(failure.seq, 10);
    assert_eq!(failure.problem, VerifyProblem::Missing { next_found: None });
}

#[test]
fn purging_content_keeps_the_chain_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _raw) = filled(dir.path(), 12);
    let with_content: Vec<_> = j
        .read_range(1, 12)
        .unwrap()
        .into_iter()
        .filter(|r| r.content_digest.is_some())
        .collect();
    assert_eq!(with_content.len(), 3);
    let first = &with_content[0];
    let digest = first.content_digest.unwrap();
    assert_eq!(
        j.content(&digest).unwrap(),
        Content::Present(b"chat body 0".to_vec())
    );
    assert!(j.purge_content(&digest).unwrap());
    assert!(!j.purge_content(&digest).unwrap());
    assert_eq!(j.content(&digest).unwrap(), Content::Purged);
    let report = j.verify().unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.purged_content, 1);
    assert_eq!(report.records_checked, 12);
}

#[test]
fn identical_content_gets_distinct_digests() {
    let dir = tempfile::tempdir().unwrap();
    let j = Journal::open(dir.path(), config(SyncMode::None)).unwrap();
    let mut digests = Vec::new();
    for _ in 0..2 {
        let mut r = one("room:a", ExpectedVersion::Any, b"");
        r.records[0].content = Some(b"yes".to_vec());
        digests.push(
            j.append_blocking(r).unwrap().records[0]
                .content_digest
                .unwrap(),
        );
    }
    assert_ne!(
        digests[0], digests[1],
        "purging one must not purge the other"
    );
}

#[test]
fn tampered_content_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (j, raw) = filled(dir.path(), 8);
    let digest = j.get(5).unwrap().unwrap().content_digest.unwrap();
    let mut key = vec![b'c'];
    key.extend_from_slice(&digest);
    let mut salted = raw.raw_tree().get(&key).unwrap().unwrap().to_vec();
    let last = salted.len() - 1;
    salted[last] ^= 0x20;
    raw.raw_tree().insert(key, salted).unwrap();
    let failure = j.verify().unwrap().first_failure.unwrap();
    assert_eq!(failure.seq, 5);
    assert_eq!(failure.problem, VerifyProblem::ContentMismatch);
    assert_eq!(
        j.content(&digest).unwrap_err().code(),
        "journal.content_corrupt"
    );
}

#[test]
fn a_record_from_a_newer_format_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (j, raw) = filled(dir.path(), 4);
    let mut bytes = raw.raw_tree().get(record_key(3)).unwrap().unwrap().to_vec();
    bytes[0] = 9;
    raw.raw_tree().insert(record_key(3), bytes).unwrap();
    let err = j.get(3).unwrap_err();
    assert_eq!(
        err,
        JournalError::UnsupportedFormat {
            seq: 3,
            version: 9,
            supported: 1
        }
    );
    assert!(err.to_string().contains("record 3"));
    let failure = j.verify().unwrap().first_failure.unwrap();
    assert_eq!(failure.seq, 3);
    assert!(
        matches!(failure.problem, VerifyProblem::Undecodable(ref m) if m.contains("format version 9"))
    );
}

#[test]
fn a_journal_from_a_newer_layout_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_j, raw) = filled(dir.path(), 2);
        raw.raw_tree()
            .insert(b"mlayout", &7u32.to_be_bytes()[..])
            .unwrap();
        raw.raw_tree().flush().unwrap();
    }
    let err = Journal::open(dir.path(), config(SyncMode::Always))
        .err()
        .unwrap();
    assert_eq!(
        err,
        JournalError::UnsupportedLayout {
            found: 7,
            supported: 2
        }
    );
}

#[test]
fn a_tampered_last_record_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_j, raw) = filled(dir.path(), 5);
        let mut bytes = raw.raw_tree().get(record_key(5)).unwrap().unwrap().to_vec();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        raw.raw_tree().insert(record_key(5), bytes).unwrap();
        raw.raw_tree().flush().unwrap();
    }
    let err = Journal::open(dir.path(), config(SyncMode::Always))
        .err()
        .unwrap();
    assert!(
        matches!(err, JournalError::Corrupt { seq: 5, .. }),
        "{err:?}"
    );
}

/// Every file of the database damaged in several ways: open fails with an error that
/// names the path, or opens and verify reports, but nothing panics.
#[test]
fn corrupt_or_truncated_database_files_never_panic() {
    let template = tempfile::tempdir().unwrap();
    {
        let (j, _raw) = filled(template.path(), 200);
        assert!(j.verify().unwrap().is_ok());
    }
    let files: Vec<_> = walk(template.path());
    assert!(!files.is_empty());
    let mut outcomes = Vec::new();
    for file in &files {
        for damage in [
            "truncate_half",
            "truncate_zero",
            "garbage_middle",
            "garbage_start",
        ] {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(template.path(), copy.path());
            let target = copy
                .path()
                .join(file.strip_prefix(template.path()).unwrap());
            let mut bytes = std::fs::read(&target).unwrap();
            match damage {
                "truncate_half" => bytes.truncate(bytes.len() / 2),
                "truncate_zero" => bytes.clear(),
                "garbage_middle" => {
                    let mid = bytes.len() / 2;
                    for b in bytes.iter_mut().skip(mid).take(64) {
                        *b ^= 0xA5;
                    }
                }
                _ => {
                    for b in bytes.iter_mut().take(64) {
                        *b ^= 0x5A;
                    }
                }
            }
            std::fs::write(&target, bytes).unwrap();
            let outcome = std::panic::catch_unwind(|| {
                match Journal::open(copy.path(), config(SyncMode::Always)) {
                    Err(e) => format!("open error {}: {e}", e.code()),
                    Ok(j) => match j.verify() {
                        Ok(r) if r.is_ok() => {
                            // Damage that sled tolerated must not have lost anything.
                            assert_eq!(r.records_checked, 200, "loss after {damage} of {target:?}");
                            "verified intact".to_string()
                        }
                        Ok(r) => format!("verify: {:?}", r.first_failure),
                        Err(e) => format!("verify error {}", e.code()),
                    },
                }
            });
            let outcome =
                outcome.unwrap_or_else(|_| panic!("panicked on {damage} of {}", target.display()));
            if let Some(msg) = outcome.strip_prefix("open error ") {
                assert!(
                    msg.contains(copy.path().to_str().unwrap())
                        || !msg.starts_with("journal.open_failed"),
                    "{msg}"
                );
            }
            outcomes.push(outcome);
        }
    }
    // Every file was damaged four ways and each damage was either refused or harmless.
    assert_eq!(outcomes.len(), files.len() * 4, "{outcomes:#?}");
    assert!(
        outcomes.iter().any(|o| o.contains("journal.truncated")),
        "{outcomes:#?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

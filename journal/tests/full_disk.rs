//! A real full disk: the journal on a small tmpfs filled with a ballast file. Appends
//! fail typed, nothing refused is kept, and once the ballast is deleted the journal
//! recovers by itself. Needs to mount a tmpfs (root); skipped with a message otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{config, one};
use conclave_journal::{ExpectedVersion, Journal, JournalConfig, RecoveryBackoff, SyncMode};

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Tmpfs(dir))
        } else {
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Fills the file system with `path` until it is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0xa5u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_journal_on_a_full_tmpfs_recovers_once_space_is_freed() {
    let Some(fs) = Tmpfs::mount("64m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let dir = fs.0.join("journal");
    let cfg = JournalConfig {
        recovery: RecoveryBackoff {
            first: Duration::from_millis(50),
            max: Duration::from_millis(400),
        },
        ..config(SyncMode::Always)
    };
    let journal = Journal::open(&dir, cfg).unwrap();
    for i in 0..10u8 {
        journal
            .append_blocking(one("a", ExpectedVersion::Any, &[i]))
            .unwrap();
    }
    let ballast = fs.0.join("ballast");
    fill(&ballast);

    // Appends fail (typed) as soon as sled cannot write; none is acknowledged.
    let mut refused = 0;
    let mut codes = Vec::new();
    let big = vec![7u8; 32 * 1024];
    while refused < 3 {
        match journal.append_blocking(one("a", ExpectedVersion::Any, &big)) {
            Ok(_) => assert!(journal.head() < 10_000, "the disk never filled up"),
            Err(e) => {
                refused += 1;
                codes.push(e.code());
            }
        }
    }
    let acknowledged = journal.head();
    assert!(
        codes
            .iter()
            .all(|c| *c == "journal.storage" || *c == "journal.poisoned"),
        "{codes:?}"
    );
    let failure = journal.write_failure().expect("writes are refused");
    assert!(failure.retrying, "{failure:?}");
    // Reads go on.
    assert_eq!(journal.read_range(1, 10).unwrap().len(), 10);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        journal.write_failure().is_some(),
        "recovered on a full disk"
    );

    std::fs::remove_file(&ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while journal.write_failure().is_some() {
        assert!(
            Instant::now() < deadline,
            "no recovery: {:?}",
            journal.write_failure()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(journal.head(), acknowledged);
    let next = journal
        .append_blocking(one("a", ExpectedVersion::Any, b"after"))
        .unwrap();
    assert_eq!(next.records[0].seq, acknowledged + 1);
    assert!(journal.verify().unwrap().is_ok());
    drop(journal);

    let journal = Journal::open(&dir, config(SyncMode::Always)).unwrap();
    assert_eq!(journal.head(), acknowledged + 1);
    assert_eq!(
        journal.get(acknowledged + 1).unwrap().unwrap().payload,
        b"after"
    );
    assert!(journal.verify().unwrap().is_ok());
}

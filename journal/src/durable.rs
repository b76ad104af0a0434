//! Durability on the file system: the system calls that make a write survive a power
//! cut, not only a crash of the process.
//!
//! A write that the kernel has accepted survives the process (it sits in the page
//! cache), but only `fsync`/`fdatasync` on the file makes its data durable, and only
//! `fsync` on the parent directory makes a new, renamed or removed name durable. sled
//! 0.34's `Db::flush` ends with `sync_file_range(2)`, which does neither (it does not
//! flush the disk's write cache nor the file's metadata), so [`SledSync`] completes it.
//!
//! Every helper here is used by everything that writes state Conclave trusts after a
//! restart: the journal, its head marker, checkpoints, the NATS outbox cursor, the admin
//! token and the keys in the data directory.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Makes the entries of `dir` durable (names created, renamed or removed in it).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `fs::create_dir_all` whose result survives a power cut: every directory it creates
/// is fsynced, and so is the parent that gained its name.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    // Innermost first: a directory's own entries, then its name in its parent.
    for d in &missing {
        sync_dir(d)?;
        sync_dir(&parent_of(d))?;
    }
    Ok(())
}

/// The directory that holds `path` ("." for a bare file name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Atomically and durably replaces the file at `path` with `bytes`: a temporary file
/// beside it, fsynced, renamed over it, then the directory fsynced.
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir(&parent_of(path))
}

/// Creates a new file (failing if it exists) readable by its owner only, writes `bytes`
/// and makes both the content and the name durable. For secrets such as keys and tokens.
pub fn create_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    sync_dir(&parent_of(path))
}

/// Completes sled's flush so that it means durable.
///
/// sled 0.34 keeps a database in one log file (`db`) beside its `conf`, its snapshots
/// (`snap.*`) and a `blobs/` directory for log items larger than a quarter segment.
/// [`SledSync::flush`] runs `Db::flush` (the log written, then only `sync_file_range`)
/// and then `fdatasync` on `db` (which also makes a grown length durable) and `fsync` on
/// any blob file not yet synced, and on `blobs/` when one appeared. Opening fsyncs the
/// directory and its parent, because sled creates the files and directories but never
/// fsyncs a directory.
pub struct SledSync {
    dir: PathBuf,
    log: File,
    synced_blobs: Mutex<HashSet<OsString>>,
}

impl SledSync {
    /// For a sled database that is open at `dir`.
    pub fn open(dir: &Path) -> io::Result<SledSync> {
        // fdatasync works on a read-only descriptor: it flushes the inode, not the fd.
        let log = File::open(dir.join("db"))?;
        let sync = SledSync {
            dir: dir.to_path_buf(),
            log,
            synced_blobs: Mutex::new(HashSet::new()),
        };
        // sled writes `conf` when it creates a database and never syncs it; without
        // it the database cannot be opened again.
        match File::open(dir.join("conf")) {
            Ok(conf) => conf.sync_all()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        sync.sync_blobs()?;
        if dir.join("blobs").is_dir() {
            sync_dir(&dir.join("blobs"))?;
        }
        sync_dir(dir)?;
        sync_dir(&parent_of(dir))?;
        Ok(sync)
    }

    /// Flushes sled and makes everything it wrote durable.
    pub fn flush(&self, db: &sled::Db) -> io::Result<()> {
        db.flush().map_err(io::Error::other)?;
        self.log.sync_data()?;
        self.sync_blobs()
    }

    /// Makes the database directory's entries durable (sled renames snapshots there).
    pub fn sync_dir(&self) -> io::Result<()> {
        sync_dir(&self.dir)
    }

    /// fsyncs blob files that appeared since the last call, then their directory. Blob
    /// files are written once and never changed, so each is synced once.
    fn sync_blobs(&self) -> io::Result<()> {
        let blobs = self.dir.join("blobs");
        let entries = match std::fs::read_dir(&blobs) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced = self.synced_blobs.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if synced.contains(&name) {
                continue;
            }
            match File::open(entry.path()) {
                Ok(f) => f.sync_all()?,
                // sled removes blobs it no longer needs; a vanished one needs no sync.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            synced.insert(name);
            fresh = true;
        }
        if fresh {
            sync_dir(&blobs)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn create_dir_all_makes_nested_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let nested = tmp.path().join("a").join("b").join("c");
        create_dir_all(&nested).unwrap();
        assert!(nested.is_dir());
        // Existing directories are fine.
        create_dir_all(&nested).unwrap();
    }

    #[test]
    fn replace_file_replaces_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("cursor");
        replace_file(&p, b"one").unwrap();
        replace_file(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn create_private_file_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("key");
        create_private_file(&p, b"secret").unwrap();
        let again = create_private_file(&p, b"other").unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

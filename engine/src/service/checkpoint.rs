//! Checkpoints of the current-state projection, so a restart replays only the tail.
//!
//! A checkpoint is derived data: if it is missing, unreadable, from another build, or
//! does not match the journal (the record it covers has another hash), it is ignored and
//! the state is rebuilt from the journal.

use std::path::Path;

use conclave_journal::durable::SledSync;
use conclave_journal::Hash;

use super::EngineError;
use crate::state::State;

const FORMAT: u8 = 1;
/// The sources that define the checkpointed state's shape and how events fold into it.
/// A checkpoint is a bincode image of a domain type, not a versioned format: it is
/// trusted only by a build whose state and `evolve` are those that wrote it, whatever
/// the crate version says. Any change to these files (a comment included) changes the
/// fingerprint, which costs one replay of the journal at the next start, never a
/// misread state.
const STATE_SOURCES: [&str; 8] = [
    include_str!("../state.rs"),
    include_str!("../evolve.rs"),
    include_str!("../model.rs"),
    include_str!("../policy.rs"),
    include_str!("../ids.rs"),
    include_str!("../event.rs"),
    include_str!("../context.rs"),
    include_str!("../recording.rs"),
];

/// `conclave-engine <version> state <first 16 hex digits of the sources' hash>`: what
/// a stored image of [`State`] must have been written by to be trusted (replay's
/// persisted index snapshots check it too).
pub fn build() -> &'static str {
    static BUILD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILD.get_or_init(|| {
        let mut h = blake3::Hasher::new();
        for s in STATE_SOURCES {
            h.update(&(s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
        let digest = conclave_journal::hex(h.finalize().as_bytes());
        format!(
            "{} {} state {}",
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
            &digest[..16]
        )
    })
}
const KEY: &[u8] = b"state";

/// Where checkpoints live: a small sled database beside the journal.
pub(crate) struct CheckpointStore {
    db: sled::Db,
    tree: sled::Tree,
    /// A checkpoint the engine trusts must be durable, not only flushed.
    sync: SledSync,
}

/// A loaded checkpoint.
pub(crate) struct Checkpoint {
    pub seq: u64,
    pub hash: Hash,
    pub state: State,
}

fn err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Checkpoint(e.to_string())
}

impl CheckpointStore {
    /// Opens the store. Checkpoints are derived data, so a store that cannot be opened
    /// (damaged files, or files from a build that did not make them durable) is moved
    /// aside, kept for inspection, and started afresh.
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        match Self::open_existing(dir) {
            Ok(store) => Ok(store),
            Err(e) => {
                let aside = dir.with_extension(format!(
                    "damaged-{}",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                ));
                tracing::warn!(
                    error = %e,
                    moved_to = %aside.display(),
                    "cannot open the checkpoint store; moving it aside and rebuilding from the journal"
                );
                std::fs::rename(dir, &aside)
                    .map_err(|e| err(format!("moving {} aside: {e}", dir.display())))?;
                Self::open_existing(dir)
            }
        }
    }

    fn open_existing(dir: &Path) -> Result<Self, EngineError> {
        let opened = std::panic::catch_unwind(|| {
            sled::Config::new()
                .path(dir)
                .cache_capacity(8 * 1024 * 1024)
                .open()
        });
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) => return Err(err(format!("{}: {e}", dir.display()))),
            Err(_) => return Err(err(format!("{}: corrupt database", dir.display()))),
        };
        let sync = SledSync::open(dir).map_err(err)?;
        let tree = db.open_tree("checkpoints").map_err(err)?;
        Ok(CheckpointStore { db, tree, sync })
    }

    /// The stored checkpoint, or `None` if there is none usable.
    pub fn load(&self) -> Option<Checkpoint> {
        let bytes = match self.tree.get(KEY) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the checkpoint; rebuilding from the journal");
                return None;
            }
        };
        match decode(&bytes) {
            Ok(c) => Some(c),
            Err(why) => {
                tracing::warn!(%why, "ignoring the checkpoint; rebuilding from the journal");
                None
            }
        }
    }

    /// The (sequence, record hash) the stored checkpoint covers, whichever build wrote
    /// it: what this data directory once acknowledged, as evidence against a journal
    /// found shorter. `None` if there is none or its header is unreadable.
    pub fn head(&self) -> Option<(u64, Hash)> {
        let bytes = self.tree.get(KEY).ok()??;
        decode_head(&bytes)
    }

    /// [`CheckpointStore::head`] of the store in `dir`, read from a private copy so that
    /// nothing in `dir` is written (opening a sled database runs its recovery). `None`
    /// if there is no store or it cannot be read.
    pub fn head_of_copy(dir: &Path) -> Option<(u64, Hash)> {
        if !dir.join("db").is_file() {
            return None;
        }
        let copy = conclave_journal::PrivateCopy::of(dir).ok()?;
        let store = Self::open_existing(copy.path()).ok()?;
        let head = store.head();
        drop(store);
        head
    }

    /// Encodes and stores a checkpoint in one call.
    #[cfg(test)]
    pub fn save(&self, seq: u64, hash: &Hash, state: &State) -> Result<(), EngineError> {
        self.store(encode(seq, hash, state)?)
    }

    /// Stores an encoded checkpoint durably, replacing the previous one.
    pub fn store(&self, bytes: Vec<u8>) -> Result<(), EngineError> {
        self.tree.insert(KEY, bytes).map_err(err)?;
        self.sync.flush(&self.db).map_err(err)?;
        Ok(())
    }
}

/// The stored form of a checkpoint of `state`, which covers the journal up to `seq`.
pub(crate) fn encode(seq: u64, hash: &Hash, state: &State) -> Result<Vec<u8>, EngineError> {
    let mut out = vec![FORMAT];
    let build = build();
    out.extend_from_slice(&(build.len() as u16).to_be_bytes());
    out.extend_from_slice(build.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(hash);
    bincode::serde::encode_into_std_write(state, &mut out, bincode::config::standard())
        .map_err(err)?;
    Ok(out)
}

/// The sequence and hash in a checkpoint's header, without the build check or the state.
fn decode_head(bytes: &[u8]) -> Option<(u64, Hash)> {
    let (&format, rest) = bytes.split_first()?;
    if format != FORMAT {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    let at = 2 + len;
    let seq = u64::from_be_bytes(rest.get(at..at + 8)?.try_into().ok()?);
    let hash: Hash = rest.get(at + 8..at + 40)?.try_into().ok()?;
    Some((seq, hash))
}

fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    let take = |b: &mut &[u8], n: usize| -> Result<Vec<u8>, String> {
        if b.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head.to_vec())
    };
    let mut b = bytes;
    if take(&mut b, 1)?[0] != FORMAT {
        return Err("unknown checkpoint format".into());
    }
    let len = take(&mut b, 2)?;
    let len = u16::from_be_bytes([len[0], len[1]]) as usize;
    let build = take(&mut b, len)?;
    if build != self::build().as_bytes() {
        return Err(format!(
            "written by {:?}, this is {:?}",
            String::from_utf8_lossy(&build),
            self::build()
        ));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&take(&mut b, 8)?);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&take(&mut b, 32)?);
    let (state, used): (State, usize) =
        bincode::serde::decode_from_slice(b, bincode::config::standard())
            .map_err(|e| e.to_string())?;
    if used != b.len() {
        return Err("trailing bytes".into());
    }
    Ok(Checkpoint {
        seq: u64::from_be_bytes(seq),
        hash,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::open(dir.path()).unwrap();
        assert!(store.load().is_none());
        let state = State::default();
        store.save(42, &[7; 32], &state).unwrap();
        let c = store.load().unwrap();
        assert_eq!((c.seq, c.hash, c.state), (42, [7; 32], state));
        let good = store.tree.get(KEY).unwrap().unwrap().to_vec();
        for cut in [0, 1, 3, good.len() / 2, good.len() - 1] {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut other_build = good.clone();
        other_build[4] ^= 1;
        assert!(decode(&other_build).is_err());
        // The header still says what was covered, whichever build wrote it.
        assert_eq!(decode_head(&other_build), Some((42, [7; 32])));
        assert_eq!(store.head(), Some((42, [7; 32])));
        for cut in [0, 1, 3, 20] {
            assert_eq!(decode_head(&good[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn a_checkpoint_of_another_state_shape_is_refused() {
        let good = encode(42, &[7; 32], &State::default()).unwrap();
        assert!(decode(&good).is_ok());
        // The same crate version with other state sources: only the fingerprint differs.
        let ours = build().as_bytes();
        let at = good.windows(ours.len()).position(|w| w == ours).unwrap();
        let mut other = good.clone();
        let last = at + ours.len() - 1;
        other[last] = if other[last] == b'0' { b'1' } else { b'0' };
        let why = decode(&other).err().unwrap();
        assert!(why.starts_with("written by"), "{why}");
        assert!(build().contains(" state "), "{}", build());
    }

    #[test]
    fn a_store_that_cannot_be_opened_is_moved_aside_and_started_afresh() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("projections");
        {
            let store = CheckpointStore::open(&dir).unwrap();
            store.save(42, &[7; 32], &State::default()).unwrap();
        }
        std::fs::write(dir.join("conf"), b"segment_size: banana\n").unwrap();
        std::fs::write(dir.join("db"), vec![0xa5; 4096]).unwrap();
        let store = CheckpointStore::open(&dir).unwrap();
        assert!(store.load().is_none());
        store.save(43, &[8; 32], &State::default()).unwrap();
        assert_eq!(store.load().unwrap().seq, 43);
        let aside: Vec<_> = std::fs::read_dir(parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("projections.damaged-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
    }
}

//! The replay index's snapshots on disk, so that a restarted server answers its first
//! replay query from one stored snapshot instead of folding the whole journal.
//!
//! A directory (the server keeps it at `<data dir>/replay-index/`) holds one meta file
//! (`index.meta`: the covered head and its record hash, every record's time, the links,
//! the list of stored snapshots) and one file per stored snapshot
//! (`snapshot-<seq>.bin`, a bincode image of the engine's `State`). Only one in
//! [`crate::IndexConfig::persist_one_in`] of the index's snapshots is stored, plus the
//! state at the head, so the disk they take is bounded by the journal's length over
//! that spacing.
//!
//! Everything here is derived data and never trusted blindly. Every file carries the
//! engine's state fingerprint ([`conclave_engine::service::state_build`]: any change to
//! the state's shape or to `evolve` makes it stale), a digest of its body, and the
//! (sequence, record hash) it covers, which must match the journal it is used with; the
//! meta also carries a digest of the starting policy. A file that fails any check is
//! ignored (and, for a snapshot, the query falls back to the one before it); the next
//! persist rewrites it.

use std::path::{Path, PathBuf};

use conclave_journal::{Hash, Journal};
use serde::{Deserialize, Serialize};

use conclave_engine::{Policy, State};

const MAGIC: &[u8; 4] = b"CRIX";
const FORMAT: u8 = 1;
const KIND_META: u8 = 1;
const KIND_SNAPSHOT: u8 = 2;
const META: &str = "index.meta";

/// What the meta file holds.
#[derive(Serialize, Deserialize)]
pub(crate) struct Meta {
    pub head: u64,
    pub head_hash: Hash,
    /// Digest of the starting policy (bincode), see [`policy_digest`].
    pub policy: Hash,
    /// Record times (running maximum, micros): the first, then differences.
    pub time_deltas: Vec<i64>,
    pub links: Vec<(String, String)>,
    /// Stored snapshots, ascending: (sequence, hash of that record).
    pub snapshots: Vec<(u64, Hash)>,
}

pub(crate) fn policy_digest(policy: &Policy) -> Hash {
    let bytes =
        bincode::serde::encode_to_vec(policy, bincode::config::standard()).unwrap_or_default();
    *blake3::hash(&bytes).as_bytes()
}

pub(crate) fn snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("snapshot-{seq:020}.bin"))
}

fn meta_path(dir: &Path) -> PathBuf {
    dir.join(META)
}

/// Header, then body: magic, format, kind, build (u16 length + bytes), seq, hash,
/// blake3 of the body.
fn frame(kind: u8, seq: u64, hash: &Hash, body: &[u8]) -> Vec<u8> {
    let build = conclave_engine::service::state_build().as_bytes();
    let mut out = Vec::with_capacity(body.len() + build.len() + 80);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.push(kind);
    out.extend_from_slice(&u16::try_from(build.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(build);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(blake3::hash(body).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Checks a frame's header against what is expected and its body against its digest;
/// returns (seq, hash, body).
fn unframe(bytes: &[u8], kind: u8) -> Result<(u64, Hash, &[u8]), String> {
    let mut b = bytes;
    let mut take = |n: usize| -> Result<&[u8], String> {
        if b.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = b.split_at(n);
        b = rest;
        Ok(head)
    };
    if take(4)? != MAGIC {
        return Err("not a replay index file".into());
    }
    if take(1)? != [FORMAT] {
        return Err("unknown format".into());
    }
    if take(1)? != [kind] {
        return Err("wrong kind of file".into());
    }
    let len = take(2)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let build = take(len)?;
    let ours = conclave_engine::service::state_build();
    if build != ours.as_bytes() {
        return Err(format!(
            "written by {:?}, this is {ours:?}",
            String::from_utf8_lossy(build)
        ));
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(take(8)?);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(take(32)?);
    let digest = take(32)?.to_vec();
    let body = b;
    if blake3::hash(body).as_bytes()[..] != digest[..] {
        return Err("body does not match its digest".into());
    }
    Ok((u64::from_be_bytes(seq), hash, body))
}

fn io(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash leaves
/// the old file or the new one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io(path, e))
}

/// Reads the meta of `dir`, checked against this build, `policy` and `journal`.
pub(crate) fn load_meta(dir: &Path, policy: &Policy, journal: &Journal) -> Result<Meta, String> {
    let path = meta_path(dir);
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    let (head, hash, body) = unframe(&bytes, KIND_META)?;
    let (meta, used): (Meta, usize) =
        bincode::serde::decode_from_slice(body, bincode::config::standard())
            .map_err(|e| e.to_string())?;
    if used != body.len() {
        return Err("trailing bytes".into());
    }
    if (meta.head, meta.head_hash) != (head, hash) {
        return Err("header and body disagree".into());
    }
    if meta.policy != policy_digest(policy) {
        return Err("built from another starting policy".into());
    }
    if u64::try_from(meta.time_deltas.len()).ok() != Some(meta.head) {
        return Err("record times do not cover the head".into());
    }
    if !meta.snapshots.windows(2).all(|w| w[0].0 < w[1].0)
        || meta
            .snapshots
            .iter()
            .any(|(s, _)| *s == 0 || *s > meta.head)
    {
        return Err("snapshot list out of order".into());
    }
    matches_journal(journal, head, &hash)?;
    Ok(meta)
}

/// Whether record `seq` of `journal` has hash `hash` (a shorter or another journal
/// makes the stored data stale).
fn matches_journal(journal: &Journal, seq: u64, hash: &Hash) -> Result<(), String> {
    if seq == 0 {
        return Ok(());
    }
    match journal.get(seq) {
        Ok(Some(r)) if r.hash == *hash => Ok(()),
        Ok(Some(_)) => Err(format!("record {seq} has another hash: another journal")),
        Ok(None) => Err(format!("the journal ends before {seq}")),
        Err(e) => Err(e.to_string()),
    }
}

/// Loads the stored snapshot at `seq`, which must cover record `seq` with hash `hash`.
pub(crate) fn load_snapshot(
    dir: &Path,
    seq: u64,
    hash: &Hash,
    journal: &Journal,
) -> Result<State, String> {
    let path = snapshot_path(dir, seq);
    let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
    let (s, h, body) = unframe(&bytes, KIND_SNAPSHOT)?;
    if (s, &h) != (seq, hash) {
        return Err(format!("{}: covers another record", path.display()));
    }
    matches_journal(journal, seq, hash)?;
    let (state, used): (State, usize) =
        bincode::serde::decode_from_slice(body, bincode::config::standard())
            .map_err(|e| io(&path, e))?;
    if used != body.len() {
        return Err(io(&path, "trailing bytes"));
    }
    Ok(state)
}

/// Whether a sound snapshot file for (`seq`, `hash`) is already there (header and
/// digest checked, not decoded).
pub(crate) fn snapshot_is_stored(dir: &Path, seq: u64, hash: &Hash) -> bool {
    std::fs::read(snapshot_path(dir, seq)).ok().is_some_and(
        |bytes| matches!(unframe(&bytes, KIND_SNAPSHOT), Ok((s, h, _)) if s == seq && h == *hash),
    )
}

/// Writes one snapshot file; returns its size.
pub(crate) fn write_snapshot(
    dir: &Path,
    seq: u64,
    hash: &Hash,
    state: &State,
) -> Result<u64, String> {
    let body = bincode::serde::encode_to_vec(state, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    let bytes = frame(KIND_SNAPSHOT, seq, hash, &body);
    write_atomic(&snapshot_path(dir, seq), &bytes)?;
    Ok(bytes.len() as u64)
}

/// Writes the meta file (after the snapshots it lists), then removes every snapshot
/// file it does not list; returns the meta's size.
pub(crate) fn write_meta(dir: &Path, meta: &Meta) -> Result<u64, String> {
    let body = bincode::serde::encode_to_vec(meta, bincode::config::standard())
        .map_err(|e| e.to_string())?;
    let bytes = frame(KIND_META, meta.head, &meta.head_hash, &body);
    write_atomic(&meta_path(dir), &bytes)?;
    let keep: std::collections::BTreeSet<PathBuf> = meta
        .snapshots
        .iter()
        .map(|(s, _)| snapshot_path(dir, *s))
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours = name.starts_with("snapshot-") || name.ends_with(".tmp");
            if ours && !keep.contains(&path) {
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale replay snapshot");
                }
            }
        }
    }
    Ok(bytes.len() as u64)
}

/// Removes the stored index in `dir` (after a purge: its snapshots may hold content
/// that is gone). Nothing there is not an error.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn frames_refuse_damage_and_other_builds() {
        let good = frame(KIND_SNAPSHOT, 7, &[3; 32], b"body bytes");
        assert_eq!(
            unframe(&good, KIND_SNAPSHOT).unwrap(),
            (7, [3; 32], &b"body bytes"[..])
        );
        assert!(unframe(&good, KIND_META).is_err());
        for cut in [0, 3, 8, good.len() - 1] {
            assert!(
                unframe(&good[..cut], KIND_SNAPSHOT).is_err(),
                "cut at {cut}"
            );
        }
        for at in [0, 5, 10, good.len() - 2] {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            assert!(unframe(&bad, KIND_SNAPSHOT).is_err(), "flip at {at}");
        }
    }
}

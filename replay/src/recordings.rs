//! Recording files beside the journal: the facts (`recording_file_closed`: name, length,
//! blake3; `recording_erased`) read from a journal or from an export bundle, files
//! hashed as streams, and a bundle's recordings copied next to it and checked against
//! its facts.
//!
//! A bundle is a stream of JSON lines checked line by line, so the media does not go
//! inside it: `conclave journal export-bundle --recordings DIR` copies the files the
//! exported facts name into DIR (hashed while copied), and `conclave verify-bundle
//! --recordings DIR` checks each against the fact, after the bundle's chain and
//! signature (which vouch for the facts).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use conclave_engine::codec;
use conclave_engine::recording::check_name;
use conclave_engine::EventKind;
use conclave_journal::Journal;
use serde::Serialize;

use crate::error::{ReplayError, Result};
use crate::verify::{unhex_vec, BundleRecord};

/// One recording file as the journal knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournaledFile {
    /// The `recording_file_closed` record.
    pub seq: u64,
    pub room: String,
    pub recording: String,
    /// Relative to `<data>/recordings/`.
    pub name: String,
    pub bytes: u64,
    pub blake3: String,
    /// A later `recording_erased` deleted it from the server.
    pub erased: bool,
}

/// What became of one file in a copy or a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileCheck {
    pub name: String,
    /// `match`, `mismatch`, `missing`, or `erased` (missing, and the journal says it was
    /// erased: not a failure).
    pub status: &'static str,
    pub journaled_blake3: String,
    pub journaled_bytes: u64,
    pub file_blake3: Option<String>,
    pub file_bytes: Option<u64>,
}

impl FileCheck {
    /// A failure: a file that differs, or one missing that was never erased.
    pub fn failed(&self) -> bool {
        matches!(self.status, "mismatch" | "missing")
    }
}

/// blake3 (lowercase hex) and length of a file, read in blocks.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    hash_copy(path, None)
}

/// Hashes `src` block by block, writing each block to `out` if given.
fn hash_copy(src: &Path, mut out: Option<&mut dyn Write>) -> std::io::Result<(String, u64)> {
    let mut f = File::open(src)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let block = buf.get(..n).unwrap_or_default();
        h.update(block);
        if let Some(w) = out.as_mut() {
            w.write_all(block)?;
        }
        total += n as u64;
    }
    Ok((h.finalize().to_hex().to_string(), total))
}

/// Collects the facts from records in journal order.
#[derive(Default)]
struct Collector {
    files: Vec<JournaledFile>,
    erased: BTreeSet<String>,
}

impl Collector {
    fn record(&mut self, seq: u64, event_type: &str, version: u16, payload: &[u8]) -> Result<()> {
        if event_type != "recording_file_closed" && event_type != "recording_erased" {
            return Ok(());
        }
        let event =
            codec::decode(event_type, version, payload, None).map_err(|e| ReplayError::Decode {
                seq,
                reason: e.to_string(),
            })?;
        match event.kind {
            EventKind::RecordingFileClosed {
                room,
                recording,
                file,
            } => self.files.push(JournaledFile {
                seq,
                room: room.to_string(),
                recording: recording.to_string(),
                name: file.name,
                bytes: file.bytes,
                blake3: file.blake3,
                erased: false,
            }),
            EventKind::RecordingErased { names, .. } => self.erased.extend(names),
            _ => {}
        }
        Ok(())
    }

    fn finish(mut self) -> Vec<JournaledFile> {
        for f in &mut self.files {
            f.erased = self.erased.contains(&f.name);
        }
        self.files
    }
}

/// Every recording file the journal holds a fact for, from `from_seq` on.
pub fn files_in_journal(journal: &Journal, from_seq: u64) -> Result<Vec<JournaledFile>> {
    let mut c = Collector::default();
    for record in journal.iter_from(from_seq.max(1)) {
        let r = record?;
        c.record(r.seq, &r.event_type, r.schema_version, &r.payload)?;
    }
    Ok(c.finish())
}

/// Every recording file a bundle holds a fact for (its payloads, which the chain hash
/// covers; run `verify_bundle` for the chain and signature).
pub fn files_in_bundle(r: &mut dyn BufRead) -> Result<Vec<JournaledFile>> {
    let mut c = Collector::default();
    for (i, line) in r.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| ReplayError::Bundle {
            line: line_no,
            reason: e.to_string(),
        })?;
        // Header and trailer are not records; a record names its event type.
        if !line.contains("\"event_type\"") {
            continue;
        }
        let Ok(rec) = serde_json::from_str::<BundleRecord>(&line) else {
            continue;
        };
        if rec.event_type != "recording_file_closed" && rec.event_type != "recording_erased" {
            continue;
        }
        let payload = unhex_vec(&rec.payload).map_err(|e| ReplayError::Bundle {
            line: line_no,
            reason: format!("payload: {e}"),
        })?;
        c.record(rec.seq, &rec.event_type, rec.schema_version, &payload)?;
    }
    Ok(c.finish())
}

/// Where a journaled name lives under `root`; `None` for a name that would leave it
/// (the engine refuses such names; a hand-made bundle might not).
fn path_of(root: &Path, name: &str) -> Option<PathBuf> {
    check_name(name).ok().map(|()| root.join(name))
}

fn verdict(f: &JournaledFile, found: Option<(String, u64)>) -> FileCheck {
    let status = match &found {
        Some((h, n)) if *h == f.blake3 && *n == f.bytes => "match",
        Some(_) => "mismatch",
        None if f.erased => "erased",
        None => "missing",
    };
    FileCheck {
        name: f.name.clone(),
        status,
        journaled_blake3: f.blake3.clone(),
        journaled_bytes: f.bytes,
        file_blake3: found.as_ref().map(|(h, _)| h.clone()),
        file_bytes: found.map(|(_, n)| n),
    }
}

/// Checks each file under `root` (a server's `<data>/recordings`, or the directory
/// handed with a bundle) against its fact.
pub fn check_files(root: &Path, files: &[JournaledFile]) -> Vec<FileCheck> {
    files
        .iter()
        .map(|f| {
            let found = path_of(root, &f.name).and_then(|p| hash_file(&p).ok());
            verdict(f, found)
        })
        .collect()
}

/// Copies each file from `src_root` to `out_root` (same relative names), hashing as
/// it copies: a copy whose bytes differ from the fact is kept under `<name>.mismatch`
/// so nobody takes it for the recording; an existing destination is never overwritten.
pub fn copy_files(
    src_root: &Path,
    files: &[JournaledFile],
    out_root: &Path,
) -> Result<Vec<FileCheck>> {
    let io = |p: &Path, e: std::io::Error| ReplayError::Io {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let (Some(src), Some(dst)) = (path_of(src_root, &f.name), path_of(out_root, &f.name))
        else {
            out.push(verdict(f, None));
            continue;
        };
        if !src.exists() {
            out.push(verdict(f, None));
            continue;
        }
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let tmp = dst.with_extension("partial");
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io(&tmp, e))?;
        let found = hash_copy(&src, Some(&mut w)).map_err(|e| io(&src, e))?;
        w.sync_all().map_err(|e| io(&tmp, e))?;
        drop(w);
        let check = verdict(f, Some(found));
        let final_path = if check.status == "match" {
            dst
        } else {
            dst.with_extension("mismatch")
        };
        if final_path.exists() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(
                &final_path,
                std::io::Error::new(ErrorKind::AlreadyExists, "already exists"),
            ));
        }
        std::fs::rename(&tmp, &final_path).map_err(|e| io(&final_path, e))?;
        out.push(check);
    }
    Ok(out)
}

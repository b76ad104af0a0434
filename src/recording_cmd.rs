//! `conclave verify-recording`: is this file the recording the journal vouches for?
//!
//! The media node journals each recording file it closes (`recording_file_closed`: its
//! name, length and blake3). This command hashes a file handed to an auditor (streamed,
//! never held in memory) and looks for that fact offline in a data directory's journal,
//! so it answers without a running server, and on a journal whose recording files were
//! erased since (the facts stay).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use conclave_replay::recordings::{self, JournaledFile};
use serde::Serialize;

/// `verify-recording` arguments.
#[derive(clap::Args)]
pub struct VerifyRecordingArgs {
    /// The server data directory (or its journal directory).
    #[arg(long, env = "CONCLAVE_DATA", default_value = "./data")]
    data: PathBuf,
    /// The file to check.
    file: PathBuf,
    /// The file's name in the journal (relative to `<data>/recordings/`, as
    /// `<recording>/audio.ogg`): compare against that record. Without it, the file is
    /// looked up by its hash, then by the trailing components of its path.
    #[arg(long)]
    name: Option<String>,
}

/// The JSON line the command prints.
#[derive(Serialize)]
struct Verdict<'a> {
    status: &'static str,
    recording: Option<&'a str>,
    room: Option<&'a str>,
    name: Option<&'a str>,
    seq: Option<u64>,
    journaled_blake3: Option<&'a str>,
    journaled_bytes: Option<u64>,
    file_blake3: &'a str,
    bytes: u64,
}

/// Every `recording_file_closed` fact of the journal, in journal order.
fn closed_files(data: &Path) -> anyhow::Result<Vec<JournaledFile>> {
    let opened = conclave_replay::offline::open_read(data)
        .with_context(|| format!("opening the journal of {}", data.display()))?;
    Ok(recordings::files_in_journal(&opened.journal, 1)?)
}

/// The fact a file is checked against: by `--name`; else the latest with its hash and
/// length; else the latest whose name ends the file's path (a changed copy of it).
fn pick<'a>(
    facts: &'a [JournaledFile],
    path: &Path,
    name: Option<&str>,
    blake3: &str,
    bytes: u64,
) -> Option<&'a JournaledFile> {
    if let Some(n) = name {
        return facts.iter().rev().find(|c| c.name == n);
    }
    facts
        .iter()
        .rev()
        .find(|c| c.blake3 == blake3 && c.bytes == bytes)
        .or_else(|| {
            facts
                .iter()
                .rev()
                .find(|c| path.ends_with(Path::new(&c.name)))
        })
}

/// Runs the check; exit 0 on a match, 1 on a mismatch, 2 when no fact names the file.
pub fn run(args: VerifyRecordingArgs) -> anyhow::Result<ExitCode> {
    let (file_blake3, bytes) = recordings::hash_file(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let facts = closed_files(&args.data)?;
    let found = pick(
        &facts,
        &args.file,
        args.name.as_deref(),
        &file_blake3,
        bytes,
    );
    let status = match found {
        None => "unknown",
        Some(c) if c.blake3 == file_blake3 && c.bytes == bytes => "match",
        Some(_) => "mismatch",
    };
    let verdict = Verdict {
        status,
        recording: found.map(|c| c.recording.as_str()),
        room: found.map(|c| c.room.as_str()),
        name: found.map(|c| c.name.as_str()).or(args.name.as_deref()),
        seq: found.map(|c| c.seq),
        journaled_blake3: found.map(|c| c.blake3.as_str()),
        journaled_bytes: found.map(|c| c.bytes),
        file_blake3: &file_blake3,
        bytes,
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &verdict)?;
    writeln!(out)?;
    Ok(match status {
        "match" => ExitCode::SUCCESS,
        "mismatch" => ExitCode::from(1),
        _ => ExitCode::from(2),
    })
}

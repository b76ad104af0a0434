//! The `conclave` binary: command-line parsing and wiring only.

mod admin;
mod config;
mod mail_cmd;
mod media_status;
mod nats_cmd;
mod recorder;
mod recording_cmd;
mod replay_cmd;
mod serve;
mod sip_cmd;
mod status;
mod webrtc_cmd;
mod xmpp_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "conclave", version, about = "Event-sourced conference engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the engine and its REST API on http://127.0.0.1:8080 by default.
    ///
    /// Configuration: --config FILE (TOML), every key also a flag and a CONCLAVE_* env var
    /// (see docs/api.md). SIP (port 5060) is NOT bound: the SIP gateway is a later issue.
    Serve(Box<config::ServeArgs>),
    /// Talk to a running server as its admin: Jami herd actions, Kamailio IMC MI commands.
    Admin(admin::AdminArgs),
    /// The NATS gateway: `nats setup` creates the JetStream stream for the events.
    Nats {
        #[command(subcommand)]
        action: nats_cmd::NatsAction,
    },
    /// Inspect the journal directly (the server must not be running on it).
    Journal {
        #[command(subcommand)]
        action: JournalAction,
    },
    /// Point-in-time state and diffs, offline on a data directory.
    Replay {
        #[command(subcommand)]
        action: replay_cmd::ReplayAction,
    },
    /// Timelines and forensic questions, offline on a data directory.
    Audit {
        #[command(subcommand)]
        action: replay_cmd::AuditAction,
    },
    /// Compliance report for a period (json, csv, xlsx, rec, html).
    Report(replay_cmd::ReportArgs),
    /// Check an export bundle without a server.
    VerifyBundle(replay_cmd::VerifyBundleArgs),
    /// Check a recording file against the length and blake3 its journal holds (offline).
    /// Prints one JSON line; exit 0 match, 1 mismatch, 2 unknown.
    VerifyRecording(recording_cmd::VerifyRecordingArgs),
}

#[derive(Subcommand)]
enum JournalAction {
    /// Walk the hash chain and report the first bad record (sequence, problem, bytes);
    /// also check the journal against what its data directory shows was acknowledged
    /// (head witness, checkpoint). Exit status 1 if anything is wrong, 2 if there is no
    /// journal to check. Works on a private copy: the files are never written.
    Verify {
        /// The journal directory, or the server data directory holding `journal/`.
        #[arg(long, env = "CONCLAVE_DATA", default_value = "./data/journal")]
        data: PathBuf,
        /// Also check a signed checkpoint (or an export bundle's) against the journal.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Print the head sequence number (read from a private copy).
    Head {
        #[arg(long, env = "CONCLAVE_DATA", default_value = "./data/journal")]
        data: PathBuf,
    },
    /// Accept that the journal lost acknowledged records (it is missing or shorter than
    /// the data directory's evidence), so that `serve` starts from what is left: the
    /// evidence is renamed aside (`*.lost-<time>`), never deleted. Server stopped.
    AcceptLoss {
        /// The server data directory.
        #[arg(long, env = "CONCLAVE_DATA", default_value = "./data")]
        data: PathBuf,
    },
    /// Let `serve` start read-only on a journal whose first bad record is --seq (and whose
    /// head has not moved): the state as of the record before, every command refused,
    /// health degraded. Other damage is still refused.
    AllowReadOnly {
        /// The server data directory.
        #[arg(long, env = "CONCLAVE_DATA", default_value = "./data")]
        data: PathBuf,
        /// The first bad record, as `journal verify` names it.
        #[arg(long)]
        seq: u64,
    },
    #[command(flatten)]
    Replay(replay_cmd::JournalReplayAction),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("conclave: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::run(*args).map(|()| ExitCode::SUCCESS),
        Command::Admin(args) => admin::run(args).map(|()| ExitCode::SUCCESS),
        Command::Nats { action } => nats_cmd::run(action),
        Command::Journal { action } => match action {
            JournalAction::Verify {
                data,
                checkpoint: Some(file),
            } => replay_cmd::verify_with_checkpoint(&data, &file),
            JournalAction::Verify { data, .. } => replay_cmd::verify_journal(&data),
            JournalAction::Head { data } => replay_cmd::journal_head(&data),
            JournalAction::AcceptLoss { data } => replay_cmd::accept_loss(&data),
            JournalAction::AllowReadOnly { data, seq } => replay_cmd::allow_read_only(&data, seq),
            JournalAction::Replay(action) => replay_cmd::run_journal(action),
        },
        Command::Replay { action } => replay_cmd::run_replay(action),
        Command::Audit { action } => replay_cmd::run_audit(action),
        Command::Report(args) => replay_cmd::run_report(args),
        Command::VerifyBundle(args) => replay_cmd::run_verify_bundle(args),
        Command::VerifyRecording(args) => recording_cmd::run(args),
    }
}

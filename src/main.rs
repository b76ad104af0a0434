//! The `conclave` binary: command-line parsing and wiring only.

mod admin;
mod config;
mod nats_cmd;
mod replay_cmd;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use conclave_journal::{hex, Journal, JournalConfig};

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
}

#[derive(Subcommand)]
enum JournalAction {
    /// Walk the hash chain and report the first bad record; exit status 1 if any.
    Verify {
        /// The journal directory.
        #[arg(long, env = "CONCLAVE_DATA", default_value = "./data/journal")]
        data: PathBuf,
        /// Also check a signed checkpoint (or an export bundle's) against the journal.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Print the head sequence number and group-commit counters.
    Head {
        #[arg(long, env = "CONCLAVE_DATA", default_value = "./data/journal")]
        data: PathBuf,
    },
    #[command(flatten)]
    Replay(replay_cmd::JournalReplayAction),
}

fn open_existing(data: &PathBuf) -> anyhow::Result<Journal> {
    anyhow::ensure!(
        data.is_dir(),
        "no journal at {}: the directory does not exist",
        data.display()
    );
    Journal::open(data, JournalConfig::default())
        .with_context(|| format!("opening the journal at {}", data.display()))
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
            JournalAction::Verify { data, .. } => {
                let journal = open_existing(&data)?;
                let report = journal.verify().context("verifying the journal")?;
                let out = serde_json::json!({
                    "records_checked": report.records_checked,
                    "head": journal.head(),
                    "head_hash": hex(&report.last_good_hash),
                    "purged_content": report.purged_content,
                    "ok": report.is_ok(),
                    "first_failure": report.first_failure.as_ref().map(|f| serde_json::json!({
                        "seq": f.seq,
                        "problem": f.to_string(),
                    })),
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
                Ok(if report.is_ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            JournalAction::Head { data } => {
                let journal = open_existing(&data)?;
                println!("{}", journal.head());
                Ok(ExitCode::SUCCESS)
            }
            JournalAction::Replay(action) => replay_cmd::run_journal(action),
        },
        Command::Replay { action } => replay_cmd::run_replay(action),
        Command::Audit { action } => replay_cmd::run_audit(action),
        Command::Report(args) => replay_cmd::run_report(args),
        Command::VerifyBundle(args) => replay_cmd::run_verify_bundle(args),
    }
}

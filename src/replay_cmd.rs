//! `conclave replay|audit|report|verify-bundle` and `conclave journal` (verify, head,
//! accept-loss, allow-read-only, and replay's actions): argument parsing and printing
//! only; the work is in the `conclave-replay` crate, the journal's copy and verification,
//! and the engine's start-up checks (`conclave_engine::service::startup`). Also the
//! journal's health source for `serve` ([`journal_status`]).
//!
//! Queries and checks run offline on a data directory (`--data`, default `./data`, or a
//! journal directory itself), always on a private copy of the journal
//! ([`conclave_journal::JournalCopy`]): opening a sled database runs its recovery, which
//! rewrites the files, so the original is only ever read, whether or not a server holds
//! it. Retention and erasure write, so offline they refuse to run while a server holds
//! the lock; with `--server URL` they ask the running server's engine instead (the
//! `/replay/retention` and `/replay/erasure` routes), which journals and purges safely.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use conclave_engine::service::startup::{self, DataLayout, Evidence};
use conclave_engine::service::Engine;
use conclave_engine::{Actor, RoomName};
use conclave_gateway_web::StatusSource;
use conclave_journal::{hex, Hash, JournalConfig, JournalCopy, JournalError, SyncMode};
use conclave_replay::offline::{self, DataPaths};
use conclave_replay::report::{self, Format, ReportQuery};
use conclave_replay::timeline::{self, TimelineOf, TimelineQuery};
use conclave_replay::{diff, recordings, retention, verify, IndexConfig, ReplayIndex};

/// Where the data is.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Server data directory (holding `journal/`) or a journal directory.
    #[arg(long, env = "CONCLAVE_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Records between in-memory snapshots (smaller: faster point queries, more memory).
    #[arg(long, default_value_t = 4096)]
    pub snapshot_every: u64,
}

/// A moment: a time or a sequence number (default: the journal head).
#[derive(Args, Debug, Clone)]
pub struct Moment {
    /// A UTC time: RFC 3339, `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD`.
    #[arg(long, conflicts_with = "seq")]
    pub at: Option<String>,
    /// A journal sequence number.
    #[arg(long)]
    pub seq: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum ReplayAction {
    /// The state of one room (or the whole server) as of a time or sequence number.
    State {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        room: Option<String>,
        #[command(flatten)]
        moment: Moment,
    },
    /// What changed in a room between two moments.
    Diff {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        room: String,
        /// Start time (UTC).
        #[arg(long, conflicts_with = "from_seq")]
        from: Option<String>,
        #[arg(long)]
        from_seq: Option<u64>,
        /// End time (UTC); default the head.
        #[arg(long, conflicts_with = "to_seq")]
        to: Option<String>,
        #[arg(long)]
        to_seq: Option<u64>,
    },
}

/// A time range.
#[derive(Args, Debug, Clone)]
pub struct Range {
    /// Start (UTC), inclusive; default the beginning.
    #[arg(long)]
    pub from: Option<String>,
    /// End (UTC), inclusive; default now.
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AuditAction {
    /// Events of a room, a person (all linked identities) or a moderator's actions.
    Timeline {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long, group = "of")]
        room: Option<String>,
        /// `account:<id>` or an address such as `sip:bob@example.org`.
        #[arg(long, group = "of")]
        person: Option<String>,
        /// Actions taken by this person (any linked identity).
        #[arg(long, group = "of")]
        moderator: Option<String>,
        #[command(flatten)]
        range: Range,
        /// At most this many entries (0: all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Who was present in a room at a moment, with sessions and protocols.
    WhoWasThere {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        room: String,
        #[command(flatten)]
        moment: Moment,
    },
    /// Who muted, kicked, banned whom and when, with the moderators in office then.
    Moderation {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        room: Option<String>,
        #[command(flatten)]
        range: Range,
    },
    /// Why joins were refused (optionally for one person), with the ban that applied.
    Denials {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        person: Option<String>,
        #[arg(long)]
        room: Option<String>,
        #[command(flatten)]
        range: Range,
    },
    /// Invitations issued, answered, used (by whom) and expired.
    Invitations {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        room: Option<String>,
        #[command(flatten)]
        range: Range,
    },
}

/// `conclave report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub range: Range,
    #[arg(long)]
    pub room: Option<String>,
    /// json, csv, xlsx, rec or html.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Output file (for csv: a directory, one file per table). Default stdout; xlsx
    /// needs a file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `conclave verify-bundle`.
#[derive(Args, Debug)]
pub struct VerifyBundleArgs {
    /// The bundle (JSON lines) written by `conclave journal export-bundle`.
    pub file: PathBuf,
    /// Pin the signer: hex of the expected ed25519 public key.
    #[arg(long)]
    pub key: Option<String>,
    /// The directory of recordings handed with the bundle (`export-bundle
    /// --recordings`): each file the bundle's facts name is checked against its length
    /// and blake3; one that differs, or is missing without having been erased, fails.
    #[arg(long)]
    pub recordings: Option<PathBuf>,
}

/// Replay's part of `conclave journal`.
#[derive(Subcommand, Debug)]
pub enum JournalReplayAction {
    /// Write a self-verifiable bundle: every record with its hashes, and a signed
    /// checkpoint of the head.
    ExportBundle {
        #[command(flatten)]
        data: DataArgs,
        /// Output file; default stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        from_seq: u64,
        /// Export even if the chain is broken (the checkpoint signs the good prefix).
        #[arg(long)]
        force: bool,
        /// Also copy the recording files the exported records name into this directory
        /// (same relative names; hashed while copied and checked against the journal).
        #[arg(long)]
        recordings: Option<PathBuf>,
    },
    /// Verify the chain and write an ed25519-signed checkpoint of its head.
    Checkpoint {
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Purge personal content older than the log-days retention.
    ///
    /// Offline on a stopped server's data directory; with --server, through the running
    /// server's engine (POST /replay/retention with the admin token), which is the only
    /// way while it runs: the engine must be the journal's single writer.
    Retention {
        #[command(flatten)]
        data: DataArgs,
        /// Days to keep (0 forever, -1 none); default the journaled policy's.
        #[arg(long, allow_hyphen_values = true)]
        days: Option<i32>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Erase one person's personal content, all linked identities.
    ///
    /// Offline on a stopped server's data directory; with --server, through the running
    /// server's engine (POST /replay/erasure with the admin token).
    Erase {
        #[command(flatten)]
        data: DataArgs,
        /// `account:<id>` or an address.
        #[arg(long)]
        person: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// A running server to send a purge to instead of writing the journal directly.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Base URL of the running server's REST API (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub server: Option<String>,
    /// Admin token [default: read from --token-file, else <data>/admin-token].
    #[arg(long, env = "CONCLAVE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the admin token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub tls: crate::admin::TlsArgs,
}

/// Sends a purge to the running server, printing its answer.
fn purge_over_http(
    data: &DataArgs,
    server: &ServerArgs,
    url: &str,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<ExitCode> {
    let client = crate::admin::Client::connect(
        url,
        server.token.clone(),
        server.token_file.clone(),
        &data.data,
        &server.tls,
    )?;
    let answer = client.request("POST", path, Some(body))?;
    print(&answer)?;
    Ok(ExitCode::SUCCESS)
}

/// Opens for a purge, pointing at --server when a running server holds the journal.
fn open_for_purge(data: &DataArgs) -> anyhow::Result<conclave_journal::Journal> {
    match offline::open_write(&data.data) {
        Ok((journal, _)) => Ok(journal),
        Err(e @ conclave_replay::ReplayError::Locked { .. }) => Err(anyhow::anyhow!(
            "{e}; on a running server purge through it: add --server URL (the admin token is read from {}/admin-token unless --token is given)",
            data.data.display()
        )),
        Err(e) => Err(e.into()),
    }
}

/// Parses a UTC time: RFC 3339, a naive date-time (taken as UTC) or a date (midnight).
pub fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(conclave_replay::parse_time(s)?)
}

/// A journal opened for reading from a private copy (see the module documentation).
struct OfflineJournal {
    journal: JournalCopy,
    paths: DataPaths,
}

/// Settings for a copy that is only read: nothing is flushed, a small cache.
fn read_config() -> JournalConfig {
    JournalConfig {
        sync: SyncMode::None,
        cache_capacity: 32 * 1024 * 1024,
        ..JournalConfig::default()
    }
}

/// Opens `--data` (a data directory or a journal directory) from a private copy.
fn open_read(data: &Path) -> anyhow::Result<OfflineJournal> {
    let paths = DataPaths::resolve(data)?;
    let journal = JournalCopy::open(&paths.journal_dir, read_config())
        .with_context(|| format!("opening {}", paths.journal_dir.display()))?;
    Ok(OfflineJournal { journal, paths })
}

struct Opened {
    j: OfflineJournal,
    index: ReplayIndex,
}

fn open(data: &DataArgs) -> anyhow::Result<Opened> {
    let j = open_read(&data.data)
        .with_context(|| format!("opening the journal in {}", data.data.display()))?;
    let index = ReplayIndex::build(
        &j.journal,
        IndexConfig {
            snapshot_every: data.snapshot_every,
            ..IndexConfig::default()
        },
    )
    .context("replaying the journal")?;
    Ok(Opened { j, index })
}

fn seq_of(o: &Opened, m: &Moment) -> anyhow::Result<u64> {
    Ok(match (&m.at, m.seq) {
        (Some(t), _) => o.index.seq_at(parse_time(t)?),
        (None, Some(s)) => s,
        (None, None) => o.index.head(),
    })
}

fn room(name: &str) -> anyhow::Result<RoomName> {
    RoomName::lookup(name).map_err(|e| anyhow::anyhow!("room {name:?}: {e}"))
}

fn print(v: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

/// An optional time bound.
type Bound = Option<DateTime<Utc>>;

fn range(r: &Range) -> anyhow::Result<(Bound, Bound)> {
    Ok((
        r.from.as_deref().map(parse_time).transpose()?,
        r.to.as_deref().map(parse_time).transpose()?,
    ))
}

fn report_of(o: &Opened, r: &Range, room: Option<String>) -> anyhow::Result<report::Report> {
    let q = query_of(o, r, room)?;
    Ok(report::build(&o.j.journal, &o.index, &q)?)
}

fn query_of(o: &Opened, r: &Range, room: Option<String>) -> anyhow::Result<ReportQuery> {
    let (from, to) = range(r)?;
    Ok(ReportQuery {
        // An open start is the journal's first record, so the report names a real date.
        from: from.unwrap_or_else(|| o.index.time_of(1).unwrap_or_else(Utc::now)),
        to: to.unwrap_or_else(Utc::now),
        room,
    })
}

pub fn run_replay(action: ReplayAction) -> anyhow::Result<ExitCode> {
    match action {
        ReplayAction::State {
            data,
            room: r,
            moment,
        } => {
            let o = open(&data)?;
            let seq = seq_of(&o, &moment)?;
            match r {
                Some(name) => match o.index.room_at(&o.j.journal, &room(&name)?, seq)? {
                    Some(view) => print(&view)?,
                    None => {
                        eprintln!("conclave: room {name:?} did not exist at record {seq}");
                        return Ok(ExitCode::from(1));
                    }
                },
                None => print(&o.index.server_at(&o.j.journal, seq)?)?,
            }
        }
        ReplayAction::Diff {
            data,
            room: r,
            from,
            from_seq,
            to,
            to_seq,
        } => {
            let o = open(&data)?;
            let a = match (from, from_seq) {
                (Some(t), _) => o.index.seq_at(parse_time(&t)?),
                (None, Some(s)) => s,
                (None, None) => 0,
            };
            let b = match (to, to_seq) {
                (Some(t), _) => o.index.seq_at(parse_time(&t)?),
                (None, Some(s)) => s,
                (None, None) => o.index.head(),
            };
            print(&diff::room_diff(&o.j.journal, &o.index, &room(&r)?, a, b)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_audit(action: AuditAction) -> anyhow::Result<ExitCode> {
    match action {
        AuditAction::Timeline {
            data,
            room,
            person,
            moderator,
            range: r,
            limit,
        } => {
            let of = match (room, person, moderator) {
                (Some(r), _, _) => TimelineOf::Room(r),
                (_, Some(p), _) => TimelineOf::Person(p),
                (_, _, Some(m)) => TimelineOf::Moderator(m),
                _ => TimelineOf::All,
            };
            let o = open(&data)?;
            let (from, to) = range(&r)?;
            let q = TimelineQuery {
                of,
                from,
                to,
                limit,
            };
            print(&timeline::timeline(&o.j.journal, &o.index, &q)?)?;
        }
        AuditAction::WhoWasThere {
            data,
            room: r,
            moment,
        } => {
            let o = open(&data)?;
            let seq = seq_of(&o, &moment)?;
            let members = report::who_was_there(&o.j.journal, &o.index, &room(&r)?, seq)?;
            print(&serde_json::json!({
                "room": r,
                "seq": seq,
                "at": o.index.time_of(seq).map(conclave_replay::fmt_time),
                "exists": members.is_some(),
                "members": members.unwrap_or_default(),
            }))?;
        }
        AuditAction::Moderation {
            data,
            room,
            range: r,
        } => {
            let o = open(&data)?;
            let rep = report_of(&o, &r, room)?;
            print(&serde_json::json!({
                "period": rep.period,
                "actions": rep.moderation,
                "per_moderator": rep.moderation_summary,
            }))?;
        }
        AuditAction::Denials {
            data,
            person,
            room,
            range: r,
        } => {
            let o = open(&data)?;
            let names = person.as_deref().map(|p| o.index.person_names(p));
            let rep = report_of(&o, &r, room)?;
            let denials: Vec<_> = rep
                .denials
                .into_iter()
                .filter(|d| {
                    names
                        .as_ref()
                        .is_none_or(|n| n.contains(&d.person) || n.contains(&d.address))
                })
                .collect();
            print(&serde_json::json!({ "period": rep.period, "denials": denials }))?;
        }
        AuditAction::Invitations {
            data,
            room,
            range: r,
        } => {
            let o = open(&data)?;
            let rep = report_of(&o, &r, room)?;
            print(&serde_json::json!({
                "period": rep.period,
                "summary": rep.invitation_summary,
                "invitations": rep.invitations,
            }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_out(out: Option<&Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match out {
        Some(p) => std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display())),
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(bytes)?;
            Ok(o.flush()?)
        }
    }
}

pub fn run_report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let format: Format = args.format.parse()?;
    if format == Format::Xlsx && args.out.is_none() {
        bail!("--format xlsx needs --out FILE");
    }
    let o = open(&args.data)?;
    let q = query_of(&o, &args.range, args.room)?;
    let out = args.out.as_deref();
    let journal = &o.j.journal;
    match format {
        // Row-oriented formats stream: the event log, as large as the period, is read
        // from the journal row by row and written as it is read.
        Format::Rec | Format::Csv => {
            let plan = report::plan(journal, &o.index, &q)?;
            match (format, out) {
                (Format::Csv, Some(dir)) => {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    for name in plan.table_names() {
                        let path = dir.join(format!("{name}.csv"));
                        let file = std::fs::File::create(&path)
                            .with_context(|| format!("writing {}", path.display()))?;
                        let mut w = std::io::BufWriter::new(file);
                        plan.write_csv(journal, Some(name), &mut w)?;
                        w.flush()?;
                    }
                }
                (_, Some(path)) => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("writing {}", path.display()))?;
                    let mut w = std::io::BufWriter::new(file);
                    plan.write_rec(journal, &mut w)?;
                    w.flush()?;
                }
                (Format::Csv, None) => {
                    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                    plan.write_csv(journal, None, &mut w)?;
                    w.flush()?;
                }
                (_, None) => {
                    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                    plan.write_rec(journal, &mut w)?;
                    w.flush()?;
                }
            }
        }
        Format::Json | Format::Html | Format::Xlsx => {
            let rep = report::build(journal, &o.index, &q)?;
            match format {
                Format::Json => write_out(out, rep.to_json()?.as_bytes())?,
                Format::Html => write_out(out, rep.to_html().as_bytes())?,
                _ => write_out(out, &rep.to_xlsx()?)?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_verify_bundle(args: VerifyBundleArgs) -> anyhow::Result<ExitCode> {
    let key = args
        .key
        .as_deref()
        .map(verify::unhex::<32>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--key: {e}"))?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let mut reader = std::io::BufReader::new(file);
    let rep = verify::verify_bundle(&mut reader, key.as_ref());
    let Some(dir) = &args.recordings else {
        print(&rep)?;
        return Ok(if rep.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    };
    // The facts are read again from the bundle, whose chain and signature were just
    // checked: a file is only as good as the fact that vouches for it.
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let facts = recordings::files_in_bundle(&mut std::io::BufReader::new(file))?;
    let checks = recordings::check_files(dir, &facts);
    let ok = rep.ok && !checks.iter().any(recordings::FileCheck::failed);
    print(&serde_json::json!({ "ok": ok, "bundle": rep, "recordings": checks }))?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `journal verify --checkpoint FILE`: the chain, and a signed checkpoint (or a bundle's)
/// checked against it.
pub fn verify_with_checkpoint(data: &Path, file: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let cp = match serde_json::from_str::<verify::SignedCheckpoint>(&text) {
        Ok(cp) => cp,
        Err(_) => {
            // A bundle: its checkpoint is the last line.
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            serde_json::from_str::<verify::BundleTrailer>(last)
                .with_context(|| {
                    format!("{} is neither a checkpoint nor a bundle", file.display())
                })?
                .checkpoint
        }
    };
    let j = open_read(data)?;
    let check = verify::check_checkpoint(&j.journal, &cp)?;
    print(&check)?;
    Ok(if check.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn run_journal(action: JournalReplayAction) -> anyhow::Result<ExitCode> {
    match action {
        JournalReplayAction::ExportBundle {
            data,
            out,
            from_seq,
            force,
            recordings: recordings_out,
        } => {
            let j = open_read(&data.data)?;
            let key = verify::load_or_create_key(&j.paths.data_dir)?;
            let mut sink: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let summary =
                verify::export_bundle(&j.journal, &key, from_seq, force, Utc::now(), &mut sink)?;
            drop(sink);
            eprintln!("{}", serde_json::to_string_pretty(&summary)?);
            if let Some(dir) = &recordings_out {
                let files = recordings::files_in_journal(&j.journal, from_seq)?;
                let copied =
                    recordings::copy_files(&j.paths.data_dir.join("recordings"), &files, dir)?;
                eprintln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "recordings": copied }))?
                );
                if copied.iter().any(recordings::FileCheck::failed) {
                    return Ok(ExitCode::from(1));
                }
            }
            Ok(if summary.chain.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        JournalReplayAction::Checkpoint { data, out } => {
            let j = open_read(&data.data)?;
            let key = verify::load_or_create_key(&j.paths.data_dir)?;
            let (cp, chain) = verify::checkpoint(&j.journal, &key, Utc::now())?;
            let text = serde_json::to_string_pretty(&cp)? + "\n";
            write_out(out.as_deref(), text.as_bytes())?;
            if !chain.ok {
                eprintln!("{}", serde_json::to_string_pretty(&chain)?);
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        JournalReplayAction::Retention { data, days, server } => {
            if let Some(url) = &server.server {
                return purge_over_http(
                    &data,
                    &server,
                    url,
                    "/replay/retention",
                    serde_json::json!({ "days": days }),
                );
            }
            let journal = open_for_purge(&data)?;
            let days = match days {
                Some(d) => d,
                None => {
                    let index = ReplayIndex::build(&journal, IndexConfig::default())?;
                    index.state_at(&journal, index.head())?.policy.log_days
                }
            };
            let now = Utc::now();
            let scope = conclave_engine::PurgeScope::log_days(days, now);
            let erased = retention::erase_recordings(
                &journal,
                &DataPaths::resolve(&data.data)?.data_dir,
                scope.as_ref(),
                now,
                &Actor::Admin,
            )?;
            let mut out = retention::apply_log_days(&journal, days, now, &Actor::Admin)?;
            out.recordings_erased = erased.iter().map(|r| r.recording.to_string()).collect();
            print(&out)?;
            Ok(if out.chain.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        JournalReplayAction::Erase {
            data,
            person,
            server,
        } => {
            if let Some(url) = &server.server {
                return purge_over_http(
                    &data,
                    &server,
                    url,
                    "/replay/erasure",
                    serde_json::json!({ "person": person }),
                );
            }
            let journal = open_for_purge(&data)?;
            let now = Utc::now();
            let scope = conclave_engine::Principal::parse(&person)
                .map(conclave_engine::PurgeScope::Person)
                .map_err(|e| anyhow::anyhow!("person: {e}"))?;
            let erased = retention::erase_recordings(
                &journal,
                &DataPaths::resolve(&data.data)?.data_dir,
                Some(&scope),
                now,
                &Actor::Admin,
            )?;
            let mut out = retention::erase_person(&journal, &person, now, &Actor::Admin)?;
            out.recordings_erased = erased.iter().map(|r| r.recording.to_string()).collect();
            print(&out)?;
            Ok(if out.chain.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Where `--data` points: the journal directory, and the data directory holding the
/// evidence about it (head witness, checkpoint) when there is one.
struct Target {
    journal: PathBuf,
    layout: Option<DataLayout>,
}

/// Resolves `--data`: a server data directory (holding `journal/`, or only evidence of
/// it when the journal is gone), or a journal directory, whose data directory is its
/// parent when it is named `journal` and the parent holds evidence.
fn resolve_target(data: &Path) -> Target {
    let has_evidence = |d: &Path| {
        let layout = DataLayout::new(d);
        layout.head_witness().is_file() || layout.projections().is_dir()
    };
    if data.join("journal").is_dir() || has_evidence(data) {
        let layout = DataLayout::new(data);
        return Target {
            journal: layout.journal(),
            layout: Some(layout),
        };
    }
    let parent = match data.parent() {
        Some(p) if p.as_os_str().is_empty() => Some(Path::new(".")),
        other => other,
    };
    let layout = match (data.file_name(), parent) {
        (Some(name), Some(parent)) if name == "journal" && has_evidence(parent) => {
            Some(DataLayout::new(parent))
        }
        _ => None,
    };
    Target {
        journal: data.to_path_buf(),
        layout,
    }
}

fn evidence_json(e: Option<(u64, Hash)>) -> serde_json::Value {
    match e {
        Some((seq, hash)) => serde_json::json!({ "seq": seq, "hash": hex(&hash) }),
        None => serde_json::Value::Null,
    }
}

/// The first problem found: the record, what is wrong, and where its bytes are.
struct Finding {
    seq: u64,
    code: &'static str,
    problem: String,
    location: Option<conclave_journal::RecordLocation>,
}

impl Finding {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq,
            "code": self.code,
            "problem": self.problem,
            "chunk": self.location.map(|l| l.chunk),
            "bytes": self.location.map(|l| [l.start, l.end]),
        })
    }
}

/// `journal verify` (without `--checkpoint`): the chain and the evidence, on a private
/// copy. Prints a JSON report; exit status 1 if anything is wrong, an error (status 2) if
/// there is no journal and nothing says there was one.
pub fn verify_journal(data: &Path) -> anyhow::Result<ExitCode> {
    let target = resolve_target(data);
    let evidence = match &target.layout {
        Some(layout) => Evidence::read(layout)
            .with_context(|| format!("reading the evidence in {}", layout.root.display()))?,
        None => Evidence::default(),
    };
    let mut out = serde_json::json!({
        "journal": target.journal.display().to_string(),
        "evidence": {
            "head_witness": evidence_json(evidence.witness),
            "checkpoint": evidence_json(evidence.checkpoint),
        },
    });
    let mut finding: Option<Finding> = None;
    let lost = |from: u64, to: u64, by: &str| Finding {
        seq: from,
        code: "journal.truncated",
        problem: format!(
            "record {from} is missing: the journal ends at record {} but record {to} was \
             acknowledged ({by})",
            from - 1
        ),
        location: None,
    };
    let source = |seq: u64| {
        if evidence.witness.is_some_and(|(s, _)| s == seq) {
            "the head witness"
        } else {
            "the checkpoint"
        }
    };
    if !target.journal.join("db").is_file() {
        let expected = evidence.expected_head();
        if expected == 0 {
            bail!(
                "no journal at {}: neither a journal database nor a data directory holding \
                 `journal/` is there, and nothing there says one existed",
                data.display()
            );
        }
        finding = Some(lost(1, expected, source(expected)));
        out["head"] = 0.into();
        out["records_checked"] = 0.into();
        return print_verify(out, finding);
    }
    let copy = match JournalCopy::open(&target.journal, read_config()) {
        Ok(copy) => copy,
        Err(JournalError::Truncated {
            acknowledged,
            found,
        }) => {
            finding = Some(lost(
                found + 1,
                acknowledged,
                "the journal's own head marker",
            ));
            match JournalCopy::open_without_marker(&target.journal, read_config()) {
                Ok(copy) => copy,
                Err(e) => {
                    out["error"] =
                        serde_json::json!({ "code": e.code(), "message": e.to_string() });
                    return print_verify(out, finding);
                }
            }
        }
        // Could not even copy: nothing was learnt about the journal.
        Err(e @ JournalError::Storage(_)) => {
            return Err(e).with_context(|| format!("verifying {}", target.journal.display()))
        }
        // The database does not open (sled cannot recover it, a newer layout...).
        Err(e) => {
            out["error"] = serde_json::json!({ "code": e.code(), "message": e.to_string() });
            return print_verify(out, finding);
        }
    };
    let report = copy.verify().context("verifying the journal")?;
    out["records_checked"] = report.records_checked.into();
    out["head"] = copy.head().into();
    out["head_hash"] = hex(&report.last_good_hash).into();
    out["purged_content"] = report.purged_content.into();
    if let Some(f) = &report.first_failure {
        // A bad record inside the chain comes before any record missing after it.
        finding = Some(Finding {
            seq: f.seq,
            code: f.problem.code(),
            problem: f.to_string(),
            location: f.location,
        });
    }
    if finding.is_none() {
        // The checkpoint covers acknowledged records, which only sync mode `always`
        // (the default) makes durable before acknowledging.
        for (name, e) in [
            ("the head witness", evidence.witness),
            (
                "the checkpoint; with --journal-sync batch or none a crash may lose that \
                 much by design",
                evidence.checkpoint,
            ),
        ] {
            if !startup::contradicts(Some(&copy), e) {
                continue;
            }
            let Some((seq, _)) = e else { continue };
            let head = copy.head();
            finding = Some(if seq > head {
                lost(head + 1, seq, name)
            } else {
                Finding {
                    seq,
                    code: "journal.truncated",
                    problem: format!(
                        "record {seq} is not the record that was acknowledged ({name} names \
                         another hash): the journal was rolled back and rewritten, or replaced"
                    ),
                    location: None,
                }
            });
            break;
        }
    }
    print_verify(out, finding)
}

fn print_verify(mut out: serde_json::Value, finding: Option<Finding>) -> anyhow::Result<ExitCode> {
    let ok = finding.is_none() && out.get("error").is_none();
    out["ok"] = ok.into();
    out["first_failure"] = finding.map_or(serde_json::Value::Null, |f| f.json());
    print(&out)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `journal head`: the head of a private copy.
pub fn journal_head(data: &Path) -> anyhow::Result<ExitCode> {
    let target = resolve_target(data);
    let copy = JournalCopy::open(&target.journal, read_config())
        .with_context(|| format!("opening the journal at {}", target.journal.display()))?;
    println!("{}", copy.head());
    Ok(ExitCode::SUCCESS)
}

/// `journal accept-loss`: moves aside the evidence that the journal contradicts.
pub fn accept_loss(data: &Path) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(data.is_dir(), "no data directory at {}", data.display());
    let layout = DataLayout::new(data);
    let evidence = Evidence::read(&layout)?;
    let inner =
        conclave_journal::read_head_marker(&layout.journal().join(conclave_journal::HEAD_MARKER))?;
    let copy = if layout.has_journal() {
        Some(
            JournalCopy::open_without_marker(&layout.journal(), read_config()).with_context(
                || {
                    format!(
                        "opening what is left of {} (a journal that does not open is not a \
                         loss to accept: restore it from a backup)",
                        layout.journal().display()
                    )
                },
            )?,
        )
    } else {
        None
    };
    let journal = copy.as_deref();
    let found = journal.map_or(0, |j| j.head());
    let contradicted: Vec<u64> = [evidence.witness, evidence.checkpoint, inner]
        .into_iter()
        .filter(|e| startup::contradicts(journal, *e))
        .flatten()
        .map(|(seq, _)| seq)
        .collect();
    if contradicted.is_empty() {
        bail!(
            "nothing to accept: the journal at {} (head {found}) holds everything its data \
             directory says was acknowledged",
            layout.journal().display()
        );
    }
    let accepted = startup::accept_loss(&layout, journal)?;
    print(&serde_json::json!({
        "journal": layout.journal().display().to_string(),
        "expected_head": contradicted.iter().max(),
        "found_head": found,
        "moved": accepted
            .moved
            .iter()
            .map(|(from, to)| serde_json::json!({
                "from": from.display().to_string(),
                "to": to.display().to_string(),
            }))
            .collect::<Vec<_>>(),
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// `journal allow-read-only --seq N`: records the decision, if N is the first bad record.
pub fn allow_read_only(data: &Path, seq: u64) -> anyhow::Result<ExitCode> {
    let layout = DataLayout::new(data);
    anyhow::ensure!(
        layout.has_journal(),
        "no journal at {}",
        layout.journal().display()
    );
    let copy = JournalCopy::open(&layout.journal(), read_config()).with_context(|| {
        format!(
            "opening {} (a journal that does not open cannot be served, even read-only)",
            layout.journal().display()
        )
    })?;
    let report = copy.verify().context("verifying the journal")?;
    let Some(failure) = report.first_failure else {
        bail!(
            "the journal at {} verifies (head {}): nothing to allow",
            layout.journal().display(),
            copy.head()
        );
    };
    anyhow::ensure!(
        failure.seq == seq,
        "the first bad record is {}, not {seq}: {}",
        failure.seq,
        startup::describe(&failure)
    );
    anyhow::ensure!(
        seq > 1,
        "record 1 is bad: there is no good prefix to serve read-only"
    );
    let head = copy.head();
    drop(copy);
    let path = startup::allow_read_only(&layout, seq, head)?;
    print(&serde_json::json!({
        "decision": path.display().to_string(),
        "first_bad": seq,
        "head": head,
        "serves_state_as_of": seq - 1,
        "problem": startup::describe(&failure),
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// The journal's part of `/about/health` and `/metrics`: degraded (unhealthy) while the
/// engine runs read-only on a damaged journal or a read or verification has found damage
/// since the start.
struct JournalStatus {
    engine: Engine,
}

/// The journal's health source, for `serve` to register with the web gateway.
pub fn journal_status(engine: Engine) -> std::sync::Arc<dyn StatusSource> {
    std::sync::Arc::new(JournalStatus { engine })
}

impl JournalStatus {
    /// (first bad record if known, what is wrong) when the journal is known to be bad.
    fn degraded(&self) -> Option<(Option<u64>, String)> {
        if let Some(ro) = self.engine.read_only() {
            return Some((Some(ro.first_bad), ro.problem.clone()));
        }
        self.engine
            .journal()
            .damage()
            .map(|d| (d.seq, format!("{}: {}", d.code, d.reason)))
    }
}

impl StatusSource for JournalStatus {
    fn name(&self) -> String {
        "journal".into()
    }

    fn healthy(&self) -> bool {
        self.degraded().is_none()
    }

    fn health(&self) -> serde_json::Value {
        let read_only = self.engine.read_only().is_some();
        match self.degraded() {
            None => serde_json::json!({ "status": "ok", "read_only": false }),
            Some((seq, problem)) => serde_json::json!({
                "status": "degraded",
                "read_only": read_only,
                "first_bad_seq": seq,
                "problem": problem,
            }),
        }
    }

    fn metrics(&self) -> String {
        let degraded = self.degraded();
        let first_bad = degraded.as_ref().and_then(|(seq, _)| *seq).unwrap_or(0);
        format!(
            "# HELP conclave_journal_degraded 1 when the server runs on a journal known to be damaged (a read-only start, or damage found by a read or a verification since the start).\n\
             # TYPE conclave_journal_degraded gauge\n\
             conclave_journal_degraded {}\n\
             # HELP conclave_journal_read_only 1 when the server was started read-only on a damaged journal: every command is refused.\n\
             # TYPE conclave_journal_read_only gauge\n\
             conclave_journal_read_only {}\n\
             # HELP conclave_journal_first_bad_seq The first damaged record known (0: none known).\n\
             # TYPE conclave_journal_first_bad_seq gauge\n\
             conclave_journal_first_bad_seq {first_bad}\n",
            u8::from(degraded.is_some()),
            u8::from(self.engine.read_only().is_some()),
        )
    }
}

//! `conclave replay|audit|report|verify-bundle` and the replay side of `conclave journal`:
//! argument parsing and printing only; the work is in the `conclave-replay` crate.
//!
//! Queries run offline on a data directory (`--data`, default `./data`, or a journal
//! directory itself). If a running server holds the journal's lock, the directory is
//! copied to a temporary one and the copy is read: the original is never written.
//! Retention and erasure write, so offline they refuse to run while a server holds the
//! lock; with `--server URL` they ask the running server's engine instead (the
//! `/replay/retention` and `/replay/erasure` routes), which journals and purges safely.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use conclave_engine::{Actor, RoomName};
use conclave_replay::offline::{self, OfflineJournal};
use conclave_replay::report::{self, Format, ReportQuery};
use conclave_replay::timeline::{self, TimelineOf, TimelineQuery};
use conclave_replay::{diff, retention, verify, IndexConfig, ReplayIndex};

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

struct Opened {
    j: OfflineJournal,
    index: ReplayIndex,
}

fn open(data: &DataArgs) -> anyhow::Result<Opened> {
    let j = offline::open_read(&data.data)
        .with_context(|| format!("opening the journal in {}", data.data.display()))?;
    if let Some(copy) = &j.copy {
        eprintln!(
            "conclave: the journal is in use by a running server; reading a copy at {}",
            copy.display()
        );
    }
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
    let (from, to) = range(r)?;
    let q = ReportQuery {
        // An open start is the journal's first record, so the report names a real date.
        from: from.unwrap_or_else(|| o.index.time_of(1).unwrap_or_else(Utc::now)),
        to: to.unwrap_or_else(Utc::now),
        room,
    };
    Ok(report::build(&o.j.journal, &o.index, &q)?)
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
    let rep = report_of(&o, &args.range, args.room)?;
    let out = args.out.as_deref();
    match format {
        Format::Json => write_out(out, rep.to_json()?.as_bytes())?,
        Format::Rec => write_out(out, rep.to_rec().as_bytes())?,
        Format::Html => write_out(out, rep.to_html().as_bytes())?,
        Format::Xlsx => write_out(out, &rep.to_xlsx()?)?,
        Format::Csv => {
            let tables = rep.to_csv()?;
            match out {
                Some(dir) => {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    for (name, text) in tables {
                        let path = dir.join(format!("{name}.csv"));
                        std::fs::write(&path, text)
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                }
                None => {
                    let joined: Vec<String> = tables
                        .into_iter()
                        .map(|(name, text)| format!("# {name}\n{text}"))
                        .collect();
                    write_out(None, joined.join("\n").as_bytes())?;
                }
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
    print(&rep)?;
    Ok(if rep.ok {
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
    let j = offline::open_read(data).with_context(|| format!("opening {}", data.display()))?;
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
        } => {
            let j = offline::open_read(&data.data)
                .with_context(|| format!("opening {}", data.data.display()))?;
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
            Ok(if summary.chain.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        JournalReplayAction::Checkpoint { data, out } => {
            let j = offline::open_read(&data.data)
                .with_context(|| format!("opening {}", data.data.display()))?;
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
                    ReplayIndex::build(&journal, IndexConfig::default())?
                        .current()
                        .policy
                        .log_days
                }
            };
            let out = retention::apply_log_days(&journal, days, Utc::now(), &Actor::Admin)?;
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
            let out = retention::erase_person(&journal, &person, Utc::now(), &Actor::Admin)?;
            print(&out)?;
            Ok(if out.chain.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

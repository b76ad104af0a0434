//! Replay benchmark: rebuild rate over a journal of >= 1M events next to the raw sled
//! scan of the same journal in the same run, and the latency of "state of room R at T".
//!
//! `cargo bench -p conclave-replay` (env: `REPLAY_BENCH_EVENTS`, default 1_000_000;
//! `REPLAY_BENCH_DIR` to keep the journal between runs; `REPLAY_BENCH_ROUNDS`,
//! `REPLAY_BENCH_EXPORT`, `REPLAY_BENCH_INDEX_MEMORY`: see docs/benchmarks.md).
//!
//! Last, "first answer after restart": the index is stored (one snapshot in
//! `persist_one_in`, plus the head), every index and the journal are dropped, the
//! journal is reopened, and a fresh index opened from the stored snapshots answers
//! "state of room R at T" once, against the cold build of the same run.
//!
//! The journal is written with the engine's own codec: a simulated server with 500 rooms
//! and 20 000 identities over sip, xmpp and web (at most 12 sessions per room at once);
//! joins, leaves, mutes, role grants,
//! invitations and chat (chat bodies in the content side store).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use conclave_engine::codec;
use conclave_engine::model::RoomConfig;
use conclave_engine::{
    Actor, Address, Event, EventKind, InvitationId, MessageId, Principal, Role, RoleVia, RoomName,
    SessionId,
};
use conclave_journal::{AppendRequest, Journal, JournalConfig, Metadata, NewRecord, SyncMode};
use conclave_replay::{IndexConfig, ReplayIndex};
use hdrhistogram::Histogram;

const ROOMS: usize = 500;
const PEOPLE: usize = 20_000;

/// A tiny deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn person(i: usize) -> Address {
    let s = match i % 3 {
        0 => format!("sip:user{i}@example.org"),
        1 => format!("xmpp:user{i}@example.org"),
        _ => format!("web:user{i}"),
    };
    Address::parse(&s).unwrap()
}

fn record(e: &Event, gateway: &str) -> NewRecord {
    let enc = codec::encode(e).unwrap();
    NewRecord {
        stream: e.stream().to_string(),
        event_type: enc.event_type.to_owned(),
        schema_version: enc.schema_version,
        timestamp: e.at,
        payload: enc.payload,
        content: enc.personal_content,
        meta: Metadata {
            actor: Some(e.actor.to_string()),
            gateway: Some(gateway.into()),
            protocol: Some(gateway.into()),
            remote_addr: Some("h:0123456789abcdef0123456789abcdef".into()),
            correlation_id: Some(format!("{:016x}", e.at.timestamp_micros())),
            causation_id: None,
            authorized_by: None,
        },
    }
}

fn generate(journal: &Journal, events: u64, start: DateTime<Utc>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let rooms: Vec<RoomName> = (0..ROOMS)
        .map(|i| RoomName::lookup(&format!("room{i}")).unwrap())
        .collect();
    // Who is in which room with which session.
    let mut present: Vec<Vec<(usize, SessionId)>> = vec![Vec::new(); ROOMS];
    let mut n = 0u64;
    let mut batch = Vec::with_capacity(1000);
    let mut session_no = 0u64;
    let mut at = start;
    let push = |e: Event, gw: &str, batch: &mut Vec<NewRecord>| {
        batch.push(record(&e, gw));
        if batch.len() == 1000 {
            journal
                .append_blocking(AppendRequest {
                    records: std::mem::take(batch),
                    ..AppendRequest::default()
                })
                .unwrap();
        }
    };
    while n < events {
        at += chrono::Duration::milliseconds(10);
        let ev = |kind, actor: Actor| Event { at, actor, kind };
        if (n as usize) < ROOMS {
            let r = rooms[n as usize].clone();
            push(
                ev(
                    EventKind::RoomCreated {
                        room: r,
                        parent: None,
                        owner: Principal::Address(person(n as usize)),
                        config: RoomConfig::default(),
                    },
                    Actor::Admin,
                ),
                "web",
                &mut batch,
            );
            n += 1;
            continue;
        }
        let ri = rng.below(ROOMS);
        let room = rooms[ri].clone();
        let roll = rng.below(100);
        let kind_actor = if (roll < 30 && present[ri].len() < 12) || present[ri].is_empty() {
            let who = rng.below(PEOPLE);
            session_no += 1;
            let session = SessionId::parse(&format!("s{session_no}")).unwrap();
            present[ri].push((who, session.clone()));
            let a = person(who);
            (
                EventKind::Joined {
                    room,
                    principal: Principal::Address(a.clone()),
                    address: a.clone(),
                    session,
                    gateway: a.scheme().as_str().into(),
                    role: Role::Member,
                    remote: Some("h:0123456789abcdef0123456789abcdef".into()),
                },
                Actor::Identity(a),
            )
        } else {
            let k = rng.below(present[ri].len());
            let (who, session) = present[ri][k].clone();
            let a = person(who);
            let p = Principal::Address(a.clone());
            let actor = Actor::Identity(a.clone());
            match roll {
                30..=54 => {
                    present[ri].swap_remove(k);
                    (
                        EventKind::Left {
                            room,
                            principal: p,
                            session,
                            reason: conclave_engine::LeaveReason::Left,
                        },
                        actor,
                    )
                }
                55..=64 => (
                    EventKind::AudioMuted {
                        room,
                        subject: p,
                        by_moderator: true,
                    },
                    Actor::Admin,
                ),
                65..=69 => (EventKind::AudioUnmuted { room, subject: p }, Actor::Admin),
                70..=72 => (
                    EventKind::RoleChanged {
                        room,
                        subject: p,
                        from: None,
                        to: Some(Role::Moderator),
                        via: RoleVia::Grant,
                    },
                    Actor::Admin,
                ),
                73..=75 => (
                    EventKind::InvitationIssued {
                        room,
                        invitation: InvitationId::parse(&format!("i{n}")).unwrap(),
                        invitee: person(rng.below(PEOPLE)),
                        expires_at: Some(at + chrono::Duration::days(7)),
                        single_use: true,
                        secret_digest: None,
                    },
                    actor,
                ),
                _ => (
                    EventKind::MessagePosted {
                        room,
                        message: MessageId::parse(&format!("m{n}")).unwrap(),
                        from: p,
                        address: a,
                        body: Some(format!("message number {n}")),
                        html_stripped: false,
                    },
                    actor,
                ),
            }
        };
        let (kind, actor) = kind_actor;
        push(ev(kind, actor), "web", &mut batch);
        n += 1;
    }
    if !batch.is_empty() {
        journal
            .append_blocking(AppendRequest {
                records: batch,
                ..AppendRequest::default()
            })
            .unwrap();
    }
}

/// The process's peak resident memory (`VmHWM`), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn rate(n: u64, d: Duration) -> String {
    format!("{:>10.0}", n as f64 / d.as_secs_f64())
}

fn main() {
    let events: u64 = std::env::var("REPLAY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var("REPLAY_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| tmp.path().join("journal"));
    let mut config = JournalConfig {
        sync: SyncMode::None,
        ..JournalConfig::default()
    };
    // `REPLAY_BENCH_CACHE_MIB`: sled's page cache (default the journal's, 64 MiB).
    if let Some(mib) = std::env::var("REPLAY_BENCH_CACHE_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        config.cache_capacity = mib << 20;
    }
    let journal = Journal::open(&dir, config).unwrap();
    let start = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
    if journal.head() < events {
        let t = Instant::now();
        generate(&journal, events - journal.head(), start);
        println!("generated {} events in {:.1?}", journal.head(), t.elapsed());
    }
    let head = journal.head();

    // `REPLAY_BENCH_INDEX_MEMORY=N`: only build an index with a snapshot every N records
    // and print the peak memory (run it with N = the default and with a huge N, in
    // processes of their own: the difference is what the snapshots hold).
    if let Some(every) = std::env::var("REPLAY_BENCH_INDEX_MEMORY")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let index = ReplayIndex::build(
            &journal,
            IndexConfig {
                snapshot_every: every,
                ..IndexConfig::default()
            },
        )
        .unwrap();
        println!(
            "| index of {head} records, {} snapshots | peak RSS {} MiB |",
            index.snapshot_count(),
            peak_rss_kib() >> 10
        );
        return;
    }

    // `REPLAY_BENCH_EXPORT=1`: only export the whole journal as a bundle file (as the
    // CLI and the HTTP route write it, streamed) and print the process's peak memory
    // before and after; run it in a process of its own on a generated journal.
    if std::env::var_os("REPLAY_BENCH_EXPORT").is_some() {
        let before = peak_rss_kib();
        if std::env::var_os("REPLAY_BENCH_SCAN_FIRST").is_some() {
            let to: u64 = std::env::var("REPLAY_BENCH_SCAN_FIRST")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX);
            let mut n = 0u64;
            for r in journal.iter_range(1, to) {
                r.unwrap();
                n += 1;
            }
            println!("record scan of {n}: peak RSS {} MiB", peak_rss_kib() >> 10);
        }
        let key_dir = tempfile::tempdir().unwrap();
        let key = conclave_replay::verify::load_or_create_key(key_dir.path()).unwrap();
        if std::env::var_os("REPLAY_BENCH_EXPORT_IN_MEMORY").is_some() {
            // What the HTTP route did before it streamed: the whole bundle in a buffer.
            let mut out = Vec::new();
            conclave_replay::verify::export_bundle(&journal, &key, 1, false, Utc::now(), &mut out)
                .unwrap();
            println!(
                "| export bundle into memory ({} MiB) | peak RSS {} MiB before, {} MiB after |",
                out.len() >> 20,
                before >> 10,
                peak_rss_kib() >> 10
            );
            return;
        }
        let path = key_dir.path().join("bundle.jsonl");
        let t = Instant::now();
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let plan =
            conclave_replay::verify::plan_bundle(&journal, &key, 1, false, Utc::now()).unwrap();
        let checked = peak_rss_kib();
        let summary = plan.write(&journal, &mut out).unwrap();
        drop(out);
        let took = t.elapsed();
        let size = std::fs::metadata(&path).unwrap().len();
        println!(
            "| export bundle of {} records to a file ({} MiB) | {:.2?} | peak RSS {} MiB before, {} MiB after the chain check, {} MiB after writing |",
            summary.records,
            size >> 20,
            took,
            before >> 10,
            checked >> 10,
            peak_rss_kib() >> 10
        );
        return;
    }

    // Raw sled scan: every stored chunk value, bytes touched, nothing decoded.
    let t = Instant::now();
    let mut bytes = 0usize;
    for chunk in journal.storage().chunks(1) {
        let (_, v) = chunk.unwrap();
        bytes += v.iter().step_by(64).map(|b| *b as usize).sum::<usize>() & 1;
        bytes += v.len();
    }
    let raw = t.elapsed();
    // Record scan: chunks decoded into records (what any reader pays).
    let t = Instant::now();
    let mut n = 0u64;
    for r in journal.iter_from(1) {
        r.unwrap();
        n += 1;
    }
    let scan = t.elapsed();
    assert_eq!(n, head);
    // Decode only: records into engine events, no state.
    let t = Instant::now();
    for r in journal.iter_from(1) {
        conclave_replay::decode_for_state(&journal, &r.unwrap()).unwrap();
    }
    let decode = t.elapsed();
    // Rebuild (decode + evolve every event, keeping snapshots) and the same fold without
    // snapshots (what the snapshots cost), alternated over `REPLAY_BENCH_ROUNDS` rounds
    // (default 2; the best of each is printed) so that both see the same machine.
    let rounds: usize = std::env::var("REPLAY_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut rebuild = Duration::MAX;
    let mut fold = Duration::MAX;
    let mut index = None;
    for _ in 0..rounds.max(1) {
        drop(index.take());
        let t = Instant::now();
        let built = ReplayIndex::build(&journal, IndexConfig::default()).unwrap();
        rebuild = rebuild.min(t.elapsed());
        index = Some(built);
        let t = Instant::now();
        let bare = ReplayIndex::build(
            &journal,
            IndexConfig {
                snapshot_every: u64::MAX,
                ..IndexConfig::default()
            },
        )
        .unwrap();
        fold = fold.min(t.elapsed());
        assert_eq!(bare.head(), head);
        drop(bare);
    }
    let index = index.unwrap();

    println!();
    println!("| pass over {head} events | time | events/s | vs raw sled scan |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| raw sled scan ({} MiB of chunks) | {:.2?} | {} | 100% |",
        bytes >> 20,
        raw,
        rate(head, raw)
    );
    println!(
        "| record scan (decode chunks) | {:.2?} | {} | {:.0}% |",
        scan,
        rate(head, scan),
        100.0 * raw.as_secs_f64() / scan.as_secs_f64()
    );
    println!(
        "| decode only (records into engine events) | {:.2?} | {} | {:.0}% |",
        decode,
        rate(head, decode),
        100.0 * raw.as_secs_f64() / decode.as_secs_f64()
    );
    println!(
        "| fold (engine decode + evolve, no snapshots) | {:.2?} | {} | {:.0}% |",
        fold,
        rate(head, fold),
        100.0 * raw.as_secs_f64() / fold.as_secs_f64()
    );
    println!(
        "| rebuild (engine decode + evolve, {} snapshots) | {:.2?} | {} | {:.0}% |",
        index.snapshot_count(),
        rebuild,
        rate(head, rebuild),
        100.0 * raw.as_secs_f64() / rebuild.as_secs_f64()
    );
    println!();
    println!(
        "fold / decode only: {:.0}%; rebuild / fold: {:.0}% (rates, best of {rounds} alternated rounds)",
        100.0 * decode.as_secs_f64() / fold.as_secs_f64(),
        100.0 * fold.as_secs_f64() / rebuild.as_secs_f64()
    );

    // "State of room R at T" at random rooms and times.
    let mut rng = Rng(42);
    let mut room_hist = Histogram::<u64>::new(3).unwrap();
    let mut server_hist = Histogram::<u64>::new(3).unwrap();
    let span_ms = (head * 10) as i64;
    for i in 0..300u32 {
        let at = start + chrono::Duration::milliseconds(rng.below(span_ms as usize) as i64);
        let room = RoomName::lookup(&format!("room{}", rng.below(ROOMS))).unwrap();
        let t = Instant::now();
        let seq = index.seq_at(at);
        let view = index.room_at(&journal, &room, seq).unwrap();
        room_hist.record(t.elapsed().as_micros() as u64).unwrap();
        assert!(view.is_some() || seq < ROOMS as u64);
        if i.is_multiple_of(10) {
            let t = Instant::now();
            index.state_at(&journal, seq).unwrap();
            server_hist.record(t.elapsed().as_micros() as u64).unwrap();
        }
    }
    println!();
    println!("| query (snapshot every 4096 records) | p50 | p99 | max |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, h) in [
        ("state of room R at T (300 random)", &room_hist),
        ("whole server at T (30 random)", &server_hist),
    ] {
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0
        );
    }

    // First answer after restart: store the index, drop everything, reopen the journal,
    // open the stored index lazily and answer "state of room R at T" once.
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().join("replay-index");
    let t = Instant::now();
    let stored = index.persist_job(&store).unwrap().write().unwrap();
    let persist_took = t.elapsed();
    let mut rng = Rng(7);
    let probes: Vec<(DateTime<Utc>, RoomName)> = (0..20)
        .map(|_| {
            (
                start + chrono::Duration::milliseconds(rng.below(span_ms as usize) as i64),
                RoomName::lookup(&format!("room{}", rng.below(ROOMS))).unwrap(),
            )
        })
        .collect();
    let expected: Vec<_> = probes
        .iter()
        .map(|(at, room)| index.room_at(&journal, room, index.seq_at(*at)).unwrap())
        .collect();
    let expected_server = index.state_at(&journal, index.seq_at(probes[1].0)).unwrap();
    drop(index);
    drop(journal);
    let t = Instant::now();
    let journal = Journal::open(
        &dir,
        JournalConfig {
            sync: SyncMode::None,
            ..JournalConfig::default()
        },
    )
    .unwrap();
    let reopen = t.elapsed();
    let t = Instant::now();
    let lazy = ReplayIndex::open_persisted(&journal, IndexConfig::default(), &store).unwrap();
    let opened = t.elapsed();
    let (at, room) = &probes[0];
    let first = lazy.room_at(&journal, room, lazy.seq_at(*at)).unwrap();
    let first_answer = t.elapsed();
    assert_eq!(first, expected[0]);
    let t = Instant::now();
    let server = lazy.state_at(&journal, lazy.seq_at(probes[1].0)).unwrap();
    let server_took = t.elapsed();
    assert_eq!(server, expected_server);
    let mut lazy_hist = Histogram::<u64>::new(3).unwrap();
    for ((at, room), want) in probes.iter().zip(&expected).skip(2) {
        let t = Instant::now();
        let got = lazy.room_at(&journal, room, lazy.seq_at(*at)).unwrap();
        lazy_hist.record(t.elapsed().as_micros() as u64).unwrap();
        assert_eq!(&got, want);
    }
    println!();
    println!("| first answer after restart ({head} events) | time |");
    println!("| --- | ---: |");
    println!(
        "| store the index ({} snapshot files, {:.1} MiB, {:.1} MiB per million events) | {:.2?} |",
        stored.snapshots,
        stored.bytes as f64 / 1048576.0,
        stored.bytes as f64 / 1048576.0 * 1e6 / head as f64,
        persist_took
    );
    println!("| reopen the journal (not counted below) | {reopen:.2?} |");
    println!("| open the stored index (times, links, list of snapshots) | {opened:.2?} |");
    println!("| **first answer**: open + state of room R at T (one snapshot loaded) | **{first_answer:.2?}** |");
    println!(
        "| cold: rebuild (best of {rounds}) + one query, same run | {:.2?} |",
        rebuild + Duration::from_micros(room_hist.value_at_quantile(0.5))
    );
    println!("| then whole server at T on the lazy index | {server_took:.2?} |");
    println!(
        "| then room R at T on the lazy index, 18 more: p50 / max | {:.1} / {:.1} ms |",
        lazy_hist.value_at_quantile(0.5) as f64 / 1000.0,
        lazy_hist.max() as f64 / 1000.0
    );
}

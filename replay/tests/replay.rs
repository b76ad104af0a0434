//! Golden tests on a scripted meeting: point-in-time state, diff, timelines, the report
//! in every format (XLSX read back), retention, verification and tampering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use common::*;
use conclave_engine::{evolve, Actor, State};
use conclave_journal::{Journal, JournalConfig};
use conclave_replay::report::{self, ReportQuery};
use conclave_replay::timeline::{timeline, TimelineOf, TimelineQuery};
use conclave_replay::{
    decode_for_state, diff, offline, retention, verify, IndexConfig, ReplayIndex,
};
use proptest::prelude::*;

/// One scripted meeting for every read-only test (the Engine run takes ~1.5 s).
fn meeting() -> &'static Meeting {
    static M: OnceLock<Meeting> = OnceLock::new();
    M.get_or_init(script_meeting)
}

/// A private copy of the meeting's journal (tests that write or tamper).
fn copy_of(m: &Meeting) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("journal");
    offline::copy_journal(&m.journal_dir(), &to).unwrap();
    (dir, to)
}

fn open(path: &std::path::Path) -> Journal {
    Journal::open(path, JournalConfig::default()).unwrap()
}

fn full_report(j: &Journal, index: &ReplayIndex) -> report::Report {
    report::build(
        j,
        index,
        &ReportQuery {
            from: DateTime::<Utc>::MIN_UTC,
            to: Utc::now(),
            room: None,
        },
    )
    .unwrap()
}

/// Shared read-only state: a copy of the journal and its index.
fn opened() -> &'static (tempfile::TempDir, Journal, ReplayIndex) {
    static O: OnceLock<(tempfile::TempDir, Journal, ReplayIndex)> = OnceLock::new();
    O.get_or_init(|| {
        let (dir, path) = copy_of(meeting());
        let j = open(&path);
        let index = ReplayIndex::build(&j, IndexConfig::default()).unwrap();
        (dir, j, index)
    })
}

#[test]
fn the_report_tells_the_meeting_field_by_field() {
    let (_, j, index) = opened();
    let m = meeting();
    let r = full_report(j, index);

    // Attendance: every session, with protocol, person across linked identities, and how it ended.
    let row = |session: &str| r.attendance.iter().find(|a| a.session == session).unwrap();
    assert_eq!(r.attendance.len(), 6, "{:#?}", r.attendance);
    let a1 = row("a1");
    assert_eq!(
        (
            a1.person.as_str(),
            a1.protocol.as_str(),
            a1.gateway.as_str()
        ),
        ("sip:alice@example.org", "sip", "sip")
    );
    assert_eq!((a1.end.as_str(), a1.left_at.is_none()), ("present", true));
    let (b1, b2) = (row("b1"), row("b2"));
    assert_eq!(
        (b1.person.as_str(), b1.protocol.as_str(), b1.end.as_str()),
        ("account:bob", "sip", "left")
    );
    assert_eq!(
        (b2.person.as_str(), b2.protocol.as_str(), b2.end.as_str()),
        ("account:bob", "xmpp", "present")
    );
    assert_eq!(
        (row("c1").protocol.as_str(), row("c1").end.as_str()),
        ("web", "left")
    );
    assert_eq!(row("m1").end, "ban");
    assert_eq!(row("m1").end_seq, Some(m.ban_seq));
    assert_eq!(row("d1").end, "peer_kick");
    assert!(r.attendance.iter().all(|a| a.duration_secs >= 0));
    let protocols: Vec<(&str, u64)> = r
        .attendance_summary
        .iter()
        .map(|s| (s.protocol.as_str(), s.sessions))
        .collect();
    assert_eq!(protocols, vec![("sip", 2), ("web", 1), ("xmpp", 3)]);

    // Moderation, with the moderator's standing and who held rights at that moment.
    let action = |a: &str| r.moderation.iter().find(|x| x.action == a).unwrap();
    let grant = action("grant_role");
    assert_eq!(
        (grant.moderator.as_str(), grant.moderator_role.as_str()),
        ("sip:alice@example.org", "owner")
    );
    assert_eq!(grant.subject.as_deref(), Some("account:bob"));
    assert_eq!(grant.detail, "none -> moderator");
    let mute = action("mute");
    assert_eq!(
        (mute.moderator.as_str(), mute.moderator_role.as_str()),
        ("xmpp:bob@example.org", "moderator")
    );
    assert_eq!(mute.subject.as_deref(), Some("xmpp:mallory@example.org"));
    assert_eq!(mute.gateway.as_deref(), Some("xmpp"));
    assert_eq!(
        mute.moderators_at_time,
        vec![
            "account:bob (moderator)".to_owned(),
            "sip:alice@example.org (owner)".to_owned()
        ]
    );
    let ban = action("ban");
    assert_eq!(ban.seq, m.ban_seq);
    assert_eq!(ban.scope, "room:standup");
    assert_eq!(ban.detail, "room:standup: spam");
    let kick = action("kick");
    assert_eq!(
        (kick.subject.as_deref(), kick.detail.as_str()),
        (Some("xmpp:dave@example.org"), "done")
    );
    assert!(r
        .moderation_summary
        .iter()
        .any(|s| s.moderator == "xmpp:bob@example.org" && s.action == "ban" && s.count == 1));

    // Bans.
    assert_eq!(r.bans.len(), 1);
    let b = &r.bans[0];
    assert_eq!(
        (b.scope.as_str(), b.subject.as_str(), b.by.as_str()),
        (
            "room:standup",
            "xmpp:mallory@example.org",
            "xmpp:bob@example.org"
        )
    );
    assert_eq!(
        (
            b.reason.as_deref(),
            b.until.as_deref(),
            b.lifted_at.as_deref()
        ),
        (Some("spam"), None, None)
    );
    assert!(r.autobans.is_empty());

    // The denied rejoin, with the ban that stopped it.
    assert_eq!(r.denials.len(), 1);
    let d = &r.denials[0];
    assert_eq!(
        (
            d.seq,
            d.reason.as_str(),
            d.person.as_str(),
            d.protocol.as_str()
        ),
        (m.denied_seq, "banned", "xmpp:mallory@example.org", "xmpp")
    );
    let detail = d.detail.as_deref().unwrap();
    assert!(
        detail.starts_with("banned from room:standup by xmpp:bob@example.org at "),
        "{detail}"
    );
    assert!(detail.ends_with(": spam"), "{detail}");
    assert!(
        d.remote_addr.as_deref().unwrap().starts_with("h:"),
        "addresses are stored obfuscated"
    );
    assert_eq!(r.denials_by_reason.get("banned"), Some(&1));

    // Invitations: one used by Dave, one expired.
    let inv = |id: &conclave_engine::InvitationId| {
        r.invitations
            .iter()
            .find(|i| i.invitation == id.to_string())
            .unwrap()
    };
    let used = inv(&m.used_invitation);
    assert_eq!(
        (
            used.state.as_str(),
            used.invitee.as_str(),
            used.issued_by.as_str()
        ),
        ("used", "xmpp:dave@example.org", "sip:alice@example.org")
    );
    assert_eq!(
        used.used_by.as_deref(),
        Some("xmpp:dave@example.org (xmpp:dave@example.org)")
    );
    let expired = inv(&m.expired_invitation);
    assert_eq!(
        (expired.state.as_str(), expired.invitee.as_str()),
        ("expired", "web:erin")
    );
    assert!(expired.ended_at.is_some() && expired.used_by.is_none());
    assert_eq!(
        (
            r.invitation_summary.issued,
            r.invitation_summary.used,
            r.invitation_summary.expired
        ),
        (2, 1, 1)
    );

    // Refused actions and the event log with personal content.
    assert!(r
        .action_denials
        .iter()
        .any(|a| a.actor.as_deref() == Some("web:carol") && a.action == "mute_audio"));
    let chat = r
        .events
        .iter()
        .find(|e| e.event_type == "chat_message")
        .unwrap();
    assert_eq!(chat.content.as_deref(), Some("hello from carol"));
    assert!(r
        .events
        .iter()
        .any(|e| e.event_type == "invalidate_invitation"
            && e.actor.as_deref() == Some("service:clock")));
    assert_eq!(r.events.len() as u64, index.head());
    assert!(r.retention.is_empty());
}

#[test]
fn point_in_time_state_diff_and_who_was_there() {
    let (_, j, index) = opened();
    let m = meeting();
    let before_ban = m.ban_seq - 1;
    let view = index.room_at(j, &room(), before_ban).unwrap().unwrap();
    let present: Vec<&str> = view.members.iter().map(|x| x.principal.as_str()).collect();
    assert_eq!(
        present,
        vec![
            "account:bob",
            "sip:alice@example.org",
            "xmpp:mallory@example.org",
            "web:carol"
        ]
    );
    let mallory = view
        .members
        .iter()
        .find(|x| x.principal == "xmpp:mallory@example.org")
        .unwrap();
    assert_eq!(mallory.audio, "moderator");
    let bob = view
        .members
        .iter()
        .find(|x| x.principal == "account:bob")
        .unwrap();
    let protos: Vec<&str> = bob.sessions.iter().map(|s| s.protocol.as_str()).collect();
    assert_eq!(
        (bob.role.as_deref(), protos),
        (Some("moderator"), vec!["sip", "xmpp"])
    );
    // As of a time: the ban's own timestamp gives the state after it.
    let ban_time = index.time_of(m.ban_seq).unwrap();
    let at_ban = index
        .room_at(j, &room(), index.seq_at(ban_time))
        .unwrap()
        .unwrap();
    assert!(at_ban
        .members
        .iter()
        .all(|x| x.principal != "xmpp:mallory@example.org"));
    assert_eq!(at_ban.bans.len(), 1);
    // Before the room existed.
    assert!(index.room_at(j, &room(), 1).unwrap().is_none());

    let d = diff::room_diff(j, index, &room(), before_ban, m.ban_seq).unwrap();
    use diff::Change;
    assert!(d.changes.contains(&Change::Left {
        principal: "xmpp:mallory@example.org".into(),
        session: "m1".into(),
        address: "xmpp:mallory@example.org".into(),
        protocol: "xmpp".into(),
    }));
    assert!(d.changes.iter().any(|c| matches!(c, Change::Banned { subject, by, .. } if subject == "xmpp:mallory@example.org" && by == "xmpp:bob@example.org")));
    let whole = diff::room_diff(j, index, &room(), 0, index.head()).unwrap();
    assert_eq!(whole.changes[0], Change::RoomCreated);
    assert!(whole.changes.iter().any(|c| matches!(c, Change::RoleChanged { principal, to: Some(to), .. } if principal == "account:bob" && to == "moderator")));
    assert!(whole
        .changes
        .iter()
        .any(|c| matches!(c, Change::InvitationIssued { state, .. } if state == "expired")));

    let there = report::who_was_there(j, index, &room(), m.denied_seq)
        .unwrap()
        .unwrap();
    assert_eq!(there.len(), 3);
}

#[test]
fn timelines_of_a_person_across_identities_and_of_a_moderator() {
    let (_, j, index) = opened();
    let bob = timeline(
        j,
        index,
        &TimelineQuery {
            of: TimelineOf::Person("sip:bob@example.org".into()),
            from: None,
            to: None,
            limit: 0,
        },
    )
    .unwrap();
    assert!(
        bob.names.contains(&"account:bob".to_owned())
            && bob.names.contains(&"xmpp:bob@example.org".to_owned())
    );
    let types: Vec<&str> = bob.entries.iter().map(|e| e.event_type.as_str()).collect();
    for t in [
        "account_create",
        "identity_link",
        "room_join",
        "peer_role",
        "audio_mute",
        "ban",
        "room_leave",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    let joins = bob
        .entries
        .iter()
        .filter(|e| e.event_type == "room_join")
        .count();
    assert_eq!(joins, 2, "one join per identity");
    let moderator = timeline(
        j,
        index,
        &TimelineQuery {
            of: TimelineOf::Moderator("account:bob".into()),
            from: None,
            to: None,
            limit: 0,
        },
    )
    .unwrap();
    let acts: Vec<&str> = moderator
        .entries
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert!(
        acts.contains(&"audio_mute") && acts.contains(&"ban"),
        "{acts:?}"
    );
    assert!(moderator
        .entries
        .iter()
        .all(|e| e.actor.as_deref().is_some_and(|a| a.contains("bob"))));
    let ban = moderator
        .entries
        .iter()
        .find(|e| e.event_type == "ban")
        .unwrap();
    assert_eq!(
        (ban.gateway.as_deref(), ban.subject.as_deref()),
        (Some("xmpp"), Some("xmpp:mallory@example.org"))
    );
    assert!(ban.remote_addr.as_deref().unwrap().starts_with("h:"));
    let room_tl = timeline(
        j,
        index,
        &TimelineQuery {
            of: TimelineOf::Room("standup".into()),
            from: None,
            to: None,
            limit: 3,
        },
    )
    .unwrap();
    assert_eq!(room_tl.entries.len(), 3);
    assert_eq!(room_tl.entries[0].event_type, "room_create");
}

#[test]
fn every_format_renders_and_the_xlsx_reads_back() {
    use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
    let (_, j, index) = opened();
    let r = full_report(j, index);
    let bytes = r.to_xlsx().unwrap();
    let mut wb: Xlsx<_> = open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let names = wb.sheet_names();
    for s in [
        "Summary",
        "Attendance",
        "Moderation actions",
        "Bans",
        "Invitations",
        "Denied joins",
        "Event log",
    ] {
        assert!(
            names.iter().any(|n| n == s),
            "sheet {s} missing from {names:?}"
        );
    }
    let att = wb.worksheet_range("Attendance").unwrap();
    let header: Vec<String> = att
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(&header[..4], ["room", "person", "address", "protocol"]);
    assert_eq!(header[6], "joined_at (UTC)");
    assert_eq!(att.height(), r.attendance.len() + 1);
    let first = &r.attendance[0];
    let row: Vec<&Data> = att.rows().nth(1).unwrap().iter().collect();
    assert_eq!(row[1].to_string(), first.person);
    assert_eq!(row[5].to_string(), first.session);
    let Data::DateTime(when) = row[6] else {
        panic!("joined_at is a date cell: {:?}", row[6])
    };
    let naive = when.as_datetime().unwrap();
    let expected = DateTime::parse_from_rfc3339(&first.joined_at)
        .unwrap()
        .naive_utc();
    assert!(
        (naive - expected).num_milliseconds().abs() <= 1,
        "{naive} vs {expected}"
    );
    assert_eq!(row[8], &Data::Float(first.duration_secs as f64));
    let bans = wb.worksheet_range("Bans").unwrap();
    let ban: Vec<String> = bans
        .rows()
        .nth(1)
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        (ban[3].as_str(), ban[4].as_str(), ban[5].as_str()),
        ("xmpp:mallory@example.org", "xmpp:bob@example.org", "spam")
    );
    let events = wb.worksheet_range("Event log").unwrap();
    assert_eq!(events.height() as u64, index.head() + 1);

    let csv = r.to_csv().unwrap();
    let (_, att_csv) = csv.iter().find(|(n, _)| *n == "attendance").unwrap();
    let mut rd = csv::Reader::from_reader(att_csv.as_bytes());
    assert_eq!(rd.records().count(), r.attendance.len());
    let rec = r.to_rec();
    assert!(rec.contains("%rec: Attendance") && rec.contains("%rec: DenialsByReason"));
    assert!(rec.contains("reason: banned\ncount: 1\n"));
    let html = r.to_html();
    assert!(html.contains("<svg") && html.contains("<rect") && html.contains("account:bob"));
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href=\"http"));
    let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    assert_eq!(json["bans"][0]["reason"], "spam");
}

#[test]
fn streamed_csv_and_rec_are_byte_identical_to_the_in_memory_rendering() {
    let (_, j, index) = opened();
    let room = full_report(j, index).attendance[0].room.clone();
    for room in [None, Some(room)] {
        let q = ReportQuery {
            from: DateTime::<Utc>::MIN_UTC,
            to: Utc::now(),
            room,
        };
        let r = report::build(j, index, &q).unwrap();
        let plan = report::plan(j, index, &q).unwrap();
        assert!(plan.report().events.is_empty());
        assert!(!r.events.is_empty());
        let tables = r.to_csv().unwrap();
        let names: Vec<&str> = tables.iter().map(|(n, _)| *n).collect();
        assert_eq!(plan.table_names(), names);
        let joined: Vec<String> = tables
            .iter()
            .map(|(n, text)| format!("# {n}\n{text}"))
            .collect();
        let mut out = Vec::new();
        plan.write_csv(j, None, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), joined.join("\n"));
        for (name, text) in &tables {
            let mut out = Vec::new();
            plan.write_csv(j, Some(name), &mut out).unwrap();
            assert_eq!(&String::from_utf8(out).unwrap(), text, "table {name}");
        }
        let err = plan
            .write_csv(j, Some("nope"), &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("one of summary"), "{err}");
        let mut out = Vec::new();
        plan.write_rec(j, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r.to_rec());
    }
}

#[test]
fn erasure_and_retention_are_journaled_and_the_chain_still_verifies() {
    let m = meeting();
    let (_dir, path) = copy_of(m);
    let j = open(&path);
    let now = Utc::now();
    let out = retention::erase_person(&j, "web:carol", now, &Actor::Admin).unwrap();
    assert_eq!((out.records_purged, out.chain.ok), (1, true));
    let seq = out.journaled_seq.unwrap();
    assert_eq!(j.get(seq).unwrap().unwrap().event_type, "content_purge");
    // Bob's display name goes with an erasure of any of his identities.
    let out = retention::erase_person(&j, "xmpp:bob@example.org", now, &Actor::Admin).unwrap();
    assert_eq!(out.records_purged, 1);
    let index = ReplayIndex::build(&j, IndexConfig::default()).unwrap();
    let r = full_report(&j, &index);
    let chat = r
        .events
        .iter()
        .find(|e| e.event_type == "chat_message")
        .unwrap();
    assert_eq!(chat.content.as_deref(), Some("[purged]"));
    assert!(chat.summary.ends_with(": [purged]"));
    let created = r
        .events
        .iter()
        .find(|e| e.event_type == "account_create")
        .unwrap();
    assert_eq!(created.content.as_deref(), Some("[purged]"));
    assert_eq!(r.retention.len(), 2);
    assert_eq!(
        (
            r.retention[0].action.as_str(),
            r.retention[0].subject.as_deref(),
            r.retention[0].records
        ),
        ("erasure", Some("web:carol"), 1)
    );
    assert!(verify::verify_chain(&j).unwrap().ok);
    assert_eq!(verify::verify_chain(&j).unwrap().purged_content, 2);
    // Retention with log-days -1 keeps nothing (nothing left here) and is a no-op.
    let out = retention::apply_log_days(&j, -1, Utc::now(), &Actor::Admin).unwrap();
    assert_eq!((out.records_purged, out.journaled_seq), (0, None));
    assert!(index.current().unwrap().rooms.contains_key(&room()));
}

#[test]
fn a_bundle_verifies_offline_and_names_a_tampered_record() {
    let (dir, j, _) = opened();
    let key = verify::load_or_create_key(dir.path()).unwrap();
    // The key persists.
    assert_eq!(
        verify::load_or_create_key(dir.path()).unwrap().to_bytes(),
        key.to_bytes()
    );
    let mut bundle = Vec::new();
    let sum = verify::export_bundle(j, &key, 1, false, Utc::now(), &mut bundle).unwrap();
    assert_eq!(sum.records, j.head());
    let pk = key.verifying_key().to_bytes();
    let rep = verify::verify_bundle(&mut &bundle[..], Some(&pk));
    assert!(rep.ok, "{rep:?}");
    assert_eq!(
        (rep.records_checked, rep.key_trusted, rep.signature_ok),
        (j.head(), Some(true), true)
    );
    assert!(!rep.checkpoint.as_ref().unwrap().hash.is_empty());
    // Another key is not trusted.
    let rep = verify::verify_bundle(&mut &bundle[..], Some(&[9; 32]));
    assert!(!rep.ok && rep.key_trusted == Some(false));
    // Change one character in record 7's line: the check names record 7.
    let text = String::from_utf8(bundle.clone()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[7] = lines[7].replacen("\"stream_version\":", "\"stream_version\":1", 1);
    let tampered = lines.join("\n") + "\n";
    let rep = verify::verify_bundle(&mut tampered.as_bytes(), None);
    assert_eq!(rep.first_failure.as_ref().unwrap().seq, Some(7), "{rep:?}");
    // A forged event view over an intact payload is caught too.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[5] = lines[5].replacen("sip:alice@example.org", "sip:eve@example.org", 1);
    let rep = verify::verify_bundle(&mut lines.join("\n").as_bytes(), None);
    assert_eq!(rep.first_failure.as_ref().unwrap().seq, Some(5), "{rep:?}");
    // Dropping the last record line: the checkpoint no longer covers the bundle.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.remove(lines.len() - 2);
    let rep = verify::verify_bundle(&mut lines.join("\n").as_bytes(), None);
    assert!(!rep.ok && !rep.checkpoint_covers);
}

#[test]
fn a_flipped_byte_in_a_journal_copy_is_named_by_verify_checkpoint_and_bundle() {
    let m = meeting();
    // The signed checkpoint from the intact journal.
    let (keydir, good_path) = copy_of(m);
    let good = open(&good_path);
    let key = verify::load_or_create_key(keydir.path()).unwrap();
    let (cp, chain) = verify::checkpoint(&good, &key, Utc::now()).unwrap();
    assert!(chain.ok);
    let target = m.ban_seq;
    let payload = good.get(target).unwrap().unwrap().payload;
    drop(good);
    // Tamper with a copy, below the journal, in the stored chunk.
    let (_dir, path) = copy_of(m);
    {
        let raw = conclave_journal::storage::SledStorage::open(&path, 1 << 20).unwrap();
        let tree = raw.raw_tree();
        let (k, v) = tree
            .scan_prefix(b"g")
            .map(|e| e.unwrap())
            .filter(|(k, _)| u64::from_be_bytes(k[1..9].try_into().unwrap()) <= target)
            .last()
            .unwrap();
        let mut bytes = v.to_vec();
        let at = bytes
            .windows(payload.len())
            .position(|w| w == payload.as_slice())
            .unwrap();
        bytes[at + payload.len() - 1] ^= 0x01;
        tree.insert(k, bytes).unwrap();
        tree.flush().unwrap();
    }
    let tampered = open(&path);
    let chain = verify::verify_chain(&tampered).unwrap();
    assert_eq!(
        chain.first_failure.as_ref().unwrap().seq,
        target,
        "{chain:?}"
    );
    let check = verify::check_checkpoint(&tampered, &cp).unwrap();
    assert!(!check.ok && check.signature_ok);
    assert_eq!(check.chain.first_failure.unwrap().seq, target);
    // Exporting refuses a broken chain, unless forced; then the bundle check names it.
    assert!(verify::export_bundle(&tampered, &key, 1, false, Utc::now(), &mut Vec::new()).is_err());
    let mut bundle = Vec::new();
    let sum = verify::export_bundle(&tampered, &key, 1, true, Utc::now(), &mut bundle).unwrap();
    assert_eq!(sum.checkpoint.seq, target - 1);
    let rep = verify::verify_bundle(&mut &bundle[..], None);
    let failure = rep.first_failure.unwrap();
    assert_eq!(failure.seq, Some(target), "{failure:?}");
    assert_eq!(failure.problem, "its hash does not match its contents");
}

#[test]
fn a_locked_journal_is_read_from_a_copy() {
    let m = meeting();
    let (_dir, path) = copy_of(m);
    let holder = open(&path);
    let o = offline::open_read(&path).unwrap();
    assert!(o.copy.is_some(), "the lock must send us to a copy");
    assert_eq!(o.journal.head(), holder.head());
    assert!(matches!(
        offline::open_write(&path),
        Err(e) if e.code() == "replay.journal_locked"
    ));
    assert_eq!(
        offline::open_read(std::path::Path::new("/nonexistent/x"))
            .err()
            .unwrap()
            .code(),
        "replay.no_journal"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]
    /// Point-in-time rebuild equals the live projection at every moment it was observed,
    /// and a straight fold at every sequence number, whatever the snapshot spacing; one
    /// room's view equals the full rebuild's at every sequence number.
    ///
    /// The snapshots are persistent-map clones that share nodes with the state folded
    /// after them, so every snapshot is checked after the whole fold (a write that leaked
    /// into a shared node would show here); and an index fed as a live server feeds it
    /// (each committed event with its record, `skip - 1` of every `skip` left for the gap
    /// filling to read from the journal) answers the same at every sequence number.
    #[test]
    fn rebuild_equals_the_live_projection_at_every_sequence(every in 1u64..12, skip in 1u64..4) {
        let (_, j, _) = opened();
        let m = meeting();
        let index = ReplayIndex::build(j, IndexConfig { snapshot_every: every, ..IndexConfig::default() }).unwrap();
        let mut fed = ReplayIndex::new(IndexConfig { snapshot_every: every, ..IndexConfig::default() }).unwrap();
        for n in (skip..=index.head()).step_by(skip as usize) {
            let record = j.get(n).unwrap().unwrap();
            let event = conclave_replay::decode(j, &record).unwrap();
            prop_assert!(fed.apply(j, &record, &event).unwrap());
            prop_assert!(!fed.apply(j, &record, &event).unwrap(), "an event folded twice");
        }
        fed.refresh(j).unwrap();
        prop_assert_eq!((fed.head(), fed.head_hash()), (index.head(), index.head_hash()));
        prop_assert_eq!(fed.snapshot_count(), index.snapshot_count());
        for n in 0..=index.head() {
            prop_assert_eq!(fed.state_at(j, n).unwrap(), index.state_at(j, n).unwrap(), "fed state at {}", n);
            prop_assert_eq!(fed.time_of(n), index.time_of(n));
        }
        for (head, live) in &m.live {
            prop_assert_eq!(&index.state_at(j, *head).unwrap(), live, "live state at {}", head);
        }
        let mut folded = State::new(conclave_engine::Policy::default());
        for n in 0..=index.head() {
            if n > 0 {
                let record = j.get(n).unwrap().unwrap();
                evolve(&mut folded, &decode_for_state(j, &record).unwrap());
            }
            let at = index.state_at(j, n).unwrap();
            prop_assert_eq!(&at, &folded, "state at {}", n);
            let full = conclave_replay::view::RoomView::of(&folded, &room(), n, index.time_of(n));
            prop_assert_eq!(index.room_at(j, &room(), n).unwrap(), full, "room at {}", n);
        }
    }

    /// Hostile bundle bytes never panic and always yield a finding.
    #[test]
    fn hostile_bundles_are_findings_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048), cut in 0usize..4000) {
        let rep = verify::verify_bundle(&mut &bytes[..], None);
        prop_assert!(!rep.ok);
        let (dir, j, _) = opened();
        let key = verify::load_or_create_key(dir.path()).unwrap();
        let mut bundle = Vec::new();
        verify::export_bundle(j, &key, 1, false, Utc::now(), &mut bundle).unwrap();
        let cut = cut.min(bundle.len().saturating_sub(1));
        let rep = verify::verify_bundle(&mut &bundle[..cut], None);
        prop_assert!(!rep.ok);
    }
}

#[test]
fn the_report_lists_address_bans_with_whom_they_were_made_from() {
    use conclave_engine::command::Command;
    use conclave_engine::model::AddressTarget;
    use conclave_engine::service::{Engine, EngineConfig, Request};
    use conclave_engine::{Address, BanScope, Credentials, Origin, Principal, RoomName, SessionId};

    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
    let from = |remote: &str| Origin {
        gateway: "web".into(),
        protocol: "http".into(),
        remote_addr: Some(remote.into()),
    };
    let standup = RoomName::lookup("standup").unwrap();
    let alice = Address::parse("web:alice").unwrap();
    let zed = Address::parse("web:zed").unwrap();
    let run = |c: Command, actor: Actor, remote: &str| {
        engine
            .execute_blocking(Request::new(c, actor, from(remote)))
            .unwrap();
    };
    run(
        Command::CreateRoom {
            room: standup.clone(),
            parent: None,
            private: false,
            owner: Some(Principal::Address(alice.clone())),
            max_members: None,
            welcome_text: None,
            access_password_hash: None,
            server_password: None,
        },
        Actor::Admin,
        "192.0.2.1:1",
    );
    run(
        Command::Join {
            room: standup.clone(),
            session: SessionId::parse("z1").unwrap(),
            credentials: Credentials::default(),
        },
        Actor::Identity(zed.clone()),
        "192.0.2.50:4000",
    );
    run(
        Command::BanAddress {
            scope: BanScope::Room(standup.clone()),
            target: AddressTarget::Of(Principal::Address(zed.clone())),
            reason: Some("spam".into()),
            until: None,
        },
        Actor::Identity(alice.clone()),
        "192.0.2.1:1",
    );
    let index = ReplayIndex::build(engine.journal(), IndexConfig::default()).unwrap();
    let r = full_report(engine.journal(), &index);
    let row = r
        .bans
        .iter()
        .find(|b| b.subject.starts_with("address "))
        .expect("the address ban is in the report");
    assert_eq!(row.scope, "room:standup");
    assert!(row.subject.ends_with("(of web:zed)"), "{}", row.subject);
    assert_eq!(row.by, "web:alice");
    assert_eq!(row.reason.as_deref(), Some("spam"));
}

/// Every answer of `got` equals `want`'s, at every sequence number.
fn same_answers(j: &Journal, got: &ReplayIndex, want: &ReplayIndex) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        (got.head(), got.head_hash()),
        (want.head(), want.head_hash())
    );
    for n in 0..=want.head() {
        prop_assert_eq!(
            got.state_at(j, n).unwrap(),
            want.state_at(j, n).unwrap(),
            "state at {}",
            n
        );
        prop_assert_eq!(
            got.room_at(j, &room(), n).unwrap(),
            want.room_at(j, &room(), n).unwrap(),
            "room at {}",
            n
        );
        prop_assert_eq!(got.time_of(n), want.time_of(n));
        if let Some(t) = want.time_of(n) {
            prop_assert_eq!(got.seq_at(t), want.seq_at(t));
        }
    }
    for who in ["account:bob", "web:carol", "sip:bob@example.org"] {
        prop_assert_eq!(got.person_names(who), want.person_names(who));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]
    /// An index opened from stored snapshots (lazily: one loaded per query) answers as
    /// the full rebuild does at every sequence number, whatever the spacing, including
    /// records appended after it was stored (folded for their times and links only).
    #[test]
    fn an_index_opened_from_stored_snapshots_answers_as_a_rebuild(
        every in 1u64..8, one_in in 1u64..4, behind in 0u64..6,
    ) {
        let (_, j, _) = opened();
        let config = IndexConfig { snapshot_every: every, persist_one_in: one_in, ..IndexConfig::default() };
        let full = ReplayIndex::build(j, config.clone()).unwrap();
        // Stored `behind` records before the head, as a server that stopped then.
        let mut partial = ReplayIndex::new(config.clone()).unwrap();
        for n in 1..=full.head().saturating_sub(behind) {
            let record = j.get(n).unwrap().unwrap();
            partial.apply(j, &record, &conclave_replay::decode(j, &record).unwrap()).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let stored = partial.persist_job(dir.path()).unwrap().write().unwrap();
        let spacing = every * one_in;
        prop_assert_eq!(stored.snapshots as u64, (partial.head() - 1) / spacing + 1);
        let lazy = ReplayIndex::open_persisted(j, config, dir.path()).unwrap();
        prop_assert!(lazy.is_lazy());
        prop_assert!(lazy.persist_job(dir.path()).is_none());
        same_answers(j, &lazy, &full)?;
    }
}

#[test]
fn damaged_or_stale_stored_snapshots_are_ignored() {
    let (_, j, _) = opened();
    let config = IndexConfig {
        snapshot_every: 4,
        persist_one_in: 2,
        ..IndexConfig::default()
    };
    let full = ReplayIndex::build(j, config.clone()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stored = full.persist_job(dir.path()).unwrap().write().unwrap();
    assert!(stored.snapshots >= 3, "{stored:?}");
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("snapshot-"))
        .collect();
    files.sort();
    assert_eq!(files.len(), stored.snapshots);
    // A flipped byte in one snapshot, another truncated, a third replaced by another
    // snapshot's file: each is ignored for the one before it, the answers stay right.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&files[0], &bytes).unwrap();
    let len = std::fs::metadata(&files[1]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[1])
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    std::fs::copy(&files[0], &files[2]).unwrap();
    let lazy = ReplayIndex::open_persisted(j, config.clone(), dir.path()).unwrap();
    same_answers(j, &lazy, &full).unwrap();
    // Storing again rewrites what was damaged: every file loads again.
    let again = full.persist_job(dir.path()).unwrap().write().unwrap();
    assert_eq!((again.snapshots, again.written), (stored.snapshots, 3));
    assert_eq!(again.bytes, stored.bytes);

    // Another starting policy: stale, not opened.
    let mut policy = conclave_engine::Policy::default();
    policy.log_days += 1;
    let other = IndexConfig {
        policy,
        ..config.clone()
    };
    assert!(ReplayIndex::open_persisted(j, other, dir.path()).is_none());
    // Another journal (here an empty one, shorter than the stored head): not opened.
    let empty_dir = tempfile::tempdir().unwrap();
    let empty = open(&empty_dir.path().join("journal"));
    assert!(ReplayIndex::open_persisted(&empty, config.clone(), dir.path()).is_none());
    // A damaged meta: not opened; nothing at all: not opened.
    let meta = dir.path().join("index.meta");
    let mut bytes = std::fs::read(&meta).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&meta, &bytes).unwrap();
    assert!(ReplayIndex::open_persisted(j, config.clone(), dir.path()).is_none());
    conclave_replay::persist::remove(dir.path()).unwrap();
    assert!(ReplayIndex::open_persisted(j, config, dir.path()).is_none());
}

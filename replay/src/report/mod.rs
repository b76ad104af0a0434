//! Compliance reports for a period: attendance per room (join/leave, duration, per
//! protocol), moderation per moderator (with who held moderator rights at that moment),
//! bans and autobans, invitations issued/used/expired, denials by reason, retention
//! actions, and the full event log (the VROOM audit export). One pass over the period,
//! starting from the reconstructed state at its start; every date is UTC.
//!
//! The same rows answer the forensic questions: who was present at a time
//! (`attendance`), who muted/kicked/banned whom (`moderation`), why someone could not
//! join (`denials`, with the ban or autoban that stopped them), which invitations were
//! used by whom (`invitations`).

mod render;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use conclave_engine::state::Ban;
use conclave_engine::{
    evolve, Actor, AutobanKey, BanScope, DenyReason, Event, EventKind, LeaveReason, Principal,
    Role, RoleVia, RoomName, State,
};
use conclave_journal::{hex, Journal, Record};
use serde::{Deserialize, Serialize};

pub use render::{Cell, Format, Table};

use crate::error::Result;
use crate::fmt_time;
use crate::index::ReplayIndex;
use crate::timeline::{describe, personal_content};
use crate::view::{autoban_key, ban_terms, invitation_state, protocol_of, scope_name};
use crate::walk::decode;

/// Which period, optionally one room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub room: Option<String>,
}

/// The period as resolved against the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub from: String,
    pub to: String,
    pub from_seq: u64,
    pub to_seq: u64,
    pub room: Option<String>,
    /// Journal head and its hash when the report was made.
    pub journal_head: u64,
    pub journal_head_hash: String,
}

/// One session's presence in a room, clipped to the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceRow {
    pub room: String,
    /// The person as known at the end of the period (their account once linked).
    pub person: String,
    pub address: String,
    /// The identity's protocol (`sip`, `xmpp`, `web`).
    pub protocol: String,
    pub gateway: String,
    pub session: String,
    pub joined_at: String,
    /// `None` while still present at the end of the period.
    pub left_at: Option<String>,
    /// Seconds present within the period.
    pub duration_secs: i64,
    /// How it ended: `left`, `disconnected`, `peer_kick`, `ban`, `room_expire`, ...,
    /// or `present`.
    pub end: String,
    pub join_seq: Option<u64>,
    pub end_seq: Option<u64>,
}

/// Presence totals per room and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceSummary {
    pub room: String,
    pub protocol: String,
    pub sessions: u64,
    pub people: u64,
    pub total_secs: i64,
}

/// One moderation action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModerationRow {
    pub seq: u64,
    pub at: String,
    /// Room or ban scope.
    pub scope: String,
    pub moderator: String,
    /// The moderator's standing when acting: `owner`, `moderator`, `account_moderator`,
    /// `operator` (admin or a service), or their lesser role.
    pub moderator_role: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: String,
    pub gateway: Option<String>,
    pub protocol: Option<String>,
    /// Everyone holding moderator rights in the room at that moment.
    pub moderators_at_time: Vec<String>,
}

/// Actions per moderator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeratorSummary {
    pub moderator: String,
    pub action: String,
    pub count: u64,
}

/// A ban and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRow {
    /// `None` for a ban already in force when the period began.
    pub seq: Option<u64>,
    pub at: String,
    pub scope: String,
    pub subject: String,
    pub by: String,
    pub reason: Option<String>,
    pub until: Option<String>,
    pub lifted_at: Option<String>,
    pub lifted_by: Option<String>,
    /// Lifted because it ran out.
    pub expired: bool,
}

/// An autoban (Mumble) and when it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutobanRow {
    pub seq: u64,
    pub at: String,
    pub key: String,
    pub attempts: u32,
    pub until: String,
    pub lifted_at: Option<String>,
}

/// An invitation's lifecycle within the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRow {
    pub room: String,
    pub invitation: String,
    pub invitee: String,
    pub issued_by: String,
    pub issued_at: String,
    pub expires_at: Option<String>,
    pub single_use: bool,
    /// State at the end of the period.
    pub state: String,
    pub answered_by: Option<String>,
    pub answered_at: Option<String>,
    /// Who joined with it (single-use invitations, from the join it was used for).
    pub used_by: Option<String>,
    pub used_at: Option<String>,
    pub ended_at: Option<String>,
}

/// Invitation counts for the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationSummary {
    pub issued: u64,
    pub accepted: u64,
    pub declined: u64,
    pub used: u64,
    pub expired: u64,
    pub revoked: u64,
}

/// A refused join and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenialRow {
    pub seq: u64,
    pub at: String,
    pub room: String,
    pub person: String,
    pub address: String,
    pub protocol: String,
    pub reason: String,
    /// What stopped them, when the state tells more (the ban or autoban in force).
    pub detail: Option<String>,
    pub gateway: Option<String>,
    pub remote_addr: Option<String>,
}

/// A command refused for lack of rights (VROOM `api_action_denied`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionDenialRow {
    pub seq: u64,
    pub at: String,
    pub room: Option<String>,
    pub actor: Option<String>,
    pub action: String,
    pub subject: Option<String>,
    pub code: String,
}

/// A retention or erasure action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRow {
    pub seq: u64,
    pub at: String,
    pub actor: Option<String>,
    /// `retention` or `erasure`.
    pub action: String,
    pub subject: Option<String>,
    pub before: Option<String>,
    pub records: u64,
}

/// One recording file as the journal vouches for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingFileRow {
    /// Relative to `<data>/recordings/`.
    pub name: String,
    /// `audio` or `video`.
    pub kind: String,
    pub track: Option<String>,
    pub bytes: u64,
    pub duration_ms: u64,
    pub blake3: String,
}

/// A room recording that ran during the period, with its files (their hashes stay
/// listed once erased: the journal keeps them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRow {
    pub room: String,
    pub recording: String,
    pub started_at: String,
    /// `None` while it still ran at the end of the period.
    pub stopped_at: Option<String>,
    /// Who started it (`None`: the admin or a service).
    pub by: Option<String>,
    pub video: bool,
    pub files: Vec<RecordingFileRow>,
    /// `retention` or `erasure` once its files were deleted.
    pub erased: Option<String>,
}

/// One line of the event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub seq: u64,
    pub at: String,
    pub event_type: String,
    pub stream: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub summary: String,
    /// Personal content (display name, chat body), `[purged]` once removed.
    pub content: Option<String>,
    pub gateway: Option<String>,
    pub protocol: Option<String>,
    pub remote_addr: Option<String>,
    pub correlation_id: Option<String>,
}

/// A compliance report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub period: Period,
    pub attendance: Vec<AttendanceRow>,
    pub attendance_summary: Vec<AttendanceSummary>,
    pub moderation: Vec<ModerationRow>,
    pub moderation_summary: Vec<ModeratorSummary>,
    pub bans: Vec<BanRow>,
    pub autobans: Vec<AutobanRow>,
    pub invitations: Vec<InvitationRow>,
    pub invitation_summary: InvitationSummary,
    pub denials: Vec<DenialRow>,
    pub denials_by_reason: BTreeMap<String, u64>,
    pub action_denials: Vec<ActionDenialRow>,
    pub retention: Vec<RetentionRow>,
    /// Recordings that ran during the period (oldest first).
    #[serde(default)]
    pub recordings: Vec<RecordingRow>,
    pub events: Vec<EventRow>,
}

/// The recordings of `state` that ran during `q` (in its room, if it names one).
fn recording_rows(state: &State, q: &ReportQuery) -> Vec<RecordingRow> {
    let mut rows: Vec<_> = state
        .recordings
        .iter()
        .filter(|(_, r)| q.room.as_deref().is_none_or(|want| r.room.as_str() == want))
        .filter(|(_, r)| r.started_at <= q.to && r.stopped_at.is_none_or(|t| t >= q.from))
        .map(|(id, r)| RecordingRow {
            room: r.room.to_string(),
            recording: id.to_string(),
            started_at: fmt_time(r.started_at),
            stopped_at: r.stopped_at.map(fmt_time),
            by: r.by.as_ref().map(ToString::to_string),
            video: r.video,
            files: r
                .files
                .iter()
                .map(|f| RecordingFileRow {
                    name: f.name.clone(),
                    kind: f.kind.as_str().into(),
                    track: f.track.clone(),
                    bytes: f.bytes,
                    duration_ms: f.duration_ms,
                    blake3: f.blake3.clone(),
                })
                .collect(),
            erased: r.erased.map(|e| e.as_str().to_owned()),
        })
        .collect();
    rows.sort_by(|a, b| (&a.started_at, &a.recording).cmp(&(&b.started_at, &b.recording)));
    rows
}

/// A session seen joining and not yet seen leaving.
struct Open {
    principal: Principal,
    address: conclave_engine::Address,
    gateway: String,
    joined_at: DateTime<Utc>,
    seq: Option<u64>,
}

/// Events after which sessions may have gone (looked up in the state, so every way
/// `evolve` removes a session is covered without repeating its rules).
fn may_end_sessions(t: &str) -> bool {
    matches!(
        t,
        "room_leave"
            | "peer_kick"
            | "ban"
            | "room_delete"
            | "room_expire"
            | "account_disable"
            | "autoban"
            | "identity_link"
            | "room_join"
    )
}

fn present(state: &State, room: &RoomName, session: &conclave_engine::SessionId) -> bool {
    state
        .rooms
        .get(room)
        .is_some_and(|r| r.members.values().any(|m| m.sessions.contains_key(session)))
}

/// The standing of whoever acted, in `room`, in `state`.
fn standing(state: &State, room: Option<&RoomName>, actor: &Actor) -> String {
    let Actor::Identity(addr) = actor else {
        return "operator".into();
    };
    let p = state.principal_of(addr);
    let Some(room_name) = room else {
        return "none".into();
    };
    let role = state.affiliation(room_name, &p);
    if role >= Some(Role::Moderator) {
        return role.map_or("none", |r| r.as_str()).to_owned();
    }
    if state
        .rooms
        .get(room_name)
        .is_some_and(|r| state.is_account_moderator(r, &p))
    {
        return "account_moderator".into();
    }
    role.map_or("none", |r| r.as_str()).to_owned()
}

/// Everyone with moderator rights in `room` in `state`.
fn moderators(state: &State, room: Option<&RoomName>) -> Vec<String> {
    let Some(r) = room.and_then(|n| state.rooms.get(n)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = r
        .affiliations
        .iter()
        .filter(|(_, role)| **role >= Role::Moderator)
        .map(|(p, role)| format!("{p} ({})", role.as_str()))
        .collect();
    if let Some(acc) = r.account.as_ref().and_then(|a| state.accounts.get(a)) {
        out.extend(
            acc.moderators
                .iter()
                .map(|p| format!("{p} (account_moderator)")),
        );
    }
    out
}

/// The moderation action an event is, if it is one: (scope room, action name, subject, detail).
fn moderation(
    state: &State,
    e: &Event,
) -> Option<(Option<RoomName>, String, Option<Principal>, String)> {
    use EventKind as E;
    let actor_is = |p: &Principal| match &e.actor {
        Actor::Identity(a) => &state.principal_of(a) == p,
        _ => false,
    };
    let scope_room = |s: &BanScope| match s {
        BanScope::Room(r) => Some(r.clone()),
        _ => None,
    };
    Some(match &e.kind {
        E::AudioMuted {
            room,
            subject,
            by_moderator: true,
        } => (
            Some(room.clone()),
            "mute".into(),
            Some(subject.clone()),
            String::new(),
        ),
        E::AudioUnmuted { room, subject } if !actor_is(subject) => (
            Some(room.clone()),
            "unmute".into(),
            Some(subject.clone()),
            String::new(),
        ),
        E::VideoPaused {
            room,
            subject,
            by_moderator: true,
        } => (
            Some(room.clone()),
            "pause_video".into(),
            Some(subject.clone()),
            String::new(),
        ),
        E::VideoResumed { room, subject } if !actor_is(subject) => (
            Some(room.clone()),
            "resume_video".into(),
            Some(subject.clone()),
            String::new(),
        ),
        E::Kicked {
            room,
            subject,
            reason,
        } => (
            Some(room.clone()),
            "kick".into(),
            Some(subject.clone()),
            reason.clone().unwrap_or_default(),
        ),
        E::Banned {
            scope,
            subject,
            reason,
            until,
        } => (
            scope_room(scope),
            "ban".into(),
            Some(subject.clone()),
            ban_terms(scope, *until, reason.as_deref()),
        ),
        E::Unbanned {
            scope,
            subject,
            expired: false,
        } => (
            scope_room(scope),
            "unban".into(),
            Some(subject.clone()),
            scope_name(scope),
        ),
        E::RoleChanged {
            room,
            subject,
            from,
            to,
            via: via @ (RoleVia::Grant | RoleVia::Revoke),
        } => (
            Some(room.clone()),
            if matches!(via, RoleVia::Grant) {
                "grant_role"
            } else {
                "revoke_role"
            }
            .into(),
            Some(subject.clone()),
            format!(
                "{} -> {}",
                from.map_or("none", |r| r.as_str()),
                to.map_or("none", |r| r.as_str())
            ),
        ),
        E::KnockAdmitted { room, principal } => (
            Some(room.clone()),
            "admit".into(),
            Some(principal.clone()),
            String::new(),
        ),
        E::KnockRejected { room, principal } => (
            Some(room.clone()),
            "reject_knock".into(),
            Some(principal.clone()),
            String::new(),
        ),
        E::HandLowered { room, subject } if !actor_is(subject) => (
            Some(room.clone()),
            "lower_hand".into(),
            Some(subject.clone()),
            String::new(),
        ),
        _ => return None,
    })
}

/// What stopped a denied join, from the state at that moment.
fn denial_detail(state: &State, e: &Event) -> Option<String> {
    let EventKind::JoinDenied {
        room,
        principal,
        address,
        reason,
        remote,
    } = &e.kind
    else {
        return None;
    };
    let mut parts = Vec::new();
    if *reason == DenyReason::Banned {
        for (scope, ban) in state.bans_for(room, principal) {
            if ban.active_at(e.at) {
                parts.push(ban_text(&scope, ban));
            }
        }
        let keys = [
            Some(AutobanKey::Identity(address.clone())),
            remote.clone().map(AutobanKey::Remote),
        ];
        for k in keys.into_iter().flatten() {
            if let Some(until) = state.autobans.get(&k).filter(|u| **u > e.at) {
                parts.push(format!(
                    "autoban {} until {}",
                    autoban_key(&k),
                    fmt_time(*until)
                ));
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn ban_text(scope: &BanScope, ban: &Ban) -> String {
    format!(
        "banned from {} by {} at {}{}{}",
        scope_name(scope),
        ban.by,
        fmt_time(ban.at),
        ban.until
            .map(|u| format!(" until {}", fmt_time(u)))
            .unwrap_or_default(),
        ban.reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    )
}

/// The room a record is about, for the room filter.
fn record_room(record: &Record, e: &Event) -> Option<String> {
    if let Some(r) = record.stream.strip_prefix("room:") {
        return Some(r.to_owned());
    }
    match &e.kind {
        EventKind::Banned {
            scope: BanScope::Room(r),
            ..
        }
        | EventKind::Unbanned {
            scope: BanScope::Room(r),
            ..
        } => Some(r.to_string()),
        _ => None,
    }
}

/// Builds a report with one pass over the period.
pub fn build(journal: &Journal, index: &ReplayIndex, q: &ReportQuery) -> Result<Report> {
    Ok(build_with(journal, index, q, true)?.0)
}

/// A report to be streamed: every section but the event log, built with one pass over
/// the period; the event log (one row per record, the part as large as the journal) is
/// read again from the journal as it is written, so writing it holds one row at a time.
#[derive(Debug, Clone)]
pub struct ReportPlan {
    report: Report,
    query: ReportQuery,
    /// Rows the event log will have.
    events: u64,
}

/// Plans a streamed report (see [`ReportPlan`]): its period and every section but the
/// event log are known before the first byte is written.
pub fn plan(journal: &Journal, index: &ReplayIndex, q: &ReportQuery) -> Result<ReportPlan> {
    let (report, events) = build_with(journal, index, q, false)?;
    Ok(ReportPlan {
        report,
        query: q.clone(),
        events,
    })
}

impl ReportPlan {
    /// The report without its event log (its `events` are empty).
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// The event log's rows, read from the journal one at a time.
    pub(super) fn each_event(
        &self,
        journal: &Journal,
        mut f: impl FnMut(&EventRow) -> Result<()>,
    ) -> Result<()> {
        let (from_seq, to_seq) = (self.report.period.from_seq, self.report.period.to_seq);
        if from_seq > to_seq {
            return Ok(());
        }
        for record in journal.iter_range(from_seq, to_seq) {
            let record = record?;
            let event = decode(journal, &record)?;
            if in_scope(&self.query, &record, &event) {
                f(&event_row(&record, &event))?;
            }
        }
        Ok(())
    }
}

/// Whether a record belongs to a report on `q` (its room, when the report has one).
fn in_scope(q: &ReportQuery, record: &Record, event: &Event) -> bool {
    let room = record_room(record, event);
    q.room
        .as_deref()
        .is_none_or(|want| room.as_deref() == Some(want))
        || (q.room.is_some() && matches!(event.kind, EventKind::ContentPurged { .. }))
}

/// The event log's row for a record.
fn event_row(record: &Record, e: &Event) -> EventRow {
    let had_content = record.content_digest.is_some();
    let (subject, summary) = describe(e, had_content);
    EventRow {
        seq: record.seq,
        at: fmt_time(record.timestamp),
        event_type: record.event_type.clone(),
        stream: record.stream.clone(),
        actor: record.meta.actor.clone(),
        subject,
        summary,
        content: personal_content(e, had_content),
        gateway: record.meta.gateway.clone(),
        protocol: record.meta.protocol.clone(),
        remote_addr: record.meta.remote_addr.clone(),
        correlation_id: record.meta.correlation_id.clone(),
    }
}

fn build_with(
    journal: &Journal,
    index: &ReplayIndex,
    q: &ReportQuery,
    events: bool,
) -> Result<(Report, u64)> {
    let from_seq = index.first_seq_from(q.from);
    let to_seq = index.seq_at(q.to);
    let mut state = index.state_at(journal, from_seq.saturating_sub(1).min(index.head()))?;
    let room_ok = |r: Option<&str>| q.room.as_deref().is_none_or(|want| r == Some(want));
    let mut b = Builder {
        skip_events: !events,
        ..Builder::default()
    };
    // What was already in force when the period began.
    for (name, room) in &state.rooms {
        for m in room.members.iter() {
            for (sid, s) in &m.1.sessions {
                b.open.insert(
                    (name.clone(), sid.clone()),
                    Open {
                        principal: m.0.clone(),
                        address: s.address.clone(),
                        gateway: s.gateway.clone(),
                        joined_at: s.joined_at,
                        seq: None,
                    },
                );
            }
        }
        if room_ok(Some(name.as_str())) {
            for (p, ban) in &room.bans {
                b.ban_open(None, &BanScope::Room(name.clone()), p, ban);
            }
            for (remote, ab) in &room.address_bans {
                let scope = BanScope::Room(name.clone());
                b.address_ban_open(None, &scope, remote, &address_ban(ab), ab.subject.as_ref());
            }
        }
    }
    if q.room.is_none() {
        for (p, ban) in &state.server_bans {
            b.ban_open(None, &BanScope::Server, p, ban);
        }
        for (remote, ab) in &state.server_address_bans {
            let of = ab.subject.as_ref();
            b.address_ban_open(None, &BanScope::Server, remote, &address_ban(ab), of);
        }
        for (id, acc) in &state.accounts {
            for (p, ban) in &acc.bans {
                b.ban_open(None, &BanScope::Account(id.clone()), p, ban);
            }
            for (remote, ab) in &acc.address_bans {
                let scope = BanScope::Account(id.clone());
                b.address_ban_open(None, &scope, remote, &address_ban(ab), ab.subject.as_ref());
            }
        }
    }
    if from_seq <= to_seq {
        for record in journal.iter_range(from_seq, to_seq) {
            let record = record?;
            let event = decode(journal, &record)?;
            if in_scope(q, &record, &event) {
                b.event_count += 1;
                b.before(&state, &record, &event);
            }
            evolve(&mut state, &event);
            b.after(&state, &record, &event);
        }
    }
    let end = q.to.min(index.time_of(to_seq).unwrap_or(q.to)).max(q.from);
    b.close_all(&state, q.from, q.to.max(end));
    let count = b.event_count;
    let mut report = b.finish(&state, q);
    report.period = Period {
        from: fmt_time(q.from),
        to: fmt_time(q.to),
        from_seq,
        to_seq,
        room: q.room.clone(),
        journal_head: index.head(),
        journal_head_hash: hex(&index.head_hash()),
    };
    if let Some(room) = &q.room {
        report.attendance.retain(|r| &r.room == room);
        report.attendance_summary.retain(|r| &r.room == room);
    }
    Ok((report, count))
}

/// How a session ended: when, how, by which record.
type Ending = Option<(DateTime<Utc>, String, u64)>;
/// A session seen to its end (or to the end of the period).
type Closed = (RoomName, conclave_engine::SessionId, Open, Ending);

#[derive(Default)]
struct Builder {
    open: BTreeMap<(RoomName, conclave_engine::SessionId), Open>,
    closed: Vec<Closed>,
    moderation: Vec<ModerationRow>,
    bans: Vec<BanRow>,
    open_bans: HashMap<(String, String), usize>,
    autobans: Vec<AutobanRow>,
    open_autobans: HashMap<String, usize>,
    invitations: Vec<InvitationRow>,
    invitation_rows: HashMap<(String, String), usize>,
    used_in: HashMap<String, usize>,
    summary: InvitationSummary,
    denials: Vec<DenialRow>,
    action_denials: Vec<ActionDenialRow>,
    retention: Vec<RetentionRow>,
    events: Vec<EventRow>,
    /// Leave the event log out (a streamed report writes it from the journal).
    skip_events: bool,
    /// Rows of the event log, kept or not.
    event_count: u64,
}

impl Builder {
    fn ban_open(&mut self, seq: Option<u64>, scope: &BanScope, subject: &Principal, ban: &Ban) {
        let key = (scope_name(scope), subject.to_string());
        self.open_bans.insert(key.clone(), self.bans.len());
        self.bans.push(BanRow {
            seq,
            at: fmt_time(ban.at),
            scope: key.0,
            subject: key.1,
            by: ban.by.to_string(),
            reason: ban.reason.clone(),
            until: ban.until.map(fmt_time),
            lifted_at: None,
            lifted_by: None,
            expired: false,
        });
    }

    /// An address ban's row: its subject is the address as stored (a keyed hash when
    /// addresses are obfuscated), with the person it was made from.
    fn address_ban_open(
        &mut self,
        seq: Option<u64>,
        scope: &BanScope,
        remote: &str,
        ban: &Ban,
        of: Option<&Principal>,
    ) {
        let subject = match of {
            Some(p) => format!("address {remote} (of {p})"),
            None => format!("address {remote}"),
        };
        let key = (scope_name(scope), format!("address {remote}"));
        self.open_bans.insert(key.clone(), self.bans.len());
        self.bans.push(BanRow {
            seq,
            at: fmt_time(ban.at),
            scope: key.0,
            subject,
            by: ban.by.to_string(),
            reason: ban.reason.clone(),
            until: ban.until.map(fmt_time),
            lifted_at: None,
            lifted_by: None,
            expired: false,
        });
    }

    /// The invitation's row, created from the state if it was issued before the period.
    fn invitation_row(
        &mut self,
        state: &State,
        room: &RoomName,
        id: &conclave_engine::InvitationId,
    ) -> Option<usize> {
        let key = (room.to_string(), id.to_string());
        if let Some(i) = self.invitation_rows.get(&key) {
            return Some(*i);
        }
        let inv = state.rooms.get(room)?.invitations.get(id)?;
        let i = self.invitations.len();
        self.invitations.push(InvitationRow {
            room: key.0.clone(),
            invitation: key.1.clone(),
            invitee: inv.invitee.to_string(),
            issued_by: inv.by.to_string(),
            issued_at: fmt_time(inv.issued_at),
            expires_at: inv.expires_at.map(fmt_time),
            single_use: inv.single_use,
            state: invitation_state(inv.state).into(),
            answered_by: None,
            answered_at: None,
            used_by: None,
            used_at: None,
            ended_at: None,
        });
        self.invitation_rows.insert(key, i);
        Some(i)
    }

    /// Everything read from the state as it was just before the event.
    fn before(&mut self, state: &State, record: &Record, e: &Event) {
        let at = fmt_time(record.timestamp);
        if !self.skip_events {
            self.events.push(event_row(record, e));
        }
        if let Some((room, action, subject, detail)) = moderation(state, e) {
            self.moderation.push(ModerationRow {
                seq: record.seq,
                at: at.clone(),
                scope: match (&e.kind, &room) {
                    (EventKind::Banned { scope, .. } | EventKind::Unbanned { scope, .. }, _) => {
                        scope_name(scope)
                    }
                    (_, Some(r)) => format!("room:{r}"),
                    _ => String::new(),
                },
                moderator: e.actor.to_string(),
                moderator_role: standing(state, room.as_ref(), &e.actor),
                action,
                subject: subject.map(|s| s.to_string()),
                detail,
                gateway: record.meta.gateway.clone(),
                protocol: record.meta.protocol.clone(),
                moderators_at_time: moderators(state, room.as_ref()),
            });
        }
        use EventKind as E;
        match &e.kind {
            E::Banned {
                scope,
                subject,
                reason,
                until,
            } => {
                let ban = Ban {
                    reason: reason.clone(),
                    by: e.actor.clone(),
                    at: e.at,
                    until: *until,
                };
                self.ban_open(Some(record.seq), scope, subject, &ban);
            }
            E::AddressBanned {
                scope,
                remote,
                subject,
                reason,
                until,
                ..
            } => {
                let ban = Ban {
                    reason: reason.clone(),
                    by: e.actor.clone(),
                    at: e.at,
                    until: *until,
                };
                let seq = Some(record.seq);
                self.address_ban_open(seq, scope, remote, &ban, subject.as_ref());
            }
            E::AddressUnbanned {
                scope,
                remote,
                expired,
                ..
            } => {
                let key = (scope_name(scope), format!("address {remote}"));
                if let Some(i) = self.open_bans.remove(&key) {
                    if let Some(row) = self.bans.get_mut(i) {
                        row.lifted_at = Some(at.clone());
                        row.lifted_by = Some(e.actor.to_string());
                        row.expired = *expired;
                    }
                }
            }
            E::Unbanned {
                scope,
                subject,
                expired,
            } => {
                let key = (scope_name(scope), subject.to_string());
                if let Some(i) = self.open_bans.remove(&key) {
                    if let Some(row) = self.bans.get_mut(i) {
                        row.lifted_at = Some(at.clone());
                        row.lifted_by = Some(e.actor.to_string());
                        row.expired = *expired;
                    }
                }
            }
            E::AutobanApplied {
                key,
                attempts,
                until,
                ..
            } => {
                let k = autoban_key(key);
                self.open_autobans.insert(k.clone(), self.autobans.len());
                self.autobans.push(AutobanRow {
                    seq: record.seq,
                    at: at.clone(),
                    key: k,
                    attempts: *attempts,
                    until: fmt_time(*until),
                    lifted_at: None,
                });
            }
            E::AutobanLifted { key } => {
                if let Some(i) = self.open_autobans.remove(&autoban_key(key)) {
                    if let Some(row) = self.autobans.get_mut(i) {
                        row.lifted_at = Some(at.clone());
                    }
                }
            }
            E::InvitationIssued {
                room,
                invitation,
                invitee,
                expires_at,
                single_use,
                secret_digest: _,
            } => {
                self.summary.issued += 1;
                let key = (room.to_string(), invitation.to_string());
                self.invitation_rows
                    .insert(key.clone(), self.invitations.len());
                self.invitations.push(InvitationRow {
                    room: key.0,
                    invitation: key.1,
                    invitee: invitee.to_string(),
                    issued_by: e.actor.to_string(),
                    issued_at: at.clone(),
                    expires_at: expires_at.map(fmt_time),
                    single_use: *single_use,
                    state: "pending".into(),
                    answered_by: None,
                    answered_at: None,
                    used_by: None,
                    used_at: None,
                    ended_at: None,
                });
            }
            E::InvitationAnswered {
                room,
                invitation,
                accepted,
                by,
            } => {
                if *accepted {
                    self.summary.accepted += 1;
                } else {
                    self.summary.declined += 1;
                }
                if let Some(i) = self.invitation_row(state, room, invitation) {
                    let row = &mut self.invitations[i];
                    row.answered_by = Some(by.to_string());
                    row.answered_at = Some(at.clone());
                    row.state = if *accepted { "accepted" } else { "denied" }.into();
                }
            }
            E::InvitationInvalidated {
                room,
                invitation,
                reason,
            } => {
                use conclave_engine::InvalidationReason as R;
                let state_name = match reason {
                    R::Used => {
                        self.summary.used += 1;
                        "used"
                    }
                    R::Revoked => {
                        self.summary.revoked += 1;
                        "revoked"
                    }
                    R::Expired => {
                        self.summary.expired += 1;
                        "expired"
                    }
                };
                if let Some(i) = self.invitation_row(state, room, invitation) {
                    let row = &mut self.invitations[i];
                    row.state = state_name.into();
                    row.ended_at = Some(at.clone());
                    if matches!(reason, R::Used) {
                        row.used_at = Some(at.clone());
                        if let Some(c) = &record.meta.correlation_id {
                            // The join it admitted is journaled by the same command.
                            self.used_in.insert(c.clone(), i);
                        }
                    }
                }
            }
            E::Joined {
                principal, address, ..
            } => {
                if let Some(i) = record
                    .meta
                    .correlation_id
                    .as_ref()
                    .and_then(|c| self.used_in.remove(c))
                {
                    if let Some(row) = self.invitations.get_mut(i) {
                        row.used_by = Some(format!("{principal} ({address})"));
                    }
                }
            }
            E::JoinDenied {
                room,
                principal,
                address,
                reason,
                remote,
            } => self.denials.push(DenialRow {
                seq: record.seq,
                at: at.clone(),
                room: room.to_string(),
                person: principal.to_string(),
                address: address.to_string(),
                protocol: protocol_of(address).into(),
                reason: reason.as_str().into(),
                detail: denial_detail(state, e),
                gateway: record.meta.gateway.clone(),
                remote_addr: remote.clone().or_else(|| record.meta.remote_addr.clone()),
            }),
            E::ActionDenied {
                room,
                action,
                subject,
                code,
            } => self.action_denials.push(ActionDenialRow {
                seq: record.seq,
                at: at.clone(),
                room: room.as_ref().map(|r| r.to_string()),
                actor: record.meta.actor.clone(),
                action: action.clone(),
                subject: subject.as_ref().map(|s| s.to_string()),
                code: code.clone(),
            }),
            E::ContentPurged {
                subject,
                before,
                records,
                ..
            } => self.retention.push(RetentionRow {
                seq: record.seq,
                at,
                actor: record.meta.actor.clone(),
                action: if subject.is_some() {
                    "erasure"
                } else {
                    "retention"
                }
                .into(),
                subject: subject.as_ref().map(|s| s.to_string()),
                before: before.map(fmt_time),
                records: *records,
            }),
            _ => {}
        }
    }

    /// Presence bookkeeping against the state just after the event.
    fn after(&mut self, state: &State, record: &Record, e: &Event) {
        if !may_end_sessions(&record.event_type) {
            return;
        }
        let end = match &e.kind {
            EventKind::Left { reason, .. } => match reason {
                LeaveReason::Left => "left".to_owned(),
                LeaveReason::Disconnected => "disconnected".to_owned(),
                LeaveReason::LeaseExpired => "lease_expired".to_owned(),
                LeaveReason::GatewayRestarted => "gateway_restarted".to_owned(),
            },
            _ => record.event_type.clone(),
        };
        let joined = match &e.kind {
            EventKind::Joined { room, session, .. } => Some((room.clone(), session.clone())),
            _ => None,
        };
        let gone: Vec<_> = self
            .open
            .keys()
            .filter(|(r, s)| {
                !present(state, r, s) || joined.as_ref().is_some_and(|j| j.0 == *r && j.1 == *s)
            })
            .cloned()
            .collect();
        for key in gone {
            if let Some(open) = self.open.remove(&key) {
                let how = if joined.as_ref() == Some(&key) {
                    "replaced".to_owned()
                } else {
                    end.clone()
                };
                self.closed
                    .push((key.0, key.1, open, Some((e.at, how, record.seq))));
            }
        }
        if let EventKind::Joined {
            room,
            principal,
            address,
            session,
            gateway,
            ..
        } = &e.kind
        {
            if present(state, room, session) {
                self.open.insert(
                    (room.clone(), session.clone()),
                    Open {
                        principal: principal.clone(),
                        address: address.clone(),
                        gateway: gateway.clone(),
                        joined_at: e.at,
                        seq: Some(record.seq),
                    },
                );
            }
        }
    }

    fn close_all(&mut self, _state: &State, _from: DateTime<Utc>, _to: DateTime<Utc>) {
        let open = std::mem::take(&mut self.open);
        for ((room, session), o) in open {
            self.closed.push((room, session, o, None));
        }
    }

    fn finish(self, state: &State, q: &ReportQuery) -> Report {
        let mut attendance: Vec<AttendanceRow> = self
            .closed
            .into_iter()
            .map(|(room, session, o, end)| {
                let start = o.joined_at.max(q.from);
                let stop = end.as_ref().map_or(q.to, |(t, _, _)| *t).min(q.to);
                AttendanceRow {
                    room: room.to_string(),
                    person: state.canonical(&o.principal).to_string(),
                    address: o.address.to_string(),
                    protocol: protocol_of(&o.address).into(),
                    gateway: o.gateway,
                    session: session.to_string(),
                    joined_at: fmt_time(o.joined_at),
                    left_at: end.as_ref().map(|(t, _, _)| fmt_time(*t)),
                    duration_secs: (stop - start).num_seconds().max(0),
                    end: end
                        .as_ref()
                        .map_or("present".into(), |(_, how, _)| how.clone()),
                    join_seq: o.seq,
                    end_seq: end.as_ref().map(|(_, _, s)| *s),
                }
            })
            .collect();
        attendance.sort_by(|a, b| {
            (&a.room, &a.joined_at, &a.session).cmp(&(&b.room, &b.joined_at, &b.session))
        });
        let mut summary: BTreeMap<
            (String, String),
            (u64, std::collections::BTreeSet<String>, i64),
        > = BTreeMap::new();
        for r in &attendance {
            let e = summary
                .entry((r.room.clone(), r.protocol.clone()))
                .or_default();
            e.0 += 1;
            e.1.insert(r.person.clone());
            e.2 += r.duration_secs;
        }
        let mut per_mod: BTreeMap<(String, String), u64> = BTreeMap::new();
        for m in &self.moderation {
            *per_mod
                .entry((m.moderator.clone(), m.action.clone()))
                .or_default() += 1;
        }
        let mut denials_by_reason = BTreeMap::new();
        for d in &self.denials {
            *denials_by_reason.entry(d.reason.clone()).or_default() += 1;
        }
        Report {
            period: Period {
                from: String::new(),
                to: String::new(),
                from_seq: 0,
                to_seq: 0,
                room: None,
                journal_head: 0,
                journal_head_hash: String::new(),
            },
            attendance,
            attendance_summary: summary
                .into_iter()
                .map(
                    |((room, protocol), (sessions, people, total_secs))| AttendanceSummary {
                        room,
                        protocol,
                        sessions,
                        people: people.len() as u64,
                        total_secs,
                    },
                )
                .collect(),
            moderation: self.moderation,
            moderation_summary: per_mod
                .into_iter()
                .map(|((moderator, action), count)| ModeratorSummary {
                    moderator,
                    action,
                    count,
                })
                .collect(),
            bans: self.bans,
            autobans: self.autobans,
            invitations: self.invitations,
            invitation_summary: self.summary,
            denials: self.denials,
            denials_by_reason,
            action_denials: self.action_denials,
            retention: self.retention,
            recordings: recording_rows(state, q),
            events: self.events,
        }
    }
}

/// Who was present in `room` at `seq`: the room's members with their sessions.
pub fn who_was_there(
    journal: &Journal,
    index: &ReplayIndex,
    room: &RoomName,
    seq: u64,
) -> Result<Option<Vec<crate::view::MemberView>>> {
    Ok(index.room_at(journal, room, seq)?.map(|v| v.members))
}

/// An address ban as a ban row's source.
fn address_ban(ab: &conclave_engine::state::AddressBan) -> Ban {
    Ban {
        reason: ab.reason.clone(),
        by: ab.by.clone(),
        at: ab.at,
        until: ab.until,
    }
}

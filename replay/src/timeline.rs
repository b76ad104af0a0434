//! Timelines: the events of a room, a person (across every identity ever linked to their
//! account) or a moderator (what they did), in a time range, with who acted, through
//! which gateway and from which address as stored.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use conclave_engine::json::event_json;
use conclave_engine::{Event, EventKind};
use conclave_journal::{Journal, Record};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::fmt_time;
use crate::index::ReplayIndex;
use crate::view::{autoban_key, ban_terms, scope_name};
use crate::walk::decode;

/// Shown where personal content was removed by retention or erasure.
pub const PURGED: &str = "[purged]";

/// Whose timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum TimelineOf {
    /// Every event of a room's stream.
    Room(String),
    /// Every event naming a person or acted by them, all linked identities included.
    Person(String),
    /// Every event a person acted (a moderator's actions), all linked identities included.
    Moderator(String),
    /// Everything.
    All,
}

/// A timeline request. Times are inclusive; `limit` 0 means no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineQuery {
    pub of: TimelineOf,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: usize,
}

/// One line of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub seq: u64,
    pub at: String,
    pub stream: String,
    pub event_type: String,
    pub actor: Option<String>,
    /// Whom the event is about, if anyone.
    pub subject: Option<String>,
    /// One readable line.
    pub summary: String,
    pub gateway: Option<String>,
    pub protocol: Option<String>,
    /// As stored: a keyed hash when IP obfuscation is on.
    pub remote_addr: Option<String>,
    pub correlation_id: Option<String>,
    /// The event's own fields (the engine's JSON view).
    pub data: Value,
}

/// A timeline and the names it matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub of: TimelineOf,
    /// For people: every principal and identity that was matched.
    pub names: Vec<String>,
    pub from_seq: u64,
    pub to_seq: u64,
    pub entries: Vec<TimelineEntry>,
}

/// Whether a string in `names` appears anywhere in `v`.
pub(crate) fn mentions(v: &Value, names: &BTreeSet<String>) -> bool {
    match v {
        Value::String(s) => names.contains(s),
        Value::Array(a) => a.iter().any(|x| mentions(x, names)),
        Value::Object(o) => o.values().any(|x| mentions(x, names)),
        _ => false,
    }
}

/// Personal content as shown: the text, `[purged]` if the record had content that is
/// gone, `(none)` if it never had any.
fn opt(s: &Option<String>, had_content: bool) -> &str {
    match s {
        Some(v) => v,
        None if had_content => PURGED,
        None => "(none)",
    }
}

/// The personal content an event carries, as shown (see [`describe`]).
pub fn personal_content(e: &Event, had_content: bool) -> Option<String> {
    match &e.kind {
        EventKind::AccountCreated { display_name, .. }
        | EventKind::DisplayNameChanged { display_name, .. } => {
            Some(opt(display_name, had_content).to_owned())
        }
        EventKind::MessagePosted { body, .. } => Some(opt(body, had_content).to_owned()),
        _ => None,
    }
}

/// Whom an event is about, and a one-line description of it. `had_content` says whether
/// the record carried personal content (so that a missing text reads `[purged]`).
pub fn describe(e: &Event, had_content: bool) -> (Option<String>, String) {
    use EventKind as E;
    let opt = |s: &Option<String>| opt(s, had_content).to_owned();
    let who = |p: &dyn std::fmt::Display| Some(p.to_string());
    match &e.kind {
        E::AccountCreated {
            account,
            display_name,
        } => (
            Some(format!("account:{account}")),
            format!("account {account} created (name: {})", opt(display_name)),
        ),
        E::IdentityLinked { account, address } => (
            who(address),
            format!("{address} linked to account {account}"),
        ),
        E::IdentityUnlinked { account, address } => (
            who(address),
            format!("{address} unlinked from account {account}"),
        ),
        // The HA1 values are never shown (they are password-equivalent).
        E::SipCredentialSet {
            account,
            address,
            realm,
            ..
        } => (
            who(address),
            format!("SIP credentials of {address} ({account}) set for realm {realm}"),
        ),
        E::SipCredentialCleared { account, address } => (
            who(address),
            format!("SIP credentials of {address} ({account}) cleared"),
        ),
        E::DisplayNameChanged {
            account,
            display_name,
        } => (
            Some(format!("account:{account}")),
            format!("display name of {account} set to {}", opt(display_name)),
        ),
        E::AccountEnabled { account } => (
            Some(format!("account:{account}")),
            format!("account {account} enabled"),
        ),
        E::AccountDisabled { account } => (
            Some(format!("account:{account}")),
            format!("account {account} disabled"),
        ),
        E::ContactAllowed { account, contact } => (
            who(contact),
            format!("{contact} allowed to reach {account}"),
        ),
        E::ContactDisallowed { account, contact } => (
            who(contact),
            format!("{contact} no longer allowed to reach {account}"),
        ),
        E::ContactsOpened { account } => (None, format!("{account} reachable by anyone")),
        E::ModeratorAdded { account, moderator } => (
            who(moderator),
            format!("{moderator} made moderator of {account}'s conferences"),
        ),
        E::ModeratorRemoved { account, moderator } => (
            who(moderator),
            format!("{moderator} no longer moderator of {account}'s conferences"),
        ),
        E::RendezvousChanged { account, room } => (
            None,
            match room {
                Some(r) => format!("{account} rendezvous in room {r}"),
                None => format!("{account} left rendezvous mode"),
            },
        ),
        E::RoomCreated { room, owner, .. } => {
            (who(owner), format!("room {room} created, owner {owner}"))
        }
        E::RoomModified { room, change } => (None, format!("room {room} changed: {change:?}")),
        // The subject is quoted (escaped), so a multi-line one stays on one line.
        E::SubjectChanged {
            room, subject, by, ..
        } => (
            by.as_ref().map(ToString::to_string),
            match subject {
                Some(s) => format!("subject of {room} set to {s:?}"),
                None => format!("subject of {room} cleared"),
            },
        ),
        E::RoomReserved { room, .. } => (None, format!("room {room} reserved")),
        E::RoomUnreserved { room } => (None, format!("room {room} unreserved")),
        E::RoomDeleted { room, reason } => (None, format!("room {room} deleted ({reason:?})")),
        E::RoomExpired {
            room, idle_secs, ..
        } => (
            None,
            format!("room {room} expired after {idle_secs} s idle"),
        ),
        E::Joined {
            room,
            principal,
            address,
            session,
            gateway,
            role,
            ..
        } => (
            who(principal),
            format!(
                "{principal} joined {room} as {} with {address} (session {session}, via {gateway})",
                role.as_str()
            ),
        ),
        E::SessionRenewed {
            room,
            principal,
            session,
            until,
        } => (
            who(principal),
            format!(
                "{principal} kept session {session} in {room} alive until {}",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ),
        E::Left {
            room,
            principal,
            session,
            reason,
        } => (
            who(principal),
            format!("{principal} left {room} (session {session}, {reason:?})"),
        ),
        E::JoinDenied {
            room,
            principal,
            address,
            reason,
            ..
        } => (
            who(principal),
            format!(
                "{principal} ({address}) could not join {room}: {}",
                reason.as_str()
            ),
        ),
        E::RoleChanged {
            room,
            subject,
            from,
            to,
            via,
        } => (
            who(subject),
            format!(
                "{subject} in {room}: {} -> {} ({via:?})",
                from.map_or("none", |r| r.as_str()),
                to.map_or("none", |r| r.as_str())
            ),
        ),
        E::InvitationIssued {
            room,
            invitation,
            invitee,
            ..
        } => (
            who(invitee),
            format!("{invitee} invited to {room} (invitation {invitation})"),
        ),
        E::InvitationAnswered {
            room,
            invitation,
            accepted,
            by,
        } => (
            who(by),
            format!(
                "{by} {} invitation {invitation} to {room}",
                if *accepted { "accepted" } else { "declined" }
            ),
        ),
        E::InvitationInvalidated {
            room,
            invitation,
            reason,
        } => (
            None,
            format!("invitation {invitation} to {room} no longer valid ({reason:?})"),
        ),
        E::AudioMuted {
            room,
            subject,
            by_moderator,
        } => (
            who(subject),
            format!(
                "{subject} muted in {room}{}",
                if *by_moderator { " by a moderator" } else { "" }
            ),
        ),
        E::AudioUnmuted { room, subject } => (who(subject), format!("{subject} unmuted in {room}")),
        E::VideoPaused {
            room,
            subject,
            by_moderator,
        } => (
            who(subject),
            format!(
                "{subject} video paused in {room}{}",
                if *by_moderator { " by a moderator" } else { "" }
            ),
        ),
        E::VideoResumed { room, subject } => {
            (who(subject), format!("{subject} video resumed in {room}"))
        }
        E::Kicked {
            room,
            subject,
            reason,
        } => (
            who(subject),
            format!(
                "{subject} kicked from {room}{}",
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        ),
        E::Banned {
            scope,
            subject,
            reason,
            until,
        } => (
            who(subject),
            format!(
                "{subject} banned from {}",
                ban_terms(scope, *until, reason.as_deref())
            ),
        ),
        E::Unbanned {
            scope,
            subject,
            expired,
        } => (
            who(subject),
            format!(
                "{subject} unbanned from {}{}",
                scope_name(scope),
                if *expired { " (expired)" } else { "" }
            ),
        ),
        E::AddressBanned {
            scope,
            id,
            remote,
            subject,
            reason,
            until,
        } => (
            subject.as_ref().map(|p| p.to_string()),
            format!(
                "address {remote} (ban {id}{}) banned from {}",
                subject
                    .as_ref()
                    .map(|p| format!(", made from {p}"))
                    .unwrap_or_default(),
                ban_terms(scope, *until, reason.as_deref())
            ),
        ),
        E::AddressUnbanned {
            scope,
            id,
            remote,
            expired,
        } => (
            None,
            format!(
                "address {remote} (ban {id}) unbanned from {}{}",
                scope_name(scope),
                if *expired { " (expired)" } else { "" }
            ),
        ),
        E::Knocked {
            room, principal, ..
        } => (who(principal), format!("{principal} knocked at {room}")),
        E::KnockAdmitted { room, principal } => {
            (who(principal), format!("{principal} admitted to {room}"))
        }
        E::KnockRejected { room, principal } => (
            who(principal),
            format!("{principal} turned away from {room}"),
        ),
        E::HandRaised { room, subject } => {
            (who(subject), format!("{subject} raised a hand in {room}"))
        }
        E::HandLowered { room, subject } => {
            (who(subject), format!("{subject}'s hand lowered in {room}"))
        }
        E::ActionDenied {
            room,
            action,
            subject,
            code,
        } => (
            subject.as_ref().map(|s| s.to_string()),
            format!(
                "{action}{} refused: {code}",
                room.as_ref()
                    .map(|r| format!(" in {r}"))
                    .unwrap_or_default()
            ),
        ),
        E::AutobanApplied {
            key,
            attempts,
            until,
            ends_sessions,
        } => (
            Some(autoban_key(key)),
            format!(
                "{} autobanned after {attempts} failures until {}{}",
                autoban_key(key),
                fmt_time(*until),
                if *ends_sessions {
                    ", ending its live sessions"
                } else {
                    ""
                }
            ),
        ),
        E::AutobanLifted { key } => (
            Some(autoban_key(key)),
            format!("{} autoban lifted", autoban_key(key)),
        ),
        E::MessagePosted {
            room, from, body, ..
        } => (who(from), format!("{from} in {room}: {}", opt(body))),
        E::PolicyChanged { change } => (None, format!("server policy: {}", policy_change(change))),
        E::ContentPurged {
            subject,
            before,
            records,
            ..
        } => (
            subject.as_ref().map(|s| s.to_string()),
            match (subject, before) {
                (Some(s), _) => format!("personal content of {s} erased ({records} records)"),
                (None, Some(b)) => format!(
                    "retention: personal content before {} purged ({records} records)",
                    fmt_time(*b)
                ),
                (None, None) => format!("personal content purged ({records} records)"),
            },
        ),
        E::RecordingStarted {
            room,
            recording,
            video,
            by,
        } => (
            by.as_ref().map(ToString::to_string),
            format!(
                "recording {recording} of {room} started ({})",
                if *video { "audio and video" } else { "audio" }
            ),
        ),
        E::RecordingStopped { room, recording } => {
            (None, format!("recording {recording} of {room} stopped"))
        }
        E::RecordingFileClosed {
            room,
            recording,
            file,
        } => (
            None,
            format!(
                "recording {recording} of {room}: file {} closed ({} bytes, {} ms, blake3 {})",
                file.name, file.bytes, file.duration_ms, file.blake3
            ),
        ),
        E::RecordingErased {
            room,
            recording,
            names,
            action,
        } => (
            None,
            format!(
                "recording {recording} of {room} erased ({}; {} files)",
                action.as_str(),
                names.len()
            ),
        ),
    }
}

/// A policy change without secrets.
fn policy_change(c: &conclave_engine::PolicyChange) -> String {
    use conclave_engine::PolicyChange as P;
    match c {
        P::ServerPassword(h) => format!(
            "server password {}",
            if h.is_some() { "set" } else { "cleared" }
        ),
        P::LogDays(d) => format!("log days {d}"),
        P::ObfuscateIps(b) => format!("obfuscate IPs {b}"),
        P::WelcomeText(_) => "welcome text changed".into(),
    }
}

/// The timeline line of a record.
pub fn entry(record: &Record, event: &Event) -> TimelineEntry {
    let (subject, summary) = describe(event, record.content_digest.is_some());
    let mut json = event_json(event);
    TimelineEntry {
        seq: record.seq,
        at: fmt_time(record.timestamp),
        stream: record.stream.clone(),
        event_type: record.event_type.clone(),
        actor: record.meta.actor.clone(),
        subject,
        summary,
        gateway: record.meta.gateway.clone(),
        protocol: record.meta.protocol.clone(),
        remote_addr: record.meta.remote_addr.clone(),
        correlation_id: record.meta.correlation_id.clone(),
        data: json.get_mut("data").map(Value::take).unwrap_or(Value::Null),
    }
}

/// Runs a timeline query.
pub fn timeline(journal: &Journal, index: &ReplayIndex, q: &TimelineQuery) -> Result<Timeline> {
    let from_seq = q.from.map_or(1, |t| index.first_seq_from(t));
    let to_seq = q.to.map_or(index.head(), |t| index.seq_at(t));
    let names = match &q.of {
        TimelineOf::Person(p) | TimelineOf::Moderator(p) => index.person_names(p),
        _ => BTreeSet::new(),
    };
    let own_stream = match &q.of {
        TimelineOf::Room(r) => Some(format!("room:{r}")),
        _ => None,
    };
    let mut entries = Vec::new();
    if from_seq <= to_seq {
        for record in journal.iter_range(from_seq, to_seq) {
            let record = record?;
            if own_stream.as_ref().is_some_and(|s| *s != record.stream) {
                continue;
            }
            let by_them = record
                .meta
                .actor
                .as_ref()
                .is_some_and(|a| names.contains(a));
            if matches!(q.of, TimelineOf::Moderator(_)) && !by_them {
                continue;
            }
            let event = decode(journal, &record)?;
            let line = entry(&record, &event);
            let about_them = names.contains(&record.stream) || mentions(&line.data, &names);
            if matches!(q.of, TimelineOf::Person(_)) && !by_them && !about_them {
                continue;
            }
            entries.push(line);
            if q.limit > 0 && entries.len() >= q.limit {
                break;
            }
        }
    }
    Ok(Timeline {
        of: q.of.clone(),
        names: names.into_iter().collect(),
        from_seq,
        to_seq,
        entries,
    })
}

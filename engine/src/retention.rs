//! What retention and erasure select, as pure functions of events (no I/O).
//!
//! The engine service ([`crate::service::purge`]) and replay's offline path both scan
//! the journal with these rules, so a purge means the same whichever way it runs.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Event, EventKind};
use crate::ids::{Principal, RecordingId, RoomName};
use crate::state::State;

/// Which personal content a purge removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeScope {
    /// Content of records stamped strictly before this time (Mumble log-days).
    Before(DateTime<Utc>),
    /// Content owned by one person under any identity ever linked to their account
    /// (GDPR erasure).
    Person(Principal),
}

impl PurgeScope {
    /// The scope of log-days retention at `now`: `0` keeps everything (no scope), `-1`
    /// keeps nothing, `n` keeps the last `n` days. Out-of-range values keep everything
    /// rather than overflow.
    pub fn log_days(days: i32, now: DateTime<Utc>) -> Option<PurgeScope> {
        match days {
            0 => None,
            d if d < 0 => Some(PurgeScope::Before(now)),
            d => now
                .checked_sub_signed(Duration::days(i64::from(d)))
                .map(PurgeScope::Before),
        }
    }

    /// `retention` or `erasure`, as reports name the action.
    pub fn action(&self) -> &'static str {
        match self {
            PurgeScope::Before(_) => "retention",
            PurgeScope::Person(_) => "erasure",
        }
    }

    /// The `(subject, before)` pair of the journaled `content_purge` fact.
    pub fn fields(&self) -> (Option<Principal>, Option<DateTime<Utc>>) {
        match self {
            PurgeScope::Before(t) => (None, Some(*t)),
            PurgeScope::Person(p) => (Some(p.clone()), None),
        }
    }
}

/// Who a record's personal content belongs to, from its payload alone (principals as
/// strings: `account:<id>` or an address).
pub fn content_owners(event: &Event) -> Vec<String> {
    match &event.kind {
        EventKind::AccountCreated { account, .. }
        | EventKind::DisplayNameChanged { account, .. } => {
            vec![format!("account:{account}")]
        }
        EventKind::MessagePosted { from, address, .. } => {
            vec![from.to_string(), address.to_string()]
        }
        _ => Vec::new(),
    }
}

/// The `(account, identity)` link an event makes, if any. Links are never forgotten
/// (an unlink does not remove them): a person's past identities stay theirs.
pub fn link_of(event: &Event) -> Option<(String, String)> {
    match &event.kind {
        EventKind::IdentityLinked { account, address } => {
            Some((format!("account:{account}"), address.to_string()))
        }
        _ => None,
    }
}

/// Everything that names one person: `who` itself, the account(s) any of its
/// identities were ever linked to, and every identity ever linked to those accounts.
pub fn person_names(links: &BTreeSet<(String, String)>, who: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::from([who.to_owned()]);
    let accounts: BTreeSet<&String> = links
        .iter()
        .filter(|(acc, addr)| acc == who || addr == who)
        .map(|(acc, _)| acc)
        .collect();
    for (acc, addr) in links {
        if accounts.contains(acc) {
            names.insert(acc.clone());
            names.insert(addr.clone());
        }
    }
    names
}

/// A recording whose files a purge deletes (and journals as `recording_erased`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingToErase {
    /// The room it recorded.
    pub room: RoomName,
    /// The recording.
    pub recording: RecordingId,
    /// Its files, relative to `<data>/recordings/`.
    pub names: Vec<String>,
}

/// The recordings a purge erases; recordings are content. Retention takes those that
/// stopped strictly before the cut-off. The erasure of a person takes those the person
/// took part in: present in the room (under the principal, or an identity, the state
/// links to them now or linked when they were present) at any moment while it ran.
/// A recording still running, or already erased, is never taken (stop it first).
pub fn recordings_to_erase(state: &State, scope: &PurgeScope) -> Vec<RecordingToErase> {
    let names: BTreeSet<Principal> = match scope {
        PurgeScope::Person(p) => person_principals(state, p),
        PurgeScope::Before(_) => BTreeSet::new(),
    };
    let mut out: Vec<_> = state
        .recordings
        .iter()
        .filter(|(_, r)| r.erased.is_none())
        .filter(|(_, r)| match (scope, r.stopped_at) {
            (_, None) => false,
            (PurgeScope::Before(t), Some(stopped)) => stopped < *t,
            (PurgeScope::Person(_), Some(_)) => !r.participants.is_disjoint(&names),
        })
        .map(|(id, r)| {
            (
                r.started_at,
                RecordingToErase {
                    room: r.room.clone(),
                    recording: id.clone(),
                    names: r.files.iter().map(|f| f.name.clone()).collect(),
                },
            )
        })
        .collect();
    out.sort_by(|a, b| (a.0, &a.1.recording).cmp(&(b.0, &b.1.recording)));
    out.into_iter().map(|(_, r)| r).collect()
}

/// Every principal that names the person `p` in the state: `p`, its account (if the
/// identity is linked) and every identity linked to that account.
fn person_principals(state: &State, p: &Principal) -> BTreeSet<Principal> {
    let mut out = BTreeSet::from([p.clone()]);
    let canonical = state.canonical(p);
    out.insert(canonical.clone());
    if let Principal::Account(a) = &canonical {
        if let Some(acc) = state.accounts.get(a) {
            out.extend(acc.identities.iter().cloned().map(Principal::Address));
        }
    }
    out
}

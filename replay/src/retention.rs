//! Retention (Mumble log-days) and erasure of one person's personal content (GDPR).
//!
//! Personal content (display names, chat bodies) lives in the journal's side store under
//! a salted digest that the chain covers, so purging it leaves every record and hash in
//! place: the chain still verifies, and readers show `[purged]`. Each action is journaled
//! as a `content_purge` event on the `server` stream (who, when, the cut-off or the
//! person, how many records) *before* the content is removed, so no purge goes unrecorded;
//! rerunning an interrupted action finishes it (purging is idempotent).
//!
//! These write to the journal, so they need the server stopped (or, later, go through
//! the engine's API); they never run on a copy.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use conclave_engine::codec;
use conclave_engine::{Actor, Event, EventKind, Principal};
use conclave_journal::{AppendRequest, ExpectedVersion, Hash, Journal, Metadata, NewRecord};
use serde::{Deserialize, Serialize};

use crate::error::{ReplayError, Result};
use crate::fmt_time;
use crate::index::ReplayIndex;
use crate::verify::{verify_chain, ChainCheck};

/// What a retention or erasure run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionOutcome {
    /// `retention` or `erasure`.
    pub action: String,
    pub subject: Option<String>,
    pub before: Option<String>,
    /// Records whose content was removed now.
    pub records_purged: u64,
    /// The `content_purge` record journaling the action (none when nothing matched).
    pub journaled_seq: Option<u64>,
    /// The chain walked after the purge.
    pub chain: ChainCheck,
}

/// Who a record's personal content belongs to, from its payload alone.
fn owners(event: &Event) -> Vec<String> {
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

/// Records with content still present, selected by `pick(record time, owners)`.
fn select(
    journal: &Journal,
    mut pick: impl FnMut(DateTime<Utc>, &[String]) -> bool,
) -> Result<Vec<Hash>> {
    let mut out = Vec::new();
    for record in journal.iter_from(1) {
        let record = record?;
        let Some(digest) = record.content_digest else {
            continue;
        };
        let event = codec::decode(
            &record.event_type,
            record.schema_version,
            &record.payload,
            None,
        )
        .map_err(|e| ReplayError::Decode {
            seq: record.seq,
            reason: e.to_string(),
        })?;
        if !pick(record.timestamp, &owners(&event)) {
            continue;
        }
        if matches!(
            journal.content(&digest)?,
            conclave_journal::Content::Present(_)
        ) {
            out.push(digest);
        }
    }
    Ok(out)
}

fn journal_action(
    journal: &Journal,
    actor: &Actor,
    now: DateTime<Utc>,
    kind: EventKind,
) -> Result<u64> {
    // Journal time never goes backwards.
    let last = journal.get(journal.head())?.map(|r| r.timestamp);
    let at = last.map_or(now, |l| l.max(now));
    let event = Event {
        at,
        actor: actor.clone(),
        kind,
    };
    let enc = codec::encode(&event).map_err(|e| ReplayError::Render(e.to_string()))?;
    let record = NewRecord {
        stream: event.stream().to_string(),
        event_type: enc.event_type.to_owned(),
        schema_version: enc.schema_version,
        timestamp: at,
        payload: enc.payload,
        content: None,
        meta: Metadata {
            actor: Some(actor.to_string()),
            gateway: Some("cli".into()),
            protocol: Some("cli".into()),
            remote_addr: None,
            correlation_id: None,
            causation_id: None,
        },
    };
    let appended = journal.append_blocking(AppendRequest::to_stream(
        record.stream.clone(),
        ExpectedVersion::Any,
        vec![record],
    ))?;
    Ok(appended.last_seq())
}

fn purge_all(journal: &Journal, digests: &[Hash]) -> Result<u64> {
    let mut n = 0;
    for d in digests {
        if journal.purge_content(d)? {
            n += 1;
        }
    }
    Ok(n)
}

/// Purges content older than `log_days` days before `now` (0 keeps everything, -1 keeps
/// nothing), as Mumble's `log-days`.
pub fn apply_log_days(
    journal: &Journal,
    log_days: i32,
    now: DateTime<Utc>,
    actor: &Actor,
) -> Result<RetentionOutcome> {
    let before = match log_days {
        0 => None,
        d if d < 0 => Some(now),
        d => Some(now - Duration::days(i64::from(d))),
    };
    let digests = match before {
        None => Vec::new(),
        Some(b) => select(journal, |t, _| t < b)?,
    };
    let journaled_seq = if digests.is_empty() {
        None
    } else {
        Some(journal_action(
            journal,
            actor,
            now,
            EventKind::ContentPurged {
                subject: None,
                before,
                records: digests.len() as u64,
                up_to_seq: journal.head(),
            },
        )?)
    };
    let records_purged = purge_all(journal, &digests)?;
    Ok(RetentionOutcome {
        action: "retention".into(),
        subject: None,
        before: before.map(fmt_time),
        records_purged,
        journaled_seq,
        chain: verify_chain(journal)?,
    })
}

/// Erases one person's personal content: their display names and their chat messages,
/// under every identity ever linked to their account.
pub fn erase_person(
    journal: &Journal,
    index: &ReplayIndex,
    who: &str,
    now: DateTime<Utc>,
    actor: &Actor,
) -> Result<RetentionOutcome> {
    let subject = Principal::parse(who).map_err(ReplayError::InvalidArgument)?;
    let names: BTreeSet<String> = index.person_names(who);
    let digests = select(journal, |_, owners| {
        owners.iter().any(|o| names.contains(o))
    })?;
    let journaled_seq = if digests.is_empty() {
        None
    } else {
        Some(journal_action(
            journal,
            actor,
            now,
            EventKind::ContentPurged {
                subject: Some(subject),
                before: None,
                records: digests.len() as u64,
                up_to_seq: journal.head(),
            },
        )?)
    };
    let records_purged = purge_all(journal, &digests)?;
    Ok(RetentionOutcome {
        action: "erasure".into(),
        subject: Some(who.to_owned()),
        before: None,
        records_purged,
        journaled_seq,
        chain: verify_chain(journal)?,
    })
}

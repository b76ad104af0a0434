//! Retention (Mumble log-days) and erasure of one person's personal content (GDPR).
//!
//! Personal content (display names, chat bodies) lives in the journal's side store under
//! a salted digest that the chain covers, so purging it leaves every record and hash in
//! place: the chain still verifies, and readers show `[purged]`. Each action is journaled
//! as a `content_purge` event on the `server` stream (who, when, the cut-off or the
//! person, how many records) *before* the content is removed, so no purge goes unrecorded;
//! rerunning an interrupted action finishes it (purging is idempotent).
//!
//! This path appends to the journal directly, so it is for a stopped server only
//! (`offline::open_write` refuses a locked journal). A running server purges through its
//! engine (`Engine::purge_content`, served as `POST /replay/retention` and
//! `POST /replay/erasure`), because the engine chains its appends on the journal head and
//! no other writer may interleave. Both paths select records with the engine's
//! [`select_content`], so they purge the same things.

use chrono::{DateTime, Utc};
use conclave_engine::codec;
use std::path::Path;

use conclave_engine::retention::{recordings_to_erase, RecordingToErase};
use conclave_engine::service::purge::{
    purge_selected, recordings_dir, remove_recording_files, select_content, Selection,
};
use conclave_engine::service::EngineError;
use conclave_engine::{
    evolve, Actor, Event, EventKind, Principal, PurgeScope, RecordingErasure, State,
};
use conclave_journal::{AppendRequest, ExpectedVersion, Journal, Metadata, NewRecord};
use serde::{Deserialize, Serialize};

use crate::error::{ReplayError, Result};
use crate::fmt_time;
use crate::verify::{verify_chain, ChainCheck};
use crate::walk::decode_for_state;

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
    /// Recordings whose files were erased (see [`erase_recordings`]), by id.
    #[serde(default)]
    pub recordings_erased: Vec<String>,
}

impl From<EngineError> for ReplayError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Journal(j) => ReplayError::Journal(j),
            EngineError::Codec { seq, reason } => ReplayError::Decode { seq, reason },
            other => ReplayError::Render(other.to_string()),
        }
    }
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
            authorized_by: None,
        },
    };
    let appended = journal.append_blocking(AppendRequest::to_stream(
        record.stream.clone(),
        ExpectedVersion::Any,
        vec![record],
    ))?;
    Ok(appended.last_seq())
}

/// Selects, journals (first), then purges; the shared tail of both actions.
fn run(
    journal: &Journal,
    scope: Option<PurgeScope>,
    now: DateTime<Utc>,
    actor: &Actor,
) -> Result<(Option<u64>, u64)> {
    let Some(scope) = scope else {
        return Ok((None, 0));
    };
    let Selection { digests, up_to_seq } = select_content(journal, &scope)?;
    if digests.is_empty() {
        return Ok((None, 0));
    }
    let (subject, before) = scope.fields();
    let seq = journal_action(
        journal,
        actor,
        now,
        EventKind::ContentPurged {
            subject,
            before,
            records: digests.len() as u64,
            up_to_seq,
        },
    )?;
    Ok((Some(seq), purge_selected(journal, &digests)?))
}

/// Purges content older than `log_days` days before `now` (0 keeps everything, -1 keeps
/// nothing), as Mumble's `log-days`.
pub fn apply_log_days(
    journal: &Journal,
    log_days: i32,
    now: DateTime<Utc>,
    actor: &Actor,
) -> Result<RetentionOutcome> {
    let scope = PurgeScope::log_days(log_days, now);
    let before = match &scope {
        Some(PurgeScope::Before(t)) => Some(fmt_time(*t)),
        _ => None,
    };
    let (journaled_seq, records_purged) = run(journal, scope, now, actor)?;
    Ok(RetentionOutcome {
        action: "retention".into(),
        subject: None,
        before,
        records_purged,
        journaled_seq,
        chain: verify_chain(journal)?,
        recordings_erased: Vec::new(),
    })
}

/// Erases one person's personal content: their display names and their chat messages,
/// under every identity ever linked to their account.
pub fn erase_person(
    journal: &Journal,
    who: &str,
    now: DateTime<Utc>,
    actor: &Actor,
) -> Result<RetentionOutcome> {
    let subject = Principal::parse(who).map_err(ReplayError::InvalidArgument)?;
    let (journaled_seq, records_purged) =
        run(journal, Some(PurgeScope::Person(subject)), now, actor)?;
    Ok(RetentionOutcome {
        action: "erasure".into(),
        subject: Some(who.to_owned()),
        before: None,
        records_purged,
        journaled_seq,
        chain: verify_chain(journal)?,
        recordings_erased: Vec::new(),
    })
}

/// Erases the recordings `scope` selects (recordings are content: see
/// [`recordings_to_erase`]): journals each `recording_erased` first, then deletes its
/// files under `<data_dir>/recordings/`. The state is folded from the whole journal.
/// Offline (server stopped), like the content purge; returns the recordings erased.
pub fn erase_recordings(
    journal: &Journal,
    data_dir: &Path,
    scope: Option<&PurgeScope>,
    now: DateTime<Utc>,
    actor: &Actor,
) -> Result<Vec<RecordingToErase>> {
    let Some(scope) = scope else {
        return Ok(Vec::new());
    };
    let mut state = State::default();
    for record in journal.iter_from(1) {
        let record = record?;
        evolve(&mut state, &decode_for_state(journal, &record)?);
    }
    let action = match scope {
        PurgeScope::Before(_) => RecordingErasure::Retention,
        PurgeScope::Person(_) => RecordingErasure::Erasure,
    };
    let targets = recordings_to_erase(&state, scope);
    for target in &targets {
        journal_action(
            journal,
            actor,
            now,
            EventKind::RecordingErased {
                room: target.room.clone(),
                recording: target.recording.clone(),
                names: target.names.clone(),
                action,
            },
        )?;
        remove_recording_files(data_dir, &target.names)
            .map_err(|e| ReplayError::io(&recordings_dir(data_dir), e))?;
    }
    Ok(targets)
}

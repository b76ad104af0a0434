//! Retention and erasure on a running server, through the decider.
//!
//! The engine pipelines appends chained on the journal head, so nothing else may append
//! while it runs; a purge therefore journals its `content_purge` fact as a command
//! ([`Command::RecordContentPurge`]) and only then removes the content from the side
//! store. Removing content writes no record, so it does not race the decider; rerunning
//! an interrupted purge finishes it (only content still present is selected).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use conclave_journal::{Content, Hash, Journal};
use serde::Serialize;

use crate::codec;
use crate::command::Command;
use crate::context::{Actor, Origin};
use crate::recording::{check_name, RecordingErasure};
use crate::retention::{
    content_owners, link_of, person_names, recordings_to_erase, PurgeScope, RecordingToErase,
};

use super::{Engine, EngineError, Request};

/// The records a purge removes the content of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Digests of content still present, in journal order.
    pub digests: Vec<Hash>,
    /// The last record scanned: later records are not covered.
    pub up_to_seq: u64,
}

/// One content-bearing record seen by the scan.
struct Candidate {
    at: DateTime<Utc>,
    digest: Hash,
    owners: Vec<String>,
}

/// Scans the journal for records whose personal content matches `scope` and is still
/// present. A person matches under every identity ever linked to their account, links
/// made after the content included. Blocking: run it off async threads.
///
/// Only records with content or identity links are decoded; the rest are skipped by
/// their metadata.
pub fn select_content(journal: &Journal, scope: &PurgeScope) -> Result<Selection, EngineError> {
    let mut candidates = Vec::new();
    let mut links = BTreeSet::new();
    let mut up_to_seq = 0;
    for record in journal.iter_from(1) {
        let record = record?;
        up_to_seq = record.seq;
        let linking = record.event_type == "identity_link";
        if record.content_digest.is_none() && !linking {
            continue;
        }
        let event = codec::decode(
            &record.event_type,
            record.schema_version,
            &record.payload,
            None,
        )
        .map_err(|e| EngineError::Codec {
            seq: record.seq,
            reason: e.to_string(),
        })?;
        if let Some(link) = link_of(&event) {
            links.insert(link);
        }
        if let Some(digest) = record.content_digest {
            candidates.push(Candidate {
                at: record.timestamp,
                digest,
                owners: content_owners(&event),
            });
        }
    }
    let names = match scope {
        PurgeScope::Person(p) => person_names(&links, &p.to_string()),
        PurgeScope::Before(_) => BTreeSet::new(),
    };
    let mut digests = Vec::new();
    for c in candidates {
        let matches = match scope {
            PurgeScope::Before(t) => c.at < *t,
            PurgeScope::Person(_) => c.owners.iter().any(|o| names.contains(o)),
        };
        if matches && matches!(journal.content(&c.digest)?, Content::Present(_)) {
            digests.push(c.digest);
        }
    }
    Ok(Selection { digests, up_to_seq })
}

/// Removes the selected content; returns how many were still present.
pub fn purge_selected(journal: &Journal, digests: &[Hash]) -> Result<u64, EngineError> {
    let mut n = 0;
    for d in digests {
        if journal.purge_content(d)? {
            n += 1;
        }
    }
    Ok(n)
}

/// The directory recording files live in: names in the journal are relative to it.
pub fn recordings_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("recordings")
}

/// Deletes a recording's files under `<data_dir>/recordings/` (a file already gone
/// counts as deleted; a name that fails [`check_name`] is skipped, never joined), then
/// the directories they leave empty. Returns how many files were removed now. Blocking.
pub fn remove_recording_files(
    data_dir: &std::path::Path,
    names: &[String],
) -> std::io::Result<u64> {
    let root = recordings_dir(data_dir);
    let mut removed = 0;
    for name in names {
        if check_name(name).is_err() {
            tracing::warn!(name = %name, "recording file name refused; not deleted");
            continue;
        }
        let path = root.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // The recording's directory goes once empty (a non-empty one stays).
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != root && d.starts_with(&root)) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
    Ok(removed)
}

/// What [`Engine::purge_content`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeOutcome {
    /// `retention` or `erasure`.
    pub action: &'static str,
    pub scope: PurgeScope,
    /// Records selected (content still present when scanned).
    pub records_selected: u64,
    /// Records whose content this call removed.
    pub records_purged: u64,
    /// The last record the selection covered.
    pub up_to_seq: u64,
    /// The `content_purge` record; `None` when nothing matched (nothing is journaled).
    pub journaled_seq: Option<u64>,
    pub correlation_id: Option<String>,
    /// The recordings erased (each journaled as `recording_erased` first).
    pub recordings_erased: Vec<RecordingToErase>,
    /// Recording files deleted now under `<data>/recordings/`.
    pub recording_files_removed: u64,
}

impl Engine {
    /// Retention or erasure on the running engine: selects the records (on the blocking
    /// pool), journals the `content_purge` fact through the decider so that it is durable
    /// *before* any content goes, then removes the content.
    ///
    /// Operator only: anyone else gets `perm.not_admin`, journaled as
    /// `api_action_denied`, without a scan. Nothing matching journals nothing.
    pub async fn purge_content(
        &self,
        scope: PurgeScope,
        actor: Actor,
        origin: Origin,
        correlation_id: Option<String>,
    ) -> Result<PurgeOutcome, EngineError> {
        let (subject, before) = scope.fields();
        let command = |records, up_to_seq| Command::RecordContentPurge {
            subject: subject.clone(),
            before,
            records,
            up_to_seq,
        };
        let request = |command| Request {
            command,
            actor: actor.clone(),
            origin: origin.clone(),
            correlation_id: correlation_id.clone(),
            causation_id: None,
            authorized_by: None,
            scope: None,
        };
        let mut outcome = PurgeOutcome {
            action: scope.action(),
            scope: scope.clone(),
            records_selected: 0,
            records_purged: 0,
            up_to_seq: 0,
            journaled_seq: None,
            correlation_id: correlation_id.clone(),
            recordings_erased: Vec::new(),
            recording_files_removed: 0,
        };
        if !actor.is_privileged() {
            // The decider refuses it (perm.not_admin) and journals the attempt; no scan.
            let done = self.execute(request(command(0, 0))).await?;
            outcome.correlation_id = Some(done.correlation_id);
            return Ok(outcome);
        }
        let journal = self.journal().clone();
        let scope_of_recordings = scope.clone();
        let selection = tokio::task::spawn_blocking(move || select_content(&journal, &scope))
            .await
            .map_err(|e| EngineError::Task(format!("purge scan: {e}")))??;
        outcome.records_selected = selection.digests.len() as u64;
        outcome.up_to_seq = selection.up_to_seq;
        // Recordings are content too: journaled, then their files deleted.
        let action = match &scope_of_recordings {
            PurgeScope::Before(_) => RecordingErasure::Retention,
            PurgeScope::Person(_) => RecordingErasure::Erasure,
        };
        for target in self.read(|s| recordings_to_erase(s, &scope_of_recordings)) {
            let done = match self
                .execute(request(Command::EraseRecording {
                    room: target.room.clone(),
                    recording: target.recording.clone(),
                    reason: action,
                }))
                .await
            {
                Ok(done) => done,
                // Changed since it was selected (restarted, erased meanwhile): skip it.
                Err(EngineError::Rejected { .. }) => continue,
                Err(e) => return Err(e),
            };
            if done.events.is_empty() {
                continue;
            }
            let (data, names) = (self.data_dir().to_path_buf(), target.names.clone());
            outcome.recording_files_removed +=
                tokio::task::spawn_blocking(move || remove_recording_files(&data, &names))
                    .await
                    .map_err(|e| EngineError::Task(format!("recording erasure: {e}")))?
                    .map_err(|e| EngineError::Task(format!("recording erasure: {e}")))?;
            outcome.recordings_erased.push(target);
        }
        if selection.digests.is_empty() {
            return Ok(outcome);
        }
        let done = self
            .execute(request(command(
                outcome.records_selected,
                selection.up_to_seq,
            )))
            .await?;
        outcome.journaled_seq = done.events.last().map(|a| a.seq);
        outcome.correlation_id = Some(done.correlation_id);
        let journal = self.journal().clone();
        outcome.records_purged =
            tokio::task::spawn_blocking(move || purge_selected(&journal, &selection.digests))
                .await
                .map_err(|e| EngineError::Task(format!("purge: {e}")))??;
        // Replace the checkpoint at once: an older one may still hold purged content.
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "checkpoint after a purge failed");
        }
        Ok(outcome)
    }
}

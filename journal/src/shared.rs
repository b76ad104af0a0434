//! What the journal's readers and its writer share: storage, the committed head and its
//! hash, the poison flag, the index watermark. Its own module so that neither the writer
//! nor the readers depend on the `Journal` handle.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::config::JournalConfig;
use crate::record::Hash;
use crate::storage::Storage;

/// What readers and the writer share.
pub(crate) struct Shared {
    pub storage: Arc<dyn Storage>,
    /// Highest acknowledged sequence: readers never see past it.
    pub committed: AtomicU64,
    pub head_tx: watch::Sender<u64>,
    pub config: JournalConfig,
    pub groups_committed: AtomicU64,
    pub appends_committed: AtomicU64,
    /// The hash of the committed head record.
    pub committed_hash: Mutex<Hash>,
    /// Set after a storage failure (every later write is refused until the writer has
    /// reopened the storage and decided from what is on disk), or for good by
    /// `Journal::refuse_writes`.
    pub poisoned: Mutex<Option<Poison>>,
    /// The stream index is complete up to here; later records are found by scanning.
    pub indexed: AtomicU64,
    /// The first damage a read or a verification ran into since open, if any.
    pub damage: Mutex<Option<Damage>>,
}

/// Why writes are refused, and whether the writer tries to recover.
#[derive(Debug, Clone)]
pub(crate) struct Poison {
    pub reason: String,
    /// A storage failure the writer retries to recover from (reopen); `false` for a
    /// journal opened read-only, or a failure recovery cannot undo.
    pub recoverable: bool,
    pub since: std::time::Instant,
    /// Recovery attempts that failed so far.
    pub attempts: u32,
    /// When the writer tries next.
    pub next_attempt: Option<std::time::Instant>,
}

/// Writes are refused after a storage failure: what happened and what the journal does
/// about it ([`crate::Reader::write_failure`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// The failure (`storage error: durable flush: No space left on device ...`).
    pub reason: String,
    /// Whether the journal retries by itself (reopening its storage with backoff);
    /// `false` on a read-only start or after a failure only a restart can resolve.
    pub retrying: bool,
    /// How long writes have been refused.
    pub for_duration: std::time::Duration,
    /// Recovery attempts that failed so far.
    pub attempts: u32,
    /// Time until the next attempt, when one is planned.
    pub next_attempt_in: Option<std::time::Duration>,
}

impl Poison {
    pub(crate) fn view(&self) -> WriteFailure {
        let now = std::time::Instant::now();
        WriteFailure {
            reason: self.reason.clone(),
            retrying: self.recoverable,
            for_duration: now.saturating_duration_since(self.since),
            attempts: self.attempts,
            next_attempt_in: self
                .next_attempt
                .filter(|_| self.recoverable)
                .map(|at| at.saturating_duration_since(now)),
        }
    }
}

/// Stored data found damaged or unreadable while the journal is open: what makes a running
/// journal known to be bad (health reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The record concerned, when known.
    pub seq: Option<u64>,
    /// The stable code of the error that found it (`journal.corrupt`, ...).
    pub code: &'static str,
    /// What was wrong.
    pub reason: String,
}

impl Shared {
    pub(crate) fn set_committed(&self, seq: u64, hash: Hash) {
        *self
            .committed_hash
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = hash;
        self.committed
            .store(seq, std::sync::atomic::Ordering::Release);
    }

    /// Remembers the first damage found (later ones are usually its consequences).
    pub(crate) fn note_damage(&self, damage: Damage) {
        let mut d = self.damage.lock().unwrap_or_else(|p| p.into_inner());
        if d.is_none() {
            tracing::error!(
                seq = ?damage.seq,
                code = damage.code,
                reason = %damage.reason,
                "the journal is damaged"
            );
            *d = Some(damage);
        }
    }

    /// The poison, if writes are refused.
    pub(crate) fn poison(&self) -> Option<Poison> {
        self.poisoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refuses writes from now on (the first reason stays).
    pub(crate) fn set_poison(&self, reason: String, recoverable: bool) {
        let mut p = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        match p.as_mut() {
            Some(p) => p.recoverable &= recoverable,
            None => {
                *p = Some(Poison {
                    reason,
                    recoverable,
                    since: std::time::Instant::now(),
                    attempts: 0,
                    next_attempt: None,
                })
            }
        }
    }

    pub(crate) fn committed_hash(&self) -> Hash {
        *self
            .committed_hash
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

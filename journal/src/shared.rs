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
    /// Set after a storage failure: every later write is refused.
    pub poisoned: Mutex<Option<String>>,
    /// The stream index is complete up to here; later records are found by scanning.
    pub indexed: AtomicU64,
    /// The first damage a read or a verification ran into since open, if any.
    pub damage: Mutex<Option<Damage>>,
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

    pub(crate) fn committed_hash(&self) -> Hash {
        *self
            .committed_hash
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

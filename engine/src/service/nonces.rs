//! Ids and correlation ids for decisions.

use chrono::Utc;

use crate::ids::IdSeed;

/// Unguessable, unique values without a system call per command: a keyed hash of a
/// counter under a key drawn once from the OS.
pub(super) struct Nonces {
    key: [u8; 32],
    counter: u64,
}

impl Nonces {
    pub(super) fn new() -> Self {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            // Without OS randomness, fall back to the clock: ids stay unique, not secret.
            tracing::error!("no OS randomness: invitation ids are predictable");
            let t = Utc::now().timestamp_nanos_opt().unwrap_or_default();
            key[..8].copy_from_slice(&t.to_le_bytes());
        }
        Nonces { key, counter: 0 }
    }

    fn next(&mut self, bytes: usize) -> String {
        self.counter += 1;
        let h = blake3::keyed_hash(&self.key, &self.counter.to_le_bytes());
        conclave_journal::hex(&h.as_bytes()[..bytes.min(32)])
    }

    /// Seed for the ids one decision mints (invitation tokens are bearer secrets).
    pub(super) fn seed(&mut self) -> IdSeed {
        IdSeed::new(self.next(16))
    }

    pub(super) fn correlation_id(&mut self) -> String {
        self.next(8)
    }
}

//! How to run the engine.

use std::path::PathBuf;
use std::time::Duration;

use conclave_journal::JournalConfig;

use crate::policy::{IpKey, Policy};

/// How to run the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Holds `journal/` and `projections/`.
    pub data_dir: PathBuf,
    /// Server policy from configuration (see [`Engine::open`] for how it meets the journal).
    pub policy: Policy,
    /// Key for obfuscating remote addresses in stored metadata.
    pub ip_key: IpKey,
    pub journal: JournalConfig,
    /// Records between state checkpoints.
    pub checkpoint_every: u64,
    /// How often expiry (rooms, invitations, bans) is checked.
    pub tick_interval: Duration,
    /// Recent events the committed feed keeps in memory for live subscribers; one
    /// further behind reads the journal.
    pub feed_capacity: usize,
}

impl EngineConfig {
    /// Defaults for a data directory: seed policy, checkpoints every 10 000 records,
    /// expiry checked every second, 16 384 events in the feed's memory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            policy: Policy::default(),
            ip_key: IpKey([0; 32]),
            journal: JournalConfig::default(),
            checkpoint_every: 10_000,
            tick_interval: Duration::from_secs(1),
            feed_capacity: super::feed::DEFAULT_FEED_CAPACITY,
        }
    }
}

//! How to run the engine.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use conclave_journal::storage::{SledStorage, Storage};
use conclave_journal::JournalConfig;

use super::clock::{Clock, SystemClock};
use crate::policy::{IpKey, Policy};

/// The default [`EngineConfig::tick_interval`].
pub const DEFAULT_TICK_INTERVAL: Duration = Duration::from_secs(60);

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
    /// Where the engine reads the time: the system clock, or a
    /// [`TestClock`](super::TestClock) that tests move by hand.
    pub clock: Arc<dyn Clock>,
    /// The longest the clock thread waits without reading the clock again and looking
    /// for the next deadline. Expiry (rooms, invitations, bans, autobans) does not wait
    /// for it: the clock thread sleeps until the next deadline and is woken by commits.
    /// A safety net only, against a wall clock stepped forward or a missed wake-up.
    pub tick_interval: Duration,
    /// Recent events the committed feed keeps in memory for live subscribers; one
    /// further behind reads the journal.
    pub feed_capacity: usize,
    /// Commands that may wait for the decider at once, from every gateway; one more is
    /// refused at once as busy (`engine.busy`, HTTP 503 with Retry-After) instead of
    /// queueing without bound.
    pub max_queued_commands: usize,
    /// Tests only: wraps the journal's sled storage (a
    /// [`FaultyStorage`](conclave_journal::storage::FaultyStorage) that fails flushes on
    /// command), to drive the engine through a storage failure and its recovery.
    #[doc(hidden)]
    pub journal_storage: Option<WrapStorage>,
}

/// Wraps the journal's sled storage ([`EngineConfig::journal_storage`]).
#[derive(Clone)]
pub struct WrapStorage(pub Arc<dyn Fn(SledStorage) -> Arc<dyn Storage> + Send + Sync>);

impl std::fmt::Debug for WrapStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrapStorage")
    }
}

/// The default [`EngineConfig::max_queued_commands`]: far above what the decider's
/// batches of 64 drain in a few milliseconds, far below what would hold real memory.
pub const DEFAULT_MAX_QUEUED_COMMANDS: usize = 16_384;

impl EngineConfig {
    /// Defaults for a data directory: seed policy, the system clock, checkpoints every
    /// 10 000 records, the clock re-checked at least every minute, 16 384 events in the
    /// feed's memory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            policy: Policy::default(),
            ip_key: IpKey([0; 32]),
            journal: JournalConfig::default(),
            checkpoint_every: 10_000,
            clock: Arc::new(SystemClock),
            tick_interval: DEFAULT_TICK_INTERVAL,
            feed_capacity: super::feed::DEFAULT_FEED_CAPACITY,
            max_queued_commands: DEFAULT_MAX_QUEUED_COMMANDS,
            journal_storage: None,
        }
    }

    /// The same configuration reading time from `clock`.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}

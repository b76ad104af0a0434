//! Journal settings.

use std::path::PathBuf;
use std::time::Duration;

/// The highest `max_record_bytes` a journal opens with. sled writes larger log items to
/// blob files that it never fsyncs; with this bound no stored value, and no storage node
/// of such values, reaches that size (see `storage::sled_backend`).
pub const MAX_RECORD_BYTES_LIMIT: usize = 96 * 1024;

/// Longest stream name, in bytes: stream names are part of index keys.
pub const MAX_STREAM_BYTES: usize = 1024;

/// When an append is acknowledged relative to the disk flush.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// Acknowledge only after the records are flushed (default). Concurrent appends share
    /// flushes (group commit), so throughput rises with concurrency.
    #[default]
    Always,
    /// Acknowledge after the write; flush at most `max_delay` later. A crash can lose up
    /// to `max_delay` of acknowledged records: an explicit operator choice.
    Batch { max_delay: Duration },
    /// Never flush explicitly; sled's own background flush applies. For tests and benches.
    None,
}

/// How often the writer tries to recover from a storage failure (reopening the
/// storage): first after `first`, then after twice the previous wait, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryBackoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for RecoveryBackoff {
    fn default() -> Self {
        RecoveryBackoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

/// How to open a journal.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub sync: SyncMode,
    /// sled page cache size in bytes; kept small, the OS page cache does the rest.
    pub cache_capacity: u64,
    /// Most append requests folded into one group commit.
    pub max_group: usize,
    /// Largest accepted record (payload, content, stream, type and metadata), in bytes;
    /// at most [`MAX_RECORD_BYTES_LIMIT`].
    pub max_record_bytes: usize,
    /// A second durable-head marker, outside the database directory (the engine keeps it
    /// in its data directory). The marker inside the directory cannot tell a journal
    /// deleted with its whole directory from a new one; this one can: opening refuses
    /// (`journal.truncated`) a journal that is missing or shorter than the head it names,
    /// and does not create a new database in its place. Written beside every refresh of
    /// the inner marker, from durable heads only. `None`: the inner marker only.
    pub head_witness: Option<PathBuf>,
    /// After a failed write or flush, the writer refuses every append and retries to
    /// recover on this schedule (see `Journal`'s "Recovery after a storage failure").
    pub recovery: RecoveryBackoff,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            sync: SyncMode::Always,
            cache_capacity: 64 * 1024 * 1024,
            max_group: 1024,
            max_record_bytes: 64 * 1024,
            head_witness: None,
            recovery: RecoveryBackoff::default(),
        }
    }
}

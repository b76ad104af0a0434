//! Counters for /metrics: commands and rejections by name and code, append latency.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the command latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    commands: Mutex<BTreeMap<&'static str, u64>>,
    rejections: Mutex<BTreeMap<String, u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    password_checks: AtomicU64,
    password_busy: AtomicU64,
    denials_not_journaled: AtomicU64,
    queue_full: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub commands: BTreeMap<&'static str, u64>,
    pub rejections: BTreeMap<String, u64>,
    /// Cumulative counts per bucket of [`LATENCY_BUCKETS`].
    pub latency_buckets: Vec<u64>,
    pub latency_count: u64,
    pub latency_sum_secs: f64,
    /// Requests whose passwords were checked (argon2 ran).
    pub password_checks: u64,
    /// Requests refused as busy because no password-check slot came free in time.
    pub password_busy: u64,
    /// Refusals answered but not journaled: repeats from one source within a minute
    /// (see `service::denials`).
    pub denials_not_journaled: u64,
    /// Commands refused as busy because the decider's queue was full.
    pub queue_full: u64,
    /// Commands waiting for the decider now (a gauge).
    pub queued_commands: u64,
}

impl Metrics {
    pub(crate) fn command(&self, name: &'static str) {
        *self
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name)
            .or_default() += 1;
    }

    pub(crate) fn rejection(&self, code: &str) {
        *self
            .rejections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code.to_owned())
            .or_default() += 1;
    }

    /// Time from decision to durable acknowledgement of one command.
    pub(crate) fn committed(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn password_check(&self) {
        self.password_checks.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn password_busy(&self) {
        self.password_busy.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn queue_full(&self) {
        self.queue_full.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn denial_not_journaled(&self) {
        self.denials_not_journaled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            commands: self
                .commands
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            rejections: self
                .rejections
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            latency_buckets: self
                .latency_buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            latency_count: self.latency_count.load(Ordering::Relaxed),
            latency_sum_secs: self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            password_checks: self.password_checks.load(Ordering::Relaxed),
            password_busy: self.password_busy.load(Ordering::Relaxed),
            denials_not_journaled: self.denials_not_journaled.load(Ordering::Relaxed),
            queue_full: self.queue_full.load(Ordering::Relaxed),
            queued_commands: 0,
        }
    }
}

//! The clock thread that asks the decider to tick.

use std::sync::mpsc;
use std::time::Duration;

use super::pipeline::Job;
use super::{lock, Inner};

/// Drives expiry: asks the decider to tick until the engine stops.
pub(super) fn clock(inner: std::sync::Weak<Inner>, every: Duration, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let Some(inner) = inner.upgrade() else { return };
        let jobs = lock(&inner.jobs);
        match jobs.as_ref() {
            Some(tx) if tx.send(Job::Tick).is_ok() => {}
            _ => return,
        }
    }
}

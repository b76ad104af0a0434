//! Autoban (Mumble): too many failed joins from one identity or one remote address
//! within the window bans it for a while. Counting happens on journaled `JoinDenied`
//! events (see `evolve`), so the counters survive restarts and replays.

use chrono::Duration;

use super::Cx;
use crate::event::{AutobanKey, DenyReason, Event, EventKind};
use crate::ids::Address;

/// The autoban events a new denial triggers, given the failures already counted.
pub(super) fn on_denial(
    cx: &Cx<'_>,
    address: &Address,
    remote: Option<&String>,
    reason: DenyReason,
) -> Vec<Event> {
    let policy = &cx.state.policy.autoban;
    if policy.attempts == 0 || !reason.counts_for_autoban() {
        return Vec::new();
    }
    let now = cx.ctx.now;
    let cutoff = now - Duration::seconds(i64::from(policy.timeframe_secs));
    let until = now + Duration::seconds(i64::from(policy.duration_secs));
    let mut keys = vec![AutobanKey::Identity(address.clone())];
    if let Some(r) = remote {
        keys.push(AutobanKey::Remote(r.clone()));
    }
    keys.into_iter()
        .filter(|k| !cx.state.autobanned(k, now))
        .filter_map(|key| {
            let previous = cx
                .state
                .failures
                .get(&key)
                .map_or(0, |v| v.iter().filter(|t| **t > cutoff).count());
            let attempts = u32::try_from(previous)
                .unwrap_or(u32::MAX)
                .saturating_add(1);
            (attempts >= policy.attempts).then(|| {
                cx.event(EventKind::AutobanApplied {
                    key,
                    attempts,
                    until,
                })
            })
        })
        .collect()
}

//! Autoban (Mumble): too many failed joins from one identity or one remote address
//! within the window bans it for a while. Counting happens on journaled `JoinDenied`
//! events (see `evolve`), so the counters survive restarts and replays.

use chrono::Duration;

use super::{Cx, Decision};
use crate::event::{AutobanKey, DenyReason, Event, EventKind};
use crate::ids::Address;
use crate::policy::stored_remote_addr;
use crate::rejection::Rejection;

/// An operator lifts an autoban early. A remote address may be given as listed (its
/// stored form) or as the plain IP address, which is turned into its stored form here.
/// Lifting one that is not in force is a no-op, as for an autoban the clock lifted a
/// moment before.
pub(super) fn lift(cx: &Cx<'_>, key: &AutobanKey) -> Decision {
    cx.require_operator()?;
    let key = match key {
        AutobanKey::Remote(r) if r.is_empty() || r.len() > 128 => {
            return Err(Rejection::InvalidInput {
                field: "key",
                reason: "a remote address, as listed or as an IP address, 1 to 128 characters"
                    .into(),
            }
            .into())
        }
        AutobanKey::Remote(r) if r.parse::<std::net::IpAddr>().is_ok() => AutobanKey::Remote(
            stored_remote_addr(r, cx.state.policy.obfuscate_ips, &cx.ctx.ip_key),
        ),
        other => other.clone(),
    };
    if !cx.state.autobans.contains_key(&key) {
        return Ok(vec![]);
    }
    Ok(vec![cx.event(EventKind::AutobanLifted { key })])
}

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
                    ends_sessions: false,
                })
            })
        })
        .collect()
}

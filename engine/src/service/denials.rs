//! Which refusals are journaled: a flood of refused commands must not grow the journal
//! without bound.
//!
//! A refusal's record (a `join_denied`, an `api_action_denied`) is evidence, so the first
//! of a kind from a source is always journaled; repeats of the same refusal from the same
//! source within [`DenialThrottle::WINDOW`] are answered but not journaled again, and
//! counted in the metrics instead. Refusals that feed the autoban (wrong passwords and
//! other guesses) are always journaled while autoban is on, because the autoban counts
//! them from the journal; past the limit they become `banned` refusals, which are
//! throttled. A record that carries anything besides denials (an autoban, the lifting of
//! an expired ban) is always journaled.
//!
//! The source is the stored remote address when the gateway knows one, else the actor.
//! The throttle lives in the decider, not in `evolve`: which repeats were left out is
//! not state, and replay never needs it.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::event::{Event, EventKind};

/// Remembers the refusals journaled recently, per source and kind.
#[derive(Debug, Default)]
pub(super) struct DenialThrottle {
    last: HashMap<(String, String), DateTime<Utc>>,
}

impl DenialThrottle {
    /// One journaled refusal of a kind per source per window.
    pub(super) const WINDOW: Duration = Duration::seconds(60);
    /// Sources remembered at most; past it, entries older than the window go, then all.
    pub(super) const MAX: usize = 8192;

    /// Whether `record` (the events of one refusal) should be journaled at `now` (the
    /// engine's clock). `autoban_on`: whether failed guesses are being counted.
    pub(super) fn journal(
        &mut self,
        record: &[Event],
        source: &str,
        autoban_on: bool,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(kind) = throttled_kind(record, autoban_on) else {
            return true;
        };
        let key = (source.to_owned(), kind);
        if let Some(at) = self.last.get(&key) {
            if now - *at < Self::WINDOW {
                return false;
            }
        }
        if self.last.len() >= Self::MAX {
            self.last.retain(|_, at| now - *at < Self::WINDOW);
            if self.last.len() >= Self::MAX {
                self.last.clear();
            }
        }
        self.last.insert(key, now);
        true
    }
}

/// The kind of a refusal that may be throttled, `None` when it must be journaled.
fn throttled_kind(record: &[Event], autoban_on: bool) -> Option<String> {
    let [event] = record else {
        return None;
    };
    match &event.kind {
        EventKind::JoinDenied { room, reason, .. }
            if !(autoban_on && reason.counts_for_autoban()) =>
        {
            Some(format!("join:{room}:{}", reason.as_str()))
        }
        EventKind::ActionDenied {
            room, action, code, ..
        } => Some(format!(
            "action:{}:{action}:{code}",
            room.as_ref().map_or("", |r| r.as_str())
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::context::Actor;
    use crate::event::{AutobanKey, DenyReason};
    use crate::ids::{Address, Principal, RoomName};

    fn denial(reason: DenyReason) -> Event {
        let address = Address::parse("web:mallory").unwrap();
        Event {
            at: Utc.timestamp_opt(1_800_000_000, 0).unwrap(),
            actor: Actor::Identity(address.clone()),
            kind: EventKind::JoinDenied {
                room: RoomName::from_stored("vault".into()),
                principal: Principal::Address(address.clone()),
                address,
                reason,
                remote: Some("h:1".into()),
            },
        }
    }

    #[test]
    fn repeats_from_one_source_are_journaled_once_per_window() {
        let mut t = DenialThrottle::default();
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let banned = [denial(DenyReason::Banned)];
        assert!(t.journal(&banned, "h:1", true, t0));
        assert!(!t.journal(&banned, "h:1", true, t0 + Duration::seconds(59)));
        // Another source, or the same one after the window, is journaled.
        assert!(t.journal(&banned, "h:2", true, t0 + Duration::seconds(1)));
        assert!(t.journal(&banned, "h:1", true, t0 + Duration::seconds(61)));
    }

    #[test]
    fn guesses_are_always_journaled_while_autoban_counts_them() {
        let mut t = DenialThrottle::default();
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let wrong = [denial(DenyReason::WrongPassword)];
        for _ in 0..5 {
            assert!(t.journal(&wrong, "h:1", true, t0));
        }
        // With autoban off, nothing counts them: they are throttled like any other.
        assert!(t.journal(&wrong, "h:1", false, t0));
        assert!(!t.journal(&wrong, "h:1", false, t0));
    }

    #[test]
    fn a_record_with_more_than_a_denial_is_always_journaled() {
        let mut t = DenialThrottle::default();
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let mut record = vec![denial(DenyReason::Banned)];
        record.push(Event {
            kind: EventKind::AutobanLifted {
                key: AutobanKey::Remote("h:1".into()),
            },
            ..record[0].clone()
        });
        for _ in 0..3 {
            assert!(t.journal(&record, "h:1", true, t0));
        }
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_sources() {
        let mut t = DenialThrottle::default();
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let banned = [denial(DenyReason::Banned)];
        for i in 0..(DenialThrottle::MAX + 100) {
            t.journal(&banned, &format!("h:{i}"), true, t0);
        }
        assert!(t.last.len() <= DenialThrottle::MAX);
    }
}

//! `next_deadline` against `tick`, on random states: nothing is due before the deadline,
//! something is at it and stays due after it, and ticking again at the same instant
//! expires nothing twice and soon nothing at all (so the service never spins on one
//! expiry).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, Utc};
use conclave_engine::testing::{sample_events, SampleParams};
use conclave_engine::*;
use proptest::prelude::*;

fn base() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).unwrap()
}

/// A state built by folding sample events (every kind, so rooms, invitations, bans of
/// each scope and autobans) at random instants, under random inactivity timeouts.
fn state(picks: &[(usize, u8, u16, u32, bool)], timeouts: (u32, u32)) -> State {
    let policy = Policy {
        inactivity_timeout_mins: timeouts.0,
        reserved_inactivity_timeout_mins: timeouts.1,
        ..Policy::default()
    };
    let mut state = State::new(policy);
    for &(i, n, secs, nanos, flag) in picks {
        let params = SampleParams {
            at: base()
                + TimeDelta::seconds(i64::from(secs))
                + TimeDelta::nanoseconds(i64::from(nanos)),
            room: RoomName::from_stored(["r0", "r1", "parent"][usize::from(n) % 3].into()),
            account: AccountId::from_stored(["acc0", "acc1"][usize::from(n) % 2].into()),
            address: Address::parse(
                [
                    "sip:u0@example.org",
                    "xmpp:u0@example.org",
                    "sip:u1@example.org",
                ][usize::from(n) % 3],
            )
            .unwrap(),
            n: u32::from(n % 200),
            flag,
            ..SampleParams::default()
        };
        let samples = sample_events(&params);
        evolve(&mut state, &samples[i % samples.len()]);
    }
    state
}

fn picks() -> impl Strategy<Value = Vec<(usize, u8, u16, u32, bool)>> {
    prop::collection::vec(
        (
            0usize..64,
            any::<u8>(),
            0u16..900,
            0u32..1_000_000_000,
            any::<bool>(),
        ),
        0..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn nothing_is_due_before_the_deadline_and_something_is_at_it(
        picks in picks(),
        timeouts in (0u32..4, 0u32..4),
        now_secs in -60i64..1_200,
        probes in prop::collection::vec(0u64..=1_000_000, 1..8),
    ) {
        let s = state(&picks, timeouts);
        let now = base() + TimeDelta::seconds(now_secs);
        match next_deadline(&s, now) {
            None => {
                prop_assert!(tick(&s, now).is_empty());
                prop_assert!(tick(&s, DateTime::<Utc>::MAX_UTC).is_empty());
            }
            Some(d) => {
                prop_assert!(d >= now);
                prop_assert!(!tick(&s, d).is_empty(), "nothing due at the deadline {d}");
                if d > now {
                    prop_assert!(tick(&s, now).is_empty());
                    prop_assert!(tick(&s, d - TimeDelta::nanoseconds(1)).is_empty(),
                        "due before the deadline {d}");
                }
                let span = (d - now).num_nanoseconds().unwrap();
                for p in &probes {
                    // Somewhere between now and the deadline (both included), and as far
                    // after it.
                    let offset = i64::try_from(*p).unwrap() * span / 1_000_000;
                    let before = now + TimeDelta::nanoseconds(offset);
                    prop_assert_eq!(tick(&s, before).is_empty(), before < d);
                    let after = d + TimeDelta::nanoseconds(offset) + TimeDelta::seconds(
                        i64::try_from(*p).unwrap() % 1000);
                    prop_assert!(!tick(&s, after).is_empty(), "not due after the deadline");
                }
            }
        }
    }

    /// A tick's events remove what it expired, so ticking again at the same instant finds
    /// only what they uncovered (a parent room left without sub-rooms) and soon nothing.
    #[test]
    fn ticking_again_at_the_same_instant_ends(
        picks in picks(),
        timeouts in (0u32..4, 0u32..4),
        at_secs in -60i64..1_200,
        nanos in 0i64..1_000_000_000,
    ) {
        let mut s = state(&picks, timeouts);
        let at = base() + TimeDelta::seconds(at_secs) + TimeDelta::nanoseconds(nanos);
        let mut expired = Vec::new();
        for _ in 0..=s.rooms.len() {
            let events = tick(&s, at);
            for e in &events {
                prop_assert!(!expired.contains(&e.kind), "expired twice: {:?}", e.kind);
                evolve(&mut s, e);
            }
            expired.extend(events.into_iter().map(|e| e.kind));
        }
        prop_assert!(tick(&s, at).is_empty(), "still ticking after {} rounds", s.rooms.len() + 1);
        prop_assert!(next_deadline(&s, at).is_none_or(|d| d > at));
    }
}

#[test]
fn a_deadline_does_not_depend_on_when_it_is_asked() {
    let s = state(
        &[(12, 0, 0, 500_000_000, false), (25, 0, 10, 0, false)],
        (1, 0),
    );
    let first = next_deadline(&s, base()).expect("a deadline");
    for secs in [0, 5, 59] {
        let asked = base() + TimeDelta::seconds(secs);
        assert_eq!(next_deadline(&s, asked), Some(first.max(asked)));
    }
}

//! Time for the engine: the [`Clock`] the decider reads, and the clock thread that asks
//! the decider to tick when the next deadline comes.
//!
//! The clock thread computes the next deadline from the committed state
//! ([`next_deadline`]) and waits until then: in real time with a clock that follows real
//! time ([`SystemClock`]), until it is moved by hand with a [`TestClock`]. When the
//! deadline is reached it asks the decider for one tick and waits for the answer, which
//! comes once the tick's events are committed; only then does it look for the next
//! deadline, so it never asks twice for the same expiry. It wakes early when:
//! - something commits (a command may have made an earlier deadline). It watches the
//!   feed's head, and re-arms that watch at most every [`RESCAN_SPACING`]: under load the
//!   completer pays nothing and the clock thread scans the state at most that often;
//! - the clock is moved by hand ([`Clock::wake_on_change`]);
//! - the engine stops ([`Alarm::stop`]).
//!
//! It never waits longer than `tick_interval` without reading the clock again and
//! rescanning: a safety net for a wall clock stepped forward or a missed wake-up, not the
//! way expiry is found.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::oneshot;

use super::{lock, EngineError, Inner, Outcome};
use crate::tick::next_deadline;

/// Where the engine reads the time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;

    /// How long to wait in real time until the clock reads `at` (zero if it already does),
    /// or `None` when the clock moves only when set by hand: the clock thread then waits to
    /// be woken by [`Clock::wake_on_change`]. By default, the time left until `at`.
    fn real_wait(&self, at: DateTime<Utc>) -> Option<Duration> {
        Some((at - self.now()).to_std().unwrap_or(Duration::ZERO))
    }

    /// Wakes `waker` once, the next time the clock is set by hand. A clock that follows
    /// real time never is: by default, nothing.
    fn wake_on_change(&self, waker: &Waker) {
        let _ = waker;
    }
}

/// The system's wall clock (UTC).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until a test moves it. Clones share the same time, so a test
/// keeps one and gives the engine another ([`super::EngineConfig::clock`]); moving it wakes
/// the engine's clock thread, which ticks at once if a deadline has been reached.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<Mutex<Hand>>);

#[derive(Debug)]
struct Hand {
    now: DateTime<Utc>,
    /// Clock threads to wake on the next move.
    waiting: Vec<Waker>,
}

impl TestClock {
    /// A clock reading `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        TestClock(Arc::new(Mutex::new(Hand {
            now: start,
            waiting: Vec::new(),
        })))
    }

    /// The time it reads.
    pub fn now(&self) -> DateTime<Utc> {
        lock(&self.0).now
    }

    /// Moves the clock by `by` (backwards if negative; the engine still never stamps an
    /// event earlier than the one before) and returns the new time.
    pub fn advance(&self, by: TimeDelta) -> DateTime<Utc> {
        let mut hand = lock(&self.0);
        hand.now += by;
        let now = hand.now;
        Self::moved(hand);
        now
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        let mut hand = lock(&self.0);
        hand.now = to;
        Self::moved(hand);
    }

    fn moved(mut hand: std::sync::MutexGuard<'_, Hand>) {
        let waiting = std::mem::take(&mut hand.waiting);
        drop(hand);
        for w in waiting {
            w.wake();
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        TestClock::now(self)
    }

    fn real_wait(&self, _at: DateTime<Utc>) -> Option<Duration> {
        None
    }

    fn wake_on_change(&self, waker: &Waker) {
        let mut hand = lock(&self.0);
        if !hand.waiting.iter().any(|w| w.will_wake(waker)) {
            hand.waiting.push(waker.clone());
        }
    }
}

/// How often at most a commit makes the clock thread look at the state again. A command
/// that brings a deadline nearer is seen at most this late; a busy engine costs the
/// clock thread one scan per spacing.
pub(super) const RESCAN_SPACING: Duration = Duration::from_millis(10);

/// The longest a failed tick holds the next one back: a journal that refused writes
/// after a storage failure recovers by itself, and expiry due meanwhile should follow
/// soon after (a tick against a journal still refusing fails at once, cheaply).
const TICK_RETRY: Duration = Duration::from_secs(5);

/// What the clock thread waits on: rung by whatever may change the next deadline (as the
/// [`Waker`] of the futures it polls), and stopped when the engine stops.
#[derive(Default)]
pub(super) struct Alarm {
    state: Mutex<AlarmState>,
    rung: Condvar,
}

#[derive(Default)]
struct AlarmState {
    rung: bool,
    stopped: bool,
}

impl Alarm {
    /// Ends the clock thread.
    pub(super) fn stop(&self) {
        lock(&self.state).stopped = true;
        self.rung.notify_all();
    }

    fn ring(&self) {
        lock(&self.state).rung = true;
        self.rung.notify_all();
    }

    /// Waits until rung or `timeout` has passed; false once stopped.
    fn wait(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        let mut state = lock(&self.state);
        while !state.rung && !state.stopped {
            let Some(left) = timeout
                .checked_sub(start.elapsed())
                .filter(|l| !l.is_zero())
            else {
                break;
            };
            state = self
                .rung
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        state.rung = false;
        !state.stopped
    }

    fn stopped(&self) -> bool {
        lock(&self.state).stopped
    }
}

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.ring();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ring();
    }
}

type TickAnswer = oneshot::Receiver<Result<Outcome, EngineError>>;
type Commit = Pin<Box<dyn Future<Output = Result<(), EngineError>>>>;

/// Drives expiry until the engine stops (see the module documentation).
pub(super) fn clock(inner: Arc<Inner>) {
    let alarm = inner.alarm.clone();
    let clock = inner.config.clock.clone();
    let safety = inner.config.tick_interval.max(Duration::from_millis(1));
    let waker = Waker::from(alarm.clone());
    let mut cx = Context::from_waker(&waker);
    // The tick asked of the decider and not answered yet.
    let mut asked: Option<TickAnswer> = None;
    // Resolves on the first commit past the last scan; armed only while no tick is asked
    // and once RESCAN_SPACING has passed since the scan.
    let mut commit: Option<Commit> = None;
    let mut deadline = None;
    let mut scanned_head = 0;
    let mut scanned_at = Instant::now();
    let mut stale = true;
    // After a failed tick none is asked before this: with a failing journal, asking again
    // at once would only spin.
    let mut held_until: Option<Instant> = None;
    while !alarm.stopped() {
        if let Some(answer) = asked.as_mut() {
            if let Poll::Ready(answer) = Pin::new(answer).poll(&mut cx) {
                asked = None;
                stale = true;
                if let Ok(Err(e)) = answer {
                    let retry_in = safety.min(TICK_RETRY);
                    tracing::warn!(error = %e, ?retry_in, "tick failed");
                    held_until = Some(Instant::now() + retry_in);
                }
            }
        }
        if let Some(c) = commit.as_mut() {
            match c.as_mut().poll(&mut cx) {
                Poll::Ready(Ok(())) => {
                    commit = None;
                    stale = true;
                }
                // The feed is closed: the engine is stopping.
                Poll::Ready(Err(_)) => return,
                Poll::Pending => {}
            }
        }
        // Before reading the time, so that a move after the reading wakes the wait below.
        clock.wake_on_change(&waker);
        let now = clock.now();
        if asked.is_none() {
            if stale || scanned_at.elapsed() >= safety {
                let c = inner.committed();
                scanned_head = c.head;
                deadline = next_deadline(&c.state, now);
                drop(c);
                scanned_at = Instant::now();
                stale = false;
                commit = None;
            }
            held_until = held_until.filter(|h| *h > Instant::now());
            if held_until.is_none() && deadline.is_some_and(|d| d <= now) {
                match inner.ask_tick() {
                    Some(answer) => {
                        asked = Some(answer);
                        continue;
                    }
                    None => return,
                }
            }
            let spacing_left = RESCAN_SPACING.saturating_sub(scanned_at.elapsed());
            if commit.is_none() && spacing_left.is_zero() {
                let feed = inner.feed.clone();
                let next = scanned_head + 1;
                commit = Some(Box::pin(async move { feed.wait_for(next).await }));
                continue;
            }
        }
        let mut wait = safety;
        if asked.is_none() {
            wait = wait.min(safety.saturating_sub(scanned_at.elapsed()));
            if commit.is_none() {
                wait = wait.min(RESCAN_SPACING.saturating_sub(scanned_at.elapsed()));
            }
            if let Some(held) = held_until {
                wait = wait.min(held.saturating_duration_since(Instant::now()));
            } else if let Some(real) = deadline.and_then(|d| clock.real_wait(d)) {
                wait = wait.min(real);
            }
        }
        if !alarm.wait(wait) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap()
    }

    #[test]
    fn a_test_clock_moves_only_by_hand_and_clones_share_it() {
        let clock = TestClock::new(t0());
        let other = clock.clone();
        assert_eq!(clock.now(), t0());
        assert_eq!(
            other.advance(TimeDelta::seconds(90)),
            t0() + TimeDelta::seconds(90)
        );
        assert_eq!(clock.now(), t0() + TimeDelta::seconds(90));
        clock.set(t0());
        assert_eq!(Clock::now(&other), t0());
        assert_eq!(clock.real_wait(t0() + TimeDelta::days(1)), None);
    }

    #[test]
    fn moving_a_test_clock_wakes_each_waiting_thread_once() {
        let clock = TestClock::new(t0());
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        clock.wake_on_change(&waker);
        clock.wake_on_change(&waker);
        clock.advance(TimeDelta::seconds(1));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        // Woken once: the next move wakes only a thread that asked again.
        clock.set(t0());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        clock.wake_on_change(&waker);
        clock.set(t0());
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_system_clock_waits_in_real_time() {
        let clock = SystemClock;
        assert_eq!(
            clock.real_wait(clock.now() - TimeDelta::seconds(5)),
            Some(Duration::ZERO)
        );
        let wait = clock
            .real_wait(clock.now() + TimeDelta::seconds(5))
            .unwrap();
        assert!(wait > Duration::from_secs(4) && wait <= Duration::from_secs(5));
    }

    #[test]
    fn an_alarm_rung_before_the_wait_ends_it_at_once_and_a_stopped_one_says_so() {
        let alarm = Arc::new(Alarm::default());
        Waker::from(alarm.clone()).wake_by_ref();
        assert!(alarm.wait(Duration::from_secs(3600)));
        alarm.stop();
        assert!(!alarm.wait(Duration::from_secs(3600)));
        assert!(alarm.stopped());
    }
}

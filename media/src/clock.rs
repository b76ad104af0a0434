//! The 20 ms media clock: frame n is due at `start + n * period`, so sleeping late never
//! accumulates drift; after a long stall at most `MAX_CATCH_UP` frames are run at once
//! and the rest are skipped (counted), rather than bursting audio out.

use std::time::{Duration, Instant};

/// Frames run back to back after a stall, at most.
pub const MAX_CATCH_UP: u64 = 3;

#[derive(Debug, Clone)]
pub struct MediaClock {
    start: Instant,
    period: Duration,
    next: u64,
    skipped: u64,
}

impl MediaClock {
    pub fn new(start: Instant, period: Duration) -> Self {
        MediaClock {
            start,
            period: period.max(Duration::from_millis(1)),
            next: 0,
            skipped: 0,
        }
    }

    /// When the next frame is due.
    pub fn next_deadline(&self) -> Instant {
        self.start + self.period * u32::try_from(self.next).unwrap_or(u32::MAX)
    }

    /// Frames skipped so far because the thread was too late.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// How many frames to run now (0 if woken early).
    pub fn due(&mut self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        let period = self.period.as_nanos().max(1);
        let last_due = (elapsed.as_nanos() / period) as u64;
        if now < self.next_deadline() {
            return 0;
        }
        let behind = last_due + 1 - self.next;
        let run = behind.min(MAX_CATCH_UP);
        self.skipped += behind - run;
        self.next = last_due + 1;
        run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    #[test]
    fn runs_one_frame_per_period_without_drift() {
        // given a clock woken a little late each time, then deadlines stay on the grid
        let t0 = Instant::now();
        let mut c = MediaClock::new(t0, MS20);
        for n in 0..100u32 {
            let wake = c.next_deadline() + Duration::from_millis(3);
            assert_eq!(c.due(wake), 1);
            assert_eq!(c.next_deadline(), t0 + MS20 * (n + 1));
        }
        assert_eq!(c.skipped(), 0);
    }

    #[test]
    fn early_wake_runs_nothing() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(t0, MS20);
        assert_eq!(c.due(t0), 1);
        assert_eq!(c.due(t0 + Duration::from_millis(10)), 0);
    }

    #[test]
    fn a_long_stall_catches_up_a_few_frames_and_skips_the_rest() {
        let t0 = Instant::now();
        let mut c = MediaClock::new(t0, MS20);
        assert_eq!(c.due(t0), 1);
        // when the thread stalls for 1 s (50 frames due)
        assert_eq!(c.due(t0 + Duration::from_millis(1000)), MAX_CATCH_UP);
        assert_eq!(c.skipped(), 50 - MAX_CATCH_UP);
        assert_eq!(c.next_deadline(), t0 + MS20 * 51);
    }
}

//! Dominant speaker per room from RFC 6464 audio levels (the
//! `urn:ietf:params:rtp-hdrext:ssrc-audio-level` header extension publishers send).
//!
//! Each audio packet carries the level of its frame in -dBov (0 loudest, 127 silence).
//! A participant's loudness is a moving average of `127 - level` over its forwarded
//! packets (a muted participant's withheld audio does not count). The dominant speaker
//! changes with hysteresis, as Jitsi Videobridge's does in spirit (its detector is
//! richer): a challenger must be the loudest, above the silence floor, for
//! [`HOLD`] without interruption, and someone silent for [`STALE`] counts as silent.
//! The result is presentation data: it is signalled to the room's clients, not
//! journaled.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::ParticipantId;

/// How long a challenger must stay the loudest before it becomes dominant.
pub(crate) const HOLD: Duration = Duration::from_millis(800);
/// A participant without an audio level for this long is silent.
pub(crate) const STALE: Duration = Duration::from_millis(1000);
/// Loudness (127 - level, smoothed) below which a participant is not speaking:
/// quieter than -70 dBov.
pub(crate) const FLOOR: f64 = 57.0;
/// Weight of a new packet in the moving average (20 ms packets: about 200 ms).
const ALPHA: f64 = 0.1;

/// The audio level of an RFC 6464 extension payload: -dBov, 0..=127.
pub(crate) fn level(payload: &[u8]) -> Option<u8> {
    payload.first().map(|b| b & 0x7f)
}

#[derive(Debug)]
struct Loudness {
    value: f64,
    at: Instant,
}

/// One room's detector.
#[derive(Debug, Default)]
pub(crate) struct Detector {
    loudness: HashMap<ParticipantId, Loudness>,
    dominant: Option<ParticipantId>,
    /// The current challenger and since when it has been the loudest.
    challenger: Option<(ParticipantId, Instant)>,
}

impl Detector {
    /// Records one packet's level (-dBov) from `who`.
    pub(crate) fn observe(&mut self, who: &str, level: u8, now: Instant) {
        let x = f64::from(127 - level.min(127));
        match self.loudness.get_mut(who) {
            Some(l) => {
                // A stale average starts over rather than decaying from old speech.
                if now.saturating_duration_since(l.at) > STALE {
                    l.value = x;
                } else {
                    l.value += ALPHA * (x - l.value);
                }
                l.at = now;
            }
            None => {
                self.loudness
                    .insert(who.to_owned(), Loudness { value: x, at: now });
            }
        }
    }

    /// The participant left.
    pub(crate) fn remove(&mut self, who: &str) {
        self.loudness.remove(who);
        if self.dominant.as_deref() == Some(who) {
            self.dominant = None;
        }
        if self.challenger.as_ref().is_some_and(|(c, _)| c == who) {
            self.challenger = None;
        }
    }

    pub(crate) fn dominant(&self) -> Option<&ParticipantId> {
        self.dominant.as_ref()
    }

    /// Re-evaluates; returns the new dominant speaker when it changed.
    pub(crate) fn evaluate(&mut self, now: Instant) -> Option<ParticipantId> {
        let loudest = self
            .loudness
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.at) <= STALE && l.value >= FLOOR)
            .max_by(|a, b| a.1.value.total_cmp(&b.1.value))
            .map(|(who, _)| who.clone());
        let Some(loudest) = loudest else {
            self.challenger = None;
            return None;
        };
        if self.dominant.as_ref() == Some(&loudest) {
            self.challenger = None;
            return None;
        }
        match &self.challenger {
            Some((c, since)) if *c == loudest => {
                // Nobody dominant yet: the first speaker takes the floor at once.
                if self.dominant.is_none() || now.saturating_duration_since(*since) >= HOLD {
                    self.challenger = None;
                    self.dominant = Some(loudest.clone());
                    return Some(loudest);
                }
                None
            }
            _ => {
                if self.dominant.is_none() {
                    self.dominant = Some(loudest.clone());
                    return Some(loudest);
                }
                self.challenger = Some((loudest, now));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Feeds 20 ms packets of `a` and `b` levels from `from` to `to` ms; returns the
    /// changes seen.
    fn speak(d: &mut Detector, t0: Instant, from: u64, to: u64, a: u8, b: u8) -> Vec<String> {
        let mut changes = Vec::new();
        let mut t = from;
        while t < to {
            d.observe("a", a, ms(t0, t));
            d.observe("b", b, ms(t0, t));
            changes.extend(d.evaluate(ms(t0, t)));
            t += 20;
        }
        changes
    }

    #[test]
    fn reads_the_level_and_ignores_the_voice_bit() {
        assert_eq!(level(&[0x80 | 30]), Some(30));
        assert_eq!(level(&[127]), Some(127));
        assert_eq!(level(&[]), None);
    }

    #[test]
    fn the_first_speaker_is_dominant_at_once_and_silence_is_nobody() {
        let t0 = Instant::now();
        let mut d = Detector::default();
        assert!(speak(&mut d, t0, 0, 500, 127, 127).is_empty());
        assert_eq!(speak(&mut d, t0, 500, 800, 20, 127), vec!["a".to_owned()]);
    }

    #[test]
    fn a_challenger_must_stay_loudest_for_the_hold() {
        let t0 = Instant::now();
        let mut d = Detector::default();
        assert_eq!(speak(&mut d, t0, 0, 1000, 20, 90), vec!["a".to_owned()]);
        // b is louder for less than the hold (after the average catches up): no change.
        assert!(speak(&mut d, t0, 1000, 1500, 60, 10).is_empty());
        assert!(speak(&mut d, t0, 1500, 2500, 20, 90).is_empty());
        assert_eq!(d.dominant().map(String::as_str), Some("a"));
        // b is louder for long enough: it takes over, once, after the hold.
        let changes = speak(&mut d, t0, 2500, 4500, 60, 10);
        assert_eq!(changes, vec!["b".to_owned()]);
    }

    #[test]
    fn a_leaver_is_forgotten() {
        let t0 = Instant::now();
        let mut d = Detector::default();
        speak(&mut d, t0, 0, 200, 20, 127);
        d.remove("a");
        assert_eq!(d.dominant(), None);
        assert_eq!(speak(&mut d, t0, 200, 400, 127, 30), vec!["b".to_owned()]);
    }
}

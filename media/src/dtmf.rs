//! RFC 4733 telephone-event detection: one digit per event.
//!
//! An event is identified by its RTP timestamp (constant across all its packets,
//! including the three retransmitted end packets). A digit is emitted at the first end
//! packet of a timestamp; if an event's end packets are all lost, the digit is emitted
//! when the next event (a new timestamp) starts, so no key press is ever dropped or
//! doubled.

/// Maps an RFC 4733 event code to its DTMF digit; other events (flash, tones) give `None`.
pub fn digit_for_event(code: u8) -> Option<char> {
    match code {
        0..=9 => Some(char::from(b'0' + code)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + code - 12)),
        _ => None,
    }
}

/// Per-leg telephone-event state.
#[derive(Debug, Clone, Default)]
pub struct DtmfDetector {
    /// The event in progress: (timestamp, digit, already emitted).
    current: Option<(u32, char, bool)>,
}

impl DtmfDetector {
    /// Feeds one telephone-event payload with its RTP timestamp; returns a digit when an
    /// event completes. Malformed payloads are ignored.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let (&event, &flags) = match (payload.first(), payload.get(1)) {
            (Some(e), Some(f)) if payload.len() >= 4 => (e, f),
            _ => return None,
        };
        let end = flags & 0x80 != 0;
        let digit = digit_for_event(event)?;
        match self.current {
            Some((ts, _, emitted)) if ts == timestamp => {
                if end && !emitted {
                    self.current = Some((ts, digit, true));
                    return Some(digit);
                }
                None
            }
            previous => {
                self.current = Some((timestamp, digit, end));
                // a new event: first flush a previous one whose end we never saw
                match previous {
                    Some((_, prev_digit, false)) => {
                        if end {
                            // both complete; report the older now, the newer is marked
                            // emitted only if we can report it: keep it pending instead
                            self.current = Some((timestamp, digit, false));
                        }
                        Some(prev_digit)
                    }
                    _ => end.then_some(digit),
                }
            }
        }
    }

    /// Flushes an event whose end packets never arrived (call when the stream stops).
    pub fn flush(&mut self) -> Option<char> {
        match self.current.take() {
            Some((_, d, false)) => Some(d),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    #[test]
    fn one_digit_per_event_despite_retransmitted_ends() {
        // given an event '5' with 3 progress packets and 3 end packets
        let mut d = DtmfDetector::default();
        let mut out = vec![];
        for dur in [160, 320, 480] {
            out.extend(d.on_packet(1000, &pkt(5, false, dur)));
        }
        for _ in 0..3 {
            out.extend(d.on_packet(1000, &pkt(5, true, 640)));
        }
        // then '5' is reported exactly once
        assert_eq!(out, vec!['5']);
    }

    #[test]
    fn same_digit_twice_is_two_events() {
        let mut d = DtmfDetector::default();
        let mut out = vec![];
        for ts in [1000, 5000] {
            out.extend(d.on_packet(ts, &pkt(11, false, 160)));
            out.extend(d.on_packet(ts, &pkt(11, true, 320)));
            out.extend(d.on_packet(ts, &pkt(11, true, 320)));
        }
        assert_eq!(out, vec!['#', '#']);
    }

    #[test]
    fn lost_end_packets_are_recovered_at_the_next_event() {
        // given '*' whose end packets are all lost, then '1' complete
        let mut d = DtmfDetector::default();
        let mut out = vec![];
        out.extend(d.on_packet(100, &pkt(10, false, 160)));
        out.extend(d.on_packet(900, &pkt(1, false, 160)));
        out.extend(d.on_packet(900, &pkt(1, true, 320)));
        assert_eq!(out, vec!['*', '1']);
    }

    #[test]
    fn lost_start_with_only_end_packets_still_reports() {
        let mut d = DtmfDetector::default();
        let mut out = vec![];
        out.extend(d.on_packet(100, &pkt(12, true, 800)));
        out.extend(d.on_packet(100, &pkt(12, true, 800)));
        assert_eq!(out, vec!['A']);
        assert_eq!(d.flush(), None);
    }

    #[test]
    fn non_digit_events_and_short_payloads_are_ignored() {
        let mut d = DtmfDetector::default();
        assert_eq!(d.on_packet(1, &pkt(16, true, 160)), None); // flash
        assert_eq!(d.on_packet(1, &[5, 0x80]), None);
        assert_eq!(d.on_packet(1, &[]), None);
    }

    #[test]
    fn digit_table() {
        let all: String = (0..16).filter_map(digit_for_event).collect();
        assert_eq!(all, "0123456789*#ABCD");
    }
}

//! A browser's audio on its way to the SIP callers: Opus packets decoded as they
//! arrive, resampled to 8 kHz with an anti-aliasing filter, and queued until the mixer
//! takes one frame per 20 ms tick.
//!
//! The queue is the jitter buffer of this direction. Packets reach the SFU at 20 ms
//! intervals with network jitter and the mixer ticks on its own clock, so the queue
//! starts playing once it holds `target` frames, grows `target` by one frame after
//! each underrun (up to [`MAX_TARGET`]) and lowers it again after
//! [`CALM_TICKS`] ticks without one. A queue longer than its target plus
//! [`SLACK`] drops its oldest frame: the two clocks drift, and latency must not grow.
//! A gap of up to [`MAX_CONCEALED`] packets is concealed by the decoder (PLC); a
//! larger one starts over (a new talk spurt, or the participant was muted).

use std::collections::VecDeque;

use crate::audio::{AudioError, Downsampler, OpusDecoder, FRAME_NARROW, FRAME_WIDE};

/// Frames queued before playout starts, at first.
pub(crate) const MIN_TARGET: usize = 1;
/// The largest playout target (80 ms).
pub(crate) const MAX_TARGET: usize = 4;
/// Ticks without an underrun after which the target shrinks by a frame (10 s).
pub(crate) const CALM_TICKS: u32 = 500;
/// Frames allowed above the target before the oldest is dropped.
pub(crate) const SLACK: usize = 2;
/// Missing packets concealed by the decoder; beyond, the stream starts over.
pub(crate) const MAX_CONCEALED: u16 = 3;
/// Packets decoded per playout tick on average (a browser sends one per 20 ms): a
/// client flooding the SFU does not make the bridge decode beyond this.
const PACKETS_PER_TICK: u32 = 3;
/// Packets decoded in a burst above that rate.
const BURST: u32 = 10;

/// One 20 ms frame of a browser, at both rates: 8 kHz for the SIP mix, 48 kHz for the
/// room's recording.
#[derive(Clone)]
pub(crate) struct Frame {
    pub(crate) narrow: [i16; FRAME_NARROW],
    pub(crate) wide: Box<[i16; FRAME_WIDE]>,
}

/// What the input counted, for statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InputCounters {
    pub(crate) packets: u64,
    pub(crate) decode_errors: u64,
    pub(crate) concealed: u64,
    pub(crate) late: u64,
    pub(crate) underruns: u64,
    pub(crate) dropped: u64,
    /// Packets not decoded: beyond the decoding budget (a flood).
    pub(crate) throttled: u64,
}

pub(crate) struct BrowserInput {
    decoder: OpusDecoder,
    down: Downsampler,
    /// Sequence number expected next (`None` before the first packet).
    next_sequence: Option<u16>,
    queue: VecDeque<Frame>,
    playing: bool,
    target: usize,
    calm: u32,
    wide: Box<[i16; FRAME_WIDE]>,
    /// Packets that may still be decoded (refilled by each tick, see [`BURST`]).
    budget: u32,
    pub(crate) counters: InputCounters,
}

impl BrowserInput {
    pub(crate) fn new() -> Result<Self, AudioError> {
        Ok(BrowserInput {
            decoder: OpusDecoder::new()?,
            down: Downsampler::new()?,
            next_sequence: None,
            queue: VecDeque::with_capacity(MAX_TARGET + SLACK + 1),
            playing: false,
            target: MIN_TARGET,
            calm: 0,
            wide: Box::new([0; FRAME_WIDE]),
            budget: BURST,
            counters: InputCounters::default(),
        })
    }

    /// One received Opus packet with its RTP sequence number.
    pub(crate) fn push(&mut self, sequence: u16, payload: &[u8]) {
        self.counters.packets += 1;
        if self.budget == 0 {
            self.counters.throttled += 1;
            return;
        }
        self.budget -= 1;
        if let Some(expected) = self.next_sequence {
            let ahead = sequence.wrapping_sub(expected);
            if ahead >= 0x8000 {
                // behind what we already played or queued: late or duplicated
                self.counters.late += 1;
                return;
            }
            if ahead > MAX_CONCEALED {
                // a long gap: the decoder's state is stale; start over
                self.reset_stream();
            } else {
                for _ in 0..ahead {
                    if self.decoder.conceal(&mut self.wide).is_ok() {
                        self.counters.concealed += 1;
                        self.enqueue();
                    }
                }
            }
        }
        self.next_sequence = Some(sequence.wrapping_add(1));
        match self.decoder.decode(payload, &mut self.wide) {
            Ok(()) => self.enqueue(),
            Err(_) => self.counters.decode_errors += 1,
        }
    }

    fn reset_stream(&mut self) {
        if let Ok(decoder) = OpusDecoder::new() {
            self.decoder = decoder;
        }
    }

    fn enqueue(&mut self) {
        let mut narrow = [0i16; FRAME_NARROW];
        if self.down.process(&self.wide, &mut narrow).is_err() {
            self.counters.decode_errors += 1;
            return;
        }
        self.queue.push_back(Frame {
            narrow,
            wide: self.wide.clone(),
        });
        while self.queue.len() > self.target + SLACK {
            self.queue.pop_front();
            self.counters.dropped += 1;
        }
    }

    /// The frame for this tick, if any (none: this browser is silent this tick).
    pub(crate) fn pop(&mut self) -> Option<Frame> {
        self.budget = (self.budget + PACKETS_PER_TICK).min(BURST);
        self.calm = self.calm.saturating_add(1);
        if self.calm >= CALM_TICKS && self.target > MIN_TARGET {
            self.target -= 1;
            self.calm = 0;
        }
        if !self.playing {
            if self.queue.len() < self.target {
                return None;
            }
            self.playing = true;
        }
        match self.queue.pop_front() {
            Some(frame) => Some(frame),
            None => {
                // Ran dry while playing: either jitter (a packet is late) or the
                // browser stopped sending (muted, silent). Buffer again, deeper.
                self.playing = false;
                self.counters.underruns += 1;
                self.target = (self.target + 1).min(MAX_TARGET);
                self.calm = 0;
                None
            }
        }
    }

    /// Frames waiting.
    #[cfg(test)]
    pub(crate) fn depth(&self) -> usize {
        self.queue.len()
    }

    #[cfg(test)]
    pub(crate) fn target(&self) -> usize {
        self.target
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::audio::{goertzel, OpusEncoder, RATE_NARROW};

    fn tone_packets(count: usize, freq: f64) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new(32_000).unwrap();
        let mut out = Vec::new();
        for n in 0..count {
            let mut pcm = [0i16; FRAME_WIDE];
            for (i, s) in pcm.iter_mut().enumerate() {
                let t = (n * FRAME_WIDE + i) as f64 / 48_000.0;
                *s = (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16;
            }
            let mut buf = [0u8; 1500];
            let len = enc.encode(&pcm, &mut buf).unwrap();
            out.push(buf[..len].to_vec());
        }
        out
    }

    #[test]
    fn a_browser_tone_reaches_the_8_khz_side() {
        let mut input = BrowserInput::new().unwrap();
        let packets = tone_packets(25, 1000.0);
        let mut frames = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            input.push(i as u16, p);
            frames.extend(input.pop());
        }
        assert!(frames.len() >= 20, "only {} frames played", frames.len());
        let last = &frames.last().unwrap().narrow;
        let at = goertzel(last, RATE_NARROW, 1000.0);
        let off = goertzel(last, RATE_NARROW, 2500.0);
        assert!(at > 100.0 * off, "1 kHz {at} vs 2.5 kHz {off}");
    }

    #[test]
    fn playout_waits_for_the_target_and_deepens_after_an_underrun() {
        let mut input = BrowserInput::new().unwrap();
        let packets = tone_packets(10, 500.0);
        assert!(input.pop().is_none(), "nothing queued yet");
        input.push(0, &packets[0]);
        assert!(input.pop().is_some(), "target 1: plays at once");
        assert!(input.pop().is_none(), "ran dry");
        assert_eq!(input.counters.underruns, 1);
        assert_eq!(input.target(), 2);
        input.push(1, &packets[1]);
        assert!(
            input.pop().is_none(),
            "target 2 is not reached with one frame"
        );
        input.push(2, &packets[2]);
        assert!(input.pop().is_some());
    }

    #[test]
    fn a_short_gap_is_concealed_and_a_late_packet_dropped() {
        let mut input = BrowserInput::new().unwrap();
        let packets = tone_packets(6, 500.0);
        input.push(10, &packets[0]);
        input.push(13, &packets[1]); // 11 and 12 lost
        assert_eq!(input.counters.concealed, 2);
        input.push(12, &packets[2]);
        assert_eq!(input.counters.late, 1);
        assert_eq!(input.depth(), 3);
    }

    #[test]
    fn the_queue_never_grows_past_its_bound() {
        let mut input = BrowserInput::new().unwrap();
        let packets = tone_packets(BURST as usize, 500.0);
        for (i, p) in packets.iter().enumerate() {
            input.push(i as u16, p);
        }
        assert_eq!(input.depth(), MIN_TARGET + SLACK);
        assert_eq!(
            input.counters.dropped,
            u64::from(BURST) - (MIN_TARGET + SLACK) as u64
        );
    }

    #[test]
    fn a_flood_is_not_decoded_beyond_the_budget() {
        let mut input = BrowserInput::new().unwrap();
        let packets = tone_packets(1, 500.0);
        for i in 0..1000u16 {
            input.push(i, &packets[0]);
        }
        // Without ticks, only a burst is decoded; the rest is not, counted.
        assert_eq!(
            input.counters.throttled,
            1000 - u64::from(BURST),
            "{:?}",
            input.counters
        );
        input.pop();
        input.push(1000, &packets[0]);
        assert_eq!(
            input.counters.throttled,
            1000 - u64::from(BURST),
            "a tick refills"
        );
    }

    #[test]
    fn hostile_payloads_are_counted_not_fatal() {
        let mut input = BrowserInput::new().unwrap();
        for (i, junk) in [&[][..], &[0xff; 3][..], &[0x7f; 1400][..]]
            .iter()
            .enumerate()
        {
            input.push(i as u16, junk);
        }
        assert_eq!(input.counters.packets, 3);
    }
}

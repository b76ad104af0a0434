//! Per-leg jitter buffer: a fixed playout delay, reordering by sequence number.
//!
//! One RTP packet is one 20 ms frame (ptime 20 is what the gateway negotiates; a longer
//! payload is truncated, a shorter one padded with silence). The buffer is a ring of
//! slots indexed by sequence number (twice the delay plus two, rounded up to a power of
//! two, at most `MAX_CAPACITY`), so memory is fixed whatever a phone sends, and small
//! enough that a thousand legs' rings stay in cache. Playout starts `delay` after the first packet of a talk spurt; from then on
//! each 20 ms tick takes the next sequence number: present → played, missing → concealed
//! (the last frame repeated at half the level, then silence). Late and duplicate packets
//! are dropped; an SSRC change or a jump in sequence numbers restarts the stream; a
//! buffer that stays empty for longer than its delay goes idle (silence, no loss
//! counted) until packets come back. Timestamps are not used for playout, so timestamp
//! jumps are harmless.

use std::time::{Duration, Instant};

use crate::g711::G711;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Most slots in a ring (640 ms of audio).
pub const MAX_CAPACITY: usize = 32;
/// Fewest slots in a ring.
const MIN_CAPACITY: usize = 8;
/// Concealed frames before falling back to silence.
const MAX_CONCEAL: u8 = 3;
/// A sequence number this far behind the playout point is a restart, not a late packet.
const MAX_MISORDER: i32 = 100;

/// What one tick produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    /// A received frame was decoded into the output.
    Audio,
    /// A frame was missing and the output holds a concealment.
    Concealed,
    /// Nothing to play (not started, idle, or concealment exhausted): output untouched.
    Silent,
}

/// Counters exposed through `MediaStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub played: u64,
    pub late: u64,
    pub duplicate: u64,
    pub lost: u64,
    pub overflow: u64,
    pub resets: u64,
}

#[derive(Clone, Copy)]
struct Slot {
    seq: u16,
    len: u8,
    occupied: bool,
    payload: [u8; FRAME_SAMPLES],
}

const EMPTY: Slot = Slot {
    seq: 0,
    len: 0,
    occupied: false,
    payload: [0; FRAME_SAMPLES],
};

/// The jitter buffer of one leg.
pub struct JitterBuffer {
    slots: Box<[Slot]>,
    /// `slots.len() - 1` (the length is a power of two).
    mask: usize,
    delay: Duration,
    delay_frames: u32,
    ssrc: Option<u32>,
    /// Next sequence number to play (`None` until a packet arrives).
    next: Option<u16>,
    /// When playout may start (first arrival + delay); `None` while playing or idle.
    start_at: Option<Instant>,
    playing: bool,
    buffered: u32,
    empty_ticks: u32,
    conceal_run: u8,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer holding `delay` of audio before playout (rounded to whole frames, at
    /// least one, at most `MAX_CAPACITY / 2 - 1`).
    pub fn new(delay: Duration) -> Self {
        let frames = (delay.as_millis() / 20).clamp(1, (MAX_CAPACITY / 2 - 1) as u128) as u32;
        let capacity = (2 * frames as usize + 2)
            .next_power_of_two()
            .clamp(MIN_CAPACITY, MAX_CAPACITY);
        JitterBuffer {
            slots: vec![EMPTY; capacity].into_boxed_slice(),
            mask: capacity - 1,
            delay: Duration::from_millis(u64::from(frames) * 20),
            delay_frames: frames,
            ssrc: None,
            next: None,
            start_at: None,
            playing: false,
            buffered: 0,
            empty_ticks: 0,
            conceal_run: 0,
            stats: JitterStats::default(),
        }
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Frames currently held.
    pub fn depth(&self) -> u32 {
        self.buffered
    }

    fn clear(&mut self) {
        for s in self.slots.iter_mut() {
            s.occupied = false;
        }
        self.buffered = 0;
        self.next = None;
        self.start_at = None;
        self.playing = false;
        self.empty_ticks = 0;
    }

    /// Stores one audio payload received at `now`.
    pub fn push(&mut self, ssrc: u32, seq: u16, payload: &[u8], now: Instant) {
        self.stats.received += 1;
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.stats.resets += 1;
            }
            self.clear();
            self.ssrc = Some(ssrc);
        }
        let next = match self.next {
            None => {
                self.next = Some(seq);
                self.start_at = Some(now + self.delay);
                seq
            }
            Some(n) => n,
        };
        let diff = i32::from(seq.wrapping_sub(next) as i16);
        if diff < 0 {
            if diff < -MAX_MISORDER {
                // far behind: the phone restarted its sequence numbers
                self.stats.resets += 1;
                self.clear();
                self.next = Some(seq);
                self.start_at = Some(now + self.delay);
            } else if !self.playing && diff >= -((self.capacity() / 4) as i32) {
                // reordered before playout began: start earlier
                self.next = Some(seq);
            } else {
                self.stats.late += 1;
                return;
            }
        } else if diff >= self.capacity() as i32 {
            if diff > 3000 {
                self.stats.resets += 1;
                self.clear();
                self.next = Some(seq);
                self.start_at = Some(now + self.delay);
            } else {
                // far ahead (clock drift, burst): drop the oldest to make room
                let new_next = seq.wrapping_sub(self.capacity() as u16 - 1);
                let mut s = next;
                while s != new_next {
                    if let Some(slot) = self.slots.get_mut(usize::from(s) & self.mask) {
                        if slot.occupied && slot.seq == s {
                            slot.occupied = false;
                            self.buffered = self.buffered.saturating_sub(1);
                            self.stats.overflow += 1;
                        }
                    }
                    s = s.wrapping_add(1);
                }
                self.next = Some(new_next);
            }
        }
        let Some(slot) = self.slots.get_mut(usize::from(seq) & self.mask) else {
            return;
        };
        if slot.occupied {
            if slot.seq == seq {
                self.stats.duplicate += 1;
                return;
            }
            // a stale entry from before a restart
            self.buffered = self.buffered.saturating_sub(1);
        }
        let len = payload.len().min(FRAME_SAMPLES);
        slot.seq = seq;
        slot.len = len as u8;
        slot.occupied = true;
        if let Some(full) = payload.first_chunk::<FRAME_SAMPLES>() {
            // the common case, as a fixed-size copy the compiler inlines
            slot.payload = *full;
        } else if let (Some(dst), Some(src)) = (slot.payload.get_mut(..len), payload.get(..len)) {
            dst.copy_from_slice(src);
        }
        self.buffered += 1;
    }

    /// Produces the frame for this tick into `out`, decoding with `codec`. Pass the same
    /// buffer every tick: concealment fades the previous frame left in it (saves a copy
    /// per frame), and `Silent` leaves it untouched.
    pub fn pop(&mut self, now: Instant, codec: G711, out: &mut [i16; FRAME_SAMPLES]) -> Playout {
        let Some(next) = self.next else {
            return Playout::Silent;
        };
        if !self.playing {
            match self.start_at {
                Some(at) if now >= at => {
                    self.playing = true;
                    self.start_at = None;
                }
                _ => return Playout::Silent,
            }
        }
        let mut next = next;
        // slow drift: the ring nearly full while the delay asks for less → skip one
        // frame a tick
        if self.buffered as usize >= self.capacity() - 1 {
            if let Some(slot) = self.slots.get_mut(usize::from(next) & self.mask) {
                if slot.occupied && slot.seq == next {
                    slot.occupied = false;
                    self.buffered -= 1;
                    self.stats.overflow += 1;
                }
            }
            next = next.wrapping_add(1);
        }
        self.next = Some(next.wrapping_add(1));
        let slot = self.slots.get_mut(usize::from(next) & self.mask);
        if let Some(slot) = slot.filter(|s| s.occupied && s.seq == next) {
            slot.occupied = false;
            self.buffered -= 1;
            let len = usize::from(slot.len);
            codec.decode(&slot.payload[..len], out);
            if len < FRAME_SAMPLES {
                out[len..].fill(0);
            }
            self.conceal_run = 0;
            self.empty_ticks = 0;
            self.stats.played += 1;
            return Playout::Audio;
        }
        if self.buffered == 0 {
            self.empty_ticks += 1;
            if self.empty_ticks > self.delay_frames {
                // the talk spurt ended (or the phone stopped): idle until packets return
                self.next = None;
                self.playing = false;
                self.conceal_run = 0;
                self.empty_ticks = 0;
                return Playout::Silent;
            }
        } else {
            self.stats.lost += 1;
        }
        if self.conceal_run >= MAX_CONCEAL {
            return Playout::Silent;
        }
        self.conceal_run += 1;
        // `out` still holds the previous frame (see `pop`): fade it in place
        for o in out.iter_mut() {
            *o /= 2;
        }
        Playout::Concealed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MS20: Duration = Duration::from_millis(20);

    /// A payload whose first sample decodes to a value identifying `tag`.
    fn payload(tag: u8) -> [u8; 160] {
        [tag; 160]
    }

    fn run(jb: &mut JitterBuffer, t0: Instant, ticks: u32) -> Vec<(Playout, u8)> {
        let mut out = [0i16; 160];
        (0..ticks)
            .map(|i| {
                let p = jb.pop(t0 + MS20 * i, G711::Pcma, &mut out);
                (p, G711::Pcma.encode_sample(out[0]))
            })
            .collect()
    }

    #[test]
    fn holds_the_delay_then_plays_in_order() {
        // given packets 10, 12, 11 arriving within the 40 ms delay
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(40));
        jb.push(1, 10, &payload(0x10), t0);
        jb.push(1, 12, &payload(0x12), t0);
        jb.push(1, 11, &payload(0x11), t0);
        // when ticking, then two silent ticks, then 10, 11, 12 in order
        let got = run(&mut jb, t0, 5);
        assert_eq!(got[0].0, Playout::Silent);
        assert_eq!(got[1].0, Playout::Silent);
        assert_eq!(got[2], (Playout::Audio, 0x10));
        assert_eq!(got[3], (Playout::Audio, 0x11));
        assert_eq!(got[4], (Playout::Audio, 0x12));
    }

    #[test]
    fn reorder_before_playout_starts_earlier() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(40));
        jb.push(1, 11, &payload(0x11), t0);
        jb.push(1, 10, &payload(0x10), t0);
        let got = run(&mut jb, t0 + MS20 * 2, 2);
        assert_eq!(got, vec![(Playout::Audio, 0x10), (Playout::Audio, 0x11)]);
    }

    #[test]
    fn loss_is_concealed_and_counted() {
        // given 1, 2, 4 (3 lost)
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(20));
        for s in [1u16, 2, 4] {
            jb.push(1, s, &payload(0xAA), t0);
        }
        let got = run(&mut jb, t0 + MS20, 4);
        assert_eq!(got[2].0, Playout::Concealed);
        assert_eq!(got[3].0, Playout::Audio);
        assert_eq!(jb.stats().lost, 1);
    }

    #[test]
    fn duplicates_and_late_packets_are_dropped() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(20));
        jb.push(1, 5, &payload(1), t0);
        jb.push(1, 5, &payload(1), t0);
        assert_eq!(jb.stats().duplicate, 1);
        let _ = run(&mut jb, t0 + MS20, 2);
        jb.push(1, 5, &payload(1), t0);
        jb.push(1, 6, &payload(1), t0);
        assert_eq!(jb.stats().late, 2);
    }

    #[test]
    fn sequence_wraps_around() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(20));
        for (s, tag) in [(65534u16, 1u8), (65535, 2), (0, 3), (1, 4)] {
            jb.push(1, s, &payload(tag * 0x11), t0);
        }
        let got: Vec<u8> = run(&mut jb, t0 + MS20, 4).iter().map(|g| g.1).collect();
        assert_eq!(got, vec![0x11, 0x22, 0x33, 0x44]);
    }

    #[test]
    fn ssrc_change_restarts_the_stream() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(20));
        jb.push(1, 100, &payload(0x11), t0);
        jb.push(2, 9000, &payload(0x22), t0);
        let got = run(&mut jb, t0 + MS20, 1);
        assert_eq!(got[0], (Playout::Audio, 0x22));
        assert_eq!(jb.stats().resets, 1);
    }

    #[test]
    fn sequence_jump_restarts_the_stream() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(20));
        jb.push(1, 100, &payload(0x11), t0);
        jb.push(1, 30000, &payload(0x22), t0);
        let got = run(&mut jb, t0 + MS20, 1);
        assert_eq!(got[0], (Playout::Audio, 0x22));
    }

    #[test]
    fn stays_bounded_under_a_flood() {
        // given a burst far beyond the capacity, then the depth never exceeds it
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(60));
        for s in 0..1000u16 {
            jb.push(1, s, &payload(1), t0);
            assert!(jb.depth() <= jb.capacity() as u32);
        }
        assert!(jb.stats().overflow > 0);
    }

    #[test]
    fn goes_idle_after_the_talk_spurt_without_counting_loss() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Duration::from_millis(40));
        jb.push(1, 1, &payload(0x55), t0);
        let got = run(&mut jb, t0, 10);
        assert_eq!(got[2].0, Playout::Audio);
        assert!(got[9].0 == Playout::Silent);
        assert_eq!(jb.stats().lost, 0);
        // when packets resume later (seq 200), then they play after the delay
        let t1 = t0 + Duration::from_secs(5);
        jb.push(1, 200, &payload(0x55), t1);
        let got = run(&mut jb, t1, 3);
        assert_eq!(got[2].0, Playout::Audio);
    }
}

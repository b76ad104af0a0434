//! Per-leg jitter buffer: reordering by sequence number, and a playout delay that is
//! either fixed or adaptive between one frame and a maximum.
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
//!
//! Adaptive ([`JitterBuffer::adaptive`], what the conference uses): the delay starts at
//! one frame (20 ms) and follows the network. When the frame due is missing and nothing
//! later is queued (the stream is late as a whole), a concealment is played and the
//! frame is waited for a tick more, as long as the delay is below its maximum: if it
//! comes, the longer delay stays; if a later frame comes first (a loss) or none does
//! (the talk spurt ended), the wait is undone. When for a whole second every tick left
//! at least one frame queued after playing, the delay is a frame longer than the
//! network needs: one frame is dropped and the delay shrinks by one (not within two
//! seconds of growing). On loopback or a quiet LAN the delay settles at 20 ms; a jittery path
//! grows it up to the maximum (`media.jitter_ms`).

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
/// Ticks (1 s) of a queue never empty after playout before an adaptive delay shrinks.
const SHRINK_WINDOW: u32 = 50;
/// Ticks (2 s) after a growth during which the delay does not shrink.
const GROWTH_CALM: u32 = 100;

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
    /// Adaptive delay: frames the delay grew by (a concealment played while waiting).
    pub stretched: u64,
    /// Adaptive delay: frames dropped to shrink it.
    pub shrunk: u64,
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
    /// The longest delay (the fixed one, for a fixed buffer), in frames.
    delay_frames: u32,
    /// The delay a talk spurt starts with now; between 1 and `delay_frames`.
    target_frames: u32,
    adaptive: bool,
    /// The frame the delay grew to wait for, and by how many frames, until it comes
    /// (the growth stays) or is given up (it is undone).
    held: Option<u16>,
    held_frames: u32,
    /// Ticks in a row that left a frame queued after playout.
    queued_ticks: u32,
    /// Ticks since the delay last grew.
    since_growth: u32,
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
        Self::build(delay, false)
    }

    /// A buffer whose delay adapts between one frame and `max` (see the module doc).
    pub fn adaptive(max: Duration) -> Self {
        Self::build(max, true)
    }

    fn build(delay: Duration, adaptive: bool) -> Self {
        let frames = (delay.as_millis() / 20).clamp(1, (MAX_CAPACITY / 2 - 1) as u128) as u32;
        let capacity = (2 * frames as usize + 2)
            .next_power_of_two()
            .clamp(MIN_CAPACITY, MAX_CAPACITY);
        JitterBuffer {
            slots: vec![EMPTY; capacity].into_boxed_slice(),
            mask: capacity - 1,
            delay_frames: frames,
            target_frames: if adaptive { 1 } else { frames },
            adaptive,
            held: None,
            held_frames: 0,
            queued_ticks: 0,
            since_growth: GROWTH_CALM,
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

    /// The delay a talk spurt starts with now.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(u64::from(self.target_frames) * 20)
    }

    fn clear(&mut self) {
        for s in self.slots.iter_mut() {
            s.occupied = false;
        }
        // A wait in progress is for a stream that is gone.
        self.target_frames = self.target_frames.saturating_sub(self.held_frames).max(1);
        self.held = None;
        self.held_frames = 0;
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
                self.start_at = Some(now + self.delay());
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
                self.start_at = Some(now + self.delay());
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
                self.start_at = Some(now + self.delay());
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
        self.since_growth = self.since_growth.saturating_add(1);
        if self.adaptive {
            let present = self
                .slots
                .get(usize::from(next) & self.mask)
                .is_some_and(|s| s.occupied && s.seq == next);
            if present {
                if self.held == Some(next) {
                    // It was late, not lost: the longer delay stays.
                    self.stats.stretched += u64::from(self.held_frames);
                    self.held = None;
                    self.held_frames = 0;
                }
            } else if self.buffered == 0 && self.target_frames < self.delay_frames {
                // Nothing queued: the stream is late as a whole (or the talk spurt
                // ended). Wait a frame more, a concealment meanwhile.
                self.held = Some(next);
                self.held_frames += 1;
                self.target_frames += 1;
                self.since_growth = 0;
                self.queued_ticks = 0;
                self.next = Some(next);
                return self.conceal(out);
            } else if self.held == Some(next) {
                // Lost (a later frame came first), or the spurt ended: the wait was
                // for nothing, so the delay goes back.
                self.target_frames = self.target_frames.saturating_sub(self.held_frames).max(1);
                self.held = None;
                self.held_frames = 0;
            }
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
            if self.adaptive {
                self.maybe_shrink(next.wrapping_add(1));
            }
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
        self.conceal(out)
    }

    /// Concealment: the previous frame faded, a few times, then silence.
    fn conceal(&mut self, out: &mut [i16; FRAME_SAMPLES]) -> Playout {
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

    /// After a frame played: a second of ticks that all left a frame queued means the
    /// delay is longer than the network needs; drop the next frame (`next`) and
    /// shorten it by one.
    fn maybe_shrink(&mut self, next: u16) {
        if self.buffered == 0 {
            self.queued_ticks = 0;
            return;
        }
        self.queued_ticks += 1;
        if self.queued_ticks < SHRINK_WINDOW
            || self.target_frames <= 1
            || self.since_growth < GROWTH_CALM
        {
            return;
        }
        self.queued_ticks = 0;
        if let Some(slot) = self.slots.get_mut(usize::from(next) & self.mask) {
            if slot.occupied && slot.seq == next {
                slot.occupied = false;
                self.buffered -= 1;
                self.next = Some(next.wrapping_add(1));
                self.target_frames -= 1;
                self.stats.shrunk += 1;
            }
        }
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

    /// Drives an adaptive buffer tick by tick: packet `n` (seq `n`) arrives at
    /// `t0 + 20 ms * n + late(n)` (as ms), pops run at `t0 + 20 ms * tick + 10 ms`.
    /// Returns what each tick played.
    fn drive(jb: &mut JitterBuffer, ticks: u32, late: impl Fn(u32) -> Option<u64>) -> Vec<Playout> {
        let t0 = Instant::now();
        let mut out = [0i16; 160];
        let mut arrivals: Vec<(Instant, u16)> = (0..ticks)
            .filter_map(|n| late(n).map(|l| (t0 + MS20 * n + Duration::from_millis(l), n as u16)))
            .collect();
        arrivals.sort();
        let mut pending = arrivals.into_iter().peekable();
        (0..ticks)
            .map(|tick| {
                let now = t0 + MS20 * tick + Duration::from_millis(10);
                while let Some((at, seq)) = pending.next_if(|(at, _)| *at <= now) {
                    jb.push(9, seq, &payload(0x55), at);
                }
                jb.pop(now, G711::Pcma, &mut out)
            })
            .collect()
    }

    #[test]
    fn an_adaptive_buffer_on_a_clean_path_plays_after_one_frame() {
        let mut jb = JitterBuffer::adaptive(Duration::from_millis(60));
        let got = drive(&mut jb, 100, |_| Some(0));
        // The first packet arrives at 0 and plays at the tick after 20 ms (30 ms).
        assert_eq!(
            &got[..3],
            &[Playout::Silent, Playout::Audio, Playout::Audio]
        );
        assert!(got[1..].iter().all(|p| *p == Playout::Audio));
        assert_eq!(jb.delay(), MS20);
        assert_eq!((jb.stats().lost, jb.stats().stretched), (0, 0));
    }

    #[test]
    fn late_packets_grow_the_delay_instead_of_being_lost() {
        let mut jb = JitterBuffer::adaptive(Duration::from_millis(60));
        // From packet 20 on, everything arrives 65 ms late (a path that got slower):
        // packets had 30 ms to spare (arrival 10 ms before a tick, one frame of
        // delay), so the delay grows by two frames, and nothing is lost.
        let got = drive(&mut jb, 200, |n| Some(if n >= 20 { 65 } else { 0 }));
        let s = jb.stats();
        assert_eq!((s.lost, s.late, s.stretched), (0, 0, 2), "{s:?}");
        assert_eq!(jb.delay(), Duration::from_millis(60));
        let played = got.iter().filter(|p| **p == Playout::Audio).count() as u64;
        assert_eq!(played, s.played);
    }

    #[test]
    fn a_lost_packet_or_the_end_of_a_spurt_does_not_grow_the_delay() {
        let mut jb = JitterBuffer::adaptive(Duration::from_millis(60));
        // Packet 30 is lost; the phone stops after 60 packets.
        drive(&mut jb, 120, |n| (n != 30 && n < 60).then_some(0));
        let s = jb.stats();
        assert_eq!((s.lost, s.stretched), (1, 0), "{s:?}");
        assert_eq!(jb.delay(), MS20);
    }

    #[test]
    fn a_delay_longer_than_needed_shrinks_back() {
        let mut jb = JitterBuffer::adaptive(Duration::from_millis(80));
        // A burst of lateness grows the delay by two frames, then the path is clean
        // for seconds: it shrinks back, a frame at a time, without a loss.
        drive(&mut jb, 400, |n| {
            Some(if (20..25).contains(&n) { 60 } else { 0 })
        });
        let s = jb.stats();
        assert_eq!((s.stretched, s.shrunk, s.lost), (2, 2, 0), "{s:?}");
        assert_eq!(jb.delay(), MS20, "{s:?}");
    }

    #[test]
    fn a_fixed_buffer_never_adapts() {
        let mut jb = JitterBuffer::new(Duration::from_millis(60));
        drive(&mut jb, 200, |n| Some(if n >= 20 { 30 } else { 0 }));
        assert_eq!(jb.delay(), Duration::from_millis(60));
        assert_eq!((jb.stats().stretched, jb.stats().shrunk), (0, 0));
    }
}

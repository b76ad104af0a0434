//! Simulcast: a browser sends one video track as several RID layers (`q`, `h`, `f`:
//! quarter, half and full resolution), each on its own SSRC. The webrtc crate gives
//! them to us as ONE remote track whose packets carry the layer's SSRC; the publication
//! tells them apart by SSRC (the RID comes from the track's codings, see
//! `forward.rs`).
//!
//! Every subscriber gets one forwarded track per publication, fed by one layer at a
//! time ([`Selector`]): the highest live layer under both the subscriber's explicit
//! preference (`Sfu::set_max_layer`) and its receiver's bandwidth estimate (REMB:
//! the layer's measured bitrate must fit under [`HEADROOM`] of it; going up waits
//! [`UP_HOLD`], going down is at once; the layer forwarded stays while 0.85 of its
//! bitrate fits, since without probing an estimate hovers around what the receiver
//! gets; the first [`GRACE`] of estimates is ignored). A switch happens only at a keyframe of the
//! target layer (asked for with PLI), and rewrites sequence numbers, timestamps and
//! VP8 picture ids so the subscriber's stream stays continuous.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::rtp;

use super::vp8;

/// A simulcast layer a subscriber may ask for, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimulcastLayer {
    /// `q`: a quarter of the resolution.
    Low = 0,
    /// `h`: half.
    Medium = 1,
    /// `f`: full.
    High = 2,
}

impl SimulcastLayer {
    /// `q`, `h` or `f` (the RIDs browsers are given by the page).
    pub fn parse(name: &str) -> Option<SimulcastLayer> {
        match name {
            "q" => Some(SimulcastLayer::Low),
            "h" => Some(SimulcastLayer::Medium),
            "f" => Some(SimulcastLayer::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SimulcastLayer::Low => "q",
            SimulcastLayer::Medium => "h",
            SimulcastLayer::High => "f",
        }
    }

    pub(crate) fn rank(self) -> u8 {
        self as u8
    }
}

/// The fraction of a subscriber's estimate a layer's bitrate may use.
pub(crate) const HEADROOM: f64 = 0.85;
/// How long the estimate must allow a higher layer before we go up.
pub(crate) const UP_HOLD: Duration = Duration::from_secs(2);
/// Estimates are ignored for this long after the first one: a browser's receiver
/// starts from a default (Chromium: 300 kbit/s) and converges in a few seconds.
pub(crate) const GRACE: Duration = Duration::from_secs(5);
/// A layer without a packet for this long is not live (the browser stopped it).
const STALE: Duration = Duration::from_millis(1500);
/// Bitrate measuring window.
const WINDOW: Duration = Duration::from_millis(500);
/// The top rank: a subscriber's preference before it says anything.
pub(crate) const TOP: u8 = SimulcastLayer::High as u8;

/// The rank of a RID: `q`/`h`/`f` (and `0`/`1`/`2`, `l`/`m`) as named; any other
/// RID by the order it appeared in (`seen` layers before it).
pub(crate) fn rank_of(rid: &str, seen: usize) -> u8 {
    match rid {
        "q" | "0" | "l" | "low" => 0,
        "h" | "1" | "m" | "mid" => 1,
        "f" | "2" | "high" | "hi" => 2,
        "" => 0,
        _ => u8::try_from(seen).unwrap_or(u8::MAX),
    }
}

/// One layer of a publication, as its forwarding task sees it.
#[derive(Debug)]
pub(crate) struct Layer {
    /// Empty for a track sent without simulcast.
    pub(crate) rid: String,
    pub(crate) rank: u8,
    /// Its latest SSRC (a browser may restart a layer on a new one).
    pub(crate) ssrc: u32,
    pub(crate) packets: u64,
    pub(crate) bytes: u64,
    /// Packets withheld by moderation: later sequence numbers shift down by this.
    pub(crate) withheld: u16,
    pub(crate) last: Instant,
    window_start: Instant,
    window_bytes: u64,
    bps: Option<f64>,
}

impl Layer {
    pub(crate) fn new(rid: String, rank: u8, ssrc: u32, now: Instant) -> Layer {
        Layer {
            rid,
            rank,
            ssrc,
            packets: 0,
            bytes: 0,
            withheld: 0,
            last: now,
            window_start: now,
            window_bytes: 0,
            bps: None,
        }
    }

    /// Counts a packet of `size` bytes (payload and header); true when the
    /// bitrate estimate moved.
    pub(crate) fn count(&mut self, size: usize, now: Instant) -> bool {
        self.packets += 1;
        self.bytes += size as u64;
        self.last = now;
        self.window_bytes += size as u64;
        let elapsed = now.duration_since(self.window_start);
        if elapsed < WINDOW {
            return false;
        }
        let sample = self.window_bytes as f64 * 8.0 / elapsed.as_secs_f64();
        self.bps = Some(self.bps.map_or(sample, |old| 0.5 * old + 0.5 * sample));
        self.window_start = now;
        self.window_bytes = 0;
        true
    }

    pub(crate) fn live(&self, now: Instant) -> bool {
        now.duration_since(self.last) < STALE
    }

    /// Measured bitrate in bit/s (0 until a window has closed, or when not live).
    pub(crate) fn bitrate(&self, now: Instant) -> u64 {
        if !self.live(now) {
            return 0;
        }
        self.bps.map_or(0, |b| b as u64)
    }

    pub(crate) fn view(&self, now: Instant) -> LayerView {
        LayerView {
            rank: self.rank,
            ssrc: self.ssrc,
            bps: self.bitrate(now),
            live: self.live(now),
        }
    }
}

/// What a subscriber's selector needs of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerView {
    pub(crate) rank: u8,
    pub(crate) ssrc: u32,
    pub(crate) bps: u64,
    pub(crate) live: bool,
}

/// What to do with one packet for one subscriber.
#[derive(Debug)]
pub(crate) struct Step {
    /// The rewritten packet to send, if any.
    pub(crate) packet: Option<rtp::Packet>,
    /// Ask the publisher for a keyframe of this layer (its rank).
    pub(crate) keyframe: Option<u8>,
    /// The forwarded layer changed with this packet.
    pub(crate) switched: bool,
}

/// The subscriber's output stream: where it is in sequence numbers, timestamps and
/// picture ids, and the offsets that map the current layer onto it.
#[derive(Debug, Clone, Copy)]
struct Continuity {
    seq_offset: u16,
    /// The first (input) sequence number of the current layer: older packets of it
    /// (reordered before the switch) are not sent.
    base: u16,
    last_seq: u16,
    ts_offset: u32,
    last_ts: u32,
    last_at: Instant,
    pic_offset: u16,
    last_pic: Option<u16>,
    tl0_offset: u8,
    last_tl0: Option<u8>,
}

/// One subscriber's choice of layer for one publication, and the rewriting that
/// keeps its stream continuous across switches.
#[derive(Debug, Default)]
pub(crate) struct Selector {
    /// The rank forwarded now.
    pub(crate) current: Option<u8>,
    /// The rank it should forward (a switch waits for its keyframe).
    pub(crate) target: Option<u8>,
    /// The highest rank the bandwidth estimate allows, with hysteresis.
    cap: Option<u8>,
    up_since: Option<Instant>,
    /// Since when the subscriber reports an estimate (see [`GRACE`]).
    estimating_since: Option<Instant>,
    out: Option<Continuity>,
}

/// Whether `a` comes after `b` in 16-bit sequence space.
fn seq_after(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

fn ts_after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

impl Selector {
    /// The rank to forward: the highest live layer not above `max` (the subscriber's
    /// preference) nor the bandwidth cap; the lowest live layer if none is.
    pub(crate) fn choose(
        &mut self,
        layers: &[LayerView],
        max: u8,
        estimate: u64,
        now: Instant,
    ) -> Option<u8> {
        // A receiver's first estimates are a start value, not a measurement.
        let since = *self.estimating_since.get_or_insert(now);
        let estimate = if estimate == 0 || now.duration_since(since) < GRACE {
            if estimate == 0 {
                self.estimating_since = None;
            }
            0
        } else {
            estimate
        };
        let live = || layers.iter().filter(|l| l.live);
        let lowest = live().map(|l| l.rank).min()?;
        let top = live().map(|l| l.rank).max().unwrap_or(lowest);
        let allowed = if estimate == 0 {
            top
        } else {
            let budget = estimate as f64 * HEADROOM;
            let fits = live()
                .filter(|l| (l.bps as f64) <= budget)
                .map(|l| l.rank)
                .max()
                .unwrap_or(lowest);
            // A receiver's estimate without probing hovers around what it receives,
            // so the layer being forwarded stays while the estimate is within the
            // headroom of its bitrate: only a real shortfall moves down.
            let kept = self
                .current
                .and_then(|c| live().find(|l| l.rank == c))
                .filter(|l| l.bps as f64 * HEADROOM <= estimate as f64)
                .map(|l| l.rank);
            kept.map_or(fits, |k| k.max(fits))
        };
        let cap = match self.cap {
            None => allowed,
            Some(cap) if allowed < cap => {
                self.up_since = None;
                allowed
            }
            Some(cap) if allowed > cap => {
                let since = *self.up_since.get_or_insert(now);
                if now.duration_since(since) >= UP_HOLD {
                    self.up_since = None;
                    allowed
                } else {
                    cap
                }
            }
            Some(cap) => {
                self.up_since = None;
                cap
            }
        };
        self.cap = Some(cap);
        let want = max.min(cap);
        let pick = live()
            .map(|l| l.rank)
            .filter(|r| *r <= want)
            .max()
            .unwrap_or(lowest);
        self.target = Some(pick);
        Some(pick)
    }

    /// One packet of layer `rank` (its sequence number already shifted for withheld
    /// packets). Forwards it if it belongs to the current layer, switches at a
    /// keyframe of the target layer.
    pub(crate) fn step(
        &mut self,
        rank: u8,
        mut packet: rtp::Packet,
        target: Option<u8>,
        clock_rate: u32,
        now: Instant,
    ) -> Step {
        let mut step = Step {
            packet: None,
            keyframe: None,
            switched: false,
        };
        let Some(target) = target else {
            return step;
        };
        if self.current != Some(target) && rank == target {
            if vp8::is_keyframe_start(&packet.payload) {
                self.switch(&packet, clock_rate, now);
                self.current = Some(target);
                step.switched = true;
            } else {
                step.keyframe = Some(target);
            }
        }
        if self.current != Some(rank) {
            return step;
        }
        let Some(out) = self.out.as_mut() else {
            return step;
        };
        let h = &mut packet.header;
        if seq_after(out.base, h.sequence_number) {
            return step;
        }
        h.sequence_number = h.sequence_number.wrapping_add(out.seq_offset);
        h.timestamp = h.timestamp.wrapping_add(out.ts_offset);
        if seq_after(h.sequence_number, out.last_seq) {
            out.last_seq = h.sequence_number;
        }
        if ts_after(h.timestamp, out.last_ts) {
            out.last_ts = h.timestamp;
            out.last_at = now;
        }
        rewrite_vp8(&mut packet, out);
        step.packet = Some(packet);
        step
    }

    /// Starts forwarding a new layer at `packet` (its keyframe): the offsets put its
    /// first packet right after the last one sent.
    fn switch(&mut self, packet: &rtp::Packet, clock_rate: u32, now: Instant) {
        let h = &packet.header;
        let d = vp8::descriptor(&packet.payload);
        let pic = d.and_then(|d| vp8::picture_id(&packet.payload, &d));
        let tl0 = d.and_then(|d| vp8::tl0(&packet.payload, &d));
        let Some(prev) = self.out else {
            self.out = Some(Continuity {
                seq_offset: 0,
                base: h.sequence_number,
                last_seq: h.sequence_number,
                ts_offset: 0,
                last_ts: h.timestamp,
                last_at: now,
                pic_offset: 0,
                last_pic: pic,
                tl0_offset: 0,
                last_tl0: tl0,
            });
            return;
        };
        // The new layer's first frame comes as long after the last one sent as it
        // does in wall-clock time (at least one tick).
        let elapsed = now.duration_since(prev.last_at).as_secs_f64();
        let ticks = ((elapsed * f64::from(clock_rate)) as u32).max(1);
        let modulus = d.map_or(0x8000, |d| vp8::picture_id_modulus(&d));
        let pic_offset = match (prev.last_pic, pic) {
            (Some(last), Some(first)) => {
                last.wrapping_add(1).wrapping_sub(first).rem_euclid(modulus)
            }
            _ => prev.pic_offset,
        };
        let tl0_offset = match (prev.last_tl0, tl0) {
            (Some(last), Some(first)) => last.wrapping_add(1).wrapping_sub(first),
            _ => prev.tl0_offset,
        };
        self.out = Some(Continuity {
            seq_offset: prev
                .last_seq
                .wrapping_add(1)
                .wrapping_sub(h.sequence_number),
            base: h.sequence_number,
            last_seq: prev.last_seq,
            ts_offset: prev.last_ts.wrapping_add(ticks).wrapping_sub(h.timestamp),
            last_ts: prev.last_ts,
            last_at: prev.last_at,
            pic_offset,
            last_pic: prev.last_pic,
            tl0_offset,
            last_tl0: prev.last_tl0,
        });
    }
}

/// Shifts the VP8 picture id and TL0PICIDX by the current offsets (a copy of the
/// payload only when an offset is not zero) and notes the last ones sent.
fn rewrite_vp8(packet: &mut rtp::Packet, out: &mut Continuity) {
    let Some(d) = vp8::descriptor(&packet.payload) else {
        return;
    };
    let pic = vp8::picture_id(&packet.payload, &d);
    let tl0 = vp8::tl0(&packet.payload, &d);
    let modulus = vp8::picture_id_modulus(&d);
    let new_pic = pic.map(|p| p.wrapping_add(out.pic_offset) % modulus);
    let new_tl0 = tl0.map(|t| t.wrapping_add(out.tl0_offset));
    if new_pic != pic || new_tl0 != tl0 {
        let mut bytes = BytesMut::from(&packet.payload[..]);
        if let Some(p) = new_pic {
            vp8::set_picture_id(&mut bytes, &d, p);
        }
        if let Some(t) = new_tl0 {
            vp8::set_tl0(&mut bytes, &d, t);
        }
        packet.payload = bytes.freeze();
    }
    if new_pic.is_some() {
        out.last_pic = new_pic;
    }
    if new_tl0.is_some() {
        out.last_tl0 = new_tl0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use bytes::Bytes;

    fn layers(bps: [u64; 3]) -> Vec<LayerView> {
        (0..3)
            .map(|i| LayerView {
                rank: i as u8,
                ssrc: 100 + i as u32,
                bps: bps[i],
                live: true,
            })
            .collect()
    }

    fn packet(seq: u16, ts: u32, pic: u16, key: bool) -> rtp::Packet {
        let [hi, lo] = pic.to_be_bytes();
        let p = if key { 0x00 } else { 0x01 };
        rtp::Packet {
            header: rtp::Header {
                sequence_number: seq,
                timestamp: ts,
                ..Default::default()
            },
            payload: Bytes::from(vec![0x90, 0x80, 0x80 | hi, lo, p, 1, 2, 3]),
        }
    }

    #[test]
    fn bandwidth_goes_down_at_once_and_up_after_the_hold() {
        let mut s = Selector::default();
        let t0 = Instant::now();
        let l = layers([100_000, 300_000, 1_200_000]);
        assert_eq!(s.choose(&l, TOP, 0, t0), Some(2));
        // 400 kbit/s: 0.85 of it fits the h layer only; once past the start-up grace.
        assert_eq!(s.choose(&l, TOP, 400_000, t0), Some(2));
        let t0 = t0 + GRACE;
        assert_eq!(s.choose(&l, TOP, 400_000, t0), Some(1));
        // Plenty again: not before UP_HOLD.
        assert_eq!(s.choose(&l, TOP, 5_000_000, t0), Some(1));
        assert_eq!(
            s.choose(&l, TOP, 5_000_000, t0 + Duration::from_millis(1900)),
            Some(1)
        );
        assert_eq!(s.choose(&l, TOP, 5_000_000, t0 + UP_HOLD), Some(2));
        // An explicit preference caps it at once; nothing fits: the lowest layer.
        assert_eq!(s.choose(&l, 0, 5_000_000, t0 + UP_HOLD), Some(0));
        assert_eq!(s.choose(&l, TOP, 10_000, t0 + UP_HOLD), Some(0));
    }

    #[test]
    fn an_estimate_that_covers_the_forwarded_layer_keeps_it() {
        let mut s = Selector::default();
        let t0 = Instant::now();
        let l = layers([100_000, 300_000, 1_200_000]);
        s.current = Some(2);
        s.choose(&l, TOP, 1_100_000, t0);
        let t0 = t0 + GRACE;
        assert_eq!(s.choose(&l, TOP, 1_100_000, t0), Some(2));
        // Below 0.85 of what it gets: down to what fits under the headroom.
        assert_eq!(s.choose(&l, TOP, 1_000_000, t0), Some(1));
    }

    #[test]
    fn a_switch_waits_for_a_keyframe_and_keeps_the_stream_continuous() {
        let mut s = Selector::default();
        let now = Instant::now();
        // Layer 2 starts at a keyframe.
        let out = s.step(2, packet(1000, 90_000, 500, true), Some(2), 90_000, now);
        assert!(out.switched);
        let first = out.packet.unwrap();
        assert_eq!(first.header.sequence_number, 1000);
        let out = s.step(2, packet(1001, 93_000, 501, false), Some(2), 90_000, now);
        assert_eq!(out.packet.unwrap().header.sequence_number, 1001);
        // Target 0: its delta frames ask for a keyframe and are not sent; layer 2 goes on.
        let out = s.step(0, packet(7, 5_000, 40, false), Some(0), 90_000, now);
        assert!(out.packet.is_none() && out.keyframe == Some(0));
        let out = s.step(2, packet(1002, 96_000, 502, false), Some(0), 90_000, now);
        assert_eq!(out.packet.unwrap().header.sequence_number, 1002);
        // Its keyframe switches: sequence, timestamp and picture id follow on.
        let later = now + Duration::from_millis(33);
        let out = s.step(0, packet(8, 8_000, 41, true), Some(0), 90_000, later);
        assert!(out.switched);
        let p = out.packet.unwrap();
        assert_eq!(p.header.sequence_number, 1003);
        assert!(ts_after(p.header.timestamp, 96_000));
        let d = vp8::descriptor(&p.payload).unwrap();
        assert_eq!(vp8::picture_id(&p.payload, &d), Some(503));
        // The old layer is no longer sent.
        let out = s.step(2, packet(1003, 99_000, 503, false), Some(0), 90_000, later);
        assert!(out.packet.is_none());
        let out = s.step(0, packet(9, 11_000, 42, false), Some(0), 90_000, later);
        assert_eq!(out.packet.unwrap().header.sequence_number, 1004);
    }
}

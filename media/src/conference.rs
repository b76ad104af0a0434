//! The sans-IO conference mixer: datagrams and `now` in, datagrams and events out.
//!
//! Every 20 ms `tick` takes one frame from each leg's jitter buffer, sums the legs that
//! may be heard (unmuted, phone sending: SDP direction sendrecv) as i32, and gives each
//! leg that may receive (phone sendrecv or recvonly) the total minus its own
//! contribution, saturated to i16 and encoded in that leg's codec. Legs that
//! contributed nothing share one encoding of the total per codec, so silent listeners
//! cost one table-driven encode per conference rather than one each.
//!
//! Packets are sent continuously, silence included, while a leg may receive: it keeps
//! NAT bindings open and the phone's jitter buffer fed, and no comfort noise payload has
//! to be negotiated. The marker bit is set on the first packet of the stream and on the
//! first packet after a pause (hold, inactive, no remote yet); the timestamp advances by
//! 160 on every tick, sent or not, so it always reflects elapsed time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dtmf::DtmfDetector;
use crate::g711::G711;
use crate::jitter::{JitterBuffer, JitterStats, Playout, FRAME_SAMPLES};
use crate::rtcp::{self, ReceptionStats, RtcpPacket, SenderInfo};
use crate::rtp::{self, RtpHeader, RtpPacket};

/// Identifies one call leg on this media node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

/// Leg ids are assigned by the node (never by a remote party), so a multiplicative
/// hash is safe and much cheaper than SipHash on the per-packet lookup.
#[derive(Debug, Default, Clone, Copy)]
pub struct LegHasher(u64);

impl std::hash::Hasher for LegHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A map keyed by leg id.
pub type LegMap<V> = HashMap<LegId, V, std::hash::BuildHasherDefault<LegHasher>>;

impl std::fmt::Display for LegId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "leg-{}", self.0)
    }
}

/// The media direction the phone declared in its SDP (RFC 3264 §5.1, §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    /// The phone holds us: its audio (often its PBX's hold music) is not mixed and we
    /// send it nothing.
    SendOnly,
    /// The phone only listens (mute-by-SDP): nothing to mix, we keep sending.
    RecvOnly,
    /// Neither way.
    Inactive,
}

impl Direction {
    /// Whether the phone's audio may be mixed.
    pub fn mixed(self) -> bool {
        self == Direction::SendRecv
    }
    /// Whether we send RTP to the phone.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
    /// Whether the phone is expected to send RTP (drives the inactivity timeout).
    pub fn phone_sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

/// What the media node reports to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// An RFC 4733 digit, once per key press.
    Dtmf { leg: LegId, digit: char },
    /// No RTP or RTCP from a phone expected to send for `rtp_timeout`; once until
    /// packets arrive again.
    RtpTimeout { leg: LegId },
}

/// Which of a leg's two ports a datagram came in on or goes out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Rtp,
    Rtcp,
}

/// An output of the core.
#[derive(Debug)]
pub enum Output<'a> {
    /// Send `data` from the leg's `channel` socket to `dest`.
    Transmit {
        leg: LegId,
        channel: Channel,
        dest: SocketAddr,
        data: &'a [u8],
    },
    Event(MediaEvent),
    /// A leg's own decoded frame this tick (it is talking, not muted, not on hold),
    /// for the bridge; only while the conference is bridged with `capture` set.
    Captured {
        leg: LegId,
        pcm: &'a [i16; FRAME_SAMPLES],
    },
}

/// What the bridge brings to one tick of a conference: browsers' audio resampled to
/// 8 kHz (mixed into every leg's mix; browsers hear callers through the SFU, not
/// through this mix), whether browsers are present (a caller with them is not alone,
/// so no hold music), and whether the legs' own frames are wanted
/// ([`Output::Captured`]).
#[derive(Debug, Default, Clone)]
pub struct BridgeInput {
    pub frames: Vec<[i16; FRAME_SAMPLES]>,
    pub peers: bool,
    pub capture: bool,
}

/// The fixed parameters of a leg (randomness supplied by the caller, so tests are
/// deterministic).
#[derive(Debug, Clone)]
pub struct LegParams {
    pub codec: G711,
    pub payload_type: u8,
    pub dtmf_payload_type: Option<u8>,
    pub ssrc: u32,
    pub initial_seq: u16,
    pub initial_timestamp: u32,
    /// The longest playout delay of the leg's adaptive jitter buffer.
    pub jitter: Duration,
    pub rtp_timeout: Duration,
}

impl LegParams {
    /// Parameters with a random SSRC, sequence and timestamp start (RFC 3550 §5.1).
    pub fn random(
        codec: G711,
        payload_type: u8,
        dtmf_payload_type: Option<u8>,
        jitter: Duration,
        rtp_timeout: Duration,
    ) -> Self {
        let mut b = [0u8; 10];
        // a failing OS RNG leaves zeros: still valid RTP, just predictable
        let _ = getrandom::fill(&mut b);
        LegParams {
            codec,
            payload_type,
            dtmf_payload_type,
            ssrc: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            initial_seq: u16::from_be_bytes([b[4], b[5]]),
            initial_timestamp: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
            jitter,
            rtp_timeout,
        }
    }
}

/// Interval between our RTCP reports.
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);
const RTP_BUF: usize = rtp::HEADER_LEN + FRAME_SAMPLES;

/// Counters of one conference (including legs already closed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreCounters {
    pub packets_in: u64,
    pub packets_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rtcp_in: u64,
    pub rtcp_out: u64,
    pub malformed: u64,
    pub foreign_source: u64,
    pub dtmf_packets: u64,
    pub dtmf_digits: u64,
    pub timeouts: u64,
    pub jitter: JitterStats,
}

impl CoreCounters {
    pub fn add(&mut self, o: &CoreCounters) {
        self.packets_in += o.packets_in;
        self.packets_out += o.packets_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.rtcp_in += o.rtcp_in;
        self.rtcp_out += o.rtcp_out;
        self.malformed += o.malformed;
        self.foreign_source += o.foreign_source;
        self.dtmf_packets += o.dtmf_packets;
        self.dtmf_digits += o.dtmf_digits;
        self.timeouts += o.timeouts;
        add_jitter(&mut self.jitter, &o.jitter);
    }
}

fn add_jitter(a: &mut JitterStats, b: &JitterStats) {
    a.received += b.received;
    a.played += b.played;
    a.late += b.late;
    a.duplicate += b.duplicate;
    a.lost += b.lost;
    a.overflow += b.overflow;
    a.resets += b.resets;
    a.stretched += b.stretched;
    a.shrunk += b.shrunk;
}

struct Leg {
    id: LegId,
    p: LegParams,
    muted: bool,
    direction: Direction,
    remote_rtp: Option<SocketAddr>,
    remote_rtcp: Option<SocketAddr>,
    jitter: JitterBuffer,
    pcm: [i16; FRAME_SAMPLES],
    contributes: bool,
    seq: u16,
    timestamp: u32,
    paused: bool,
    packets_sent: u32,
    octets_sent: u32,
    reception: ReceptionStats,
    dtmf: DtmfDetector,
    last_rx: Instant,
    timed_out: bool,
    next_rtcp: Instant,
}

/// Per-tick work buffers, kept between ticks so a tick initialises nothing it does
/// not use.
struct Scratch {
    total: [i32; FRAME_SAMPLES],
    music: [i16; FRAME_SAMPLES],
    mixed: [i16; FRAME_SAMPLES],
    buf: [u8; RTP_BUF],
    /// The plain total encoded per codec (PCMU, PCMA), for legs that added nothing.
    shared: [[u8; FRAME_SAMPLES]; 2],
}

/// Timers (RTCP, inactivity) are checked every this many ticks (100 ms).
const TIMER_TICKS: u64 = 5;

/// A conference: its legs, the hold music cursor, its counters.
pub struct Conference {
    legs: Vec<Leg>,
    index: LegMap<usize>,
    hold_music: Option<Arc<[i16]>>,
    music_pos: usize,
    /// NTP time (RFC 3550 §4 format) at `ntp_anchor`.
    ntp_anchor: (Instant, u64),
    cname: String,
    scratch: Box<Scratch>,
    ticks: u64,
    retired: CoreCounters,
    counters: CoreCounters,
    /// The bridge's input for the next tick only.
    bridge: BridgeInput,
}

fn ntp_at(anchor: (Instant, u64), now: Instant) -> u64 {
    let d = now.saturating_duration_since(anchor.0);
    let frac = ((u128::from(d.subsec_nanos()) << 32) / 1_000_000_000) as u64;
    anchor.1.wrapping_add(d.as_secs() << 32).wrapping_add(frac)
}

/// Converts a wall clock time to the 64-bit NTP format.
pub fn ntp_from_system(t: std::time::SystemTime) -> u64 {
    const UNIX_TO_NTP: u64 = 2_208_988_800;
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let frac = ((u128::from(d.subsec_nanos()) << 32) / 1_000_000_000) as u64;
    ((d.as_secs() + UNIX_TO_NTP) << 32) | frac
}

impl Conference {
    /// `ntp_anchor` ties the monotonic clock to the wall clock for RTCP SR timestamps.
    pub fn new(hold_music: Option<Arc<[i16]>>, ntp_anchor: (Instant, u64), cname: &str) -> Self {
        Conference {
            legs: Vec::new(),
            index: LegMap::default(),
            hold_music: hold_music.filter(|m| !m.is_empty()),
            music_pos: 0,
            ntp_anchor,
            cname: cname.to_owned(),
            scratch: Box::new(Scratch {
                total: [0; FRAME_SAMPLES],
                music: [0; FRAME_SAMPLES],
                mixed: [0; FRAME_SAMPLES],
                buf: [0; RTP_BUF],
                shared: [[0; FRAME_SAMPLES]; 2],
            }),
            ticks: 0,
            retired: CoreCounters::default(),
            counters: CoreCounters::default(),
            bridge: BridgeInput::default(),
        }
    }

    /// The bridge's input for the next tick (consumed by it).
    pub fn bridge(&mut self, input: BridgeInput) {
        self.bridge = input;
    }

    pub fn len(&self) -> usize {
        self.legs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    pub fn contains(&self, id: LegId) -> bool {
        self.index.contains_key(&id)
    }

    /// Adds a leg; a leg id already present is replaced.
    pub fn add_leg(&mut self, id: LegId, p: LegParams, now: Instant) {
        self.remove_leg(id);
        // spread first reports over 2.5..5 s so legs opened together don't burst
        let stagger = Duration::from_millis(2500 + u64::from(p.ssrc % 2500));
        let leg = Leg {
            id,
            jitter: JitterBuffer::adaptive(p.jitter),
            seq: p.initial_seq,
            timestamp: p.initial_timestamp,
            p,
            muted: false,
            direction: Direction::SendRecv,
            remote_rtp: None,
            remote_rtcp: None,
            pcm: [0; FRAME_SAMPLES],
            contributes: false,
            paused: true,
            packets_sent: 0,
            octets_sent: 0,
            reception: ReceptionStats::default(),
            dtmf: DtmfDetector::default(),
            last_rx: now,
            timed_out: false,
            next_rtcp: now + stagger,
        };
        self.index.insert(id, self.legs.len());
        self.legs.push(leg);
    }

    /// Removes a leg; returns whether it existed.
    pub fn remove_leg(&mut self, id: LegId) -> bool {
        let Some(i) = self.index.remove(&id) else {
            return false;
        };
        if i >= self.legs.len() {
            return false;
        }
        let leg = self.legs.swap_remove(i);
        add_jitter(&mut self.retired.jitter, &leg.jitter.stats());
        if let Some(moved) = self.legs.get(i) {
            self.index.insert(moved.id, i);
        }
        true
    }

    fn leg_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        let i = *self.index.get(&id)?;
        self.legs.get_mut(i)
    }

    /// Sets where the phone's RTP (and RTCP; default RTP port + 1) goes. Returns false
    /// for an unknown leg.
    pub fn set_remote(&mut self, id: LegId, rtp: SocketAddr, rtcp: Option<SocketAddr>) -> bool {
        let Some(leg) = self.leg_mut(id) else {
            return false;
        };
        leg.remote_rtp = Some(rtp);
        leg.remote_rtcp = rtcp;
        true
    }

    /// Server-side mute: effective from the next tick.
    pub fn set_muted(&mut self, id: LegId, muted: bool) -> bool {
        let Some(leg) = self.leg_mut(id) else {
            return false;
        };
        leg.muted = muted;
        true
    }

    /// The phone's SDP direction (re-INVITE for hold/resume).
    pub fn set_direction(&mut self, id: LegId, direction: Direction, now: Instant) -> bool {
        let Some(leg) = self.leg_mut(id) else {
            return false;
        };
        if leg.direction != direction {
            leg.direction = direction;
            // a fresh inactivity window after a direction change
            leg.last_rx = now;
            leg.timed_out = false;
        }
        true
    }

    /// Counters of live and closed legs.
    pub fn counters(&self) -> CoreCounters {
        let mut c = self.counters;
        c.add(&self.retired);
        for leg in &self.legs {
            add_jitter(&mut c.jitter, &leg.jitter.stats());
        }
        c
    }

    /// Handles one datagram received on `leg`'s `channel` socket from `source`.
    pub fn receive(
        &mut self,
        id: LegId,
        channel: Channel,
        source: SocketAddr,
        data: &[u8],
        now: Instant,
        sink: &mut dyn FnMut(Output<'_>),
    ) {
        let Some(&i) = self.index.get(&id) else {
            return;
        };
        let Some(leg) = self.legs.get_mut(i) else {
            return;
        };
        let counters = &mut self.counters;
        match leg.remote_rtp {
            // symmetric RTP: with no SDP address yet, latch onto the first source
            None if channel == Channel::Rtp => leg.remote_rtp = Some(source),
            None => {}
            Some(expected) => {
                let ok = match channel {
                    Channel::Rtp => source == expected,
                    Channel::Rtcp => source.ip() == expected.ip(),
                };
                if !ok {
                    counters.foreign_source += 1;
                    return;
                }
            }
        }
        if channel == Channel::Rtcp || rtp::looks_like_rtcp(data) {
            match rtcp::parse_compound(data) {
                Ok(parts) => {
                    counters.rtcp_in += 1;
                    leg.last_rx = now;
                    leg.timed_out = false;
                    for part in parts {
                        if let RtcpPacket::SenderReport { info, .. } = part {
                            leg.reception.on_sender_report(info.ntp, now);
                        }
                    }
                }
                Err(_) => counters.malformed += 1,
            }
            return;
        }
        let packet = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(_) => {
                counters.malformed += 1;
                return;
            }
        };
        counters.packets_in += 1;
        counters.bytes_in += data.len() as u64;
        leg.last_rx = now;
        leg.timed_out = false;
        if Some(packet.payload_type) == leg.p.dtmf_payload_type {
            counters.dtmf_packets += 1;
            if let Some(digit) = leg.dtmf.on_packet(packet.timestamp, packet.payload) {
                counters.dtmf_digits += 1;
                sink(Output::Event(MediaEvent::Dtmf { leg: id, digit }));
            }
            return;
        }
        if packet.payload_type != leg.p.payload_type {
            // comfort noise or an unnegotiated codec: not audio we can mix
            return;
        }
        // arrival in 8 kHz RTP units, in u64 (a u128 division here costs more than
        // everything else per packet)
        let since = now.saturating_duration_since(self.ntp_anchor.0);
        let arrival = since
            .as_secs()
            .wrapping_mul(8000)
            .wrapping_add(u64::from(since.subsec_nanos() / 125_000)) as u32;
        leg.reception
            .on_packet(packet.ssrc, packet.sequence, packet.timestamp, arrival);
        leg.jitter
            .push(packet.ssrc, packet.sequence, packet.payload, now);
    }

    /// Runs one 20 ms frame: mixes, sends, and runs the RTCP and inactivity timers.
    pub fn tick(&mut self, now: Instant, sink: &mut dyn FnMut(Output<'_>)) {
        let Scratch {
            total,
            music,
            mixed,
            buf,
            shared,
        } = &mut *self.scratch;
        total.fill(0);
        let bridge = std::mem::take(&mut self.bridge);
        for leg in self.legs.iter_mut() {
            let playout = leg.jitter.pop(now, leg.p.codec, &mut leg.pcm);
            leg.contributes = playout != Playout::Silent && !leg.muted && leg.direction.mixed();
            if leg.contributes {
                for (t, &s) in total.iter_mut().zip(leg.pcm.iter()) {
                    *t += i32::from(s);
                }
                if bridge.capture {
                    sink(Output::Captured {
                        leg: leg.id,
                        pcm: &leg.pcm,
                    });
                }
            }
        }
        for frame in &bridge.frames {
            for (t, &s) in total.iter_mut().zip(frame.iter()) {
                *t += i32::from(s);
            }
        }

        let alone = self.legs.len() == 1 && !bridge.peers;
        let with_music = match (&self.hold_music, alone) {
            (Some(m), true) => {
                for s in music.iter_mut() {
                    *s = m.get(self.music_pos).copied().unwrap_or(0);
                    self.music_pos += 1;
                    if self.music_pos >= m.len() {
                        self.music_pos = 0;
                    }
                }
                true
            }
            _ => false,
        };

        // one shared encoding of the plain total per codec, for legs that added nothing
        let mut shared_ready = [false; 2];
        for leg in self.legs.iter_mut() {
            let send_to = match leg.remote_rtp {
                Some(dest) if leg.direction.receives() => Some(dest),
                _ => None,
            };
            if let Some(dest) = send_to {
                let codec = leg.p.codec;
                let header = RtpHeader {
                    marker: leg.paused,
                    payload_type: leg.p.payload_type,
                    sequence: leg.seq,
                    timestamp: leg.timestamp,
                    ssrc: leg.p.ssrc,
                };
                // advanced first: the `continue`s below (unreachable: fixed sizes) must not
                // break timestamp continuity
                leg.timestamp = leg.timestamp.wrapping_add(FRAME_SAMPLES as u32);
                let Some((head, body)) = buf.split_first_chunk_mut::<{ rtp::HEADER_LEN }>() else {
                    continue;
                };
                header.write_header(head);
                // encode straight into the packet
                if with_music {
                    codec.encode(&music[..], body);
                } else if leg.contributes {
                    // two passes: the saturating subtract vectorizes, the table encode
                    // cannot (fusing them measured twice as slow)
                    for ((m, &t), &own) in mixed.iter_mut().zip(total.iter()).zip(leg.pcm.iter()) {
                        *m = (t - i32::from(own)).clamp(i32::from(i16::MIN), i32::from(i16::MAX))
                            as i16;
                    }
                    codec.encode(&mixed[..], body);
                } else {
                    let k = usize::from(codec == G711::Pcma);
                    let (Some(encoded), Some(ready)) = (shared.get_mut(k), shared_ready.get_mut(k))
                    else {
                        continue;
                    };
                    if !*ready {
                        for (m, &t) in mixed.iter_mut().zip(total.iter()) {
                            *m = t.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                        }
                        codec.encode(&mixed[..], encoded);
                        *ready = true;
                    }
                    body.copy_from_slice(encoded);
                }
                sink(Output::Transmit {
                    leg: leg.id,
                    channel: Channel::Rtp,
                    dest,
                    data: &buf[..],
                });
                self.counters.packets_out += 1;
                self.counters.bytes_out += RTP_BUF as u64;
                leg.packets_sent = leg.packets_sent.wrapping_add(1);
                leg.octets_sent = leg.octets_sent.wrapping_add(FRAME_SAMPLES as u32);
                leg.seq = leg.seq.wrapping_add(1);
                leg.paused = false;
            } else {
                leg.paused = true;
                leg.timestamp = leg.timestamp.wrapping_add(FRAME_SAMPLES as u32);
            }
        }
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % TIMER_TICKS == 1 {
            self.run_timers(now, sink);
        }
    }

    fn run_timers(&mut self, now: Instant, sink: &mut dyn FnMut(Output<'_>)) {
        let mut buf = [0u8; 256];
        for leg in self.legs.iter_mut() {
            if leg.direction.phone_sends()
                && !leg.timed_out
                && now.saturating_duration_since(leg.last_rx) >= leg.p.rtp_timeout
            {
                leg.timed_out = true;
                self.counters.timeouts += 1;
                sink(Output::Event(MediaEvent::RtpTimeout { leg: leg.id }));
            }
            if now < leg.next_rtcp {
                continue;
            }
            leg.next_rtcp = now + RTCP_INTERVAL;
            let Some(rtp_dest) = leg.remote_rtp else {
                continue;
            };
            let dest = leg
                .remote_rtcp
                .unwrap_or_else(|| SocketAddr::new(rtp_dest.ip(), rtp_dest.port().wrapping_add(1)));
            let sender = (!leg.paused).then(|| SenderInfo {
                ntp: ntp_at(self.ntp_anchor, now),
                rtp_timestamp: leg.timestamp.wrapping_sub(FRAME_SAMPLES as u32),
                packet_count: leg.packets_sent,
                octet_count: leg.octets_sent,
            });
            let block = leg.reception.report(now);
            if let Ok(n) = rtcp::write_report(&mut buf, leg.p.ssrc, sender, block, &self.cname) {
                if let Some(data) = buf.get(..n) {
                    self.counters.rtcp_out += 1;
                    sink(Output::Transmit {
                        leg: leg.id,
                        channel: Channel::Rtcp,
                        dest,
                        data,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::testing::{goertzel, tone_frame};

    const MS20: Duration = Duration::from_millis(20);

    fn params(codec: G711, ssrc: u32) -> LegParams {
        LegParams {
            codec,
            payload_type: codec.static_payload_type(),
            dtmf_payload_type: Some(101),
            ssrc,
            initial_seq: 65530,
            initial_timestamp: u32::MAX - 200,
            jitter: Duration::from_millis(40),
            rtp_timeout: Duration::from_secs(30),
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    struct Phone {
        id: LegId,
        codec: G711,
        freq: f32,
        seq: u16,
        ts: u32,
        port: u16,
    }

    impl Phone {
        fn packet(&mut self, frame: u32) -> Vec<u8> {
            let pcm = tone_frame(self.freq, frame, 8000.0);
            let mut payload = [0u8; 160];
            self.codec.encode(&pcm, &mut payload);
            let h = RtpHeader {
                marker: false,
                payload_type: self.codec.static_payload_type(),
                sequence: self.seq,
                timestamp: self.ts,
                ssrc: u32::from(self.port),
            };
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(160);
            let mut buf = vec![0u8; 172];
            let n = h.write(&payload, &mut buf).unwrap();
            buf.truncate(n);
            buf
        }
    }

    type Sent = Vec<(LegId, Channel, Vec<u8>)>;

    fn setup(codecs: [G711; 3]) -> (Conference, Vec<Phone>, Instant) {
        let t0 = Instant::now();
        let mut c = Conference::new(None, (t0, 0), "test");
        let freqs = [450.0, 1000.0, 1900.0];
        let phones: Vec<Phone> = (0..3)
            .map(|i| {
                let id = LegId(i as u64 + 1);
                let port = 5000 + 2 * i as u16;
                c.add_leg(id, params(codecs[i], 100 + i as u32), t0);
                c.set_remote(id, addr(port), None);
                Phone {
                    id,
                    codec: codecs[i],
                    freq: freqs[i],
                    seq: 1000 * i as u16,
                    ts: 0,
                    port,
                }
            })
            .collect();
        (c, phones, t0)
    }

    /// Runs `frames` ticks with every phone in `talking` sending one packet per tick.
    fn run(
        c: &mut Conference,
        phones: &mut [Phone],
        t0: Instant,
        from: u32,
        frames: u32,
        talking: &[bool],
    ) -> Sent {
        let mut sent: Sent = vec![];
        for f in from..from + frames {
            let now = t0 + MS20 * f;
            for (p, &on) in phones.iter_mut().zip(talking) {
                if on {
                    let pkt = p.packet(f);
                    c.receive(p.id, Channel::Rtp, addr(p.port), &pkt, now, &mut |_| {});
                }
            }
            c.tick(now, &mut |o| {
                if let Output::Transmit {
                    leg, channel, data, ..
                } = o
                {
                    sent.push((leg, channel, data.to_vec()));
                }
            });
        }
        sent
    }

    /// The decoded audio each leg received over the last `frames` RTP packets.
    fn heard(sent: &Sent, leg: LegId, codec: G711, frames: usize) -> Vec<i16> {
        let packets: Vec<&Vec<u8>> = sent
            .iter()
            .filter(|(l, ch, _)| *l == leg && *ch == Channel::Rtp)
            .map(|(_, _, d)| d)
            .collect();
        let mut pcm = vec![];
        for d in &packets[packets.len() - frames..] {
            let p = RtpPacket::parse(d).unwrap();
            let mut out = [0i16; 160];
            codec.decode(p.payload, &mut out);
            pcm.extend_from_slice(&out);
        }
        pcm
    }

    #[test]
    fn each_leg_hears_the_others_and_not_itself() {
        // given three talking legs with distinct tones (mixed codecs)
        let (mut c, mut phones, t0) = setup([G711::Pcmu, G711::Pcma, G711::Pcmu]);
        let sent = run(&mut c, &mut phones, t0, 0, 20, &[true, true, true]);
        // then each leg's output holds the two other tones and not its own
        for (i, p) in phones.iter().enumerate() {
            let pcm = heard(&sent, p.id, p.codec, 10);
            for (j, q) in phones.iter().enumerate() {
                let power = goertzel(&pcm, q.freq, 8000.0);
                if i == j {
                    assert!(power < 0.01, "leg {i} hears itself: {power}");
                } else {
                    assert!(power > 0.1, "leg {i} misses leg {j}: {power}");
                }
            }
        }
    }

    #[test]
    fn a_muted_leg_disappears_at_the_next_frame() {
        let (mut c, mut phones, t0) = setup([G711::Pcmu; 3]);
        let _ = run(&mut c, &mut phones, t0, 0, 10, &[true, true, true]);
        // when leg 1 is muted, then the very next frame has no trace of its tone
        c.set_muted(phones[0].id, true);
        let sent = run(&mut c, &mut phones, t0, 10, 1, &[true, true, true]);
        let pcm = heard(&sent, phones[1].id, G711::Pcmu, 1);
        assert!(goertzel(&pcm, phones[0].freq, 8000.0) < 0.01);
        assert!(goertzel(&pcm, phones[2].freq, 8000.0) > 0.1);
        // and the muted leg still hears the others
        let pcm = heard(&sent, phones[0].id, G711::Pcmu, 1);
        assert!(goertzel(&pcm, phones[1].freq, 8000.0) > 0.1);
    }

    #[test]
    fn a_holding_phone_is_not_mixed_and_not_sent_to() {
        let (mut c, mut phones, t0) = setup([G711::Pcmu; 3]);
        let _ = run(&mut c, &mut phones, t0, 0, 10, &[true, true, true]);
        c.set_direction(phones[0].id, Direction::SendOnly, t0);
        let sent = run(&mut c, &mut phones, t0, 10, 2, &[true, true, true]);
        assert!(!sent
            .iter()
            .any(|(l, ch, _)| *l == phones[0].id && *ch == Channel::Rtp));
        let pcm = heard(&sent, phones[1].id, G711::Pcmu, 1);
        assert!(goertzel(&pcm, phones[0].freq, 8000.0) < 0.01);
        // when it resumes, then the first packet carries the marker bit
        c.set_direction(phones[0].id, Direction::SendRecv, t0);
        let sent = run(&mut c, &mut phones, t0, 12, 1, &[true, true, true]);
        let first = sent.iter().find(|(l, _, _)| *l == phones[0].id).unwrap();
        assert!(RtpPacket::parse(&first.2).unwrap().marker);
    }

    #[test]
    fn seq_timestamp_and_ssrc_are_continuous() {
        // given a leg that pauses for 3 frames (inactive) then resumes
        let (mut c, mut phones, t0) = setup([G711::Pcmu; 3]);
        let mut sent = run(&mut c, &mut phones, t0, 0, 5, &[true, true, true]);
        c.set_direction(phones[0].id, Direction::Inactive, t0);
        sent.extend(run(&mut c, &mut phones, t0, 5, 3, &[false, true, true]));
        c.set_direction(phones[0].id, Direction::SendRecv, t0);
        sent.extend(run(&mut c, &mut phones, t0, 8, 4, &[true, true, true]));
        let mine: Vec<RtpPacket> = sent
            .iter()
            .filter(|(l, ch, _)| *l == phones[0].id && *ch == Channel::Rtp)
            .map(|(_, _, d)| RtpPacket::parse(d).unwrap())
            .collect();
        assert_eq!(mine.len(), 9);
        assert!(mine[0].marker && mine[5].marker);
        assert!(mine.iter().filter(|p| p.marker).count() == 2);
        for w in mine.windows(2) {
            assert_eq!(w[1].ssrc, 100);
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
        }
        // timestamps wrap and jump by 4 frames over the 3-frame pause
        assert_eq!(mine[1].timestamp, mine[0].timestamp.wrapping_add(160));
        assert_eq!(mine[5].timestamp, mine[4].timestamp.wrapping_add(4 * 160));
        assert_eq!(mine[0].sequence, 65530);
    }

    #[test]
    fn dtmf_is_reported_once_and_never_mixed() {
        let (mut c, phones, t0) = setup([G711::Pcmu; 3]);
        let mut events = vec![];
        for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
            let h = RtpHeader {
                marker: i == 0,
                payload_type: 101,
                sequence: i as u16,
                timestamp: 4242,
                ssrc: 9,
            };
            let mut buf = [0u8; 16];
            let n = h
                .write(&[10, if end { 0x8A } else { 0x0A }, 0, 160], &mut buf)
                .unwrap();
            c.receive(
                phones[0].id,
                Channel::Rtp,
                addr(phones[0].port),
                &buf[..n],
                t0,
                &mut |o| {
                    if let Output::Event(e) = o {
                        events.push(e);
                    }
                },
            );
        }
        assert_eq!(
            events,
            vec![MediaEvent::Dtmf {
                leg: phones[0].id,
                digit: '*'
            }]
        );
        assert_eq!(c.counters().jitter.received, 0);
    }

    #[test]
    fn packets_from_elsewhere_are_ignored() {
        let (mut c, phones, t0) = setup([G711::Pcmu; 3]);
        let mut p = Phone {
            id: phones[0].id,
            codec: G711::Pcmu,
            freq: 500.0,
            seq: 0,
            ts: 0,
            port: 5000,
        };
        let pkt = p.packet(0);
        c.receive(p.id, Channel::Rtp, addr(6666), &pkt, t0, &mut |_| {});
        assert_eq!(c.counters().foreign_source, 1);
        assert_eq!(c.counters().packets_in, 0);
    }

    #[test]
    fn an_unset_remote_latches_onto_the_first_source() {
        let t0 = Instant::now();
        let mut c = Conference::new(None, (t0, 0), "t");
        c.add_leg(LegId(1), params(G711::Pcmu, 1), t0);
        let mut p = Phone {
            id: LegId(1),
            codec: G711::Pcmu,
            freq: 500.0,
            seq: 0,
            ts: 0,
            port: 7000,
        };
        let pkt = p.packet(0);
        c.receive(LegId(1), Channel::Rtp, addr(7000), &pkt, t0, &mut |_| {});
        let mut dests = vec![];
        c.tick(t0, &mut |o| {
            if let Output::Transmit { dest, .. } = o {
                dests.push(dest);
            }
        });
        assert_eq!(dests, vec![addr(7000)]);
    }

    #[test]
    fn hostile_datagrams_never_panic_and_are_counted() {
        let (mut c, phones, t0) = setup([G711::Pcmu; 3]);
        for bad in [
            &[][..],
            &[0x80],
            &[0x80, 0, 0],
            &[0x8F; 13],
            &[0x80, 200, 0xFF, 0xFF],
        ] {
            c.receive(
                phones[0].id,
                Channel::Rtp,
                addr(phones[0].port),
                bad,
                t0,
                &mut |_| {},
            );
            c.receive(
                phones[0].id,
                Channel::Rtcp,
                addr(phones[0].port + 1),
                bad,
                t0,
                &mut |_| {},
            );
        }
        assert_eq!(c.counters().malformed, 10);
    }

    #[test]
    fn silence_inactivity_yields_one_timeout() {
        let t0 = Instant::now();
        let mut c = Conference::new(None, (t0, 0), "t");
        let mut p = params(G711::Pcmu, 1);
        p.rtp_timeout = Duration::from_secs(2);
        c.add_leg(LegId(1), p, t0);
        let mut events = vec![];
        for f in 0..200u32 {
            c.tick(t0 + MS20 * f, &mut |o| {
                if let Output::Event(e) = o {
                    events.push(e);
                }
            });
        }
        assert_eq!(events, vec![MediaEvent::RtpTimeout { leg: LegId(1) }]);
    }

    #[test]
    fn sender_reports_go_out_every_five_seconds_with_a_report_block() {
        let (mut c, mut phones, t0) = setup([G711::Pcmu; 3]);
        let sent = run(&mut c, &mut phones, t0, 0, 600, &[true, true, true]);
        let reports: Vec<&Vec<u8>> = sent
            .iter()
            .filter(|(l, ch, _)| *l == phones[0].id && *ch == Channel::Rtcp)
            .map(|(_, _, d)| d)
            .collect();
        assert_eq!(reports.len(), 2); // 12 s: ~2.5-5 s, then +5 s
        let parts = rtcp::parse_compound(reports[1]).unwrap();
        match &parts[0] {
            RtcpPacket::SenderReport {
                ssrc,
                reports,
                info,
            } => {
                assert_eq!(*ssrc, 100);
                assert_eq!(reports.len(), 1);
                assert_eq!(reports[0].ssrc, 5000);
                assert_eq!(reports[0].cumulative_lost, 0);
                assert!(info.packet_count > 100);
            }
            other => panic!("not an SR: {other:?}"),
        }
    }

    #[test]
    fn a_lone_caller_hears_hold_music() {
        let t0 = Instant::now();
        let music: Arc<[i16]> = (0..800)
            .map(|i| tone_frame(600.0, 0, 8000.0)[i % 160])
            .collect();
        let mut c = Conference::new(Some(music), (t0, 0), "t");
        c.add_leg(LegId(1), params(G711::Pcmu, 1), t0);
        c.set_remote(LegId(1), addr(5000), None);
        let mut sent: Sent = vec![];
        c.tick(t0, &mut |o| {
            if let Output::Transmit {
                leg, channel, data, ..
            } = o
            {
                sent.push((leg, channel, data.to_vec()));
            }
        });
        let pcm = heard(&sent, LegId(1), G711::Pcmu, 1);
        assert!(goertzel(&pcm, 600.0, 8000.0) > 0.1);
        // when a second caller joins, then the music stops
        c.add_leg(LegId(2), params(G711::Pcmu, 2), t0);
        let mut sent: Sent = vec![];
        c.tick(t0 + MS20, &mut |o| {
            if let Output::Transmit {
                leg, channel, data, ..
            } = o
            {
                sent.push((leg, channel, data.to_vec()));
            }
        });
        let pcm = heard(&sent, LegId(1), G711::Pcmu, 1);
        assert!(goertzel(&pcm, 600.0, 8000.0) < 0.01);
    }
}

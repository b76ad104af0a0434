//! RTCP (RFC 3550 §6): parsing incoming SR/RR, building our SR/RR + SDES, and the
//! per-source reception statistics of Appendix A.1, A.3 and A.8.
//!
//! Hand-written for the same reason as `rtp`: webrtc-rs's `rtcp` crate brings
//! `webrtc-util` and boxes every packet as a trait object; we need two packet types.

use std::time::{Duration, Instant};

use thiserror::Error;

/// Why a datagram is not valid RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtcpError {
    #[error("RTCP packet truncated")]
    Truncated,
    #[error("RTCP version is not 2")]
    BadVersion,
    #[error("too many RTCP packets in one compound packet")]
    TooManyPackets,
    #[error("output buffer too small")]
    BufferTooSmall,
}

impl RtcpError {
    /// Stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            RtcpError::Truncated => "rtcp.truncated",
            RtcpError::BadVersion => "rtcp.bad_version",
            RtcpError::TooManyPackets => "rtcp.too_many_packets",
            RtcpError::BufferTooSmall => "rtcp.buffer_too_small",
        }
    }
}

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;

/// A compound packet of more than this many parts is refused (bounds the allocation).
pub const MAX_PACKETS: usize = 16;

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed cumulative number of packets lost.
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

/// The sender info of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    pub ntp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// One part of a compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        reports: Vec<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        reports: Vec<ReportBlock>,
    },
    /// SDES, BYE, APP, feedback: recognised, not interpreted.
    Other { packet_type: u8 },
}

fn be32(b: &[u8], at: usize) -> Result<u32, RtcpError> {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => Ok(u32::from_be_bytes([w, x, y, z])),
        _ => Err(RtcpError::Truncated),
    }
}

fn parse_blocks(body: &[u8], at: usize, count: usize) -> Result<Vec<ReportBlock>, RtcpError> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let o = at + 24 * i;
        let word1 = be32(body, o + 4)?;
        let raw_lost = word1 & 0x00FF_FFFF;
        // sign-extend the 24-bit field
        let cumulative_lost = ((raw_lost << 8) as i32) >> 8;
        out.push(ReportBlock {
            ssrc: be32(body, o)?,
            fraction_lost: (word1 >> 24) as u8,
            cumulative_lost,
            highest_seq: be32(body, o + 8)?,
            jitter: be32(body, o + 12)?,
            last_sr: be32(body, o + 16)?,
            delay_since_last_sr: be32(body, o + 20)?,
        });
    }
    Ok(out)
}

/// Parses a compound RTCP packet; never panics whatever the bytes.
pub fn parse_compound(buf: &[u8]) -> Result<Vec<RtcpPacket>, RtcpError> {
    let mut out = Vec::new();
    let mut rest = buf;
    if rest.is_empty() {
        return Err(RtcpError::Truncated);
    }
    while !rest.is_empty() {
        if out.len() >= MAX_PACKETS {
            return Err(RtcpError::TooManyPackets);
        }
        let head = be32(rest, 0)?;
        if head >> 30 != 2 {
            return Err(RtcpError::BadVersion);
        }
        let count = ((head >> 24) & 0x1F) as usize;
        let packet_type = ((head >> 16) & 0xFF) as u8;
        let len = 4 * (usize::from(head as u16) + 1);
        let body = rest.get(..len).ok_or(RtcpError::Truncated)?;
        rest = rest.get(len..).unwrap_or(&[]);
        let packet = match packet_type {
            PT_SR => RtcpPacket::SenderReport {
                ssrc: be32(body, 4)?,
                info: SenderInfo {
                    ntp: (u64::from(be32(body, 8)?) << 32) | u64::from(be32(body, 12)?),
                    rtp_timestamp: be32(body, 16)?,
                    packet_count: be32(body, 20)?,
                    octet_count: be32(body, 24)?,
                },
                reports: parse_blocks(body, 28, count)?,
            },
            PT_RR => RtcpPacket::ReceiverReport {
                ssrc: be32(body, 4)?,
                reports: parse_blocks(body, 8, count)?,
            },
            other => RtcpPacket::Other { packet_type: other },
        };
        out.push(packet);
    }
    Ok(out)
}

fn put32(out: &mut [u8], at: usize, v: u32) -> Result<(), RtcpError> {
    out.get_mut(at..at + 4)
        .ok_or(RtcpError::BufferTooSmall)?
        .copy_from_slice(&v.to_be_bytes());
    Ok(())
}

/// Writes our compound report: an SR (if `sender` is given, else an RR) with at most
/// one report block, followed by the SDES CNAME that RFC 3550 §6.1 requires.
pub fn write_report(
    out: &mut [u8],
    ssrc: u32,
    sender: Option<SenderInfo>,
    block: Option<ReportBlock>,
    cname: &str,
) -> Result<usize, RtcpError> {
    let rc = u32::from(block.is_some());
    let (pt, mut at) = match sender {
        Some(_) => (PT_SR, 28),
        None => (PT_RR, 8),
    };
    if let Some(info) = sender {
        put32(out, 8, (info.ntp >> 32) as u32)?;
        put32(out, 12, info.ntp as u32)?;
        put32(out, 16, info.rtp_timestamp)?;
        put32(out, 20, info.packet_count)?;
        put32(out, 24, info.octet_count)?;
    }
    put32(out, 4, ssrc)?;
    if let Some(b) = block {
        let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
        put32(out, at, b.ssrc)?;
        put32(out, at + 4, (u32::from(b.fraction_lost) << 24) | lost)?;
        put32(out, at + 8, b.highest_seq)?;
        put32(out, at + 12, b.jitter)?;
        put32(out, at + 16, b.last_sr)?;
        put32(out, at + 20, b.delay_since_last_sr)?;
        at += 24;
    }
    put32(
        out,
        0,
        (2 << 30) | (rc << 24) | (u32::from(pt) << 16) | (at / 4 - 1) as u32,
    )?;
    // SDES: one chunk, CNAME item, null-terminated and padded to 32 bits
    let name = cname.as_bytes().get(..cname.len().min(255)).unwrap_or(&[]);
    let items = 2 + name.len() + 1;
    let chunk = 4 + items.div_ceil(4) * 4;
    let sdes_len = 4 + chunk;
    let sdes = out
        .get_mut(at..at + sdes_len)
        .ok_or(RtcpError::BufferTooSmall)?;
    sdes.fill(0);
    put32(
        sdes,
        0,
        (2 << 30) | (1 << 24) | (u32::from(PT_SDES) << 16) | (sdes_len / 4 - 1) as u32,
    )?;
    put32(sdes, 4, ssrc)?;
    if let Some(item) = sdes.get_mut(8..10 + name.len()) {
        item[0] = 1; // CNAME
        item[1] = name.len() as u8;
        item[2..].copy_from_slice(name);
    }
    Ok(at + sdes_len)
}

/// Converts a duration to the 1/65536 s units of DLSR.
fn to_dlsr(d: Duration) -> u32 {
    ((d.as_micros() * 65536) / 1_000_000).min(u128::from(u32::MAX)) as u32
}

const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// Reception statistics for one remote source (RFC 3550 A.1, A.3, A.8).
#[derive(Debug, Clone, Default)]
pub struct ReceptionStats {
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    last_transit: Option<u32>,
    jitter_q4: u32,
    last_sr: Option<(u32, Instant)>,
}

impl ReceptionStats {
    /// Accounts one RTP packet; `arrival` is the arrival time in RTP clock units.
    pub fn on_packet(&mut self, ssrc: u32, seq: u16, timestamp: u32, arrival: u32) {
        if self.ssrc != Some(ssrc) {
            *self = ReceptionStats {
                ssrc: Some(ssrc),
                base_seq: u32::from(seq),
                max_seq: seq,
                ..ReceptionStats::default()
            };
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            } else if delta <= u16::MAX - MAX_MISORDER {
                // a large jump: the sender restarted its sequence; start over
                self.base_seq = u32::from(seq);
                self.max_seq = seq;
                self.cycles = 0;
                self.received = 0;
                self.expected_prior = 0;
                self.received_prior = 0;
            }
        }
        self.received = self.received.wrapping_add(1);
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16
            self.jitter_q4 = self
                .jitter_q4
                .wrapping_add(d)
                .wrapping_sub((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Records an SR from the source, for LSR/DLSR.
    pub fn on_sender_report(&mut self, ntp: u64, now: Instant) {
        self.last_sr = Some(((ntp >> 16) as u32, now));
    }

    /// The cumulative number of packets lost so far.
    pub fn cumulative_lost(&self) -> i64 {
        let extended = self.cycles.wrapping_add(u32::from(self.max_seq));
        let expected = i64::from(extended.wrapping_sub(self.base_seq)) + 1;
        expected - i64::from(self.received)
    }

    /// Builds the report block for this source and starts a new interval; `None` before
    /// any packet was received.
    pub fn report(&mut self, now: Instant) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        let extended = self.cycles.wrapping_add(u32::from(self.max_seq));
        let expected = extended.wrapping_sub(self.base_seq).wrapping_add(1);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => (lsr, to_dlsr(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7F_FFFF) as i32,
            highest_seq: extended,
            jitter: self.jitter_q4 >> 4,
            last_sr,
            delay_since_last_sr,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn our_sender_report_parses_back() {
        // given an SR with one block, when written and parsed, then all fields survive
        let info = SenderInfo {
            ntp: 0x1122_3344_5566_7788,
            rtp_timestamp: 160,
            packet_count: 3,
            octet_count: 480,
        };
        let block = ReportBlock {
            ssrc: 7,
            fraction_lost: 64,
            cumulative_lost: -2,
            highest_seq: 70000,
            jitter: 12,
            last_sr: 5,
            delay_since_last_sr: 6,
        };
        let mut buf = [0u8; 256];
        let n = write_report(&mut buf, 42, Some(info), Some(block), "conclave").unwrap();
        assert_eq!(n % 4, 0);
        let parts = parse_compound(&buf[..n]).unwrap();
        assert_eq!(
            parts[0],
            RtcpPacket::SenderReport {
                ssrc: 42,
                info,
                reports: vec![block]
            }
        );
        assert_eq!(
            parts[1],
            RtcpPacket::Other {
                packet_type: PT_SDES
            }
        );
    }

    #[test]
    fn receiver_report_without_block_parses_back() {
        let mut buf = [0u8; 64];
        let n = write_report(&mut buf, 9, None, None, "x").unwrap();
        let parts = parse_compound(&buf[..n]).unwrap();
        assert_eq!(
            parts[0],
            RtcpPacket::ReceiverReport {
                ssrc: 9,
                reports: vec![]
            }
        );
    }

    #[test]
    fn hostile_compounds_are_rejected() {
        assert_eq!(parse_compound(&[]), Err(RtcpError::Truncated));
        assert_eq!(parse_compound(&[0x80, 200]), Err(RtcpError::Truncated));
        assert_eq!(
            parse_compound(&[0x40, 200, 0, 0]),
            Err(RtcpError::BadVersion)
        );
        // SR claiming 31 report blocks in a 7-word body
        let mut sr = vec![0x9F, 200, 0, 6];
        sr.extend([0u8; 24]);
        assert_eq!(parse_compound(&sr), Err(RtcpError::Truncated));
        // length field past the datagram
        assert_eq!(
            parse_compound(&[0x80, 201, 0xFF, 0xFF, 0, 0, 0, 0]),
            Err(RtcpError::Truncated)
        );
        // too many tiny packets
        let many: Vec<u8> = [0x80, 203, 0, 0].repeat(MAX_PACKETS + 1);
        assert_eq!(parse_compound(&many), Err(RtcpError::TooManyPackets));
    }

    #[test]
    fn stats_count_loss_and_wrap() {
        // given packets 65534, 65535, (0 lost), 1, when reported, then one is lost and
        // the extended highest sequence has wrapped
        let t0 = Instant::now();
        let mut s = ReceptionStats::default();
        for (seq, ts) in [(65534u16, 0u32), (65535, 160), (1, 480)] {
            s.on_packet(5, seq, ts, ts);
        }
        let r = s.report(t0).unwrap();
        assert_eq!(r.cumulative_lost, 1);
        assert_eq!(r.highest_seq, 65536 + 1);
        assert_eq!(r.fraction_lost, 64); // 1 of 4 expected
        assert_eq!(r.jitter, 0);
        // when nothing more is lost in the next interval, then the fraction is 0
        s.on_packet(5, 2, 640, 640);
        assert_eq!(s.report(t0).unwrap().fraction_lost, 0);
    }

    #[test]
    fn jitter_grows_with_arrival_variance() {
        let mut s = ReceptionStats::default();
        for i in 0..50u32 {
            let skew = if i.is_multiple_of(2) { 0 } else { 80 };
            s.on_packet(1, i as u16, i * 160, i * 160 + skew);
        }
        let j = s.report(Instant::now()).unwrap().jitter;
        assert!((40..=80).contains(&j), "{j}");
    }

    #[test]
    fn lsr_and_dlsr_follow_the_last_sender_report() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::default();
        s.on_packet(1, 0, 0, 0);
        s.on_sender_report(0x0000_1234_5678_0000, t0);
        let r = s.report(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(r.last_sr, 0x1234_5678);
        assert_eq!(r.delay_since_last_sr, 65536);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_compound(&bytes);
        }
    }
}

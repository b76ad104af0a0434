//! RTP (RFC 3550 §5.1) packet parsing and building, borrowing the datagram.
//!
//! Hand-written rather than webrtc-rs's `rtp` crate: that crate pulls in `webrtc-util`
//! (and with it a large dependency tree) and copies every payload into a `Bytes`; the
//! mixer needs only the fixed header, CSRC/extension skipping and padding, with bounds
//! checks, parsed without allocation 50 times a second per caller.

use thiserror::Error;

/// The fixed RTP header length.
pub const HEADER_LEN: usize = 12;

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the header, its CSRC list or its extension.
    #[error("RTP packet truncated")]
    Truncated,
    /// Version field is not 2.
    #[error("RTP version is not 2")]
    BadVersion,
    /// The padding count runs past the payload.
    #[error("RTP padding is invalid")]
    BadPadding,
    /// The output buffer is too small to build the packet.
    #[error("output buffer too small")]
    BufferTooSmall,
}

impl RtpError {
    /// Stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            RtpError::Truncated => "rtp.truncated",
            RtpError::BadVersion => "rtp.bad_version",
            RtpError::BadPadding => "rtp.bad_padding",
            RtpError::BufferTooSmall => "rtp.buffer_too_small",
        }
    }
}

/// A parsed RTP packet; the payload borrows the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Number of CSRC entries (skipped: a phone is never a mixer for us).
    pub csrc_count: u8,
    /// The header extension profile, if any (its content is skipped).
    pub extension_profile: Option<u16>,
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Result<u16, RtpError> {
    match b.get(at..at + 2) {
        Some(&[x, y]) => Ok(u16::from_be_bytes([x, y])),
        _ => Err(RtpError::Truncated),
    }
}

fn be32(b: &[u8], at: usize) -> Result<u32, RtpError> {
    match b.get(at..at + 4) {
        Some(&[w, x, y, z]) => Ok(u32::from_be_bytes([w, x, y, z])),
        _ => Err(RtpError::Truncated),
    }
}

impl<'a> RtpPacket<'a> {
    /// Parses a datagram; never panics whatever the bytes.
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        let (&b0, &b1) = match (buf.first(), buf.get(1)) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(RtpError::Truncated),
        };
        if buf.len() < HEADER_LEN {
            return Err(RtpError::Truncated);
        }
        if b0 >> 6 != 2 {
            return Err(RtpError::BadVersion);
        }
        let padding = b0 & 0x20 != 0;
        let extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0F;
        let sequence = be16(buf, 2)?;
        let timestamp = be32(buf, 4)?;
        let ssrc = be32(buf, 8)?;
        let mut offset = HEADER_LEN + 4 * usize::from(csrc_count);
        if buf.len() < offset {
            return Err(RtpError::Truncated);
        }
        let mut extension_profile = None;
        if extension {
            let profile = be16(buf, offset)?;
            let words = be16(buf, offset + 2)?;
            offset += 4 + 4 * usize::from(words);
            if buf.len() < offset {
                return Err(RtpError::Truncated);
            }
            extension_profile = Some(profile);
        }
        let mut end = buf.len();
        if padding {
            let pad = usize::from(*buf.last().ok_or(RtpError::Truncated)?);
            if pad == 0 || end - offset < pad {
                return Err(RtpError::BadPadding);
            }
            end -= pad;
        }
        let payload = buf.get(offset..end).ok_or(RtpError::Truncated)?;
        Ok(RtpPacket {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7F,
            sequence,
            timestamp,
            ssrc,
            csrc_count,
            extension_profile,
            payload,
        })
    }
}

/// The header fields of a packet we send (no CSRC, no extension, no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes header and payload into `out`, returning the packet length.
    pub fn write(&self, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
        let len = HEADER_LEN + payload.len();
        let dst = out.get_mut(..len).ok_or(RtpError::BufferTooSmall)?;
        let (head, body) = dst.split_at_mut(HEADER_LEN);
        if let Ok(head) = <&mut [u8; HEADER_LEN]>::try_from(head) {
            self.write_header(head);
        }
        body.copy_from_slice(payload);
        Ok(len)
    }

    /// Writes the 12-byte header (the payload is then written after it in place).
    #[inline]
    pub fn write_header(&self, head: &mut [u8; HEADER_LEN]) {
        head[0] = 0x80;
        head[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        head[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        head[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        head[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }
}

/// RFC 5761 §4: on a muxed port, a second byte in 192..=223 is RTCP (PT 64..=95 with
/// the marker bit set never occurs in RTP); SR/RR/SDES/BYE/APP are 200..=204.
pub fn looks_like_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn build_then_parse_round_trips() {
        // given a header and a payload, when written and parsed, then fields survive
        let h = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x0102_0304,
        };
        let mut buf = [0u8; 200];
        let n = h.write(&[1, 2, 3], &mut buf).unwrap();
        let p = RtpPacket::parse(&buf[..n]).unwrap();
        assert!(p.marker);
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (8, 65535, 0xDEAD_BEEF, 0x0102_0304)
        );
        assert_eq!(p.payload, &[1, 2, 3]);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        // given a packet with 1 CSRC, a 1-word extension and 2 bytes of padding
        let mut b = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend([9, 9, 9, 9]); // CSRC
        b.extend([0xBE, 0xDE, 0, 1, 7, 7, 7, 7]); // extension
        b.extend([0xAA, 0xBB]); // payload
        b.extend([0, 2]); // padding
        let p = RtpPacket::parse(&b).unwrap();
        assert_eq!(p.payload, &[0xAA, 0xBB]);
        assert_eq!(p.extension_profile, Some(0xBEDE));
        assert_eq!(p.csrc_count, 1);
    }

    #[test]
    fn hostile_headers_are_rejected() {
        assert_eq!(RtpPacket::parse(&[]), Err(RtpError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::BadVersion));
        // 15 CSRCs announced, none present
        assert_eq!(RtpPacket::parse(&[0x8F; 12]), Err(RtpError::Truncated));
        // extension length runs past the end
        let mut b = vec![
            0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0xFF, 0xFF,
        ];
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::Truncated));
        // padding longer than the payload
        b = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 200];
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::BadPadding));
    }

    #[test]
    fn rtcp_is_told_apart_from_rtp() {
        assert!(looks_like_rtcp(&[0x80, 200, 0, 6]));
        assert!(looks_like_rtcp(&[0x81, 201]));
        assert!(!looks_like_rtcp(&[0x80, 0]));
        assert!(!looks_like_rtcp(&[0x80, 0x80 | 8]));
        assert!(!looks_like_rtcp(&[0x80]));
    }

    #[test]
    fn write_into_a_short_buffer_fails() {
        let h = RtpHeader {
            marker: false,
            payload_type: 0,
            sequence: 0,
            timestamp: 0,
            ssrc: 0,
        };
        assert_eq!(
            h.write(&[0; 160], &mut [0u8; 100]),
            Err(RtpError::BufferTooSmall)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = RtpPacket::parse(&bytes);
            let _ = looks_like_rtcp(&bytes);
        }

        #[test]
        fn version_two_prefix_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..64), b0 in 0x80u8..0xC0) {
            let mut bytes = vec![b0];
            bytes.extend(tail);
            if let Ok(p) = RtpPacket::parse(&bytes) {
                prop_assert!(p.payload.len() <= bytes.len());
            }
        }
    }
}

//! ITU-T G.711 μ-law (PCMU) and A-law (PCMA), table-driven.
//!
//! The arithmetic is the classic Sun reference (`g711.c`) that every PBX and phone
//! agrees with; the tables are built at compile time so encoding and decoding a sample
//! is one array load. μ-law only looks at the top 14 bits of a sample and A-law at the
//! top 13, so the encode tables are indexed by the shifted sample (16 KiB and 8 KiB).
//! No crate for this is both small and kept up, hence the 100 lines here.

/// The two G.711 companding laws, chosen per leg from the SDP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    /// μ-law, RTP static payload type 0.
    Pcmu,
    /// A-law, RTP static payload type 8.
    Pcma,
}

impl G711 {
    /// The static RTP payload type of RFC 3551.
    pub fn static_payload_type(self) -> u8 {
        match self {
            G711::Pcmu => 0,
            G711::Pcma => 8,
        }
    }

    /// The code of digital silence (linear 0) in this law.
    pub fn silence(self) -> u8 {
        match self {
            G711::Pcmu => ULAW_ENCODE[ULAW_OFFSET],
            G711::Pcma => ALAW_ENCODE[ALAW_OFFSET],
        }
    }

    /// Decodes `input` into `out` (as many samples as the shorter of the two).
    #[inline]
    pub fn decode(self, input: &[u8], out: &mut [i16]) {
        let table = match self {
            G711::Pcmu => &ULAW_DECODE,
            G711::Pcma => &ALAW_DECODE,
        };
        for (o, &code) in out.iter_mut().zip(input) {
            *o = table[usize::from(code)];
        }
    }

    /// Encodes `input` into `out` (as many samples as the shorter of the two).
    #[inline]
    pub fn encode(self, input: &[i16], out: &mut [u8]) {
        match self {
            G711::Pcmu => {
                for (o, &s) in out.iter_mut().zip(input) {
                    *o = ulaw_encode(s);
                }
            }
            G711::Pcma => {
                for (o, &s) in out.iter_mut().zip(input) {
                    *o = alaw_encode(s);
                }
            }
        }
    }

    /// Decodes one code.
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            G711::Pcmu => ULAW_DECODE[usize::from(code)],
            G711::Pcma => ALAW_DECODE[usize::from(code)],
        }
    }

    /// Encodes one sample.
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            G711::Pcmu => ulaw_encode(sample),
            G711::Pcma => alaw_encode(sample),
        }
    }
}

const ULAW_OFFSET: usize = 8192;
const ALAW_OFFSET: usize = 4096;

/// μ-law encode of one sample: the index is always within the 16384-entry table because
/// an i16 shifted right by 2 lies in -8192..=8191.
#[inline(always)]
fn ulaw_encode(sample: i16) -> u8 {
    let idx = ((i32::from(sample) >> 2) + ULAW_OFFSET as i32) as usize & (ULAW_ENCODE.len() - 1);
    ULAW_ENCODE[idx]
}

/// A-law encode of one sample: an i16 shifted right by 3 lies in -4096..=4095.
#[inline(always)]
fn alaw_encode(sample: i16) -> u8 {
    let idx = ((i32::from(sample) >> 3) + ALAW_OFFSET as i32) as usize & (ALAW_ENCODE.len() - 1);
    ALAW_ENCODE[idx]
}

const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];

const fn search(val: i32, table: &[i32; 8]) -> i32 {
    let mut i = 0;
    while i < 8 {
        if val <= table[i] {
            return i as i32;
        }
        i += 1;
    }
    8
}

/// Sun's `linear2ulaw` applied to a sample already shifted right by 2.
const fn ulaw_from_shifted(shifted: i32) -> u8 {
    let (mut v, mask) = if shifted < 0 {
        (-shifted, 0x7F)
    } else {
        (shifted, 0xFF)
    };
    if v > 8159 {
        v = 8159;
    }
    v += 0x84 >> 2;
    let seg = search(v, &SEG_UEND);
    if seg >= 8 {
        (0x7F ^ mask) as u8
    } else {
        (((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask) as u8
    }
}

/// Sun's `linear2alaw` applied to a sample already shifted right by 3.
const fn alaw_from_shifted(shifted: i32) -> u8 {
    let (v, mask) = if shifted >= 0 {
        (shifted, 0xD5)
    } else {
        (-shifted - 1, 0x55)
    };
    let seg = search(v, &SEG_AEND);
    if seg >= 8 {
        (0x7F ^ mask) as u8
    } else {
        let quant = if seg < 2 {
            (v >> 1) & 0xF
        } else {
            (v >> seg) & 0xF
        };
        (((seg << 4) | quant) ^ mask) as u8
    }
}

const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code as i32;
    let mut t = ((u & 0x0F) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

const fn alaw_to_linear(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

static ULAW_ENCODE: [u8; 16384] = {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        t[i] = ulaw_from_shifted(i as i32 - ULAW_OFFSET as i32);
        i += 1;
    }
    t
};

static ALAW_ENCODE: [u8; 8192] = {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        t[i] = alaw_from_shifted(i as i32 - ALAW_OFFSET as i32);
        i += 1;
    }
    t
};

static ULAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    t
};

static ALAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ulaw_known_code_points() {
        // given the G.711 reference values, when decoding/encoding, then they match
        assert_eq!(G711::Pcmu.decode_sample(0xFF), 0);
        assert_eq!(G711::Pcmu.decode_sample(0x7F), 0);
        assert_eq!(G711::Pcmu.decode_sample(0x00), -32124);
        assert_eq!(G711::Pcmu.decode_sample(0x80), 32124);
        assert_eq!(G711::Pcmu.encode_sample(0), 0xFF);
        assert_eq!(G711::Pcmu.encode_sample(i16::MAX), 0x80);
        assert_eq!(G711::Pcmu.encode_sample(i16::MIN), 0x00);
        assert_eq!(G711::Pcmu.encode_sample(-1), 0x7E); // Sun reference: |-1>>2| + 33 → quant 1
        assert_eq!(G711::Pcmu.silence(), 0xFF);
    }

    #[test]
    fn alaw_known_code_points() {
        assert_eq!(G711::Pcma.decode_sample(0xD5), 8);
        assert_eq!(G711::Pcma.decode_sample(0x55), -8);
        assert_eq!(G711::Pcma.decode_sample(0xAA), 32256);
        assert_eq!(G711::Pcma.decode_sample(0x2A), -32256);
        assert_eq!(G711::Pcma.encode_sample(0), 0xD5);
        assert_eq!(G711::Pcma.encode_sample(i16::MAX), 0xAA);
        assert_eq!(G711::Pcma.encode_sample(i16::MIN), 0x2A);
        assert_eq!(G711::Pcma.silence(), 0xD5);
    }

    #[test]
    fn every_code_round_trips() {
        // given every code, when decoded then re-encoded, then the same code comes back
        // (except μ-law's negative zero 0x7F, which encodes as positive zero 0xFF)
        for code in 0..=255u8 {
            let a = G711::Pcma.decode_sample(code);
            assert_eq!(G711::Pcma.encode_sample(a), code, "alaw {code:#x}");
            let u = G711::Pcmu.decode_sample(code);
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(G711::Pcmu.encode_sample(u), expected, "ulaw {code:#x}");
        }
    }

    #[test]
    fn linear_round_trip_error_is_bounded() {
        // given any sample, when companded, then the error stays within the segment step
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            for law in [G711::Pcmu, G711::Pcma] {
                let back = law.decode_sample(law.encode_sample(s));
                let err = (i32::from(back) - i32::from(s)).abs();
                let bound = (i32::from(s).abs() / 16).max(16);
                assert!(err <= bound, "{law:?} {s} -> {back}");
            }
        }
    }

    #[test]
    fn slice_codec_matches_sample_codec() {
        let pcm: Vec<i16> = (0..160).map(|i| (i * 397 - 30000) as i16).collect();
        let mut enc = [0u8; 160];
        let mut dec = [0i16; 160];
        G711::Pcma.encode(&pcm, &mut enc);
        G711::Pcma.decode(&enc, &mut dec);
        for i in 0..160 {
            assert_eq!(enc[i], G711::Pcma.encode_sample(pcm[i]));
            assert_eq!(dec[i], G711::Pcma.decode_sample(enc[i]));
        }
    }
}

//! Audio primitives for the SIP <-> browser bridge and for recordings: Opus through
//! Debian's libopus ([`OpusDecoder`], [`OpusEncoder`]), anti-aliased 48 kHz <-> 8 kHz
//! resampling ([`Downsampler`], [`Upsampler`]), and levels ([`audio_level`] for RFC 6464,
//! [`goertzel`] for tone checks).
//!
//! Everything works on one 20 ms mono frame per call, the unit the mixer ticks in
//! ([`FRAME_WIDE`] samples at 48 kHz, [`FRAME_NARROW`] at 8 kHz), and allocates only at
//! construction, so a bridged leg costs the same on every tick.

pub mod level;
pub mod opus;
pub mod resample;

use thiserror::Error;

pub use self::level::{audio_level, goertzel};
pub use self::opus::{OpusDecoder, OpusEncoder};
pub use self::resample::{Downsampler, Upsampler};

/// The browser side's rate (Opus, WebRTC).
pub const RATE_WIDE: u32 = 48_000;
/// Samples in 20 ms at [`RATE_WIDE`].
pub const FRAME_WIDE: usize = 960;
/// The SIP side's rate (G.711).
pub const RATE_NARROW: u32 = 8_000;
/// Samples in 20 ms at [`RATE_NARROW`] (= [`crate::jitter::FRAME_SAMPLES`]).
pub const FRAME_NARROW: usize = 160;

const _: () = assert!(FRAME_NARROW == crate::jitter::FRAME_SAMPLES);
const _: () = assert!(FRAME_WIDE * RATE_NARROW as usize == FRAME_NARROW * RATE_WIDE as usize);

/// Errors of the audio primitives and the recording writers, each with a stable code.
#[derive(Debug, Error)]
pub enum AudioError {
    /// libopus refused an operation (bad parameter, corrupt packet, buffer too small).
    #[error("opus {op}: {detail}")]
    Opus { op: &'static str, detail: String },
    /// The resampler could not be built or refused a frame.
    #[error("resampler: {0}")]
    Resampler(String),
    /// Writing an Ogg page failed.
    #[error("ogg {path}: {source}")]
    Ogg {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// libwebm refused a track or a frame, or could not finalize the file.
    #[error("webm {path}: {detail}")]
    Webm {
        path: std::path::PathBuf,
        detail: String,
    },
    /// A VP8 RTP payload that cannot be depacketized (the writer stays usable).
    #[error("vp8 payload: {0}")]
    Vp8(&'static str),
    /// Creating, syncing or hashing a recording file failed.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl AudioError {
    /// Stable code per variant.
    pub fn code(&self) -> &'static str {
        match self {
            AudioError::Opus { .. } => "audio.opus",
            AudioError::Resampler(_) => "audio.resampler",
            AudioError::Ogg { .. } => "audio.ogg",
            AudioError::Webm { .. } => "audio.webm",
            AudioError::Vp8(_) => "audio.vp8",
            AudioError::Io { .. } => "audio.io",
        }
    }
}

/// The bare per-leg transcoding work of the bridge, for one 20 ms frame: Opus decode,
/// 48 kHz -> 8 kHz, 8 kHz -> 48 kHz, Opus encode. The bridge benchmark measures its
/// rooms against this loop (no mixing, no I/O). Returns the encoded packet's length.
pub fn transcode_loop_frame(
    dec: &mut OpusDecoder,
    down: &mut Downsampler,
    up: &mut Upsampler,
    enc: &mut OpusEncoder,
    packet: &[u8],
    out: &mut [u8],
) -> Result<usize, AudioError> {
    let mut wide = [0i16; FRAME_WIDE];
    let mut narrow = [0i16; FRAME_NARROW];
    dec.decode(packet, &mut wide)?;
    down.process(&wide, &mut narrow)?;
    up.process(&narrow, &mut wide)?;
    enc.encode(&wide, out)
}

/// Test signals shared by the audio and recording tests.
#[cfg(test)]
pub(crate) mod signal {
    /// A sine of `amplitude` (full scale = 1.0) at `freq_hz`, starting at sample `start`.
    pub fn sine(out: &mut [i16], rate: u32, freq_hz: f64, amplitude: f64, start: usize) {
        for (i, s) in out.iter_mut().enumerate() {
            let t = (start + i) as f64 / f64::from(rate);
            let v = amplitude * (2.0 * std::f64::consts::PI * freq_hz * t).sin();
            *s = (v * 32767.0).round() as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn transcode_loop_keeps_a_1khz_tone() {
        let mut enc_in = OpusEncoder::new(32_000).unwrap();
        let mut dec = OpusDecoder::new().unwrap();
        let mut down = Downsampler::new().unwrap();
        let mut up = Upsampler::new().unwrap();
        let mut enc = OpusEncoder::new(32_000).unwrap();
        let mut check = OpusDecoder::new().unwrap();
        let mut pcm = [0i16; FRAME_WIDE];
        let mut packet = [0u8; 1500];
        let mut out = [0u8; 1500];
        let mut decoded = Vec::new();
        for n in 0..50 {
            signal::sine(&mut pcm, RATE_WIDE, 1000.0, 0.5, n * FRAME_WIDE);
            let len = enc_in.encode(&pcm, &mut packet).unwrap();
            let olen = transcode_loop_frame(
                &mut dec,
                &mut down,
                &mut up,
                &mut enc,
                &packet[..len],
                &mut out,
            )
            .unwrap();
            let mut frame = [0i16; FRAME_WIDE];
            check.decode(&out[..olen], &mut frame).unwrap();
            decoded.extend_from_slice(&frame);
        }
        let tail = &decoded[decoded.len() / 2..];
        let tone = goertzel(tail, RATE_WIDE, 1000.0);
        let other = goertzel(tail, RATE_WIDE, 3000.0);
        assert!(tone > 0.01, "tone power {tone}");
        assert!(tone > 1000.0 * other, "1 kHz {tone} vs 3 kHz {other}");
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(AudioError::Vp8("x").code(), "audio.vp8");
        assert_eq!(AudioError::Resampler("x".into()).code(), "audio.resampler");
    }
}

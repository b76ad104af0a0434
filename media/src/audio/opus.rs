//! Opus through Debian's libopus (the `opus` crate over `audiopus_sys`, linked with
//! pkg-config): mono, 48 kHz, 20 ms frames, the shape WebRTC browsers send and expect.

use ::opus::{Application, Bitrate, Channels, Decoder, Encoder};

use super::{AudioError, FRAME_WIDE, RATE_WIDE};

/// The longest Opus packet duration (120 ms at 48 kHz): the decoder's scratch size.
const MAX_PACKET_SAMPLES: usize = 5_760;
/// The loss rate the encoder is told to expect, so in-band FEC is actually spent.
const EXPECTED_LOSS_PERCENT: i32 = 5;

fn opus_err(op: &'static str) -> impl FnOnce(::opus::Error) -> AudioError {
    move |e| AudioError::Opus {
        op,
        detail: e.to_string(),
    }
}

/// Decodes one participant's Opus stream (one decoder per stream: Opus is stateful).
pub struct OpusDecoder {
    inner: Decoder,
    /// Room for the longest legal packet, so any packet decodes without a per-call
    /// allocation.
    scratch: Vec<i16>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusDecoder")
    }
}

impl OpusDecoder {
    pub fn new() -> Result<Self, AudioError> {
        let inner = Decoder::new(RATE_WIDE, Channels::Mono).map_err(opus_err("decoder_new"))?;
        Ok(Self {
            inner,
            scratch: vec![0; MAX_PACKET_SAMPLES],
        })
    }

    /// Decodes one packet into exactly one 20 ms frame. A packet of another duration
    /// is decoded whole, then truncated to its first 960 samples (longer: 40, 60, 120 ms)
    /// or padded with silence (shorter: 2.5, 5, 10 ms); browsers send 20 ms, so this
    /// only keeps the tick rhythm against an odd sender. A stereo packet is downmixed.
    /// Hostile bytes (empty, corrupt, oversized) give an error, never a panic.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16; FRAME_WIDE]) -> Result<(), AudioError> {
        if packet.is_empty() {
            return Err(AudioError::Opus {
                op: "decode",
                detail: "empty packet".into(),
            });
        }
        let n = self
            .inner
            .decode(packet, &mut self.scratch, false)
            .map_err(opus_err("decode"))?;
        copy_frame(&self.scratch[..n.min(self.scratch.len())], out);
        Ok(())
    }

    /// Packet loss concealment for one missing frame (libopus extrapolates from the
    /// previous frames; after a long gap this fades to silence).
    pub fn conceal(&mut self, out: &mut [i16; FRAME_WIDE]) -> Result<(), AudioError> {
        let n = self
            .inner
            .decode(&[], &mut self.scratch[..FRAME_WIDE], false)
            .map_err(opus_err("conceal"))?;
        copy_frame(&self.scratch[..n.min(FRAME_WIDE)], out);
        Ok(())
    }

    /// Rebuilds one missing frame from the in-band FEC data carried by the packet that
    /// follows it (falls back to concealment inside libopus when that packet has none).
    /// Call it before `decode` of `next_packet` itself.
    pub fn recover(
        &mut self,
        next_packet: &[u8],
        out: &mut [i16; FRAME_WIDE],
    ) -> Result<(), AudioError> {
        if next_packet.is_empty() {
            return self.conceal(out);
        }
        let n = self
            .inner
            .decode(next_packet, &mut self.scratch[..FRAME_WIDE], true)
            .map_err(opus_err("decode_fec"))?;
        copy_frame(&self.scratch[..n.min(FRAME_WIDE)], out);
        Ok(())
    }
}

/// Copies at most one frame from `decoded`, padding the rest with silence.
fn copy_frame(decoded: &[i16], out: &mut [i16; FRAME_WIDE]) {
    let n = decoded.len().min(FRAME_WIDE);
    out[..n].copy_from_slice(&decoded[..n]);
    out[n..].fill(0);
}

/// Encodes one stream as Opus: VoIP application (speech tuning), mono, 48 kHz.
pub struct OpusEncoder {
    inner: Encoder,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpusEncoder")
    }
}

impl OpusEncoder {
    /// VoIP application, mono, 48 kHz; `bitrate_bps` e.g. 32_000 (libopus accepts
    /// 500..=512_000); in-band FEC on, tuned for 5 % loss so the FEC is really sent.
    pub fn new(bitrate_bps: i32) -> Result<Self, AudioError> {
        let mut inner = Encoder::new(RATE_WIDE, Channels::Mono, Application::Voip)
            .map_err(opus_err("encoder_new"))?;
        inner
            .set_bitrate(Bitrate::Bits(bitrate_bps))
            .map_err(opus_err("set_bitrate"))?;
        inner
            .set_inband_fec(true)
            .map_err(opus_err("set_inband_fec"))?;
        inner
            .set_packet_loss_perc(EXPECTED_LOSS_PERCENT)
            .map_err(opus_err("set_packet_loss_perc"))?;
        Ok(Self { inner })
    }

    /// Encodes one 20 ms frame; returns the packet length written into `out` (out
    /// should be >= 1275 bytes, the largest Opus frame; a smaller one may fail).
    pub fn encode(&mut self, pcm: &[i16; FRAME_WIDE], out: &mut [u8]) -> Result<usize, AudioError> {
        self.inner.encode(pcm, out).map_err(opus_err("encode"))
    }

    /// Algorithmic delay (pre-skip) in 48 kHz samples, for Ogg's OpusHead.
    pub fn lookahead(&mut self) -> Result<u16, AudioError> {
        let samples = self
            .inner
            .get_lookahead()
            .map_err(opus_err("get_lookahead"))?;
        u16::try_from(samples).map_err(|_| AudioError::Opus {
            op: "get_lookahead",
            detail: format!("lookahead {samples} out of range"),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::audio::goertzel;
    use crate::audio::signal::sine;
    use proptest::prelude::*;

    fn encode_tone(freq: f64, frames: usize) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new(32_000).unwrap();
        let mut pcm = [0i16; FRAME_WIDE];
        let mut out = [0u8; 1500];
        (0..frames)
            .map(|n| {
                sine(&mut pcm, RATE_WIDE, freq, 0.5, n * FRAME_WIDE);
                let len = enc.encode(&pcm, &mut out).unwrap();
                out[..len].to_vec()
            })
            .collect()
    }

    #[test]
    fn a_1khz_tone_survives_encode_then_decode() {
        let packets = encode_tone(1000.0, 25);
        let mut dec = OpusDecoder::new().unwrap();
        let mut frame = [0i16; FRAME_WIDE];
        let mut decoded = Vec::new();
        for p in &packets {
            assert!(
                p.len() < 200,
                "32 kb/s at 20 ms is ~80 bytes, got {}",
                p.len()
            );
            dec.decode(p, &mut frame).unwrap();
            decoded.extend_from_slice(&frame);
        }
        let tail = &decoded[decoded.len() / 2..];
        let tone = goertzel(tail, RATE_WIDE, 1000.0);
        let other = goertzel(tail, RATE_WIDE, 3000.0);
        assert!(tone > 0.04, "tone power {tone} (0.0625 for amplitude 0.5)");
        assert!(tone > 1000.0 * other, "1 kHz {tone} vs 3 kHz {other}");
    }

    #[test]
    fn lookahead_is_a_few_ms() {
        let mut enc = OpusEncoder::new(32_000).unwrap();
        let pre_skip = enc.lookahead().unwrap();
        assert!((120..=960).contains(&pre_skip), "pre-skip {pre_skip}");
    }

    #[test]
    fn conceal_and_recover_fill_a_frame() {
        let packets = encode_tone(1000.0, 10);
        let mut dec = OpusDecoder::new().unwrap();
        let mut frame = [0i16; FRAME_WIDE];
        for p in &packets[..5] {
            dec.decode(p, &mut frame).unwrap();
        }
        dec.conceal(&mut frame).unwrap();
        assert!(
            goertzel(&frame, RATE_WIDE, 1000.0) > 0.001,
            "PLC continues the tone"
        );
        dec.recover(&packets[7], &mut frame).unwrap();
        dec.decode(&packets[7], &mut frame).unwrap();
    }

    #[test]
    fn empty_packet_and_bad_bitrate_are_errors() {
        let mut dec = OpusDecoder::new().unwrap();
        let mut frame = [0i16; FRAME_WIDE];
        let err = dec.decode(&[], &mut frame).unwrap_err();
        assert_eq!(err.code(), "audio.opus");
        assert!(OpusEncoder::new(-5).is_err());
    }

    #[test]
    fn a_60ms_packet_is_truncated_and_a_10ms_one_padded() {
        let mut enc = Encoder::new(RATE_WIDE, Channels::Mono, Application::Voip).unwrap();
        let mut long = vec![0i16; 3 * FRAME_WIDE];
        sine(&mut long, RATE_WIDE, 1000.0, 0.5, 0);
        let mut out = [0u8; 1500];
        let mut dec = OpusDecoder::new().unwrap();
        let mut frame = [0i16; FRAME_WIDE];
        let len = enc.encode(&long, &mut out).unwrap();
        dec.decode(&out[..len], &mut frame).unwrap();
        let len = enc.encode(&long[..FRAME_WIDE / 2], &mut out).unwrap();
        frame.fill(7);
        dec.decode(&out[..len], &mut frame).unwrap();
        assert!(
            frame[FRAME_WIDE / 2..].iter().all(|&s| s == 0),
            "padded with silence"
        );
        assert!(
            frame[..FRAME_WIDE / 2].iter().any(|&s| s != 0),
            "decoded part kept"
        );
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let mut dec = OpusDecoder::new().unwrap();
            let mut frame = [0i16; FRAME_WIDE];
            let _ = dec.decode(&bytes, &mut frame);
            let _ = dec.recover(&bytes, &mut frame);
            let _ = dec.conceal(&mut frame);
        }
    }
}

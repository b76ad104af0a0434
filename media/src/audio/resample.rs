//! 48 kHz <-> 8 kHz for the bridge, with a real anti-aliasing filter (rubato's
//! synchronous FFT resampler: the spectrum is cut with a windowed-sinc low-pass, so a
//! 6 kHz component of a browser's voice does not fold back to 2 kHz on the phone).
//!
//! The ratio is exactly 6, so rubato's "both sides fixed" mode maps a block of input to
//! a block of output with no FIFO. Its FFT block is the chunk itself, and the delay is
//! half a block, so each 20 ms frame is fed as [`SUB_CHUNKS`] blocks of 5 ms: one frame
//! in, one frame out per call, 2.5 ms of delay each way (reported by `delay_ms`) against
//! the bridge's 60 ms mouth-to-ear budget. Buffers are allocated in `new`; `process`
//! does not allocate.

use rubato::audioadapter_buffers::direct::SequentialSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

use super::{AudioError, FRAME_NARROW, FRAME_WIDE, RATE_NARROW, RATE_WIDE};

/// FFT blocks per 20 ms frame: 4 gives 5 ms blocks (240 samples at 48 kHz) and 2.5 ms
/// of delay each way. With the Hann window the response is flat to 3 kHz (-0.1 dB),
/// -4 dB at 3.4 kHz, -27 dB at 3.8 kHz, and nothing from 4 kHz up survives rounding to
/// 16 bits (measured with tones). rubato's default Blackman-Harris window at this block
/// size is -18 dB at 3 kHz (muffled speech); it needs 10 ms blocks (5 ms each way) to
/// be flat there, so the Hann window at the lower delay wins.
const SUB_CHUNKS: usize = 4;

/// One direction of the fixed-ratio conversion, frame in, frame out.
struct FrameResampler {
    inner: Fft<f32>,
    input: Vec<f32>,
    output: Vec<f32>,
    rate_out: u32,
}

impl FrameResampler {
    fn new(
        rate_in: u32,
        rate_out: u32,
        frame_in: usize,
        frame_out: usize,
    ) -> Result<Self, AudioError> {
        let (block_in, block_out) = (frame_in / SUB_CHUNKS, frame_out / SUB_CHUNKS);
        let inner = Fft::<f32>::new_custom(
            rate_in as usize,
            rate_out as usize,
            block_in,
            1,
            1,
            WindowFunction::Hann2,
            FixedSync::Both,
        )
        .map_err(|e| AudioError::Resampler(e.to_string()))?;
        if inner.input_frames_next() != block_in || inner.output_frames_next() != block_out {
            return Err(AudioError::Resampler(format!(
                "block sizes {}->{} instead of {block_in}->{block_out}",
                inner.input_frames_next(),
                inner.output_frames_next()
            )));
        }
        Ok(Self {
            inner,
            input: vec![0.0; frame_in],
            output: vec![0.0; frame_out],
            rate_out,
        })
    }

    fn process(&mut self, input: &[i16], out: &mut [i16]) -> Result<(), AudioError> {
        for (dst, &src) in self.input.iter_mut().zip(input) {
            *dst = f32::from(src) / 32768.0;
        }
        let block_in = self.input.len() / SUB_CHUNKS;
        let block_out = self.output.len() / SUB_CHUNKS;
        for (chunk_in, chunk_out) in self
            .input
            .chunks_exact(block_in)
            .zip(self.output.chunks_exact_mut(block_out))
        {
            let adapter_in = SequentialSlice::new(chunk_in, 1, block_in)
                .map_err(|e| AudioError::Resampler(e.to_string()))?;
            let mut adapter_out = SequentialSlice::new_mut(chunk_out, 1, block_out)
                .map_err(|e| AudioError::Resampler(e.to_string()))?;
            let (read, written) = self
                .inner
                .process_into_buffer(&adapter_in, &mut adapter_out, None)
                .map_err(|e| AudioError::Resampler(e.to_string()))?;
            if read != block_in || written != block_out {
                return Err(AudioError::Resampler(format!(
                    "processed {read}->{written} instead of {block_in}->{block_out}"
                )));
            }
        }
        for (dst, &src) in out.iter_mut().zip(&self.output) {
            *dst = (src * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
        }
        Ok(())
    }

    fn delay_ms(&self) -> f64 {
        self.inner.output_delay() as f64 * 1000.0 / f64::from(self.rate_out)
    }
}

/// 48 kHz -> 8 kHz, one stream (stateful: keep one per leg).
pub struct Downsampler(FrameResampler);

impl std::fmt::Debug for Downsampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downsampler")
            .field("delay_ms", &self.delay_ms())
            .finish()
    }
}

impl Downsampler {
    pub fn new() -> Result<Self, AudioError> {
        FrameResampler::new(RATE_WIDE, RATE_NARROW, FRAME_WIDE, FRAME_NARROW).map(Self)
    }

    /// One 20 ms frame in, one out (low-pass first: flat to 3 kHz, stop from 4 kHz).
    pub fn process(
        &mut self,
        input: &[i16; FRAME_WIDE],
        out: &mut [i16; FRAME_NARROW],
    ) -> Result<(), AudioError> {
        self.0.process(input, out)
    }

    /// The delay this stage adds, in milliseconds.
    pub fn delay_ms(&self) -> f64 {
        self.0.delay_ms()
    }
}

/// 8 kHz -> 48 kHz, one stream (stateful: keep one per leg).
pub struct Upsampler(FrameResampler);

impl std::fmt::Debug for Upsampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upsampler")
            .field("delay_ms", &self.delay_ms())
            .finish()
    }
}

impl Upsampler {
    pub fn new() -> Result<Self, AudioError> {
        FrameResampler::new(RATE_NARROW, RATE_WIDE, FRAME_NARROW, FRAME_WIDE).map(Self)
    }

    /// One 20 ms frame in, one out (images above 4 kHz filtered out).
    pub fn process(
        &mut self,
        input: &[i16; FRAME_NARROW],
        out: &mut [i16; FRAME_WIDE],
    ) -> Result<(), AudioError> {
        self.0.process(input, out)
    }

    /// The delay this stage adds, in milliseconds.
    pub fn delay_ms(&self) -> f64 {
        self.0.delay_ms()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::audio::goertzel;
    use crate::audio::signal::sine;

    /// Feeds `frames` frames of a tone at 48 kHz through a downsampler; returns the 8 kHz
    /// output after the first half (the filter's start-up is over).
    fn down(freq: f64, frames: usize) -> Vec<i16> {
        let mut d = Downsampler::new().unwrap();
        let mut input = [0i16; FRAME_WIDE];
        let mut out = [0i16; FRAME_NARROW];
        let mut all = Vec::new();
        for n in 0..frames {
            sine(&mut input, RATE_WIDE, freq, 0.5, n * FRAME_WIDE);
            d.process(&input, &mut out).unwrap();
            all.extend_from_slice(&out);
        }
        all.split_off(all.len() / 2)
    }

    fn db(ratio: f64) -> f64 {
        10.0 * ratio.log10()
    }

    #[test]
    fn downsampling_keeps_1khz() {
        let out = down(1000.0, 20);
        let tone = goertzel(&out, RATE_NARROW, 1000.0);
        // Amplitude 0.5 gives 0.0625; allow 1 dB of passband ripple.
        assert!(
            db(tone / 0.0625).abs() < 1.0,
            "1 kHz at {} dB",
            db(tone / 0.0625)
        );
        assert!(goertzel(&out, RATE_NARROW, 3000.0) < tone / 10_000.0);
    }

    #[test]
    fn downsampling_keeps_the_telephone_band() {
        for (freq, floor_db) in [(300.0, -0.5), (3000.0, -0.5), (3400.0, -6.0)] {
            let out = down(freq, 20);
            let power = goertzel(&out, RATE_NARROW, freq);
            assert!(
                db(power / 0.0625) > floor_db,
                "{freq} Hz at {} dB",
                db(power / 0.0625)
            );
        }
    }

    #[test]
    fn downsampling_removes_6khz_without_aliasing() {
        // 6 kHz at 48 kHz folds to 2 kHz at 8 kHz if not filtered.
        let out = down(6000.0, 20);
        let alias = goertzel(&out, RATE_NARROW, 2000.0);
        let reference = 0.0625;
        assert!(
            db(alias / reference) < -40.0,
            "alias at {} dB",
            db(alias / reference)
        );
        let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(
            peak < 330,
            "residual peak {peak} (the input peaked at 16384)"
        );
    }

    #[test]
    fn upsampling_keeps_1khz_and_adds_no_images() {
        let mut u = Upsampler::new().unwrap();
        let mut input = [0i16; FRAME_NARROW];
        let mut out = [0i16; FRAME_WIDE];
        let mut all = Vec::new();
        for n in 0..20 {
            sine(&mut input, RATE_NARROW, 1000.0, 0.5, n * FRAME_NARROW);
            u.process(&input, &mut out).unwrap();
            all.extend_from_slice(&out);
        }
        let tail = &all[all.len() / 2..];
        let tone = goertzel(tail, RATE_WIDE, 1000.0);
        assert!(
            db(tone / 0.0625).abs() < 1.0,
            "1 kHz at {} dB",
            db(tone / 0.0625)
        );
        // The first image of 1 kHz sampled at 8 kHz is at 7 kHz.
        let image = goertzel(tail, RATE_WIDE, 7000.0);
        assert!(db(image / tone) < -40.0, "image at {} dB", db(image / tone));
    }

    #[test]
    fn delay_is_a_few_ms_and_matches_an_impulse() {
        let d = Downsampler::new().unwrap();
        let u = Upsampler::new().unwrap();
        assert!(
            d.delay_ms() > 0.0 && d.delay_ms() <= 5.0,
            "down {}",
            d.delay_ms()
        );
        assert!(
            u.delay_ms() > 0.0 && u.delay_ms() <= 5.0,
            "up {}",
            u.delay_ms()
        );

        // Round trip of a click: its peak comes out delayed by the sum of both delays.
        let (mut d, mut u) = (d, u);
        let mut wide = [0i16; FRAME_WIDE];
        let mut narrow = [0i16; FRAME_NARROW];
        let mut all = Vec::new();
        for n in 0..4 {
            wide.fill(0);
            if n == 1 {
                // A 1 ms 1 kHz burst: band-limited, so it survives 8 kHz.
                sine(&mut wide[..48], RATE_WIDE, 1000.0, 0.9, 12);
            }
            d.process(&wide, &mut narrow).unwrap();
            u.process(&narrow, &mut wide).unwrap();
            all.extend_from_slice(&wide);
        }
        let energy_at = |from: usize| -> f64 {
            all[from..from + 48]
                .iter()
                .map(|&s| f64::from(s).powi(2))
                .sum()
        };
        let best = (0..all.len() - 48).max_by(|&a, &b| energy_at(a).total_cmp(&energy_at(b)));
        let best = best.unwrap_or(0);
        let measured_ms = (best as f64 - FRAME_WIDE as f64) / 48.0;
        let reported = d.delay_ms() + u.delay_ms();
        assert!(
            (measured_ms - reported).abs() < 1.0,
            "measured {measured_ms} ms, reported {reported} ms"
        );
    }
}

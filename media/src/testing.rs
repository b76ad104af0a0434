//! Test helpers: tone generation and a Goertzel single-frequency detector.

use std::f32::consts::PI;

/// One 20 ms frame (160 samples) of a sine at `freq`, amplitude 0.25 of full scale,
/// phase-continuous across frame numbers.
pub fn tone_frame(freq: f32, frame: u32, rate: f32) -> [i16; 160] {
    let mut out = [0i16; 160];
    for (i, s) in out.iter_mut().enumerate() {
        let n = (frame as usize * 160 + i) as f32;
        *s = (0.25 * 32767.0 * (2.0 * PI * freq * n / rate).sin()) as i16;
    }
    out
}

/// The amplitude (fraction of full scale) of `freq` in `samples` (Goertzel algorithm).
pub fn goertzel(samples: &[i16], freq: f32, rate: f32) -> f32 {
    let n = samples.len() as f32;
    let w = 2.0 * PI * freq / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = f32::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / n
}

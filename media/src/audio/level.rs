//! Levels: RFC 6464 audio level (the header extension browsers use to show who speaks)
//! and a Goertzel detector for one frequency (the tone checks of tests and benchmarks).

/// RFC 6464 audio level of a frame: 0..=127, the negated dBov (0 = loudest, 127 =
/// silence). dBov is the frame's RMS relative to the overload point (32768), so a
/// full-scale square is 0 and a full-scale sine 3. An empty frame is silence.
pub fn audio_level(pcm: &[i16]) -> u8 {
    if pcm.is_empty() {
        return 127;
    }
    let energy: f64 = pcm.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let rms = (energy / pcm.len() as f64).sqrt() / 32768.0;
    if rms <= 0.0 {
        return 127;
    }
    let dbov = 20.0 * rms.log10();
    (-dbov).round().clamp(0.0, 127.0) as u8
}

/// Goertzel power of `freq_hz` in `pcm` sampled at `rate` (for tests and the
/// benchmark's tone checks). Normalized by the length and full scale, so a sine of
/// amplitude `a` (full scale = 1.0) on the analysed frequency gives about `a² / 4`
/// whatever the length. Empty input or a zero rate gives 0.
pub fn goertzel(pcm: &[i16], rate: u32, freq_hz: f64) -> f64 {
    if pcm.is_empty() || rate == 0 {
        return 0.0;
    }
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq_hz / f64::from(rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in pcm {
        let s = f64::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let n = pcm.len() as f64;
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0) / (n * n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::audio::signal::sine;

    #[test]
    fn full_scale_square_is_zero() {
        let pcm: Vec<i16> = (0..960)
            .map(|i| if (i / 24) % 2 == 0 { 32767 } else { -32768 })
            .collect();
        assert_eq!(audio_level(&pcm), 0);
    }

    #[test]
    fn silence_is_127() {
        assert_eq!(audio_level(&[0i16; 960]), 127);
        assert_eq!(audio_level(&[]), 127);
    }

    #[test]
    fn minus_20_dbov_sine_is_20() {
        // RMS of a sine is its amplitude / sqrt(2): -20 dBov RMS needs amplitude 0.1 * sqrt(2).
        let mut pcm = [0i16; 960];
        sine(&mut pcm, 48_000, 1000.0, 0.1 * std::f64::consts::SQRT_2, 0);
        let level = audio_level(&pcm);
        assert!((19..=21).contains(&level), "level {level}");
        // And a full-scale sine sits 3 dB under the square.
        sine(&mut pcm, 48_000, 1000.0, 1.0, 0);
        assert_eq!(audio_level(&pcm), 3);
    }

    #[test]
    fn goertzel_finds_the_tone_and_not_others() {
        let mut pcm = [0i16; 960];
        sine(&mut pcm, 48_000, 1000.0, 0.5, 0);
        let on = goertzel(&pcm, 48_000, 1000.0);
        let off = goertzel(&pcm, 48_000, 3000.0);
        assert!((on - 0.0625).abs() < 0.005, "on {on}");
        assert!(off < on / 10_000.0, "off {off}");
        assert_eq!(goertzel(&[], 48_000, 1000.0), 0.0);
    }
}

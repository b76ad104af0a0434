//! Music on hold: an operator-supplied WAV file (8 kHz, mono, 16-bit PCM), loaded once
//! with `hound` and shared by every conference.

use std::path::Path;
use std::sync::Arc;

use crate::error::MediaError;

/// Ten minutes at 8 kHz: a longer file is refused rather than held in memory.
pub const MAX_SAMPLES: usize = 8000 * 600;

/// Loads and validates the hold music file.
pub fn load(path: &Path) -> Result<Arc<[i16]>, MediaError> {
    let err = |m: String| MediaError::HoldMusic(format!("{}: {m}", path.display()));
    let reader = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels != 1
        || spec.sample_rate != 8000
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(err(format!(
            "need 8000 Hz mono 16-bit PCM, got {} Hz, {} channel(s), {}-bit {:?}",
            spec.sample_rate, spec.channels, spec.bits_per_sample, spec.sample_format
        )));
    }
    if reader.len() as usize > MAX_SAMPLES {
        return Err(err(format!("longer than {} s", MAX_SAMPLES / 8000)));
    }
    let samples = reader
        .into_samples::<i16>()
        .collect::<Result<Vec<i16>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if samples.is_empty() {
        return Err(err("no samples".into()));
    }
    Ok(samples.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn write(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }

    #[test]
    fn loads_a_valid_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("moh.wav");
        write(&p, 8000, 1, &[1, 2, 3]);
        assert_eq!(&*load(&p).unwrap(), &[1, 2, 3]);
    }

    #[test]
    fn refuses_wrong_format_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("moh.wav");
        write(&p, 16000, 1, &[1, 2, 3]);
        assert_eq!(load(&p).unwrap_err().code(), "media.hold_music");
        assert_eq!(
            load(&dir.path().join("none.wav")).unwrap_err().code(),
            "media.hold_music"
        );
        std::fs::write(&p, b"not a wav").unwrap();
        assert!(load(&p).is_err());
    }
}

//! Recording files an interrupted run left behind (the server was killed before it
//! could close them): read as they are, never changed, so that the journal can still
//! vouch for them. An Ogg file's duration is its last complete page's granule position
//! less the pre-skip; a torn last page ends the reading, not the file's adoption.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ogg::reading::PacketReader;

use super::{hash_file, io_err, ClosedFile};
use crate::audio::{AudioError, RATE_WIDE};

/// Hashes a file as found and reads its duration where the format tells it (Ogg/Opus);
/// 0 when it does not (WebM without its final cues, any other file).
pub fn found_file(path: &Path) -> Result<ClosedFile, AudioError> {
    let duration_ms = if path.extension().is_some_and(|e| e == "ogg") {
        ogg_duration_ms(path)?
    } else {
        0
    };
    let (bytes, blake3) = hash_file(path)?;
    Ok(ClosedFile {
        path: path.to_path_buf(),
        bytes,
        duration_ms,
        blake3,
    })
}

/// Milliseconds of audio in an Ogg/Opus file, up to its last complete page.
fn ogg_duration_ms(path: &Path) -> Result<u64, AudioError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut reader = PacketReader::new(BufReader::new(file));
    let mut pre_skip = 0u64;
    let mut granule = 0u64;
    let mut first = true;
    // A read error is the torn end of an interrupted file: what came before counts.
    while let Ok(Some(p)) = reader.read_packet() {
        if first {
            // OpusHead (RFC 7845 §5.1): the pre-skip is bytes 10..12, little-endian.
            if let Some(b) = p.data.get(10..12) {
                pre_skip = u64::from(u16::from_le_bytes([b[0], b[1]]));
            }
            first = false;
        } else if p.last_in_page() {
            granule = granule.max(p.absgp_page());
        }
    }
    Ok(granule.saturating_sub(pre_skip) * 1000 / u64::from(RATE_WIDE))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::audio::FRAME_WIDE;
    use crate::recording::OggOpusWriter;

    #[test]
    fn a_torn_ogg_file_is_read_up_to_its_last_complete_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audio.ogg");
        let mut w = OggOpusWriter::create(&path, "room").unwrap();
        for _ in 0..150 {
            w.write_frame(&[0; FRAME_WIDE]).unwrap();
        }
        let closed = w.finish().unwrap();
        assert_eq!(
            found_file(&path).unwrap(),
            closed,
            "a closed file reads as it was closed"
        );
        // Cut it in the middle of its last page, as a kill mid-write would.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
        let torn = found_file(&path).unwrap();
        assert_eq!(torn.bytes, bytes.len() as u64 - 40);
        // The torn page is the last one (the encoder's flush); the three full pages
        // of 1 s before it remain.
        assert!(
            (2_900..=3_000).contains(&torn.duration_ms),
            "three whole pages of 1 s: {} ms",
            torn.duration_ms
        );
        assert_ne!(torn.blake3, closed.blake3);
    }
}

//! The room's mixed audio as Ogg/Opus (RFC 7845), written as it is mixed: one Opus
//! packet per 20 ms frame, a page per second (so a crash loses at most a second), the
//! last page marked end-of-stream and trimmed to the exact number of frames written.
//! `opusinfo` (Debian opus-tools) reads 5 s written here as "0m:05.000s".

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ogg::writing::{PacketWriteEndInfo, PacketWriter};

use super::{close_file, create_file, ClosedFile};
use crate::audio::{AudioError, OpusEncoder, FRAME_WIDE, RATE_WIDE};

/// Bitrate of the recording: speech in a room mix, transparent enough at 32 kb/s.
const BITRATE_BPS: i32 = 32_000;
/// Frames per Ogg page (1 s).
const FRAMES_PER_PAGE: u64 = 50;
/// The longest Opus packet.
const MAX_PACKET: usize = 1_275;

/// Writes one room's mixed audio to an `.opus` file.
pub struct OggOpusWriter {
    path: PathBuf,
    pages: PacketWriter<'static, BufWriter<File>>,
    encoder: OpusEncoder,
    serial: u32,
    pre_skip: u16,
    frames: u64,
    packet: Vec<u8>,
}

impl std::fmt::Debug for OggOpusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OggOpusWriter")
            .field("path", &self.path)
            .field("frames", &self.frames)
            .finish()
    }
}

impl OggOpusWriter {
    /// Creates the file (and parent dirs), writes OpusHead (RFC 7845: version 1, 1
    /// channel, pre-skip from the encoder, 48000 input rate, gain 0, mapping family 0)
    /// and OpusTags (vendor "conclave", a comment "ROOM=<room>"), each on its own page.
    /// An existing file is an error, never overwritten.
    pub fn create(path: &Path, room: &str) -> Result<Self, AudioError> {
        let mut encoder = OpusEncoder::new(BITRATE_BPS)?;
        let pre_skip = encoder.lookahead()?;
        let mut serial_bytes = [0u8; 4];
        // A serial only has to differ between the logical streams of one file (there is
        // one); random is the convention, a failure falls back to zero harmlessly.
        let _ = getrandom::fill(&mut serial_bytes);
        let mut writer = Self {
            path: path.to_path_buf(),
            pages: PacketWriter::new(create_file(path)?),
            encoder,
            serial: u32::from_le_bytes(serial_bytes),
            pre_skip,
            frames: 0,
            packet: vec![0; MAX_PACKET],
        };
        writer.write_packet(opus_head(pre_skip), PacketWriteEndInfo::EndPage, 0)?;
        writer.write_packet(opus_tags(room), PacketWriteEndInfo::EndPage, 0)?;
        writer.flush()?;
        Ok(writer)
    }

    /// Encodes and writes one 20 ms frame of 48 kHz mono PCM. Granule positions per RFC
    /// 7845: a page's granule counts the 48 kHz samples a decoder has produced by the end
    /// of its last packet, pre-skip included (the stream starts at 0).
    pub fn write_frame(&mut self, pcm: &[i16; FRAME_WIDE]) -> Result<(), AudioError> {
        let len = self.encoder.encode(pcm, &mut self.packet)?;
        self.frames += 1;
        let granule = self.frames * FRAME_WIDE as u64;
        let end = if self.frames.is_multiple_of(FRAMES_PER_PAGE) {
            PacketWriteEndInfo::EndPage
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        self.write_packet(self.packet[..len].to_vec(), end, granule)?;
        if end == PacketWriteEndInfo::EndPage {
            self.flush()?;
        }
        Ok(())
    }

    /// Ends the stream (last page with EOS), fsyncs the file, then hashes it (blake3,
    /// streamed) and returns what to journal. One extra frame of silence flushes the
    /// encoder's look-ahead (the last pre-skip samples of real audio come out of it),
    /// and the final granule, pre-skip + the samples written, trims the rest (end
    /// trimming), so a player plays exactly `frames × 20 ms`.
    pub fn finish(mut self) -> Result<ClosedFile, AudioError> {
        let len = self.encoder.encode(&[0; FRAME_WIDE], &mut self.packet)?;
        let granule = u64::from(self.pre_skip) + self.frames * FRAME_WIDE as u64;
        self.write_packet(
            self.packet[..len].to_vec(),
            PacketWriteEndInfo::EndStream,
            granule,
        )?;
        let duration_ms = self.frames * 1000 * FRAME_WIDE as u64 / u64::from(RATE_WIDE);
        close_file(&self.path, self.pages.into_inner(), duration_ms)
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    fn write_packet(
        &mut self,
        data: Vec<u8>,
        end: PacketWriteEndInfo,
        granule: u64,
    ) -> Result<(), AudioError> {
        self.pages
            .write_packet(data, self.serial, end, granule)
            .map_err(|source| AudioError::Ogg {
                path: self.path.clone(),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), AudioError> {
        self.pages
            .inner_mut()
            .flush()
            .map_err(|source| AudioError::Ogg {
                path: self.path.clone(),
                source,
            })
    }
}

/// RFC 7845 §5.1 identification header, mono, channel mapping family 0.
fn opus_head(pre_skip: u16) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&RATE_WIDE.to_le_bytes()); // input sample rate
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // mapping family
    head
}

/// RFC 7845 §5.2 comment header: vendor "conclave", one comment "ROOM=<room>".
fn opus_tags(room: &str) -> Vec<u8> {
    let vendor = b"conclave";
    let comment = format!("ROOM={room}");
    let mut tags = Vec::with_capacity(8 + 4 + vendor.len() + 4 + 4 + comment.len());
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&1u32.to_le_bytes());
    tags.extend_from_slice(&(comment.len() as u32).to_le_bytes());
    tags.extend_from_slice(comment.as_bytes());
    tags
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::audio::signal::sine;
    use crate::audio::{goertzel, OpusDecoder};
    use ogg::reading::PacketReader;
    use std::process::Command;

    /// Writes `seconds` of a 440 Hz tone at half scale; returns what `finish` said.
    fn record_tone(path: &Path, seconds: usize) -> ClosedFile {
        let mut w = OggOpusWriter::create(path, "lobby").unwrap();
        let mut pcm = [0i16; FRAME_WIDE];
        for n in 0..seconds * 50 {
            sine(&mut pcm, RATE_WIDE, 440.0, 0.5, n * FRAME_WIDE);
            w.write_frame(&pcm).unwrap();
        }
        w.finish().unwrap()
    }

    /// Our own reader: headers, granules, then the audio with pre-skip and end trimming
    /// applied as RFC 7845 says a player must.
    fn read_back(path: &Path) -> (Vec<u8>, Vec<u8>, Vec<i16>) {
        let mut reader = PacketReader::new(File::open(path).unwrap());
        let head = reader.read_packet_expected().unwrap();
        assert!(head.first_in_stream() && head.last_in_page());
        let tags = reader.read_packet_expected().unwrap();
        assert!(tags.last_in_page());
        let mut dec = OpusDecoder::new().unwrap();
        let mut frame = [0i16; FRAME_WIDE];
        let mut pcm = Vec::new();
        let mut last_granule = 0;
        let mut saw_eos = false;
        while let Some(p) = reader.read_packet().unwrap() {
            assert!(!saw_eos, "a packet after end of stream");
            dec.decode(&p.data, &mut frame).unwrap();
            pcm.extend_from_slice(&frame);
            saw_eos = p.last_in_stream();
            if p.last_in_page() {
                assert!(p.absgp_page() >= last_granule, "granules go forward");
                if !saw_eos {
                    // RFC 7845 §4: samples decoded so far, pre-skip included.
                    assert_eq!(p.absgp_page(), pcm.len() as u64, "granule of a page");
                }
                last_granule = p.absgp_page();
            }
        }
        assert!(saw_eos, "the last page is marked end of stream");
        let pre_skip = usize::from(u16::from_le_bytes([head.data[10], head.data[11]]));
        pcm.truncate(last_granule as usize);
        pcm.drain(..pre_skip);
        (head.data, tags.data, pcm)
    }

    #[test]
    fn five_seconds_of_440hz_read_back_with_our_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rooms/lobby/audio.opus");
        let closed = record_tone(&path, 5);
        assert_eq!(closed.duration_ms, 5_000);

        let (head, tags, pcm) = read_back(&path);
        assert_eq!(&head[..8], b"OpusHead");
        assert_eq!(head[8], 1, "version");
        assert_eq!(head[9], 1, "channels");
        assert_eq!(
            u32::from_le_bytes([head[12], head[13], head[14], head[15]]),
            48_000
        );
        assert_eq!(&head[16..], &[0, 0, 0], "gain 0, mapping family 0");
        assert_eq!(&tags[..8], b"OpusTags");
        assert!(tags.windows(8).any(|w| w == b"conclave"));
        assert!(tags.windows(10).any(|w| w == b"ROOM=lobby"));

        assert_eq!(pcm.len(), 5 * 48_000, "exactly the frames written, no more");
        let middle = &pcm[48_000..4 * 48_000];
        let tone = goertzel(middle, RATE_WIDE, 440.0);
        let other = goertzel(middle, RATE_WIDE, 1000.0);
        assert!(tone > 0.04, "440 Hz power {tone}");
        assert!(tone > 1000.0 * other, "440 Hz {tone} vs 1 kHz {other}");
    }

    #[test]
    fn closed_file_hash_and_length_match_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.opus");
        let closed = record_tone(&path, 1);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(closed.path, path);
        assert_eq!(closed.bytes, bytes.len() as u64);
        assert_eq!(closed.blake3, blake3::hash(&bytes).to_hex().to_string());
        assert_eq!(closed.blake3.len(), 64);
        assert!(closed
            .blake3
            .chars()
            .all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    }

    #[test]
    fn an_existing_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.opus");
        std::fs::write(&path, b"evidence").unwrap();
        let err = OggOpusWriter::create(&path, "lobby").unwrap_err();
        assert_eq!(err.code(), "audio.io");
        assert_eq!(std::fs::read(&path).unwrap(), b"evidence");
    }

    #[test]
    fn an_empty_recording_is_a_valid_zero_length_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.opus");
        let closed = OggOpusWriter::create(&path, "lobby")
            .unwrap()
            .finish()
            .unwrap();
        assert_eq!(closed.duration_ms, 0);
        let (_, _, pcm) = read_back(&path);
        assert!(pcm.is_empty());
    }

    fn tool(name: &str) -> bool {
        let found = Command::new(name).arg("--version").output().is_ok();
        if !found {
            eprintln!("SKIPPED: `{name}` (Debian opus-tools) is not installed");
        }
        found
    }

    #[test]
    fn opus_tools_agree_on_duration_and_tone() {
        if !tool("opusinfo") || !tool("opusdec") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.opus");
        record_tone(&path, 5);

        let info = Command::new("opusinfo").arg(&path).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&info.stdout),
            String::from_utf8_lossy(&info.stderr)
        );
        assert!(info.status.success(), "opusinfo failed: {text}");
        assert!(!text.contains("WARNING"), "opusinfo warns: {text}");
        // "Playback length: 0m:05.000s"
        let length = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Playback length:"))
            .unwrap_or_else(|| panic!("no playback length in {text}"));
        let (min, sec) = length
            .trim()
            .trim_end_matches('s')
            .split_once("m:")
            .unwrap();
        let ms = min.parse::<f64>().unwrap() * 60_000.0 + sec.parse::<f64>().unwrap() * 1000.0;
        assert!((ms - 5_000.0).abs() <= 40.0, "opusinfo says {ms} ms");
        assert!(
            (ms - 5_000.0).abs() < 1.0,
            "exact to the sample: opusinfo says {ms} ms"
        );

        let wav = dir.path().join("tone.wav");
        let dec = Command::new("opusdec")
            .args(["--quiet", "--rate", "48000"])
            .arg(&path)
            .arg(&wav)
            .output()
            .unwrap();
        assert!(
            dec.status.success(),
            "{}",
            String::from_utf8_lossy(&dec.stderr)
        );
        let mut reader = hound::WavReader::open(&wav).unwrap();
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.sample_rate), (1, 48_000));
        let pcm: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert!(
            (pcm.len() as i64 - 5 * 48_000).abs() <= 40 * 48,
            "{} samples",
            pcm.len()
        );
        let middle = &pcm[48_000..4 * 48_000];
        let tone = goertzel(middle, RATE_WIDE, 440.0);
        let other = goertzel(middle, RATE_WIDE, 1000.0);
        assert!(
            tone > 0.04 && tone > 1000.0 * other,
            "440 Hz {tone} vs 1 kHz {other}"
        );
    }
}

//! One video track as it arrived, as WebM, without transcoding: VP8 RTP (RFC 7741) is
//! depacketized into frames and muxed by libwebm (the `webm` crate).
//!
//! A frame is the payloads from a start-of-partition-0 packet up to the marker bit
//! (or up to the next frame's start when a sender omits the marker: with contiguous
//! sequence numbers nothing can be missing). Nothing is written before the first
//! keyframe, whose header gives the track's width and height; a sequence gap drops the
//! partial frame and everything up to the next keyframe, since VP8 inter frames cannot
//! be decoded without their references. Late and duplicate packets are dropped.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use ::webm::mux::{Segment, SegmentBuilder, SegmentMode, VideoCodecId, VideoTrack, Writer};

use super::{close_file, create_file, ClosedFile};
use crate::audio::AudioError;

/// A VP8 frame larger than this is hostile (a 4K keyframe is well under 1 MiB).
const MAX_FRAME_BYTES: usize = 4 << 20;
/// RTP video clock.
const CLOCK_HZ: u64 = 90_000;

/// What the writer did with the packets it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebmStats {
    /// Frames muxed into the file.
    pub frames_written: u64,
    /// Keyframes among them.
    pub keyframes: u64,
    /// Complete or partial frames dropped: before the first keyframe, or between a
    /// gap and the next keyframe, or with a timestamp going backwards.
    pub frames_skipped: u64,
    /// Sequence gaps seen.
    pub gaps: u64,
    /// Duplicate or late packets, and malformed payloads.
    pub packets_dropped: u64,
}

enum Sink {
    /// No keyframe yet: the track's size is not known, nothing is written.
    Pending(BufWriter<File>),
    Muxing {
        segment: Segment<BufWriter<File>>,
        track: VideoTrack,
    },
    /// libwebm refused the track: every later call fails.
    Broken,
}

/// Writes one VP8 track to a `.webm` file.
pub struct WebmVideoWriter {
    path: PathBuf,
    sink: Sink,
    last_seq: Option<u16>,
    waiting_keyframe: bool,
    in_frame: bool,
    frame: Vec<u8>,
    frame_ts: u32,
    /// RTP timestamp of the last written frame, and its distance from the first one.
    last_written_ts: Option<u32>,
    elapsed_ticks: u64,
    stats: WebmStats,
}

impl std::fmt::Debug for WebmVideoWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebmVideoWriter")
            .field("path", &self.path)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Where the VP8 payload starts in an RTP payload, and whether it starts frame.
fn parse_descriptor(payload: &[u8]) -> Result<(bool, usize), AudioError> {
    let b0 = *payload.first().ok_or(AudioError::Vp8("empty payload"))?;
    let start = b0 & 0x10 != 0 && b0 & 0x07 == 0;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let ext = *payload
            .get(i)
            .ok_or(AudioError::Vp8("truncated extension"))?;
        i += 1;
        if ext & 0x80 != 0 {
            let pic = *payload
                .get(i)
                .ok_or(AudioError::Vp8("truncated picture id"))?;
            i += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            i += 1; // TID / Y / KEYIDX
        }
    }
    if i >= payload.len() {
        return Err(AudioError::Vp8("no VP8 data after the descriptor"));
    }
    Ok((start, i))
}

/// Width and height from a VP8 keyframe's header (RFC 6386 §9.1), or `None` when
/// the frame is not a well-formed keyframe.
fn keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let header = frame.get(..10)?;
    if header[0] & 0x01 != 0 || header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u32::from(u16::from_le_bytes([header[6], header[7]]) & 0x3fff);
    let height = u32::from(u16::from_le_bytes([header[8], header[9]]) & 0x3fff);
    (width > 0 && height > 0).then_some((width, height))
}

impl WebmVideoWriter {
    /// Creates the file (and parent dirs); VP8 only. The WebM header is written when
    /// the first keyframe gives the track's size; a recording that never sees one is
    /// an empty file (0 bytes, duration 0). An existing file is an error.
    pub fn create(path: &Path) -> Result<Self, AudioError> {
        Ok(Self {
            path: path.to_path_buf(),
            sink: Sink::Pending(create_file(path)?),
            last_seq: None,
            waiting_keyframe: true,
            in_frame: false,
            frame: Vec::new(),
            frame_ts: 0,
            last_written_ts: None,
            elapsed_ticks: 0,
            stats: WebmStats::default(),
        })
    }

    /// One RTP packet of the VP8 track (RFC 7741 payload descriptor): depacketized into
    /// frames (marker bit ends a frame; keyframe flag from the VP8 payload header;
    /// width/height from the keyframe header), timestamps from the RTP timestamp (90
    /// kHz) relative to the first frame. Frames before the first keyframe are skipped.
    /// Lost packets (sequence gap) drop the partial frame and wait for the next
    /// keyframe. Hostile bytes give an `audio.vp8` error (the writer stays usable and
    /// waits for a keyframe), never a panic; `audio.webm` means the file is unusable.
    pub fn write_rtp(
        &mut self,
        sequence: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Result<(), AudioError> {
        if let Some(last) = self.last_seq {
            let delta = sequence.wrapping_sub(last) as i16;
            if delta <= 0 {
                self.stats.packets_dropped += 1;
                return Ok(());
            }
            if delta > 1 {
                self.stats.gaps += 1;
                self.lose_frame();
            }
        }
        self.last_seq = Some(sequence);

        let (start, offset) = match parse_descriptor(payload) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.stats.packets_dropped += 1;
                self.lose_frame();
                return Err(e);
            }
        };
        let mut previous = Ok(());
        if start {
            if self.in_frame {
                previous = self.complete_frame();
            }
            self.frame.clear();
            self.frame_ts = timestamp;
            self.in_frame = true;
        } else if !self.in_frame {
            // The middle of a frame whose start we did not see.
            return previous;
        } else if timestamp != self.frame_ts {
            self.lose_frame();
            return Err(AudioError::Vp8("timestamp changed inside a frame"));
        }
        let data = &payload[offset..];
        if self.frame.len() + data.len() > MAX_FRAME_BYTES {
            self.lose_frame();
            return Err(AudioError::Vp8("frame too large"));
        }
        self.frame.extend_from_slice(data);
        if marker {
            previous.and(self.complete_frame())
        } else {
            previous
        }
    }

    /// Finalizes the WebM (cues, duration), fsyncs the file, hashes it and returns what
    /// to journal. The duration is the last frame's timestamp relative to the first.
    pub fn finish(self) -> Result<ClosedFile, AudioError> {
        let duration_ms = self.elapsed_ticks * 1000 / CLOCK_HZ;
        match self.sink {
            Sink::Pending(file) => close_file(&self.path, file, 0),
            Sink::Muxing { segment, .. } => match segment.finalize(None) {
                Ok(writer) => close_file(&self.path, writer.into_inner(), duration_ms),
                Err(_) => Err(AudioError::Webm {
                    path: self.path,
                    detail: "libwebm could not finalize the segment".into(),
                }),
            },
            Sink::Broken => Err(AudioError::Webm {
                path: self.path,
                detail: "the segment was not created".into(),
            }),
        }
    }

    /// No keyframe to decode from yet (at the start, or since a loss): the publisher
    /// should be asked for one.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    /// Counters so far.
    pub fn stats(&self) -> WebmStats {
        self.stats
    }

    /// Drops a partial frame (if any) and waits for the next keyframe.
    fn lose_frame(&mut self) {
        if self.in_frame {
            self.stats.frames_skipped += 1;
        }
        self.in_frame = false;
        self.frame.clear();
        self.waiting_keyframe = true;
    }

    /// The frame in `self.frame` is complete: mux it, or skip it.
    fn complete_frame(&mut self) -> Result<(), AudioError> {
        self.in_frame = false;
        let keyframe = self.frame.first().is_some_and(|b| b & 0x01 == 0);
        let size = if keyframe {
            match keyframe_size(&self.frame) {
                Some(size) => Some(size),
                None => {
                    self.stats.frames_skipped += 1;
                    self.waiting_keyframe = true;
                    return Err(AudioError::Vp8("malformed keyframe header"));
                }
            }
        } else {
            None
        };
        if self.waiting_keyframe && !keyframe {
            self.stats.frames_skipped += 1;
            return Ok(());
        }
        let mut elapsed = self.elapsed_ticks;
        if let Some(last) = self.last_written_ts {
            let delta = self.frame_ts.wrapping_sub(last) as i32;
            if delta < 0 {
                self.stats.frames_skipped += 1;
                return Ok(());
            }
            elapsed += delta as u64;
        }
        if let Some((width, height)) = size {
            self.start_segment(width, height)?;
        }
        let Sink::Muxing { segment, track } = &mut self.sink else {
            return Err(AudioError::Webm {
                path: self.path.clone(),
                detail: "the segment was not created".into(),
            });
        };
        let timestamp_ns =
            u64::try_from(u128::from(elapsed) * 1_000_000_000 / u128::from(CLOCK_HZ))
                .unwrap_or(u64::MAX);
        segment
            .add_frame(*track, &self.frame, timestamp_ns, keyframe)
            .map_err(|e| AudioError::Webm {
                path: self.path.clone(),
                detail: format!("add_frame: {e}"),
            })?;
        self.elapsed_ticks = elapsed;
        self.last_written_ts = Some(self.frame_ts);
        self.waiting_keyframe = false;
        self.stats.frames_written += 1;
        if keyframe {
            self.stats.keyframes += 1;
        }
        Ok(())
    }

    /// Creates the segment on the first keyframe, now that the track's size is known
    /// (later keyframes keep the first size: VP8 carries its size in band).
    fn start_segment(&mut self, width: u32, height: u32) -> Result<(), AudioError> {
        if !matches!(self.sink, Sink::Pending(_)) {
            return Ok(());
        }
        let Sink::Pending(file) = std::mem::replace(&mut self.sink, Sink::Broken) else {
            return Ok(());
        };
        let (builder, track) = SegmentBuilder::new(Writer::new(file))
            .and_then(|b| b.set_mode(SegmentMode::File))
            .and_then(|b| b.set_writing_app("conclave"))
            .and_then(|b| b.add_video_track(width, height, VideoCodecId::VP8, None))
            .map_err(|e| AudioError::Webm {
                path: self.path.clone(),
                detail: format!("creating the segment: {e}"),
            })?;
        self.sink = Sink::Muxing {
            segment: builder.build(),
            track,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    /// A minimal VP8 keyframe: frame tag (keyframe, show_frame), start code, size.
    fn keyframe(width: u16, height: u16, fill: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&width.to_le_bytes());
        f.extend_from_slice(&height.to_le_bytes());
        f.resize(len, fill);
        f
    }

    /// An inter frame: frame tag with the inverse keyframe bit set.
    fn interframe(fill: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0x11, 0x02, 0x00];
        f.resize(len, fill);
        f
    }

    /// Splits a frame into RTP payloads of at most `mtu` VP8 bytes; the first carries
    /// S=1 and, to exercise the parser, an extension with a 15-bit picture id.
    fn packetize(frame: &[u8], mtu: usize, picture_id: u16) -> Vec<Vec<u8>> {
        frame
            .chunks(mtu)
            .enumerate()
            .map(|(i, chunk)| {
                let mut p = if i == 0 {
                    let pid = picture_id.to_be_bytes();
                    vec![0x90, 0x80, 0x80 | pid[0], pid[1]]
                } else {
                    vec![0x00]
                };
                p.extend_from_slice(chunk);
                p
            })
            .collect()
    }

    struct Sender {
        seq: u16,
        picture_id: u16,
    }

    impl Sender {
        /// Sends one frame; `lose` drops the packet with that index.
        fn send(&mut self, w: &mut WebmVideoWriter, ts: u32, frame: &[u8], lose: Option<usize>) {
            let packets = packetize(frame, 500, self.picture_id);
            self.picture_id = self.picture_id.wrapping_add(1) & 0x7fff;
            let last = packets.len() - 1;
            for (i, p) in packets.iter().enumerate() {
                if lose != Some(i) {
                    w.write_rtp(self.seq, ts, i == last, p).unwrap();
                }
                self.seq = self.seq.wrapping_add(1);
            }
        }
    }

    // --- A small EBML reader, enough to walk a WebM file. ---

    fn vint(buf: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
        let first = *buf.first()?;
        let len = first.leading_zeros() as usize + 1;
        if len > 8 || buf.len() < len {
            return None;
        }
        let mut value = if keep_marker {
            u64::from(first)
        } else {
            u64::from(first) & ((1u64 << (8 - len)) - 1)
        };
        let mut all_ones = value == (1u64 << (8 - len)) - 1;
        for &b in &buf[1..len] {
            value = (value << 8) | u64::from(b);
            all_ones &= b == 0xff;
        }
        if !keep_marker && all_ones {
            value = u64::MAX; // unknown size
        }
        Some((value, len))
    }

    /// (id, payload) of each element in `buf`.
    fn elements(mut buf: &[u8]) -> Vec<(u64, &[u8])> {
        let mut out = Vec::new();
        while let Some((id, id_len)) = vint(buf, true) {
            let Some((size, size_len)) = vint(&buf[id_len..], false) else {
                break;
            };
            let start = id_len + size_len;
            let end = if size == u64::MAX {
                buf.len()
            } else {
                (start + size as usize).min(buf.len())
            };
            out.push((id, &buf[start..end]));
            buf = &buf[end..];
        }
        out
    }

    fn child<'a>(elems: &[(u64, &'a [u8])], id: u64) -> &'a [u8] {
        elems
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, d)| *d)
            .unwrap_or_else(|| panic!("no element {id:#x}"))
    }

    fn uint(data: &[u8]) -> u64 {
        data.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b))
    }

    /// Timestamp (ms), keyframe flag and bytes of one SimpleBlock.
    type Block = (u64, bool, Vec<u8>);

    /// Every SimpleBlock, and the track's codec and size.
    fn parse_webm(bytes: &[u8]) -> (String, u64, u64, Vec<Block>) {
        let top = elements(bytes);
        let header = elements(child(&top, 0x1A45_DFA3));
        assert_eq!(child(&header, 0x4282), b"webm", "DocType");
        let segment = elements(child(&top, 0x1853_8067));
        let tracks = elements(child(&segment, 0x1654_AE6B));
        let entry = elements(child(&tracks, 0xAE));
        let codec = String::from_utf8(child(&entry, 0x86).to_vec()).unwrap();
        let video = elements(child(&entry, 0xE0));
        let (width, height) = (uint(child(&video, 0xB0)), uint(child(&video, 0xBA)));
        let mut frames = Vec::new();
        for (_, cluster) in segment.iter().filter(|(id, _)| *id == 0x1F43_B675) {
            let cluster = elements(cluster);
            let base = uint(child(&cluster, 0xE7));
            for (_, block) in cluster.iter().filter(|(id, _)| *id == 0xA3) {
                let (_track, n) = vint(block, false).unwrap();
                let rel = i16::from_be_bytes([block[n], block[n + 1]]);
                let flags = block[n + 2];
                let ts = (base as i64 + i64::from(rel)) as u64;
                frames.push((ts, flags & 0x80 != 0, block[n + 3..].to_vec()));
            }
        }
        (codec, width, height, frames)
    }

    #[test]
    fn frames_before_the_first_keyframe_and_after_a_gap_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rooms/lobby/video-alice.webm");
        let mut w = WebmVideoWriter::create(&path).unwrap();
        let mut tx = Sender {
            seq: 65_530, // wraps during the test
            picture_id: 0x7ffe,
        };
        let k1 = keyframe(320, 240, 0xa1, 1200);
        let k2 = keyframe(320, 240, 0xa2, 700);
        tx.send(&mut w, 1_000, &interframe(0x01, 300), None); // before any keyframe
        tx.send(&mut w, 4_000, &k1, None); // t = 0
        tx.send(&mut w, 7_000, &interframe(0x02, 300), None); // t = 33 ms
        tx.send(&mut w, 10_000, &interframe(0x03, 800), None); // t = 66.7 ms (ms in WebM), 2 packets
        tx.send(&mut w, 13_000, &interframe(0x04, 800), Some(0)); // first packet lost
        tx.send(&mut w, 16_000, &interframe(0x05, 300), None); // no reference: skipped
        tx.send(&mut w, 19_000, &k2, None); // t = 166 ms
        tx.send(&mut w, 22_000, &interframe(0x06, 300), None); // t = 200 ms
                                                               // A duplicate of the last packet is dropped.
        let dup = packetize(&interframe(0x06, 300), 500, 0);
        w.write_rtp(tx.seq.wrapping_sub(1), 22_000, true, &dup[0])
            .unwrap();

        let stats = w.stats();
        assert_eq!(stats.frames_written, 5);
        assert_eq!(stats.keyframes, 2);
        assert_eq!(stats.gaps, 1);
        assert_eq!(
            stats.frames_skipped, 2,
            "the one before the keyframe, the one after the gap"
        );
        assert_eq!(stats.packets_dropped, 1);

        let closed = w.finish().unwrap();
        assert_eq!(closed.duration_ms, 200);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(closed.bytes, bytes.len() as u64);
        assert_eq!(closed.blake3, blake3::hash(&bytes).to_hex().to_string());

        let (codec, width, height, frames) = parse_webm(&bytes);
        assert_eq!((codec.as_str(), width, height), ("V_VP8", 320, 240));
        let summary: Vec<(u64, bool, u8, usize)> = frames
            .iter()
            .map(|(ts, key, data)| (*ts, *key, data[data.len() - 1], data.len()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (0, true, 0xa1, 1200),
                (33, false, 0x02, 300),
                (66, false, 0x03, 800),
                (166, true, 0xa2, 700),
                (200, false, 0x06, 300),
            ]
        );
        assert_eq!(frames[0].2, k1, "frames are muxed byte for byte");
    }

    #[test]
    fn a_frame_without_marker_ends_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.webm");
        let mut w = WebmVideoWriter::create(&path).unwrap();
        let k = keyframe(64, 48, 0xee, 100);
        let mut p = vec![0x10];
        p.extend_from_slice(&k);
        w.write_rtp(1, 0, false, &p).unwrap();
        let mut q = vec![0x10];
        q.extend_from_slice(&interframe(0x01, 50));
        w.write_rtp(2, 3_000, true, &q).unwrap();
        assert_eq!(w.stats().frames_written, 2);
        let closed = w.finish().unwrap();
        let (_, width, height, frames) = parse_webm(&std::fs::read(&closed.path).unwrap());
        assert_eq!((width, height, frames.len()), (64, 48, 2));
    }

    #[test]
    fn hostile_payloads_are_errors_and_the_writer_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WebmVideoWriter::create(&dir.path().join("v.webm")).unwrap();
        for (seq, bad) in [
            &[][..],
            &[0x80],
            &[0x90, 0x80],
            &[0x90, 0x80, 0x80, 0x01],
            &[0x10],
        ]
        .iter()
        .enumerate()
        {
            let err = w.write_rtp(seq as u16, 0, true, bad).unwrap_err();
            assert_eq!(err.code(), "audio.vp8", "{bad:?}");
        }
        // A keyframe whose header lies about being one.
        let mut fake = vec![0x10];
        fake.extend_from_slice(&[0x00, 0x00, 0x00, 0xde, 0xad, 0xbe, 0, 0, 0, 0]);
        assert_eq!(
            w.write_rtp(5, 0, true, &fake).unwrap_err().code(),
            "audio.vp8"
        );
        let mut good = vec![0x10];
        good.extend_from_slice(&keyframe(32, 32, 0, 40));
        w.write_rtp(6, 0, true, &good).unwrap();
        assert_eq!(w.stats().frames_written, 1);
        w.finish().unwrap();
    }

    #[test]
    fn no_keyframe_means_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.webm");
        let mut w = WebmVideoWriter::create(&path).unwrap();
        let mut p = vec![0x10];
        p.extend_from_slice(&interframe(0x01, 50));
        w.write_rtp(1, 0, true, &p).unwrap();
        let closed = w.finish().unwrap();
        assert_eq!((closed.bytes, closed.duration_ms), (0, 0));
        assert_eq!(closed.blake3, blake3::hash(b"").to_hex().to_string());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn arbitrary_packets_never_panic(
            packets in proptest::collection::vec(
                (any::<u16>(), any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64)),
                0..40,
            )
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut w = WebmVideoWriter::create(&dir.path().join("v.webm")).unwrap();
            let mut good = vec![0x10];
            good.extend_from_slice(&keyframe(16, 16, 0, 20));
            let _ = w.write_rtp(0, 0, true, &good);
            for (seq, ts, marker, payload) in &packets {
                let _ = w.write_rtp(*seq, *ts, *marker, payload);
            }
            let _ = w.finish();
        }
    }
}

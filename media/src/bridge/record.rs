//! A room's recording as the media node writes it: the room's audio mixed at 48 kHz
//! (browsers as decoded, SIP callers resampled, each as the others hear them: muted
//! participants are not recorded) into one Ogg/Opus file, and, when asked, each video
//! track as it arrived, without transcoding, into a WebM file of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::audio::{AudioError, FRAME_WIDE};
use crate::recording::{ClosedFile, OggOpusWriter, WebmVideoWriter};
use crate::sfu::VideoPacket;

/// A file of a stopped recording, as the engine journals it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedFile {
    /// Relative to the recordings directory: `<recording>/audio.ogg`,
    /// `<recording>/video-<track>.webm`.
    pub name: String,
    /// The forwarded track id, for a video file.
    pub track: Option<String>,
    pub bytes: u64,
    pub duration_ms: u64,
    /// 64 lowercase hex digits.
    pub blake3: String,
}

/// A recording's files once closed.
#[derive(Debug)]
pub struct Closed {
    /// The recording id.
    pub recording: String,
    pub files: Vec<RecordedFile>,
    pub failed: Vec<FailedFile>,
}

/// A file that could not be completed, with why (the engine is told nothing of it;
/// the operator sees the error).
#[derive(Debug)]
pub struct FailedFile {
    pub name: String,
    pub error: AudioError,
}

pub(crate) struct RoomRecording {
    recording: String,
    dir: PathBuf,
    /// Appended to file names when an earlier part exists (a restart mid-recording:
    /// `audio-2.ogg`), so no file is ever overwritten.
    part: String,
    audio: OggOpusWriter,
    /// `None`: audio only. Writers by forwarded track id.
    video: Option<HashMap<String, Result<WebmVideoWriter, ()>>>,
    mix: Box<[i32; FRAME_WIDE]>,
    out: Box<[i16; FRAME_WIDE]>,
    pub(crate) write_errors: u64,
}

/// Forwarded track ids are `<session>-video-<n>`; anything else is not a file name.
fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.starts_with('.')
}

impl RoomRecording {
    /// Opens `<dir>/<recording>/audio.ogg`. `recording` must be a safe file name.
    pub(crate) fn start(
        dir: &Path,
        room: &str,
        recording: &str,
        video: bool,
    ) -> Result<Self, AudioError> {
        if !safe_component(recording) {
            return Err(AudioError::Io {
                path: dir.join(recording),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "recording id is not a safe file name",
                ),
            });
        }
        let base = dir.join(recording);
        let part = (1u32..)
            .map(|n| {
                if n == 1 {
                    String::new()
                } else {
                    format!("-{n}")
                }
            })
            .find(|p| !base.join(format!("audio{p}.ogg")).exists())
            .unwrap_or_default();
        let audio = OggOpusWriter::create(&base.join(format!("audio{part}.ogg")), room)?;
        Ok(RoomRecording {
            recording: recording.to_owned(),
            dir: dir.to_owned(),
            part,
            audio,
            video: video.then(HashMap::new),
            mix: Box::new([0; FRAME_WIDE]),
            out: Box::new([0; FRAME_WIDE]),
            write_errors: 0,
        })
    }

    pub(crate) fn id(&self) -> &str {
        &self.recording
    }

    /// Adds one source's frame to this tick's mix.
    pub(crate) fn add(&mut self, frame: &[i16; FRAME_WIDE]) {
        for (m, &s) in self.mix.iter_mut().zip(frame.iter()) {
            *m += i32::from(s);
        }
    }

    /// Writes this tick's mix (silence if nobody spoke: the file keeps the room's
    /// timeline) and clears it.
    pub(crate) fn write_tick(&mut self) {
        for (o, m) in self.out.iter_mut().zip(self.mix.iter_mut()) {
            *o = (*m).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            *m = 0;
        }
        if self.audio.write_frame(&self.out).is_err() {
            self.write_errors += 1;
        }
    }

    /// One packet of a video track, if this recording takes video; `true` when the
    /// track's file waits for a keyframe (at the start, or after a loss).
    pub(crate) fn video(&mut self, track: &str, packet: VideoPacket<'_>) -> bool {
        let Some(writers) = self.video.as_mut() else {
            return false;
        };
        if !writers.contains_key(track) {
            let writer = if safe_component(track) {
                let path = self
                    .dir
                    .join(&self.recording)
                    .join(format!("video-{track}{}.webm", self.part));
                WebmVideoWriter::create(&path).map_err(|e| {
                    tracing::warn!(track, error = %e, "video recording file not created");
                })
            } else {
                Err(())
            };
            writers.insert(track.to_owned(), writer);
        }
        let Some(Ok(w)) = writers.get_mut(track) else {
            return false;
        };
        if w.write_rtp(
            packet.sequence,
            packet.timestamp,
            packet.marker,
            packet.payload,
        )
        .is_err()
        {
            self.write_errors += 1;
        }
        w.waiting_for_keyframe()
    }

    /// Closes every file (flushed, fsynced, hashed). Blocking: run it off the mixer
    /// thread and off tokio's workers.
    pub(crate) fn finish(self) -> Closed {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        let name = |file: &str| format!("{}/{file}", self.recording);
        let audio = name(&format!("audio{}.ogg", self.part));
        match self.audio.finish() {
            Ok(c) => done.push(recorded(audio, None, c)),
            Err(error) => failed.push(FailedFile { name: audio, error }),
        }
        for (track, writer) in self.video.into_iter().flatten() {
            let Ok(writer) = writer else {
                continue;
            };
            let file = name(&format!("video-{track}{}.webm", self.part));
            match writer.finish() {
                Ok(c) => done.push(recorded(file, Some(track), c)),
                Err(error) => failed.push(FailedFile { name: file, error }),
            }
        }
        Closed {
            recording: self.recording,
            files: done,
            failed,
        }
    }
}

fn recorded(name: String, track: Option<String>, c: ClosedFile) -> RecordedFile {
    RecordedFile {
        name,
        track,
        bytes: c.bytes,
        duration_ms: c.duration_ms,
        blake3: c.blake3,
    }
}

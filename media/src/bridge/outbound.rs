//! A SIP caller's audio on its way to the browsers: the caller's own frame (after its
//! jitter buffer, before the mix) resampled to 48 kHz, encoded as Opus and published
//! into the SFU as the caller's track, with its RFC 6464 level so browsers (and the
//! dominant-speaker detector) see who speaks.

use crate::audio::{audio_level, AudioError, OpusEncoder, Upsampler, FRAME_NARROW, FRAME_WIDE};
use crate::sfu::LocalTrack;

/// Opus bitrate of a caller's track: G.711 carries narrowband speech, which Opus
/// codes transparently well below this.
const BITRATE_BPS: i32 = 24_000;

/// What an output counted, for statistics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OutputCounters {
    pub(crate) frames: u64,
    pub(crate) encode_errors: u64,
}

pub(crate) struct CallerOutput {
    up: Upsampler,
    encoder: OpusEncoder,
    /// Published once browsers are in the room; dropped (the track ends) with the leg.
    pub(crate) track: Option<LocalTrack>,
    pub(crate) wide: Box<[i16; FRAME_WIDE]>,
    packet: Box<[u8; 1500]>,
    pub(crate) counters: OutputCounters,
}

impl CallerOutput {
    pub(crate) fn new() -> Result<Self, AudioError> {
        Ok(CallerOutput {
            up: Upsampler::new()?,
            encoder: OpusEncoder::new(BITRATE_BPS)?,
            track: None,
            wide: Box::new([0; FRAME_WIDE]),
            packet: Box::new([0; 1500]),
            counters: OutputCounters::default(),
        })
    }

    /// Resamples this tick's frame to 48 kHz (into `wide`, for the recording too).
    pub(crate) fn upsample(&mut self, pcm: &[i16; FRAME_NARROW]) -> Result<(), AudioError> {
        self.up.process(pcm, &mut self.wide)
    }

    /// Encodes `wide` and sends it on the track, if published.
    pub(crate) fn send(&mut self) {
        let Some(track) = self.track.as_mut() else {
            return;
        };
        match self.encoder.encode(&self.wide, &mut self.packet[..]) {
            Ok(len) => {
                let level = audio_level(&self.wide[..]);
                if let Some(opus) = self.packet.get(..len) {
                    track.send(opus, level);
                    self.counters.frames += 1;
                }
            }
            Err(_) => self.counters.encode_errors += 1,
        }
    }

    /// A tick without the caller's voice (silent, muted, on hold): no packet, the RTP
    /// clock goes on.
    pub(crate) fn skip(&mut self) {
        if let Some(track) = self.track.as_mut() {
            track.skip();
        }
    }
}

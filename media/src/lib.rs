//! The media node: a G.711 audio conference mixer for SIP calls (RTP, jitter buffer,
//! RTCP, RFC 4733 DTMF, music on hold), and the WebRTC selective forwarding unit for
//! browsers ([`Sfu`], module `sfu`).
//!
//! The protocol logic is sans-IO ([`Conference`], [`MediaCore`]: datagrams and `now`
//! in, datagrams and events out, tested on a virtual clock); [`MediaNode`] is the tokio
//! shell the SIP gateway drives. The engine decides (mute, kick); the media node only
//! enforces.

pub mod audio;
pub mod bridge;
pub mod clock;
pub mod conference;
pub mod dtmf;
pub mod error;
pub mod g711;
pub mod hold_music;
pub mod jitter;
pub mod mixer;
pub mod node;
pub mod recording;
pub mod rtcp;
pub mod rtp;
pub mod sfu;
#[cfg(test)]
mod testing;

pub use conference::{Channel, Conference, Direction, LegId, LegParams, MediaEvent, Output};
pub use error::MediaError;
pub use g711::G711;
pub use mixer::MediaCore;
pub use node::{LegInfo, MediaConfig, MediaNode, MediaStats};
pub use sfu::{
    MediaKind, ParticipantId, Sfu, SfuConfig, SfuError, SfuLimits, SfuSignal, SimulcastLayer,
};

//! Typed errors of the media node, each with a stable code for logs, metrics and the
//! gateway's mapping to SIP statuses (e.g. `media.ports_exhausted` → 503).

use std::net::SocketAddr;

use thiserror::Error;

use crate::conference::LegId;

#[derive(Debug, Error)]
pub enum MediaError {
    #[error("invalid media configuration: {0}")]
    InvalidConfig(String),
    #[error("no free RTP port pair in {min}..={max}")]
    PortsExhausted { min: u16, max: u16 },
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("unknown leg {0}")]
    UnknownLeg(LegId),
    #[error("invalid payload type {0}")]
    InvalidPayloadType(u8),
    #[error("hold music: {0}")]
    HoldMusic(String),
    #[error("the media node is shut down")]
    ShutDown,
    #[error("media node internal error: {0}")]
    Internal(String),
}

impl MediaError {
    /// Stable code per variant.
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::InvalidConfig(_) => "media.invalid_config",
            MediaError::PortsExhausted { .. } => "media.ports_exhausted",
            MediaError::Bind { .. } => "media.bind_failed",
            MediaError::UnknownLeg(_) => "media.unknown_leg",
            MediaError::InvalidPayloadType(_) => "media.invalid_payload_type",
            MediaError::HoldMusic(_) => "media.hold_music",
            MediaError::ShutDown => "media.shut_down",
            MediaError::Internal(_) => "media.internal",
        }
    }
}

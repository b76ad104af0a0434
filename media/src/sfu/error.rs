//! Typed errors of the SFU, each with a stable code the web gateway maps to its own
//! error shape (e.g. `sfu.unknown_participant` → 404, `sfu.ports_exhausted` → 503).

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SfuError {
    #[error("invalid SFU configuration: {0}")]
    InvalidConfig(String),
    #[error("no free UDP port in {min}..={max}")]
    PortsExhausted { min: u16, max: u16 },
    #[error("participant {0} is already connected")]
    AlreadyConnected(String),
    #[error("unknown participant {0}")]
    UnknownParticipant(String),
    /// The client sent SDP or a candidate we cannot parse or apply.
    #[error("invalid session description or candidate: {0}")]
    InvalidSignal(String),
    /// An answer arrived while no server offer was outstanding (it was superseded by
    /// a client offer, or is a duplicate).
    #[error("no server offer is outstanding for {0}")]
    NoOfferOutstanding(String),
    /// The WebRTC stack refused an operation on a valid input.
    #[error("WebRTC error: {0}")]
    WebRtc(String),
    /// The room already has the most participants the SFU takes.
    #[error("room {room} is full ({max} media participants)")]
    RoomFull { room: String, max: usize },
    /// The client offered to send more tracks than a publisher may.
    #[error("{sending} tracks offered; a publisher sends at most {max}")]
    TooManyTracks { sending: usize, max: usize },
    /// A session description or candidate beyond the size or count bounds.
    #[error("{what}: {size} is over the limit of {max}")]
    TooLarge {
        what: &'static str,
        size: usize,
        max: usize,
    },
    /// More ICE candidates than a participant may send.
    #[error("more than {max} ICE candidates")]
    TooManyCandidates { max: usize },
    /// A track the participant does not receive.
    #[error("unknown forwarded track {0}")]
    UnknownTrack(String),
    /// Too many offers (renegotiations) in a short time.
    #[error("too many renegotiations; retry in a moment")]
    RateLimited,
}

impl SfuError {
    /// Stable code per variant.
    pub fn code(&self) -> &'static str {
        match self {
            SfuError::InvalidConfig(_) => "sfu.invalid_config",
            SfuError::PortsExhausted { .. } => "sfu.ports_exhausted",
            SfuError::AlreadyConnected(_) => "sfu.already_connected",
            SfuError::UnknownParticipant(_) => "sfu.unknown_participant",
            SfuError::InvalidSignal(_) => "sfu.invalid_signal",
            SfuError::NoOfferOutstanding(_) => "sfu.no_offer_outstanding",
            SfuError::WebRtc(_) => "sfu.webrtc",
            SfuError::RoomFull { .. } => "sfu.room_full",
            SfuError::TooManyTracks { .. } => "sfu.too_many_tracks",
            SfuError::TooLarge { .. } => "sfu.too_large",
            SfuError::TooManyCandidates { .. } => "sfu.too_many_candidates",
            SfuError::UnknownTrack(_) => "sfu.unknown_track",
            SfuError::RateLimited => "sfu.rate_limited",
        }
    }
}

/// For errors of the stack on inputs we already checked.
pub(crate) fn webrtc(e: webrtc::error::Error) -> SfuError {
    SfuError::WebRtc(e.to_string())
}

/// For errors applying what the client sent.
pub(crate) fn invalid(e: webrtc::error::Error) -> SfuError {
    SfuError::InvalidSignal(e.to_string())
}

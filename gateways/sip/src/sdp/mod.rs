//! SDP for G.711 audio calls: the part of RFC 4566 that a phone's offer needs, and the
//! RFC 3264 offer/answer that picks PCMU or PCMA and telephone-event.
//!
//! Hand-written rather than a crate: the SDP crates around (webrtc-rs `sdp`, Mozilla's
//! `webrtc-sdp`) follow WebRTC, pull `url` and `rand`, insist on RFC 4566 line order that
//! some phones break, and read `String`s only; we need six line types, bounded by a
//! size limit, with every failure a typed error.
//! - `parse`: text to a [`SessionDescription`] (tolerant of LF endings, unknown lines and
//!   order, strict on what we use: ports, addresses, the `v=0` first line);
//! - `negotiate`: [`answer`], [`offer`] and [`accept_answer`].

mod negotiate;
mod parse;

use thiserror::Error;

pub use negotiate::{accept_answer, answer, offer, TELEPHONE_EVENT_PT};
pub use parse::{
    body_text, parse, Connection, MediaDescription, Origin, Rtcp, RtpMap, SessionDescription,
    MAX_SDP_BYTES,
};

use std::net::{IpAddr, SocketAddr};

/// The audio codecs the mixer speaks: G.711 μ-law and A-law, both 8 kHz mono.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static payload type of RFC 3551.
    pub fn static_payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name as written in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// The direction attribute of a media stream (RFC 4566 §6, RFC 3264 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction the answerer takes for an offer with this one: a sendonly offer
    /// (hold) is answered recvonly, and so on (RFC 3264 §6.1).
    pub fn mirror(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// The attribute name, as in `a=sendonly`.
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction named by an attribute, if it is one.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Whether the remote party sends media in this direction (as seen from its SDP).
    pub fn remote_sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the remote party wants to receive media (as seen from its SDP).
    pub fn remote_receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// Our side of the media: the media node's announced RTP address and the SDP origin
/// numbers (the caller increments `session_version` for each new answer in a dialog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMedia {
    pub address: IpAddr,
    pub port: u16,
    pub session_id: u64,
    pub session_version: u64,
}

/// What offer/answer settled for the one audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// 0 or 8, or the dynamic payload type the remote side's `a=rtpmap` gives the codec.
    pub payload_type: u8,
    /// The telephone-event/8000 payload type (RFC 4733), if the remote side has one.
    pub telephone_event: Option<u8>,
    /// Where to send RTP; `None` when the remote side is on hold with `c=0.0.0.0`.
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP: `a=rtcp` (RFC 3605), else the RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// The remote side's direction; a `c=0.0.0.0` hold (RFC 2543) counts as sendonly.
    pub remote_direction: Direction,
    /// The remote side's `a=ptime`, if any (1..=1000 ms; other values are ignored).
    pub ptime: Option<u32>,
}

/// Why an SDP body was refused. The SIP layer answers 400 for `Malformed` and
/// `TooLarge` (see [`SdpError::sip_status`]) and 488 Not Acceptable Here for the others.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// The text is not SDP we can read: a bad line, a port out of range, a missing
    /// connection address, not UTF-8.
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
    /// No audio stream is offered (or every audio stream has port 0).
    #[error("no audio stream in the SDP")]
    NoAudio,
    /// An RTP/AVP audio stream is there, without PCMU or PCMA among our codecs.
    #[error("no common codec: PCMU or PCMA is required")]
    NoCommonCodec,
    /// The audio streams use a profile we do not speak (SRTP, DTLS-SRTP/WebRTC, AVPF).
    #[error("unsupported media profile: only RTP/AVP is spoken")]
    UnsupportedProfile,
    /// The body is over [`MAX_SDP_BYTES`].
    #[error("SDP of {size} bytes is over the {limit} byte limit")]
    TooLarge { size: usize, limit: usize },
    /// The remote address is IPv4 while ours is IPv6 or the other way round: neither
    /// side could reach the other's media.
    #[error("the remote media address family differs from ours")]
    AddressFamily,
}

impl SdpError {
    /// The stable code for logs and journaled reasons.
    pub fn code(&self) -> &'static str {
        match self {
            SdpError::Malformed(_) => "sdp.malformed",
            SdpError::NoAudio => "sdp.no_audio",
            SdpError::NoCommonCodec => "sdp.no_common_codec",
            SdpError::UnsupportedProfile => "sdp.unsupported_profile",
            SdpError::TooLarge { .. } => "sdp.too_large",
            SdpError::AddressFamily => "sdp.address_family",
        }
    }

    /// The SIP final response for an INVITE whose offer failed this way.
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Malformed(_) | SdpError::TooLarge { .. } => 400,
            SdpError::NoAudio
            | SdpError::NoCommonCodec
            | SdpError::UnsupportedProfile
            | SdpError::AddressFamily => 488,
        }
    }
}

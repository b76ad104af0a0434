//! The SFU's settings and the UDP port each peer connection takes from the range.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Mutex;

use super::error::SfuError;

/// Where the SFU listens and what it tells browsers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuConfig {
    /// Address every peer connection's UDP socket binds to (a concrete address: the
    /// webrtc crate expands a wildcard into every non-loopback interface).
    pub bind: IpAddr,
    /// Inclusive UDP port range; one port per participant.
    pub udp_ports: (u16, u16),
    /// Addresses put in our ICE candidates (behind 1:1 NAT); empty = `bind`.
    pub announce: Vec<IpAddr>,
    /// Tests: gather and accept loopback candidates only, so no packet leaves the host.
    pub loopback_only: bool,
    /// Bounds on what a client may make the SFU do.
    pub limits: SfuLimits,
}

/// Bounds on what one client (a browser, perhaps hostile) may make the SFU do; beyond
/// them a call fails with a typed [`SfuError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfuLimits {
    /// Media participants per room (`sfu.room_full`).
    pub max_participants_per_room: usize,
    /// Tracks one publisher may send: audio, camera, screen and a spare
    /// (`sfu.too_many_tracks`); tracks beyond are not forwarded.
    pub max_tracks_per_publisher: usize,
    /// Size of one session description in bytes (`sfu.too_large`).
    pub max_sdp_bytes: usize,
    /// Media sections in one client description (`sfu.too_large`): its own tracks and
    /// one per track it receives.
    pub max_media_sections: usize,
    /// ICE candidates one participant may give, inline and trickled together
    /// (`sfu.too_many_candidates`).
    pub max_candidates: usize,
    /// Size of one trickled candidate in bytes (`sfu.too_large`).
    pub max_candidate_bytes: usize,
    /// Client descriptions (offers and answers) in a burst, then one per
    /// `renegotiation_refill` (`sfu.rate_limited`).
    pub renegotiation_burst: u32,
    pub renegotiation_refill: std::time::Duration,
    /// RTP packets queued towards one subscriber; beyond, packets to it are dropped
    /// (and counted) rather than slowing the publisher's forwarding.
    pub subscriber_queue: usize,
}

impl Default for SfuLimits {
    fn default() -> Self {
        SfuLimits {
            max_participants_per_room: 50,
            max_tracks_per_publisher: 4,
            max_sdp_bytes: 512 * 1024,
            max_media_sections: 4 * 50 + 8,
            max_candidates: 64,
            max_candidate_bytes: 1024,
            renegotiation_burst: 20,
            renegotiation_refill: std::time::Duration::from_millis(500),
            subscriber_queue: 1024,
        }
    }
}

impl SfuConfig {
    pub(crate) fn validate(&self) -> Result<(), SfuError> {
        let (min, max) = self.udp_ports;
        if min == 0 || min > max {
            return Err(SfuError::InvalidConfig(format!(
                "udp_ports {min}..={max} is not a range of real ports"
            )));
        }
        let l = &self.limits;
        if l.max_participants_per_room == 0
            || l.max_tracks_per_publisher == 0
            || l.subscriber_queue == 0
            || l.renegotiation_burst == 0
        {
            return Err(SfuError::InvalidConfig(format!(
                "limits must allow at least one of each: {l:?}"
            )));
        }
        if self.loopback_only {
            if !self.bind.is_loopback() {
                return Err(SfuError::InvalidConfig(format!(
                    "loopback_only needs a loopback bind address, not {}",
                    self.bind
                )));
            }
            if let Some(a) = self.announce.iter().find(|a| !a.is_loopback()) {
                return Err(SfuError::InvalidConfig(format!(
                    "loopback_only cannot announce {a}"
                )));
            }
        }
        Ok(())
    }
}

/// Hands out ports round-robin so a port just released (its socket may still be
/// closing) is the last to be reused.
pub(crate) struct PortPicker {
    bind: IpAddr,
    min: u16,
    max: u16,
    next: Mutex<u16>,
}

impl PortPicker {
    pub(crate) fn new(config: &SfuConfig) -> Self {
        PortPicker {
            bind: config.bind,
            min: config.udp_ports.0,
            max: config.udp_ports.1,
            next: Mutex::new(config.udp_ports.0),
        }
    }

    /// A port of the range that is free now. Probed with a throwaway socket: the peer
    /// connection binds its own; losing the race to another process fails that build.
    pub(crate) fn pick(&self) -> Result<SocketAddr, SfuError> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let span = u32::from(self.max - self.min) + 1;
        for _ in 0..span {
            let port = *next;
            *next = if port >= self.max { self.min } else { port + 1 };
            let addr = SocketAddr::new(self.bind, port);
            if UdpSocket::bind(addr).is_ok() {
                return Ok(addr);
            }
        }
        Err(SfuError::PortsExhausted {
            min: self.min,
            max: self.max,
        })
    }
}

//! Bounds on what a client may make the SFU do: the size and shape of its session
//! descriptions, its candidates, and how often it renegotiates. Checked before anything
//! reaches the WebRTC stack.

use std::time::{Duration, Instant};

use super::config::SfuLimits;
use super::error::SfuError;

/// What a client description asks for, as far as the bounds care.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) sections: usize,
    /// Sections in which the client sends media (`sendrecv` or `sendonly`).
    pub(crate) sending: usize,
    pub(crate) candidates: usize,
}

/// Reads the shape of a description. A media section without a direction attribute
/// is `sendrecv` (RFC 4566); a session-level direction applies to sections without one.
pub(crate) fn shape(sdp: &str) -> Shape {
    let mut out = Shape::default();
    let mut session_sends = true;
    let mut in_media = false;
    let mut section: Option<(bool, Option<bool>)> = None; // (is media, its own direction)
    let close = |section: &mut Option<(bool, Option<bool>)>, out: &mut Shape, default: bool| {
        if let Some((true, dir)) = section.take() {
            if dir.unwrap_or(default) {
                out.sending += 1;
            }
        }
    };
    let mut seen = std::collections::HashSet::new();
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("m=") {
            close(&mut section, &mut out, session_sends);
            in_media = true;
            out.sections += 1;
            let is_media = rest.starts_with("audio ") || rest.starts_with("video ");
            section = Some((is_media, None));
            continue;
        }
        if line.starts_with("a=candidate:") {
            // A bundled description repeats its candidates in every section: count each once.
            if seen.insert(line) {
                out.candidates += 1;
            }
            continue;
        }
        let dir = match line {
            "a=sendrecv" | "a=sendonly" => Some(true),
            "a=recvonly" | "a=inactive" => Some(false),
            _ => None,
        };
        if let Some(d) = dir {
            if in_media {
                if let Some((_, own)) = section.as_mut() {
                    *own = Some(d);
                }
            } else {
                session_sends = d;
            }
        }
    }
    close(&mut section, &mut out, session_sends);
    out
}

/// Checks a client description against the bounds; `candidates_so_far` is what the
/// participant already gave. Returns its shape.
pub(crate) fn check_description(
    sdp: &str,
    limits: &SfuLimits,
    candidates_so_far: usize,
) -> Result<Shape, SfuError> {
    if sdp.len() > limits.max_sdp_bytes {
        return Err(SfuError::TooLarge {
            what: "session description bytes",
            size: sdp.len(),
            max: limits.max_sdp_bytes,
        });
    }
    let s = shape(sdp);
    if s.sections > limits.max_media_sections {
        return Err(SfuError::TooLarge {
            what: "media sections",
            size: s.sections,
            max: limits.max_media_sections,
        });
    }
    if s.sending > limits.max_tracks_per_publisher {
        return Err(SfuError::TooManyTracks {
            sending: s.sending,
            max: limits.max_tracks_per_publisher,
        });
    }
    if candidates_so_far.saturating_add(s.candidates) > limits.max_candidates {
        return Err(SfuError::TooManyCandidates {
            max: limits.max_candidates,
        });
    }
    Ok(s)
}

/// A token bucket: `burst` at once, then one per `refill`.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: f64,
    burst: f64,
    refill: Duration,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(burst: u32, refill: Duration, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            refill,
            at: now,
        }
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at);
        self.at = now;
        if !self.refill.is_zero() {
            self.tokens =
                (self.tokens + elapsed.as_secs_f64() / self.refill.as_secs_f64()).min(self.burst);
        } else {
            self.tokens = self.burst;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn limits() -> SfuLimits {
        SfuLimits {
            max_tracks_per_publisher: 2,
            max_sdp_bytes: 2000,
            max_media_sections: 4,
            max_candidates: 3,
            ..SfuLimits::default()
        }
    }

    const OFFER: &str = "v=0\r\ns=-\r\na=group:BUNDLE 0 1 2\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendrecv\r\na=candidate:1 1 udp 1 127.0.0.1 5 typ host\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n";

    #[test]
    fn a_candidate_repeated_in_every_bundled_section_counts_once() {
        let line = "a=candidate:1 1 udp 2113937151 127.0.0.1 40000 typ host";
        let sdp = format!(
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n{line}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n{line}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n{line}\r\n"
        );
        assert_eq!(shape(&sdp).candidates, 1);
    }

    #[test]
    fn reads_sections_sending_tracks_and_candidates() {
        assert_eq!(
            shape(OFFER),
            Shape {
                sections: 4,
                sending: 2,
                candidates: 1
            }
        );
        // No direction attribute: sendrecv, or the session-level one.
        assert_eq!(shape("m=audio 9 RTP/AVP 0\r\n").sending, 1);
        assert_eq!(shape("a=recvonly\r\nm=audio 9 RTP/AVP 0\r\n").sending, 0);
    }

    #[test]
    fn a_description_within_bounds_passes() {
        assert!(check_description(OFFER, &limits(), 0).is_ok());
    }

    #[test]
    fn too_many_tracks_sections_candidates_or_bytes_are_refused() {
        let more = format!("{OFFER}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:4\r\na=sendrecv\r\n");
        let mut l = limits();
        l.max_media_sections = 10;
        let e = check_description(&more, &l, 0).unwrap_err();
        assert_eq!(e.code(), "sfu.too_many_tracks");
        let e = check_description(&more, &limits(), 0).unwrap_err();
        assert_eq!(e.code(), "sfu.too_large", "{e}");
        let e = check_description(OFFER, &limits(), 3).unwrap_err();
        assert_eq!(e.code(), "sfu.too_many_candidates");
        let huge = format!("{OFFER}{}", "a=x\r\n".repeat(500));
        let e = check_description(&huge, &limits(), 0).unwrap_err();
        assert_eq!(e.code(), "sfu.too_large");
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refills() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3, Duration::from_secs(1), t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert!(!b.take(t0 + Duration::from_millis(500)));
        assert!(b.take(t0 + Duration::from_millis(1100)));
        assert!(!b.take(t0 + Duration::from_millis(1100)));
    }
}

//! Tracks a connected client stops and later sends again on the same transceiver.
//!
//! The webrtc crate ends no remote track when a client stops sending one (its section
//! goes `inactive` or `recvonly`, or disappears), so after each client offer the SFU
//! ends those publications itself ([`end_and_resume`]). A client may later reuse that
//! transceiver (direction back to `sendonly`/`sendrecv`, perhaps `replaceTrack`):
//!
//! - under a new track id (`a=msid`), the crate opens a new remote track on its first
//!   packet and raises `on_track`: published as any new track;
//! - under the same track id, it raises no second `on_track` (its remote tracks are
//!   keyed by track id and never forgotten) and hands the packets to the old remote
//!   track: the SFU publishes that one again, as a new publication.
//!
//! The crate also keeps a transceiver it stopped on the first `inactive` marked
//! stopped after the client resumes it, and then answers the next `inactive` with
//! `recvonly`; [`quiet_stopped_sections`] sets such a transceiver `inactive` before
//! the answer is made, so every stop is answered (and ended) the same way.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use webrtc::media_stream::track_remote::TrackRemote;

use super::negotiate::published;
use super::{Inner, Participant};

/// The sections of a client offer the client sends on, by `a=mid`, each with the track
/// id it announces (`a=ssrc:<n> msid:<stream> <track>`, else `a=msid:<stream> <track>`,
/// else empty, as the webrtc crate reads it). A section sends unless it is `recvonly`,
/// `inactive` or rejected (port 0).
pub(crate) fn sending_sections(sdp: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for section in sdp.split("\nm=").skip(1) {
        let port = section.split_whitespace().nth(1).unwrap_or("0");
        let mut mid = None;
        let (mut msid, mut ssrc_msid) = (None, None);
        let mut sends = port != "0";
        for line in section.lines().map(str::trim) {
            match line {
                "a=recvonly" | "a=inactive" => sends = false,
                _ => {}
            }
            if let Some(m) = line.strip_prefix("a=mid:") {
                mid = Some(m.to_owned());
            } else if let Some(rest) = line.strip_prefix("a=msid:") {
                msid = rest.split_whitespace().nth(1).map(str::to_owned);
            } else if let Some(rest) = line.strip_prefix("a=ssrc:") {
                let mut parts = rest.split_whitespace().skip(1);
                if let (Some(stream), Some(track)) = (parts.next(), parts.next()) {
                    if stream.starts_with("msid:") {
                        ssrc_msid = Some(track.to_owned());
                    }
                }
            }
        }
        if let (Some(mid), true) = (mid, sends) {
            out.insert(mid, ssrc_msid.or(msid).unwrap_or_default());
        }
    }
    out
}

/// Before answering a client offer: each of our receiving transceivers whose section
/// the client no longer sends on is set `inactive` (see the module's doc).
pub(crate) async fn quiet_stopped_sections(p: &Participant, sending: &HashMap<String, String>) {
    for transceiver in p.pc.get_transceivers().await {
        let Ok(Some(mid)) = transceiver.mid().await else {
            continue;
        };
        if sending.contains_key(&mid) {
            continue;
        }
        if transceiver.direction().await.ok() == Some(RTCRtpTransceiverDirection::Recvonly) {
            if let Err(e) = transceiver
                .set_direction(RTCRtpTransceiverDirection::Inactive)
                .await
            {
                tracing::debug!(participant = %p.id, error = %e, "stopped section not set inactive");
            }
        }
    }
}

/// After answering a client offer: ends the publications whose track the client no
/// longer sends (their forwarding task returns, drops them from the publisher's list
/// and renegotiates the subscribers) and remembers their remote tracks in `stopped`;
/// publishes again a remembered track whose transceiver sends again under the same
/// track id. `stopped` forgets a track once no transceiver holds it, or once its
/// transceiver sends under another id (the crate raises `on_track` for that one).
pub(crate) async fn end_and_resume(
    inner: &Arc<Inner>,
    p: &Arc<Participant>,
    sending: &HashMap<String, String>,
    stopped: &mut Vec<Arc<dyn TrackRemote>>,
) {
    // Each transceiver's remote track, with the track id the client now sends on it.
    let mut held: Vec<(Arc<dyn TrackRemote>, Option<String>)> = Vec::new();
    for transceiver in p.pc.get_transceivers().await {
        let Ok(Some(mid)) = transceiver.mid().await else {
            continue;
        };
        if let Ok(Some(receiver)) = transceiver.receiver().await {
            held.push((receiver.track().clone(), sending.get(&mid).cloned()));
        }
    }
    let find = |track: &Arc<dyn TrackRemote>| {
        held.iter()
            .find(|(t, _)| Arc::ptr_eq(t, track))
            .map(|(_, id)| id.clone())
    };
    for publication in p.publications() {
        if publication.ended.load(Ordering::Acquire) {
            continue;
        }
        let Some(remote) = publication.remote() else {
            continue;
        };
        if matches!(find(remote), Some(Some(_))) {
            continue;
        }
        tracing::debug!(publisher = %p.id, track = %publication.track_id, "sfu track stopped by the client");
        publication.end();
        if !stopped.iter().any(|s| Arc::ptr_eq(s, remote)) {
            stopped.push(remote.clone());
        }
    }
    let mut kept = Vec::new();
    for remote in std::mem::take(stopped) {
        match find(&remote) {
            Some(None) => kept.push(remote),
            Some(Some(id)) if id == remote.track_id().await => {
                tracing::debug!(publisher = %p.id, track = %id, "sfu track resumed by the client");
                tokio::spawn(published(inner.clone(), p.clone(), remote));
            }
            _ => {}
        }
    }
    *stopped = kept;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn finds_the_sections_a_client_sends_on_and_their_track_ids() {
        let sdp = "v=0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=msid:s cam\r\na=sendrecv\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:s old\r\n\
            a=ssrc:7 msid:s screen\r\na=sendonly\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=msid:s x\r\na=inactive\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:3\r\na=recvonly\r\n\
            m=audio 0 UDP/TLS/RTP/SAVPF 111\r\na=mid:4\r\na=msid:s gone\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:5\r\n";
        let s = sending_sections(sdp);
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s["0"], "cam");
        // The SSRC's msid wins, as the webrtc crate reads it.
        assert_eq!(s["1"], "screen");
        // No direction: sendrecv; no msid: an empty id.
        assert_eq!(s["5"], "");
    }
}

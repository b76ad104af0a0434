//! Offers and answers for one participant, and the subscriptions they carry.
//!
//! The client offers first (its published tracks). Once its connection is up (which
//! means it has applied our answer) the SFU adds a send-only transceiver per track of
//! every other participant of the room and offers ([`SfuSignal::Offer`]). One server
//! offer at a time: a change while an offer is outstanding marks the participant dirty
//! and is offered after the answer. Glare (a client offer while ours is outstanding):
//! the server yields, rolls its offer back, answers, and offers again afterwards.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::RTCSessionDescription;
use webrtc::rtp_transceiver::RtpSender;

use super::error::{invalid, webrtc as stack, SfuError};
use super::forward::{media_kind, relay_feedback, Outlet, Publication, Source, Taps};
use super::stopped;
use super::{Inner, MediaKind, Participant, SfuSignal};

#[derive(Default)]
pub(crate) struct Negotiation {
    /// The connection came up once: the client holds our answer, we may offer.
    connected: bool,
    offer_outstanding: bool,
    /// Something changed that an offer must still carry.
    dirty: bool,
    pub(crate) subscriptions: HashMap<u64, Subscription>,
    /// Subscriptions in the outstanding offer; their publishers get a keyframe request
    /// once the client has answered.
    fresh: Vec<u64>,
    /// The client's tracks it stopped sending while connected, in case it resumes one
    /// on the same transceiver (`stopped.rs`).
    stopped: Vec<Arc<dyn TrackRemote>>,
}

pub(crate) struct Subscription {
    pub(crate) publication: Arc<Publication>,
    pub(crate) outlet: Arc<Outlet>,
    sender: Arc<dyn RtpSender>,
}

pub(crate) async fn client_offer(
    inner: &Arc<Inner>,
    p: &Arc<Participant>,
    sdp: String,
) -> Result<String, SfuError> {
    let sending = stopped::sending_sections(&sdp);
    let offer = RTCSessionDescription::offer(sdp).map_err(invalid)?;
    let mut n = p.negotiation.lock().await;
    if n.offer_outstanding {
        let rollback = RTCSessionDescription::rollback(None).map_err(stack)?;
        p.pc.set_local_description(rollback).await.map_err(stack)?;
        n.offer_outstanding = false;
        n.dirty = true;
    }
    p.pc.set_remote_description(offer).await.map_err(invalid)?;
    stopped::quiet_stopped_sections(p, &sending).await;
    let answer = p.pc.create_answer(None).await.map_err(stack)?;
    p.pc.set_local_description(answer.clone())
        .await
        .map_err(stack)?;
    refresh_payload_types(&n).await;
    stopped::end_and_resume(inner, p, &sending, &mut n.stopped).await;
    let sdp = match p.pc.local_description().await {
        Some(d) => d.sdp,
        None => answer.sdp,
    };
    let sdp = inner.announced(&sdp);
    let follow_up = n.connected && n.dirty;
    drop(n);
    if follow_up {
        tokio::spawn(renegotiate(inner.clone(), p.clone()));
    }
    Ok(sdp)
}

pub(crate) async fn client_answer(
    inner: &Arc<Inner>,
    p: &Arc<Participant>,
    sdp: String,
) -> Result<(), SfuError> {
    let answer = RTCSessionDescription::answer(sdp).map_err(invalid)?;
    let mut n = p.negotiation.lock().await;
    if !n.offer_outstanding {
        return Err(SfuError::NoOfferOutstanding(p.id.clone()));
    }
    if let Err(e) = p.pc.set_remote_description(answer).await {
        // Back to stable so the next change can be offered again.
        if let Ok(rollback) = RTCSessionDescription::rollback(None) {
            let _ = p.pc.set_local_description(rollback).await;
        }
        n.offer_outstanding = false;
        n.dirty = true;
        return Err(invalid(e));
    }
    n.offer_outstanding = false;
    refresh_payload_types(&n).await;
    let fresh: Vec<Arc<Publication>> = std::mem::take(&mut n.fresh)
        .into_iter()
        .filter_map(|id| n.subscriptions.get(&id).map(|s| s.publication.clone()))
        .collect();
    drop(n);
    // A new subscriber needs a keyframe before it can show anything.
    for publication in fresh {
        publication.request_keyframe(true).await;
    }
    renegotiate(inner.clone(), p.clone()).await;
    Ok(())
}

/// The connection is up: start sending the room's tracks.
pub(crate) async fn connected(inner: Arc<Inner>, p: Arc<Participant>) {
    {
        let mut n = p.negotiation.lock().await;
        if n.connected {
            return;
        }
        n.connected = true;
    }
    renegotiate(inner, p).await;
}

/// Brings the participant's subscriptions up to date and offers if they changed.
pub(crate) async fn renegotiate(inner: Arc<Inner>, p: Arc<Participant>) {
    let mut n = p.negotiation.lock().await;
    if p.closed.load(Ordering::Acquire) || !n.connected {
        return;
    }
    if n.offer_outstanding {
        n.dirty = true;
        return;
    }
    let changed = reconcile(&inner, &p, &mut n).await;
    if !changed && !n.dirty {
        return;
    }
    let offer = match p.pc.create_offer(None).await {
        Ok(offer) => offer,
        Err(e) => {
            tracing::warn!(participant = %p.id, error = %e, "sfu offer not created");
            return;
        }
    };
    if let Err(e) = p.pc.set_local_description(offer.clone()).await {
        tracing::warn!(participant = %p.id, error = %e, "sfu offer not applied");
        return;
    }
    n.dirty = false;
    n.offer_outstanding = true;
    let sdp = match p.pc.local_description().await {
        Some(d) => d.sdp,
        None => offer.sdp,
    };
    let sdp = inner.announced(&sdp);
    // Sent under the lock, so offers reach the gateway in the order they were made.
    let _ = p.signals.send(SfuSignal::Offer(sdp)).await;
}

/// Adds a subscription per track of the others in the room, removes those whose
/// publisher left or stopped; true if anything changed.
async fn reconcile(inner: &Inner, p: &Arc<Participant>, n: &mut Negotiation) -> bool {
    let desired: Vec<Arc<Publication>> = inner
        .others(&p.room, &p.id)
        .iter()
        .flat_map(|o| o.publications())
        .chain(inner.local_publications(&p.room))
        .filter(|x| !x.ended.load(Ordering::Relaxed) && x.publisher != p.id)
        .collect();
    let wanted: HashSet<u64> = desired.iter().map(|x| x.id).collect();
    let mut changed = false;
    let gone: Vec<u64> = n
        .subscriptions
        .keys()
        .filter(|id| !wanted.contains(id))
        .copied()
        .collect();
    for id in gone {
        if let Some(sub) = n.subscriptions.remove(&id) {
            sub.publication.detach(&p.id);
            if let Err(e) = p.pc.remove_track(&sub.sender).await {
                tracing::debug!(participant = %p.id, error = %e, "sender not removed");
            }
            n.fresh.retain(|f| *f != id);
            changed = true;
        }
    }
    for publication in desired {
        if n.subscriptions.contains_key(&publication.id) {
            continue;
        }
        match subscribe(p, &publication).await {
            Ok(sub) => {
                n.fresh.push(publication.id);
                n.subscriptions.insert(publication.id, sub);
                changed = true;
            }
            Err(e) => {
                tracing::warn!(participant = %p.id, publisher = %publication.publisher, error = %e, "subscription failed");
            }
        }
    }
    changed
}

/// The RFC 6464 audio-level extension, negotiated with publishers.
pub(crate) const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// The id a client description gives the audio-level extension
/// (`a=extmap:<id>[/<direction>] urn:ietf:params:rtp-hdrext:ssrc-audio-level`).
pub(crate) fn audio_level_id(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.trim_end().strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(' ')?;
        let uri = uri.split_whitespace().next()?;
        if uri != AUDIO_LEVEL_URI {
            return None;
        }
        let id: u8 = id.split('/').next()?.parse().ok()?;
        (1..=14).contains(&id).then_some(id)
    })
}

/// The track id a subscriber sees for a publication: namespaced by the publisher's
/// participant id and unique per publication, never what the client chose (two
/// publishers may pick the same id, or one made up to collide).
pub(crate) fn forwarded_track_id(publication: &Publication) -> String {
    format!(
        "{}-{}-{}",
        publication.publisher,
        publication.kind.as_str(),
        publication.id
    )
}

/// A send-only transceiver carrying `publication` to `p`. The MediaStream id is the
/// publisher's participant id, so the page knows whose track it is.
async fn subscribe(
    p: &Participant,
    publication: &Arc<Publication>,
) -> Result<Subscription, SfuError> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).map_err(|e| SfuError::WebRtc(e.to_string()))?;
    let ssrc = u32::from_be_bytes(bytes);
    let kind = match publication.kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    };
    let track_id = forwarded_track_id(publication);
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        publication.publisher.clone(),
        track_id.clone(),
        track_id,
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec: publication.codec.clone(),
            ..Default::default()
        }],
    )));
    let transceiver =
        p.pc.add_transceiver_from_track(
            track.clone(),
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await
        .map_err(stack)?;
    let sender = transceiver
        .sender()
        .await
        .map_err(stack)?
        .ok_or_else(|| SfuError::WebRtc("transceiver without a sender".to_owned()))?;
    let outlet = Arc::new(
        Outlet::new(p.id.clone(), track, ssrc, p.outbox.clone()).with_estimate(p.estimate.clone()),
    );
    publication.attach(outlet.clone());
    tokio::spawn(relay_feedback(publication.clone(), outlet.clone()));
    Ok(Subscription {
        publication: publication.clone(),
        outlet,
        sender,
    })
}

/// Each outlet learns the payload type its leg negotiated for the publisher's codec
/// (until then nothing is forwarded on it) and its audio-level extension id.
async fn refresh_payload_types(n: &Negotiation) {
    for sub in n.subscriptions.values() {
        let Ok(params) = sub.sender.get_parameters().await else {
            continue;
        };
        let mime = &sub.publication.codec.mime_type;
        if let Some(codec) = params
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
        {
            sub.outlet.set_payload_type(codec.payload_type);
        }
        let level = params
            .rtp_parameters
            .header_extensions
            .iter()
            .find(|e| e.uri == AUDIO_LEVEL_URI)
            .and_then(|e| u8::try_from(e.id).ok())
            .filter(|id| (1..=14).contains(id))
            .unwrap_or(0);
        sub.outlet.audio_level_id.store(level, Ordering::Relaxed);
    }
}

/// A track arrived from `p`: forward it, and offer it to everyone else in the room.
pub(crate) async fn published(inner: Arc<Inner>, p: Arc<Participant>, track: Arc<dyn TrackRemote>) {
    let Some(kind) = media_kind(track.kind().await) else {
        return;
    };
    let Some(ssrc) = track.ssrcs().await.first().copied() else {
        return;
    };
    let Some(codec) = track.codec(ssrc).await else {
        return;
    };
    let track_id = track.track_id().await;
    let taps = Some(Taps {
        sfu: Arc::downgrade(&inner),
        room: p.room.clone(),
        ext_id: p.audio_level_id.clone(),
        bridged: true,
    });
    let publication = Arc::new(Publication::new(
        inner.next_id(),
        p.id.clone(),
        kind,
        track_id,
        ssrc,
        codec,
        Source::Remote(track),
        p.forwarding.clone(),
        taps,
    ));
    {
        let mut list = p.publications.lock().unwrap_or_else(|e| e.into_inner());
        if p.closed.load(Ordering::Acquire) {
            return;
        }
        // The offer check bounds the sending sections; this bounds what arrives
        // (a track replaced on a section, or announced without one).
        if list.len() >= inner.config.limits.max_tracks_per_publisher {
            inner.tracks_refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(publisher = %p.id, "track beyond the publisher's bound: not forwarded");
            return;
        }
        list.push(publication.clone());
    }
    tracing::debug!(publisher = %p.id, track = %publication.track_id, kind = kind.as_str(), "sfu track published");
    let forwarder = publication.clone();
    let (inner2, p2) = (inner.clone(), p.clone());
    tokio::spawn(async move {
        forwarder.clone().run().await;
        p2.publications
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|x| x.id != forwarder.id);
        for other in inner2.others(&p2.room, &p2.id) {
            tokio::spawn(renegotiate(inner2.clone(), other));
        }
    });
    for other in inner.others(&p.room, &p.id) {
        tokio::spawn(renegotiate(inner.clone(), other));
    }
}

/// `p` is leaving (already out of the SFU's table): its publications end and every
/// other participant of the room drops them.
pub(crate) async fn leave(inner: &Arc<Inner>, p: &Arc<Participant>) {
    for publication in p.publications() {
        publication.ended.store(true, Ordering::Relaxed);
    }
    {
        let n = p.negotiation.lock().await;
        for sub in n.subscriptions.values() {
            sub.publication.detach(&p.id);
        }
    }
    for other in inner.others(&p.room, &p.id) {
        tokio::spawn(renegotiate(inner.clone(), other));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn finds_the_audio_level_extension_id() {
        let sdp = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
            a=extmap:3 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n\
            a=extmap:1/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n";
        assert_eq!(audio_level_id(sdp), Some(1));
        assert_eq!(
            audio_level_id("a=extmap:15 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n"),
            None
        );
        assert_eq!(
            audio_level_id("a=extmap:x urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            None
        );
        assert_eq!(audio_level_id("v=0\r\n"), None);
    }
}

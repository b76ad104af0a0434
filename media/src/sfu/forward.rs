//! Forwarding: one task per published track copies each RTP packet to every
//! subscriber's outlet, never decoding it.
//!
//! An outlet does not write to the subscriber's connection itself: it puts the packet
//! on the subscriber's bounded queue, drained by one task per subscriber ([`drain`]).
//! A full queue (a slow subscriber, or one whose connection stalls) drops the packet
//! and counts it, so no subscriber slows its publishers' forwarding or the others.
//!
//! The SSRC and payload type are rewritten to what each subscriber's leg negotiated;
//! header extensions are dropped (their ids differ per leg) except the RFC 6464 audio
//! level, written again under the id the subscriber negotiated. Packets withheld by
//! moderation shift the sequence numbers that follow, so a subscriber sees no gap to
//! NACK. A simulcast video forwards one layer per subscriber (`simulcast.rs`).
//! Keyframe requests go to each layer of the publisher at most every 300 ms (a new
//! subscriber or a resumed video asks at once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rtc::rtp;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};

use bytes::Bytes;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::keyframe::is_keyframe_request;
use super::local::VideoPacket;
use super::negotiate::forwarded_track_id;
use super::simulcast::{rank_of, Layer, LayerView, Selector, TOP};
use super::{speaker, Inner, MediaKind, ParticipantId};

/// A packet on its way to one subscriber, with the outlet it belongs to.
pub(crate) type Queued = (Arc<Outlet>, rtp::Packet);

/// Where a publisher's audio goes besides its subscribers: its levels to the room's
/// dominant-speaker detector (read from the header extension id its connection
/// negotiated, 0: none), and, for a browser's track, its packets to the SIP bridge
/// (the SFU's [`MediaTap`](super::MediaTap), if one is set).
pub(crate) struct Taps {
    pub(crate) sfu: Weak<Inner>,
    pub(crate) room: String,
    pub(crate) ext_id: Arc<AtomicU8>,
    /// Hand the packets to the bridge (false for the bridge's own tracks: a SIP
    /// caller's audio must not come back to the SIP side).
    pub(crate) bridged: bool,
}

/// A packet the media node made for a local publication, with its RFC 6464 level.
pub(crate) type LocalPacket = (rtp::Packet, Option<u8>);

/// Where a publication's packets come from.
pub(crate) enum Source {
    /// A browser's track.
    Remote(Arc<dyn TrackRemote>),
    /// Packets the media node makes (a SIP caller's audio through the bridge); the
    /// publication ends when the sender is dropped.
    Local(tokio::sync::Mutex<mpsc::Receiver<LocalPacket>>),
}

impl Source {
    /// The next packet (with its level, for a local one), `None` once the track ended.
    async fn next(&self) -> Option<LocalPacket> {
        match self {
            Source::Remote(remote) => loop {
                match remote.poll().await? {
                    TrackRemoteEvent::OnRtpPacket(packet) => return Some((packet, None)),
                    TrackRemoteEvent::OnEnded | TrackRemoteEvent::OnError => return None,
                    _ => {}
                }
            },
            Source::Local(queue) => queue.lock().await.recv().await,
        }
    }
}

const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);
/// Payload type not yet known for an outlet (its leg is not negotiated).
const NO_PT: u32 = u32::MAX;

/// A participant's moderation switches; shared by its publications.
#[derive(Debug)]
pub(crate) struct Forwarding {
    pub(crate) audio: AtomicBool,
    pub(crate) video: AtomicBool,
}

impl Default for Forwarding {
    fn default() -> Self {
        Forwarding {
            audio: AtomicBool::new(true),
            video: AtomicBool::new(true),
        }
    }
}

impl Forwarding {
    pub(crate) fn flag(&self, kind: MediaKind) -> &AtomicBool {
        match kind {
            MediaKind::Audio => &self.audio,
            MediaKind::Video => &self.video,
        }
    }
}

/// One track a participant publishes.
pub(crate) struct Publication {
    pub(crate) id: u64,
    pub(crate) publisher: ParticipantId,
    pub(crate) kind: MediaKind,
    pub(crate) track_id: String,
    pub(crate) ssrc: u32,
    pub(crate) codec: RTCRtpCodec,
    source: Source,
    forwarding: Arc<Forwarding>,
    taps: Option<Taps>,
    outlets: Mutex<Vec<Arc<Outlet>>>,
    /// Its layers by first appearance: one without simulcast (RID empty).
    pub(crate) layers: Mutex<Vec<Layer>>,
    /// Last keyframe request by SSRC (each simulcast layer is asked on its own).
    last_keyframe_request: Mutex<HashMap<u32, Instant>>,
    pub(crate) ended: AtomicBool,
    /// Wakes [`Publication::run`] when the publication is ended from outside (the
    /// client stopped sending the track: the webrtc crate gives no `OnEnded` then).
    stop: Notify,
    pub(crate) packets_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) packets_withheld: AtomicU64,
    pub(crate) keyframe_requests: AtomicU64,
}

/// The copy of a publication sent to one subscriber.
pub(crate) struct Outlet {
    pub(crate) subscriber: ParticipantId,
    pub(crate) track: Arc<TrackLocalStaticRTP>,
    pub(crate) ssrc: u32,
    pt: AtomicU32,
    /// The subscriber's queue (see [`drain`]).
    outbox: mpsc::Sender<Queued>,
    pub(crate) packets: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    /// Packets dropped because the subscriber's queue was full.
    pub(crate) dropped: AtomicU64,
    pub(crate) keyframe_requests: AtomicU64,
    /// The id the subscriber's leg negotiated for RFC 6464 audio levels (0: none).
    pub(crate) audio_level_id: AtomicU8,
    /// The subscriber's latest REMB estimate in bit/s (0: none yet); shared by all
    /// its outlets, since it is per connection.
    pub(crate) estimate: Arc<AtomicU64>,
    /// The highest simulcast layer (rank) the subscriber asked for.
    pub(crate) max_layer: AtomicU8,
    /// Which layer goes to the subscriber (simulcast only).
    pub(crate) selector: Mutex<Selector>,
    pub(crate) layer_switches: AtomicU64,
}

impl Outlet {
    pub(crate) fn new(
        subscriber: ParticipantId,
        track: Arc<TrackLocalStaticRTP>,
        ssrc: u32,
        outbox: mpsc::Sender<Queued>,
    ) -> Self {
        Outlet {
            subscriber,
            track,
            ssrc,
            pt: AtomicU32::new(NO_PT),
            outbox,
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            keyframe_requests: AtomicU64::new(0),
            audio_level_id: AtomicU8::new(0),
            estimate: Arc::new(AtomicU64::new(0)),
            max_layer: AtomicU8::new(TOP),
            selector: Mutex::new(Selector::default()),
            layer_switches: AtomicU64::new(0),
        }
    }

    /// Shares the subscriber's bandwidth estimate (one per connection).
    pub(crate) fn with_estimate(mut self, estimate: Arc<AtomicU64>) -> Self {
        self.estimate = estimate;
        self
    }

    pub(crate) fn selector(&self) -> std::sync::MutexGuard<'_, Selector> {
        self.selector.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a packet for the subscriber without waiting: a full queue drops it
    /// (counted in `dropped`), a closed one counts a send error.
    pub(crate) fn offer(self: &Arc<Self>, packet: rtp::Packet) {
        match self.outbox.try_send((self.clone(), packet)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Closed(_)) => {
                self.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn set_payload_type(&self, pt: u8) {
        self.pt.store(u32::from(pt), Ordering::Relaxed);
    }

    fn payload_type(&self) -> Option<u8> {
        u8::try_from(self.pt.load(Ordering::Relaxed)).ok()
    }
}

pub(crate) fn media_kind(kind: RtpCodecKind) -> Option<MediaKind> {
    match kind {
        RtpCodecKind::Audio => Some(MediaKind::Audio),
        RtpCodecKind::Video => Some(MediaKind::Video),
        _ => None,
    }
}

impl Publication {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        publisher: ParticipantId,
        kind: MediaKind,
        track_id: String,
        ssrc: u32,
        codec: RTCRtpCodec,
        source: Source,
        forwarding: Arc<Forwarding>,
        taps: Option<Taps>,
    ) -> Self {
        Publication {
            id,
            publisher,
            kind,
            track_id,
            ssrc,
            codec,
            source,
            forwarding,
            taps,
            outlets: Mutex::new(Vec::new()),
            layers: Mutex::new(Vec::new()),
            last_keyframe_request: Mutex::new(HashMap::new()),
            ended: AtomicBool::new(false),
            stop: Notify::new(),
            packets_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            packets_withheld: AtomicU64::new(0),
            keyframe_requests: AtomicU64::new(0),
        }
    }

    pub(crate) fn outlets(&self) -> Vec<Arc<Outlet>> {
        self.outlets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn attach(&self, outlet: Arc<Outlet>) {
        self.outlets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(outlet);
    }

    pub(crate) fn detach(&self, subscriber: &str) {
        self.outlets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|o| o.subscriber != subscriber);
    }

    pub(crate) fn layers(&self) -> std::sync::MutexGuard<'_, Vec<Layer>> {
        self.layers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the publisher sends simulcast (its layers have RIDs).
    pub(crate) fn simulcast(&self) -> bool {
        self.layers().iter().any(|l| !l.rid.is_empty())
    }

    /// The SSRCs of the live layers of `rank` (every live layer for `None`); the
    /// track's first SSRC before any packet arrived.
    pub(crate) fn layer_ssrcs(&self, rank: Option<u8>) -> Vec<u32> {
        let now = Instant::now();
        let layers = self.layers();
        let ssrcs: Vec<u32> = layers
            .iter()
            .filter(|l| l.live(now) && rank.is_none_or(|r| l.rank == r))
            .map(|l| l.ssrc)
            .collect();
        if ssrcs.is_empty() && layers.is_empty() {
            vec![self.ssrc]
        } else {
            ssrcs
        }
    }

    /// Asks the publisher for a keyframe of every layer (video only); `force` skips
    /// the rate limit.
    pub(crate) async fn request_keyframe(&self, force: bool) {
        self.request_keyframes(self.layer_ssrcs(None), force).await;
    }

    /// Asks for a keyframe on each of `ssrcs` not asked within the last 300 ms (all
    /// of them with `force`).
    pub(crate) async fn request_keyframes(&self, ssrcs: Vec<u32>, force: bool) {
        if self.kind != MediaKind::Video || self.ended.load(Ordering::Relaxed) {
            return;
        }
        let due = self.due_for_keyframe(ssrcs, force);
        if due.is_empty() {
            return;
        }
        self.keyframe_requests.fetch_add(1, Ordering::Relaxed);
        let Some(remote) = self.remote() else {
            return;
        };
        let plis: Vec<Box<dyn rtc::rtcp::Packet>> = due
            .into_iter()
            .map(|media_ssrc| {
                Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc,
                }) as Box<dyn rtc::rtcp::Packet>
            })
            .collect();
        if let Err(e) = remote.write_rtcp(plis).await {
            tracing::debug!(publisher = %self.publisher, error = %e, "keyframe request not sent");
        }
    }

    /// The SSRCs among `ssrcs` whose rate limit allows a request now (noted as asked).
    fn due_for_keyframe(&self, ssrcs: Vec<u32>, force: bool) -> Vec<u32> {
        let mut last = self
            .last_keyframe_request
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        ssrcs
            .into_iter()
            .filter(|ssrc| {
                let recent = last
                    .get(ssrc)
                    .is_some_and(|t| now.duration_since(*t) < KEYFRAME_INTERVAL);
                if force || !recent {
                    last.insert(*ssrc, now);
                    true
                } else {
                    false
                }
            })
            .collect()
    }

    /// The browser's track this publication forwards (none for a local one).
    pub(crate) fn remote(&self) -> Option<&Arc<dyn TrackRemote>> {
        match &self.source {
            Source::Remote(remote) => Some(remote),
            Source::Local(_) => None,
        }
    }

    /// Ends the publication although its remote track did not end (the client stopped
    /// sending it): nothing more is forwarded, [`Publication::run`] returns.
    pub(crate) fn end(&self) {
        self.ended.store(true, Ordering::Release);
        // A stored permit: `run` sees it even if it is not waiting right now.
        self.stop.notify_one();
    }

    /// Copies the publisher's packets to the outlets until the track ends or
    /// [`Publication::end`] is called.
    pub(crate) async fn run(self: Arc<Self>) {
        // The layers as the subscribers' selectors see them, refreshed when a
        // layer's bitrate moves or a layer appears.
        let mut views: Vec<LayerView> = Vec::new();
        let mut simulcast = false;
        loop {
            if self.ended.load(Ordering::Acquire) {
                break;
            }
            let next = tokio::select! {
                biased;
                () = self.stop.notified() => break,
                next = self.source.next() => next,
            };
            let Some((mut packet, level)) = next else {
                break;
            };
            let now = Instant::now();
            self.packets_in.fetch_add(1, Ordering::Relaxed);
            let size = packet.payload.len() as u64;
            self.bytes_in.fetch_add(size, Ordering::Relaxed);
            let allowed = self.forwarding.flag(self.kind).load(Ordering::Relaxed);
            let index = match self.layer_index(packet.header.ssrc) {
                Some(i) => i,
                None => self.add_layer(packet.header.ssrc, now).await,
            };
            let (rank, withheld) = {
                let mut layers = self.layers();
                let added = layers.len() != views.len();
                let Some(layer) = layers.get_mut(index) else {
                    continue;
                };
                let moved = layer.count(packet.payload.len() + 12, now);
                if !allowed {
                    layer.withheld = layer.withheld.wrapping_add(1);
                }
                let out = (layer.rank, layer.withheld);
                if moved || added {
                    views = layers.iter().map(|l| l.view(now)).collect();
                    simulcast = layers.iter().any(|l| !l.rid.is_empty());
                }
                out
            };
            if !allowed {
                self.packets_withheld.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            packet.header.sequence_number = packet.header.sequence_number.wrapping_sub(withheld);
            let level = self.audio_level(&packet, level);
            if let Some(tap) = &self.taps {
                // The bridge takes one layer of a simulcast video: the top live one.
                let top = views.iter().filter(|v| v.live).map(|v| v.rank).max();
                if (!simulcast || self.kind == MediaKind::Audio || top == Some(rank))
                    && self.observe(tap, &packet, level.and_then(|b| speaker::level(&[b])))
                {
                    // The recorder has no keyframe to start from: ask this layer.
                    let due = self.due_for_keyframe(vec![packet.header.ssrc], false);
                    if !due.is_empty() {
                        let me = self.clone();
                        tokio::spawn(async move { me.request_keyframes(due, true).await });
                    }
                }
            }
            packet.header.extension = false;
            packet.header.extensions.clear();
            let mut keyframes: Vec<u8> = Vec::new();
            for outlet in self.outlets() {
                let Some(pt) = outlet.payload_type() else {
                    continue;
                };
                let mut copy = if simulcast && self.kind == MediaKind::Video {
                    let step = {
                        let max = outlet.max_layer.load(Ordering::Relaxed);
                        let estimate = outlet.estimate.load(Ordering::Relaxed);
                        let mut selector = outlet.selector();
                        let target = selector.choose(&views, max, estimate, now);
                        selector.step(rank, packet.clone(), target, self.codec.clock_rate, now)
                    };
                    if step.switched {
                        outlet.layer_switches.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(k) = step.keyframe.filter(|k| !keyframes.contains(k)) {
                        keyframes.push(k);
                    }
                    match step.packet {
                        Some(p) => p,
                        None => continue,
                    }
                } else {
                    packet.clone()
                };
                copy.header.ssrc = outlet.ssrc;
                copy.header.payload_type = pt;
                let id = outlet.audio_level_id.load(Ordering::Relaxed);
                if let (Some(byte), true) = (level, id != 0) {
                    // Only fails on an id outside 1..=14, which the leg never negotiates.
                    let _ = copy
                        .header
                        .set_extension(id, Bytes::copy_from_slice(&[byte]));
                }
                outlet.offer(copy);
            }
            if !keyframes.is_empty() {
                // A switch waits for the target layer's keyframe: ask for it, without
                // holding up the packets.
                let ssrcs: Vec<u32> = views
                    .iter()
                    .filter(|v| keyframes.contains(&v.rank))
                    .map(|v| v.ssrc)
                    .collect();
                let due = self.due_for_keyframe(ssrcs, false);
                if !due.is_empty() {
                    let me = self.clone();
                    tokio::spawn(async move { me.request_keyframes(due, true).await });
                }
            }
        }
        self.ended.store(true, Ordering::Relaxed);
        if let Some(tap) = self.taps.as_ref().filter(|t| t.bridged) {
            if let Some(bridge) = tap.sfu.upgrade().and_then(|i| i.tap.get().cloned()) {
                bridge.ended(&tap.room, &self.publisher, self.id, self.kind);
            }
        }
    }

    fn layer_index(&self, ssrc: u32) -> Option<usize> {
        self.layers().iter().position(|l| l.ssrc == ssrc)
    }

    /// A packet on an SSRC not seen yet: the layer of its RID (a new one, or one that
    /// moved to a new SSRC). Without simulcast the RID is empty: one layer.
    async fn add_layer(&self, ssrc: u32, now: Instant) -> usize {
        let rid = match self.remote() {
            Some(remote) => remote.rid(ssrc).await.unwrap_or_default(),
            None => String::new(),
        };
        let mut layers = self.layers();
        if let Some(i) = layers.iter().position(|l| l.rid == rid) {
            if let Some(layer) = layers.get_mut(i) {
                layer.ssrc = ssrc;
            }
            return i;
        }
        let rank = rank_of(&rid, layers.len());
        tracing::debug!(publisher = %self.publisher, rid, ssrc, "sfu layer");
        layers.push(Layer::new(rid, rank, ssrc, now));
        layers.len() - 1
    }

    /// The RFC 6464 byte of an audio packet (level and voice flag): given with a
    /// local packet, else read from the extension the publisher negotiated.
    fn audio_level(&self, packet: &rtp::Packet, level: Option<u8>) -> Option<u8> {
        if self.kind != MediaKind::Audio {
            return None;
        }
        level.map(|l| l.min(127)).or_else(|| {
            let id = self.taps.as_ref()?.ext_id.load(Ordering::Relaxed);
            (id != 0)
                .then(|| packet.header.get_extension(id))
                .flatten()
                .and_then(|payload| payload.first().copied())
        })
    }

    /// A forwarded packet: an audio packet's RFC 6464 level to the room's detector,
    /// and a browser's packet to the bridge. `true` when the bridge wants a keyframe.
    fn observe(&self, tap: &Taps, packet: &rtp::Packet, level: Option<u8>) -> bool {
        let Some(inner) = tap.sfu.upgrade() else {
            return false;
        };
        let h = &packet.header;
        match self.kind {
            MediaKind::Audio => {
                if let Some(level) = level {
                    inner.observe_level(&tap.room, &self.publisher, level);
                }
                if let Some(bridge) = inner.tap.get().filter(|_| tap.bridged) {
                    bridge.audio(
                        &tap.room,
                        &self.publisher,
                        self.id,
                        h.sequence_number,
                        &packet.payload,
                    );
                }
                false
            }
            MediaKind::Video => match inner.tap.get().filter(|_| tap.bridged) {
                Some(bridge) => bridge.video(
                    &tap.room,
                    &forwarded_track_id(self),
                    VideoPacket {
                        sequence: h.sequence_number,
                        timestamp: h.timestamp,
                        marker: h.marker,
                        payload: &packet.payload,
                    },
                ),
                None => false,
            },
        }
    }
}

/// One subscriber's queue, drained into its connection in order. Only this task
/// waits on the subscriber's connection; it ends when every outlet and the
/// participant have let go of the queue.
pub(crate) async fn drain(mut queue: mpsc::Receiver<Queued>) {
    while let Some((outlet, packet)) = queue.recv().await {
        let size = packet.payload.len() as u64;
        match outlet.track.write_rtp(packet).await {
            Ok(()) => {
                outlet.packets.fetch_add(1, Ordering::Relaxed);
                outlet.bytes.fetch_add(size, Ordering::Relaxed);
            }
            Err(_) => {
                outlet.send_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Relays a subscriber's keyframe requests for one outlet to the publisher (to the
/// layer it forwards, for a simulcast video) and notes its REMB bandwidth estimate;
/// ends when the outlet's sender is removed.
pub(crate) async fn relay_feedback(publication: Arc<Publication>, outlet: Arc<Outlet>) {
    while let Some(event) = outlet.track.poll().await {
        let TrackLocalEvent::OnRtcpPacket(packets) = event else {
            continue;
        };
        for remb in packets
            .iter()
            .filter_map(|p| p.as_any().downcast_ref::<ReceiverEstimatedMaximumBitrate>())
        {
            let bps = if remb.bitrate.is_finite() && remb.bitrate > 0.0 {
                remb.bitrate as u64
            } else {
                0
            };
            outlet.estimate.store(bps, Ordering::Relaxed);
        }
        if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
            outlet.keyframe_requests.fetch_add(1, Ordering::Relaxed);
            let current = outlet.selector().current;
            let ssrcs = match current {
                Some(rank) if publication.simulcast() => publication.layer_ssrcs(Some(rank)),
                _ => publication.layer_ssrcs(None),
            };
            publication.request_keyframes(ssrcs, false).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use rtc::media_stream::MediaStreamTrack;

    fn outlet(queue: usize) -> (Arc<Outlet>, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(queue);
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            "p".to_owned(),
            "p-audio-1".to_owned(),
            "p-audio-1".to_owned(),
            RtpCodecKind::Audio,
            vec![],
        )));
        (Arc::new(Outlet::new("s".to_owned(), track, 7, tx)), rx)
    }

    #[test]
    fn a_full_subscriber_queue_drops_and_counts_without_waiting() {
        let (o, mut rx) = outlet(2);
        for seq in 0..5u16 {
            let mut p = rtp::Packet::default();
            p.header.sequence_number = seq;
            o.offer(p);
        }
        assert_eq!(o.dropped.load(Ordering::Relaxed), 3);
        // The queue kept the oldest packets, in order.
        let first = rx.try_recv().map(|(_, p)| p.header.sequence_number);
        let second = rx.try_recv().map(|(_, p)| p.header.sequence_number);
        assert_eq!((first.ok(), second.ok()), (Some(0), Some(1)));
        drop(rx);
        o.offer(rtp::Packet::default());
        assert_eq!(o.send_errors.load(Ordering::Relaxed), 1);
    }
}

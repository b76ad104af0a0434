//! Synthetic WebRTC clients on the same webrtc crate as the SFU, on loopback: shared by
//! the SFU integration tests and the SFU benchmark (`benches/sfu.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use conclave_media::{Sfu, SfuConfig, SfuError, SfuLimits, SfuSignal};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp_transceiver::rtp_sender::RTCRtpHeaderExtensionCapability;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
    RTCSessionDescription, Registry,
};

pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
use webrtc::rtp_transceiver::RtpSender;

pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
pub const GUARD: Duration = Duration::from_secs(20);

/// What a client saw of one remote track.
pub struct Received {
    pub stream_id: String,
    pub track_id: String,
    pub kind: RtpCodecKind,
    pub packets: AtomicU64,
}

struct ClientEvents {
    connected: watch::Sender<bool>,
    gathered: watch::Sender<bool>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientEvents {
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            self.connected.send_replace(true);
        }
    }
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_replace(true);
        }
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

pub struct Client {
    pub id: String,
    pub pc: Arc<dyn PeerConnection>,
    pub connected: watch::Receiver<bool>,
    pub gathered: watch::Receiver<bool>,
    pub received: Arc<Mutex<Vec<Arc<Received>>>>,
    /// Ticks on every received packet, so waits need no sleeping.
    pub progress: watch::Receiver<u64>,
    /// Every server offer the client answered.
    pub offers: mpsc::UnboundedReceiver<String>,
    /// Every dominant speaker the SFU announced.
    pub speakers: mpsc::UnboundedReceiver<String>,
}

pub async fn client(id: &str) -> (Client, mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>) {
    client_with_audio_extensions(id, &[]).await
}

pub fn local_track(
    id: &str,
    kind: RtpCodecKind,
    mime: &str,
    clock: u32,
    channels: u16,
    ssrc: u32,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("{id}-stream"),
        format!(
            "{id}-{}",
            if kind == RtpCodecKind::Audio {
                "audio"
            } else {
                "video"
            }
        ),
        format!("{id} label"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate: clock,
                channels,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        }],
    )))
}

/// Joins the SFU: the client offers (with its candidates inline), applies the answer,
/// then answers the SFU's offers and applies its candidates from a pump task.
pub async fn join(sfu: &Sfu, room: &str, c: &mut Client) {
    let (tx, mut rx) = mpsc::channel(256);
    sfu.connect(room, &c.id, tx).await.unwrap();
    let offer = c.pc.create_offer(None).await.unwrap();
    c.pc.set_local_description(offer).await.unwrap();
    timeout(GUARD, c.gathered.wait_for(|g| *g))
        .await
        .unwrap()
        .unwrap();
    let offer = c.pc.local_description().await.unwrap();
    let answer = sfu.offer(&c.id, offer.sdp).await.unwrap();
    c.pc.set_remote_description(RTCSessionDescription::answer(answer).unwrap())
        .await
        .unwrap();
    let (offers_tx, offers_rx) = mpsc::unbounded_channel();
    c.offers = offers_rx;
    let (speakers_tx, speakers_rx) = mpsc::unbounded_channel();
    c.speakers = speakers_rx;
    let (pc, sfu, id) = (c.pc.clone(), sfu.clone(), c.id.clone());
    tokio::spawn(async move {
        while let Some(signal) = rx.recv().await {
            match signal {
                SfuSignal::Candidate(json) => {
                    let init = serde_json::from_value(json).unwrap();
                    pc.add_ice_candidate(init).await.unwrap();
                }
                SfuSignal::Offer(sdp) => {
                    pc.set_remote_description(RTCSessionDescription::offer(sdp.clone()).unwrap())
                        .await
                        .unwrap();
                    let answer = pc.create_answer(None).await.unwrap();
                    pc.set_local_description(answer.clone()).await.unwrap();
                    match sfu.answer(&id, answer.sdp).await {
                        Ok(()) => {}
                        // A late offer answered after the SFU let the participant go.
                        Err(SfuError::UnknownParticipant(_)) => break,
                        Err(e) => panic!("answer refused: {e}"),
                    }
                    let _ = offers_tx.send(sdp);
                }
                SfuSignal::DominantSpeaker(who) => {
                    let _ = speakers_tx.send(who);
                }
                SfuSignal::Closed => break,
            }
        }
    });
    timeout(GUARD, c.connected.wait_for(|c| *c))
        .await
        .unwrap()
        .unwrap();
}

/// Counts the packets of every track the client receives.
pub fn count(c: &mut Client, mut tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>) {
    let (progress_tx, progress) = watch::channel(0u64);
    c.progress = progress;
    let received = c.received.clone();
    tokio::spawn(async move {
        while let Some(track) = tracks.recv().await {
            let r = Arc::new(Received {
                stream_id: track.stream_id().await,
                track_id: track.track_id().await,
                kind: track.kind().await,
                packets: AtomicU64::new(0),
            });
            received.lock().unwrap().push(r.clone());
            progress_tx.send_modify(|t| *t += 1);
            let progress_tx = progress_tx.clone();
            tokio::spawn(async move {
                while let Some(event) = track.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(_) = event {
                        r.packets.fetch_add(1, Ordering::Relaxed);
                        progress_tx.send_modify(|t| *t += 1);
                    }
                }
            });
        }
    });
}

pub fn packets(c: &Client, kind: RtpCodecKind) -> u64 {
    c.received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.packets.load(Ordering::Relaxed))
        .sum()
}

pub async fn wait_until(c: &mut Client, what: &str, cond: impl Fn(&Client) -> bool) {
    let mut progress = c.progress.clone();
    let ok = timeout(GUARD, async {
        loop {
            if cond(c) {
                return;
            }
            if progress.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(ok.is_ok() && cond(c), "timed out waiting for {what}");
}

pub async fn payload_type(sender: &Arc<dyn RtpSender>) -> u8 {
    sender.get_parameters().await.unwrap().rtp_parameters.codecs[0].payload_type
}

/// A writes audio every 20 ms and video every 33 ms until stopped.
pub fn publish(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    pt: u8,
    period_ms: u64,
    ts_step: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(period_ms));
        let mut seq: u16 = 0;
        let mut ts: u32 = 0;
        loop {
            tick.tick().await;
            let packet = rtp::Packet {
                header: rtp::Header {
                    version: 2,
                    marker: true,
                    payload_type: pt,
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc,
                    ..Default::default()
                },
                // A VP8 payload descriptor with S=1 then bytes; Opus takes anything.
                payload: Bytes::from_static(&[0x10, 0x00, 0x9d, 0x01, 0x2a, 1, 2, 3, 4, 5, 6, 7]),
            };
            if track.write_rtp(packet).await.is_err() {
                return;
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(ts_step);
        }
    })
}

/// The `a=msid:` stream ids of the sections that send to the client.
pub fn sending_streams(offer_sdp: &str) -> Vec<String> {
    let mut out = Vec::new();
    for section in offer_sdp.split("\nm=").skip(1) {
        let sends = section.contains("a=sendonly") || section.contains("a=sendrecv");
        if !sends {
            continue;
        }
        for line in section.lines() {
            if let Some(rest) = line.trim().strip_prefix("a=msid:") {
                if let Some(stream) = rest.split_whitespace().next() {
                    out.push(stream.to_owned());
                }
            }
        }
    }
    out
}

/// Audio every 20 ms carrying an RFC 6464 level (-dBov), until stopped.
pub fn publish_with_level(
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    pt: u8,
    level: u8,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut seq: u16 = 0;
        let mut ts: u32 = 0;
        loop {
            tick.tick().await;
            let packet = rtp::Packet {
                header: rtp::Header {
                    version: 2,
                    payload_type: pt,
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc,
                    ..Default::default()
                },
                payload: Bytes::from_static(&[0xf8, 0xff, 0xfe]),
            };
            let ext = HeaderExtension::AudioLevel(AudioLevelExtension { level, voice: true });
            if track
                .write_rtp_with_extensions(packet, &[ext])
                .await
                .is_err()
            {
                return;
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(960);
        }
    })
}

/// An SFU on 127.0.0.1 with loopback candidates only, in `ports`.
pub async fn sfu(ports: (u16, u16), limits: SfuLimits) -> Sfu {
    Sfu::new(SfuConfig {
        bind: LOCAL,
        udp_ports: ports,
        announce: vec![],
        loopback_only: true,
        limits,
    })
    .await
    .unwrap()
}

/// The RIDs of a simulcast publication, lowest first, as the page sends them.
pub const RIDS: [&str; 3] = ["q", "h", "f"];
const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// A client whose media engine registers `extra` audio header extensions before the
/// audio level one, so its extension ids differ from a plain [`client`]'s.
pub async fn client_with_audio_extensions(
    id: &str,
    extra: &[&str],
) -> (Client, mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>) {
    let mut engine = MediaEngine::default();
    engine.register_default_codecs().unwrap();
    for uri in extra.iter().chain([&AUDIO_LEVEL_URI]) {
        engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: (*uri).to_owned(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .unwrap();
    }
    let registry = register_default_interceptors(Registry::new(), &mut engine).unwrap();
    let (connected_tx, connected) = watch::channel(false);
    let (gathered_tx, gathered) = watch::channel(false);
    let (tracks_tx, tracks_rx) = mpsc::unbounded_channel();
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(ClientEvents {
            connected: connected_tx,
            gathered: gathered_tx,
            tracks: tracks_tx,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .unwrap();
    let (_, progress) = watch::channel(0u64);
    let (_, offers) = mpsc::unbounded_channel();
    let (_, speakers) = mpsc::unbounded_channel();
    (
        Client {
            id: id.to_owned(),
            pc: Arc::new(pc),
            connected,
            gathered,
            received: Arc::new(Mutex::new(Vec::new())),
            progress,
            offers,
            speakers,
        },
        tracks_rx,
    )
}

/// A VP8 video track sent as three simulcast layers (`q`, `h`, `f`) on `ssrcs`.
pub fn simulcast_track(id: &str, ssrcs: [u32; 3]) -> Arc<TrackLocalStaticRTP> {
    let encodings = RIDS
        .iter()
        .zip(ssrcs)
        .map(|(rid, ssrc)| RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                rid: (*rid).to_owned(),
                ssrc: Some(ssrc),
                ..Default::default()
            },
            active: true,
            codec: RTCRtpCodec {
                mime_type: "video/VP8".to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        })
        .collect();
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("{id}-stream"),
        format!("{id}-camera"),
        format!("{id} camera"),
        RtpCodecKind::Video,
        encodings,
    )))
}

/// The id a sender's leg negotiated for the header extension `uri`.
pub async fn extension_id(sender: &Arc<dyn RtpSender>, uri: &str) -> Option<u8> {
    sender
        .get_parameters()
        .await
        .unwrap()
        .rtp_parameters
        .header_extensions
        .iter()
        .find(|e| e.uri == uri)
        .map(|e| e.id as u8)
}

/// The `a=mid` of the first video section of an SDP.
pub fn video_mid(sdp: &str) -> String {
    sdp.split("\nm=")
        .find(|s| s.starts_with("video"))
        .and_then(|s| s.lines().find_map(|l| l.trim().strip_prefix("a=mid:")))
        .unwrap()
        .to_owned()
}

/// A VP8 packet of simulcast layer `layer` (0..3): a payload descriptor with a
/// 15-bit picture id, a keyframe or delta frame header byte, then the layer's tag
/// (`b'q'`, `b'h'`, `b'f'`) repeated to its size (the `f` layer is the biggest).
pub fn layer_payload(layer: usize, picture_id: u16, keyframe: bool) -> Bytes {
    let size = [100, 300, 1000][layer];
    let [hi, lo] = (picture_id & 0x7fff).to_be_bytes();
    let mut payload = vec![0x90, 0x80, 0x80 | hi, lo, u8::from(!keyframe)];
    payload.resize(size, RIDS[layer].as_bytes()[0]);
    Bytes::from(payload)
}

/// The layer a forwarded payload came from, by its tag.
pub fn layer_of(payload: &[u8]) -> Option<usize> {
    let tag = *payload.get(5)?;
    RIDS.iter().position(|r| r.as_bytes()[0] == tag)
}

/// Sends the three layers every 33 ms with the RID/MID extensions a browser puts on
/// them, a keyframe on each layer every `keyframe_every` frames, until stopped.
pub fn publish_simulcast(
    track: Arc<TrackLocalStaticRTP>,
    ssrcs: [u32; 3],
    pt: u8,
    mid: String,
    ids: (u8, u8),
    keyframe_every: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(33));
        let mut frame: u32 = 0;
        loop {
            tick.tick().await;
            for (layer, ssrc) in ssrcs.iter().enumerate() {
                let mut header = rtp::Header {
                    version: 2,
                    marker: true,
                    payload_type: pt,
                    // Each layer numbers on its own, far apart, as a browser's do.
                    sequence_number: (frame as u16).wrapping_add(20_000 * layer as u16),
                    timestamp: frame
                        .wrapping_mul(3000)
                        .wrapping_add(1_000_000 * layer as u32),
                    ssrc: *ssrc,
                    ..Default::default()
                };
                header
                    .set_extension(ids.0, Bytes::from(mid.clone().into_bytes()))
                    .unwrap();
                header
                    .set_extension(ids.1, Bytes::from(RIDS[layer].as_bytes().to_vec()))
                    .unwrap();
                let picture_id = (frame as u16).wrapping_add(5_000 * layer as u16);
                let packet = rtp::Packet {
                    header,
                    payload: layer_payload(layer, picture_id, frame.is_multiple_of(keyframe_every)),
                };
                if track.write_rtp(packet).await.is_err() {
                    return;
                }
            }
            frame = frame.wrapping_add(1);
        }
    })
}

/// The negotiated MID/RID extension ids of a simulcast sender.
pub async fn simulcast_ids(sender: &Arc<dyn RtpSender>) -> (u8, u8) {
    (
        extension_id(sender, MID_URI).await.unwrap(),
        extension_id(sender, RID_URI).await.unwrap(),
    )
}

/// Every packet a client received on one track, kept for inspection.
pub struct Recorded {
    pub track: Arc<dyn TrackRemote>,
    pub kind: RtpCodecKind,
    pub track_id: String,
    pub packets: Mutex<Vec<rtp::Packet>>,
}

/// Keeps every packet of every track the client receives (and ticks `progress`).
pub fn record(
    c: &mut Client,
    mut tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
) -> Arc<Mutex<Vec<Arc<Recorded>>>> {
    let (progress_tx, progress) = watch::channel(0u64);
    c.progress = progress;
    let all: Arc<Mutex<Vec<Arc<Recorded>>>> = Arc::default();
    let list = all.clone();
    tokio::spawn(async move {
        while let Some(track) = tracks.recv().await {
            let r = Arc::new(Recorded {
                track: track.clone(),
                kind: track.kind().await,
                track_id: track.track_id().await,
                packets: Mutex::new(Vec::new()),
            });
            list.lock().unwrap().push(r.clone());
            progress_tx.send_modify(|t| *t += 1);
            let progress_tx = progress_tx.clone();
            tokio::spawn(async move {
                while let Some(event) = track.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(p) = event {
                        r.packets.lock().unwrap().push(p);
                        progress_tx.send_modify(|t| *t += 1);
                    }
                }
            });
        }
    });
    all
}

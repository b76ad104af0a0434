//! Integration: synthetic WebRTC peers (the same webrtc crate) on loopback talk to a
//! real SFU. A publishes audio and video; B receives both through the SFU under A's
//! participant id; muting A's audio stops B's audio while video flows; disconnecting A
//! removes its tracks from B by renegotiation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use conclave_media::{MediaKind, Sfu, SfuConfig, SfuSignal};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp;
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
use webrtc::rtp_transceiver::RtpSender;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const GUARD: Duration = Duration::from_secs(20);

/// What a client saw of one remote track.
struct Received {
    stream_id: String,
    track_id: String,
    kind: RtpCodecKind,
    packets: AtomicU64,
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

struct Client {
    id: String,
    pc: Arc<dyn PeerConnection>,
    connected: watch::Receiver<bool>,
    gathered: watch::Receiver<bool>,
    received: Arc<Mutex<Vec<Arc<Received>>>>,
    /// Ticks on every received packet, so waits need no sleeping.
    progress: watch::Receiver<u64>,
    /// Every server offer the client answered.
    offers: mpsc::UnboundedReceiver<String>,
}

async fn client(id: &str) -> (Client, mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>) {
    let mut engine = MediaEngine::default();
    engine.register_default_codecs().unwrap();
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
    (
        Client {
            id: id.to_owned(),
            pc: Arc::new(pc),
            connected,
            gathered,
            received: Arc::new(Mutex::new(Vec::new())),
            progress,
            offers,
        },
        tracks_rx,
    )
}

fn local_track(
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
async fn join(sfu: &Sfu, room: &str, c: &mut Client) {
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
                    sfu.answer(&id, answer.sdp).await.unwrap();
                    let _ = offers_tx.send(sdp);
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
fn count(c: &mut Client, mut tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>) {
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

fn packets(c: &Client, kind: RtpCodecKind) -> u64 {
    c.received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.packets.load(Ordering::Relaxed))
        .sum()
}

async fn wait_until(c: &mut Client, what: &str, cond: impl Fn(&Client) -> bool) {
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

async fn payload_type(sender: &Arc<dyn RtpSender>) -> u8 {
    sender.get_parameters().await.unwrap().rtp_parameters.codecs[0].payload_type
}

/// A writes audio every 20 ms and video every 33 ms until stopped.
fn publish(
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
fn sending_streams(offer_sdp: &str) -> Vec<String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_moderates_and_removes_tracks() {
    let sfu = Sfu::new(SfuConfig {
        bind: LOCAL,
        udp_ports: (47000, 47999),
        announce: vec![],
        loopback_only: true,
    })
    .await
    .unwrap();

    // A publishes audio and video.
    let (mut a, _a_tracks) = client("A").await;
    let audio = local_track("a", RtpCodecKind::Audio, "audio/opus", 48_000, 2, 1111);
    let video = local_track("a", RtpCodecKind::Video, "video/VP8", 90_000, 0, 2222);
    let audio_sender = a.pc.add_track(audio.clone()).await.unwrap();
    let video_sender = a.pc.add_track(video.clone()).await.unwrap();
    join(&sfu, "room", &mut a).await;
    let audio_pt = payload_type(&audio_sender).await;
    let video_pt = payload_type(&video_sender).await;
    let writers = [
        publish(audio, 1111, audio_pt, 20, 960),
        publish(video, 2222, video_pt, 33, 3000),
    ];

    // B publishes only an (idle) audio track, so it has something to offer.
    let (mut b, b_tracks) = client("B").await;
    b.pc.add_track(local_track(
        "b",
        RtpCodecKind::Audio,
        "audio/opus",
        48_000,
        2,
        3333,
    ))
    .await
    .unwrap();
    count(&mut b, b_tracks);
    join(&sfu, "room", &mut b).await;

    // B receives both of A's tracks, under A's participant id.
    wait_until(&mut b, "A's audio and video at B", |b| {
        packets(b, RtpCodecKind::Audio) > 10 && packets(b, RtpCodecKind::Video) > 10
    })
    .await;
    {
        let received = b.received.lock().unwrap();
        let mut ids: Vec<_> = received
            .iter()
            .map(|r| (r.stream_id.clone(), r.track_id.clone()))
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            vec![
                ("A".to_owned(), "a-audio".to_owned()),
                ("A".to_owned(), "a-video".to_owned())
            ]
        );
    }
    let stats = sfu.stats();
    let a_stats = &stats["rooms"]["room"]["participants"]["A"];
    let published = a_stats["published"].as_array().unwrap();
    let a_video = published.iter().find(|t| t["kind"] == "video").unwrap();
    assert!(
        a_video["keyframe_requests"].as_u64().unwrap() >= 1,
        "new subscriber asks for a keyframe: {stats}"
    );
    assert!(
        a_video["subscribers"]["B"]["packets"].as_u64().unwrap() > 10,
        "{stats}"
    );
    assert_eq!(stats["rooms"]["room"]["participant_count"], 2);

    // Muting A's audio stops it at B; video goes on.
    sfu.set_forwarding(&"A".to_owned(), MediaKind::Audio, false);
    let video_at_mute = packets(&b, RtpCodecKind::Video);
    // Packets in flight at the mute have arrived once 15 more video packets have.
    wait_until(&mut b, "video after the mute", |b| {
        packets(b, RtpCodecKind::Video) > video_at_mute + 15
    })
    .await;
    let audio_muted = packets(&b, RtpCodecKind::Audio);
    let video_muted = packets(&b, RtpCodecKind::Video);
    wait_until(&mut b, "more video while muted", |b| {
        packets(b, RtpCodecKind::Video) > video_muted + 30
    })
    .await;
    assert_eq!(
        packets(&b, RtpCodecKind::Audio),
        audio_muted,
        "muted audio still reached B"
    );
    let stats = sfu.stats();
    let withheld = stats["rooms"]["room"]["participants"]["A"]["published"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "audio")
        .unwrap()["packets_withheld"]
        .as_u64()
        .unwrap();
    assert!(withheld > 0, "{stats}");

    // Unmuting lets audio through again.
    sfu.set_forwarding(&"A".to_owned(), MediaKind::Audio, true);
    wait_until(&mut b, "audio after unmute", |b| {
        packets(b, RtpCodecKind::Audio) > audio_muted + 5
    })
    .await;

    // Disconnecting A renegotiates B: A's tracks are no longer sent.
    let mut offered_a = 0;
    while let Ok(offer) = b.offers.try_recv() {
        offered_a = sending_streams(&offer).iter().filter(|s| *s == "A").count();
    }
    assert_eq!(offered_a, 2, "B's last server offer sends A's two tracks");
    sfu.disconnect(&"A".to_owned()).await;
    let offer = timeout(GUARD, b.offers.recv()).await.unwrap().unwrap();
    assert!(
        !sending_streams(&offer).contains(&"A".to_owned()),
        "A's tracks still offered to B:\n{offer}"
    );
    let stats = sfu.stats();
    assert_eq!(stats["participant_count"], 1, "{stats}");
    assert!(stats["rooms"]["room"]["participants"].get("A").is_none());

    for w in writers {
        w.abort();
    }
    sfu.disconnect(&"B".to_owned()).await;
    let _ = a.pc.close().await;
    let _ = b.pc.close().await;
}

//! Integration: simulcast through the SFU with synthetic webrtc-crate peers on loopback.
//! A publishes its camera as three RID layers (`q`, `h`, `f`: distinct SSRCs, the `f`
//! layer's payloads the biggest, each packet tagged with its layer) and audio with
//! RFC 6464 levels. B and C each receive ONE video track, the `f` layer by default;
//! B's preference `q` moves B (alone) to the `q` layer at a keyframe with its
//! sequence numbers, timestamps and VP8 picture ids continuous; a REMB from C below
//! the `f` layer's bitrate moves C down; both get the audio level under the id their
//! own leg negotiated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use conclave_media::{SfuLimits, SimulcastLayer};
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

const SSRCS: [u32; 3] = [5001, 5002, 5003];

fn tracks_of(all: &Arc<Mutex<Vec<Arc<Recorded>>>>, kind: RtpCodecKind) -> Vec<Arc<Recorded>> {
    all.lock()
        .unwrap()
        .iter()
        .filter(|r| r.kind == kind)
        .cloned()
        .collect()
}

fn video(all: &Arc<Mutex<Vec<Arc<Recorded>>>>) -> Vec<rtp::Packet> {
    tracks_of(all, RtpCodecKind::Video)
        .first()
        .map(|r| r.packets.lock().unwrap().clone())
        .unwrap_or_default()
}

/// Packets of `layer` received after the first `skip`.
fn layer_count(all: &Arc<Mutex<Vec<Arc<Recorded>>>>, layer: usize, skip: usize) -> usize {
    video(all)
        .iter()
        .skip(skip)
        .filter(|p| layer_of(&p.payload) == Some(layer))
        .count()
}

/// The id of the audio-level extension in an SDP.
fn audio_level_id(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(' ')?;
        (uri.trim() == AUDIO_LEVEL_URI).then(|| id.split('/').next()?.parse().ok())?
    })
}

/// The stream is continuous: sequence numbers one apart (a few missing at most, as
/// loss would cause), timestamps and picture ids never going back.
fn assert_continuous(packets: &[rtp::Packet]) {
    let mut sorted: Vec<&rtp::Packet> = packets.iter().collect();
    let first = sorted[0].header.sequence_number;
    sorted.sort_by_key(|p| p.header.sequence_number.wrapping_sub(first));
    sorted.dedup_by_key(|p| p.header.sequence_number);
    let span = sorted
        .last()
        .unwrap()
        .header
        .sequence_number
        .wrapping_sub(first) as usize
        + 1;
    assert!(
        span - sorted.len() <= 2,
        "sequence gaps: {} packets over {span} numbers",
        sorted.len()
    );
    for w in sorted.windows(2) {
        let dt = w[1].header.timestamp.wrapping_sub(w[0].header.timestamp);
        assert!(dt < 0x8000_0000, "timestamp went back: {dt}");
        let pic = |p: &rtp::Packet| u16::from_be_bytes([p.payload[2] & 0x7f, p.payload[3]]);
        let dp = pic(w[1]).wrapping_sub(pic(w[0])) & 0x7fff;
        assert!(dp <= 1, "picture id jumped by {dp}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_subscriber_gets_one_layer_by_preference_and_bandwidth() {
    let sfu = sfu((46000, 46499), SfuLimits::default()).await;

    // Given A publishing three layers and audio with levels.
    let (mut a, _a_tracks) = client("A").await;
    let camera = simulcast_track("a", SSRCS);
    let audio = local_track("a", RtpCodecKind::Audio, "audio/opus", 48_000, 2, 1111);
    let camera_sender = a.pc.add_track(camera.clone()).await.unwrap();
    let audio_sender = a.pc.add_track(audio.clone()).await.unwrap();
    join(&sfu, "room", &mut a).await;
    let mid = video_mid(&a.pc.local_description().await.unwrap().sdp);
    let ids = simulcast_ids(&camera_sender).await;
    let publisher_level_id = extension_id(&audio_sender, AUDIO_LEVEL_URI).await.unwrap();
    let _writers = [
        publish_simulcast(
            camera,
            SSRCS,
            payload_type(&camera_sender).await,
            mid,
            ids,
            10,
        ),
        publish_with_level(audio, 1111, payload_type(&audio_sender).await, 20),
    ];

    // And B (a plain client) and C (other extension ids) subscribed.
    let (mut b, b_tracks) = client("B").await;
    let (mut c, c_tracks) = client_with_audio_extensions(
        "C",
        &[
            "urn:ietf:params:rtp-hdrext:toffset",
            "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        ],
    )
    .await;
    let mut recorded = Vec::new();
    for (x, tracks, ssrc) in [(&mut b, b_tracks, 3333), (&mut c, c_tracks, 4444)] {
        let idle = local_track(&x.id, RtpCodecKind::Audio, "audio/opus", 48_000, 2, ssrc);
        x.pc.add_track(idle).await.unwrap();
        recorded.push(record(x, tracks));
        join(&sfu, "room", x).await;
    }
    let (b_rec, c_rec) = (recorded[0].clone(), recorded[1].clone());

    // Then each receives one video track, from the top layer.
    for (x, rec) in [(&mut b, &b_rec), (&mut c, &c_rec)] {
        wait_until(x, "the f layer", |_| layer_count(rec, 2, 0) > 30).await;
        assert_eq!(tracks_of(rec, RtpCodecKind::Video).len(), 1);
        let packets = video(rec);
        assert!(
            packets.iter().all(|p| layer_of(&p.payload) == Some(2)),
            "only the f layer by default"
        );
        assert_eq!(packets[0].payload[4] & 1, 0, "starts at a keyframe");
    }
    let track = tracks_of(&b_rec, RtpCodecKind::Video)[0].track_id.clone();

    // When B asks for at most q.
    sfu.set_max_layer(&"B".to_owned(), &track, SimulcastLayer::Low)
        .unwrap();
    let c_before = video(&c_rec).len();
    wait_until(&mut b, "the q layer at B", |_| {
        layer_count(&b_rec, 0, 0) > 30
    })
    .await;

    // Then B switched once, at a q keyframe, continuously; C stays on f.
    let packets = video(&b_rec);
    let first_q = packets
        .iter()
        .position(|p| layer_of(&p.payload) == Some(0))
        .unwrap();
    assert_eq!(packets[first_q].payload[4] & 1, 0, "switched at a keyframe");
    assert!(
        packets[first_q..]
            .iter()
            .all(|p| layer_of(&p.payload) == Some(0)),
        "no f packet after the switch"
    );
    assert_continuous(&packets);
    assert!(video(&c_rec)[c_before..]
        .iter()
        .all(|p| layer_of(&p.payload) == Some(2)));

    // When C's receiver estimates less than the f layer's bitrate (about 250 kbit/s;
    // h is about 75): a REMB of 150 kbit/s, repeated as a browser does.
    let c_video = tracks_of(&c_rec, RtpCodecKind::Video)[0].track.clone();
    let media_ssrc = c_video.ssrcs().await[0];
    let remb = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            let packet = ReceiverEstimatedMaximumBitrate {
                sender_ssrc: 4444,
                bitrate: 150_000.0,
                ssrcs: vec![media_ssrc],
            };
            if c_video.write_rtcp(vec![Box::new(packet)]).await.is_err() {
                return;
            }
        }
    });
    let c_mark = video(&c_rec).len();
    wait_until(&mut c, "the h layer at C", |_| {
        layer_count(&c_rec, 1, c_mark) > 20
    })
    .await;
    remb.abort();
    assert_continuous(&video(&c_rec));

    // And the statistics say so.
    let stats = sfu.stats();
    let published = stats["rooms"]["room"]["participants"]["A"]["published"]
        .as_array()
        .unwrap()
        .clone();
    let cam = published.iter().find(|t| t["kind"] == "video").unwrap();
    assert_eq!(cam["simulcast"], true, "{cam}");
    let rate = |rid: &str| {
        cam["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["rid"] == rid)
            .unwrap()["bitrate_bps"]
            .as_u64()
            .unwrap()
    };
    assert!(rate("f") > rate("h") && rate("h") > rate("q"), "{cam}");
    assert_eq!(cam["subscribers"]["B"]["layer"], "q", "{cam}");
    assert_eq!(cam["subscribers"]["B"]["max_layer"], "q", "{cam}");
    assert_eq!(cam["subscribers"]["C"]["layer"], "h", "{cam}");
    assert_eq!(cam["subscribers"]["C"]["remb_bps"], 150_000, "{cam}");
    assert!(stats["layer_switches"].as_u64().unwrap() >= 4, "{stats}");

    // And the audio level reaches each subscriber under its own extension id.
    let c_level_id = audio_level_id(&c.pc.remote_description().await.unwrap().sdp).unwrap();
    let b_level_id = audio_level_id(&b.pc.remote_description().await.unwrap().sdp).unwrap();
    assert_ne!(c_level_id, publisher_level_id, "C negotiated another id");
    for (rec, id) in [(&b_rec, b_level_id), (&c_rec, c_level_id)] {
        let audio = tracks_of(rec, RtpCodecKind::Audio);
        assert_eq!(audio.len(), 1);
        let packets = audio[0].packets.lock().unwrap().clone();
        assert!(packets.len() > 10);
        for p in &packets {
            let ext = p.header.get_extension(id).expect("the audio level");
            assert_eq!(ext[0] & 0x7f, 20, "the level A sent");
        }
    }

    // And an unknown track is a typed error.
    let e = sfu
        .set_max_layer(&"B".to_owned(), "nope", SimulcastLayer::High)
        .unwrap_err();
    assert_eq!(e.code(), "sfu.unknown_track");
}

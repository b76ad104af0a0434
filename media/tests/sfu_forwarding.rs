//! Integration: synthetic WebRTC peers (the same webrtc crate) on loopback talk to a
//! real SFU. A publishes audio and video; B receives both through the SFU under A's
//! participant id; muting A's audio stops B's audio while video flows; disconnecting A
//! removes its tracks from B by renegotiation. Two publishers choosing the same track
//! id stay apart, and the louder one (RFC 6464 levels) becomes the dominant speaker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use conclave_media::{MediaKind, SfuLimits};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_moderates_and_removes_tracks() {
    let sfu = sfu((47000, 47499), SfuLimits::default()).await;

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
        // Stream id: A's participant id; track ids: the SFU's, namespaced by A.
        assert_eq!(ids.len(), 2, "{ids:?}");
        assert!(ids.iter().all(|(s, _)| s == "A"), "{ids:?}");
        assert!(ids[0].1.starts_with("A-audio-"), "{ids:?}");
        assert!(ids[1].1.starts_with("A-video-"), "{ids:?}");
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

/// A and C both publish audio under the track id `a-audio` (C as if crafted to
/// collide); B receives two distinct tracks, under A and under C, both flowing. A
/// speaks louder (RFC 6464 levels): everyone hears that A is the dominant speaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_track_ids_stay_apart_and_the_loudest_is_dominant() {
    let sfu = sfu((47500, 47799), SfuLimits::default()).await;
    let mut writers = Vec::new();
    let mut publishers = Vec::new();
    for (id, ssrc, level) in [("A", 5001, 20u8), ("C", 5002, 70u8)] {
        let (mut c, _tracks) = client(id).await;
        // Both pick `a-audio`, the id `local_track("a", ..)` gives.
        let audio = local_track("a", RtpCodecKind::Audio, "audio/opus", 48_000, 2, ssrc);
        let sender = c.pc.add_track(audio.clone()).await.unwrap();
        join(&sfu, "room", &mut c).await;
        let pt = payload_type(&sender).await;
        writers.push(publish_with_level(audio, ssrc, pt, level));
        publishers.push(c);
    }
    let (mut b, b_tracks) = client("B").await;
    b.pc.add_track(local_track(
        "b",
        RtpCodecKind::Audio,
        "audio/opus",
        48_000,
        2,
        5003,
    ))
    .await
    .unwrap();
    count(&mut b, b_tracks);
    join(&sfu, "room", &mut b).await;
    wait_until(&mut b, "audio from A and from C", |b| {
        let r = b.received.lock().unwrap();
        r.len() == 2
            && r.iter()
                .all(|t| t.packets.load(std::sync::atomic::Ordering::Relaxed) > 10)
    })
    .await;
    {
        let r = b.received.lock().unwrap();
        let mut streams: Vec<_> = r.iter().map(|t| t.stream_id.clone()).collect();
        streams.sort();
        assert_eq!(streams, vec!["A".to_owned(), "C".to_owned()]);
        assert_ne!(r[0].track_id, r[1].track_id);
        assert!(r
            .iter()
            .all(|t| t.track_id.starts_with(&format!("{}-audio-", t.stream_id))));
    }
    // The dominant speaker: A, told to B (and to A and C).
    let who = timeout(GUARD, b.speakers.recv()).await.unwrap().unwrap();
    assert_eq!(who, "A");
    let stats = sfu.stats();
    assert_eq!(stats["rooms"]["room"]["dominant_speaker"], "A", "{stats}");
    assert_eq!(
        stats["rooms"]["room"]["participants"]["A"]["audio_level_extension"],
        true
    );
    // Muting A withholds its audio, levels included: C takes over after the hold.
    sfu.set_forwarding(&"A".to_owned(), MediaKind::Audio, false);
    let who = timeout(GUARD, async {
        loop {
            let w = b.speakers.recv().await.unwrap();
            if w != "A" {
                return w;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(who, "C");
    for w in writers {
        w.abort();
    }
    for p in ["A", "B", "C"] {
        sfu.disconnect(&p.to_owned()).await;
    }
}

/// The bounds a hostile client meets, each a typed error: a full room, too many
/// tracks, an oversized description, too many candidates, too many renegotiations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounds_refuse_with_typed_errors() {
    let limits = SfuLimits {
        max_participants_per_room: 2,
        max_tracks_per_publisher: 2,
        max_sdp_bytes: 20_000,
        max_candidates: 3,
        renegotiation_burst: 2,
        renegotiation_refill: std::time::Duration::from_secs(60),
        ..SfuLimits::default()
    };
    let sfu = sfu((47800, 47899), limits).await;
    let (tx, _rx) = tokio::sync::mpsc::channel(16);
    for id in ["p1", "p2"] {
        sfu.connect("room", &id.to_owned(), tx.clone())
            .await
            .unwrap();
    }
    let e = sfu
        .connect("room", &"p3".to_owned(), tx.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "sfu.room_full");
    // Another room is not affected.
    sfu.connect("other", &"p3".to_owned(), tx.clone())
        .await
        .unwrap();

    // Three sending tracks, when two are allowed.
    let (c, _) = client("x").await;
    for (i, kind) in [
        RtpCodecKind::Audio,
        RtpCodecKind::Video,
        RtpCodecKind::Video,
    ]
    .into_iter()
    .enumerate()
    {
        let mime = if kind == RtpCodecKind::Audio {
            "audio/opus"
        } else {
            "video/VP8"
        };
        let t = local_track(&format!("t{i}"), kind, mime, 48_000, 2, 9000 + i as u32);
        c.pc.add_track(t).await.unwrap();
    }
    let offer = c.pc.create_offer(None).await.unwrap().sdp;
    let p1 = "p1".to_owned();
    let e = sfu.offer(&p1, offer.clone()).await.unwrap_err();
    assert_eq!(e.code(), "sfu.too_many_tracks", "{e}");
    let huge = format!("{offer}{}", "a=x-padding\r\n".repeat(2000));
    let e = sfu.offer(&p1, huge).await.unwrap_err();
    assert_eq!(e.code(), "sfu.too_large", "{e}");
    // The burst of two descriptions is spent: the next is refused as such.
    let e = sfu.offer(&p1, offer).await.unwrap_err();
    assert_eq!(e.code(), "sfu.rate_limited", "{e}");

    let p2 = "p2".to_owned();
    let cand = |n: u32| serde_json::json!({"candidate": format!("candidate:{n} 1 udp 1 127.0.0.1 {} typ host", 40000 + n), "sdpMLineIndex": 0});
    for n in 0..3 {
        // Applying may fail (no remote description yet); counting happens first.
        let _ = sfu.candidate(&p2, cand(n)).await;
    }
    let e = sfu.candidate(&p2, cand(3)).await.unwrap_err();
    assert_eq!(e.code(), "sfu.too_many_candidates");
    let long = serde_json::json!({"candidate": "x".repeat(5000)});
    let e = sfu.candidate(&p2, long).await.unwrap_err();
    assert_eq!(e.code(), "sfu.too_large");

    let stats = sfu.stats();
    assert_eq!(stats["refusals"]["sfu.room_full"], 1, "{stats}");
    assert_eq!(stats["refusals"]["sfu.rate_limited"], 1, "{stats}");
    for id in ["p1", "p2", "p3"] {
        sfu.disconnect(&id.to_owned()).await;
    }
    let _ = c.pc.close().await;
}

/// The client offers again (after changing what it sends) and applies the answer.
async fn reoffer(sfu: &conclave_media::Sfu, c: &Client) {
    let offer = c.pc.create_offer(None).await.unwrap();
    c.pc.set_local_description(offer).await.unwrap();
    let offer = c.pc.local_description().await.unwrap();
    let answer = sfu.offer(&c.id, offer.sdp).await.unwrap();
    c.pc.set_remote_description(
        webrtc::peer_connection::RTCSessionDescription::answer(answer).unwrap(),
    )
    .await
    .unwrap();
}

/// The forwarded track id (as subscribers see it) of a publisher's client track.
fn forwarded(sfu: &conclave_media::Sfu, publisher: &str, client_track: &str) -> Option<String> {
    let stats = sfu.stats();
    stats["rooms"]["room"]["participants"][publisher]["published"]
        .as_array()?
        .iter()
        .find(|t| t["client_track_id"] == client_track)
        .and_then(|t| t["track_id"].as_str().map(str::to_owned))
}

fn track_packets(c: &Client, track_id: &str) -> u64 {
    c.received
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.track_id == track_id)
        .map(|r| r.packets.load(std::sync::atomic::Ordering::Relaxed))
        .sum()
}

/// The track ids (`a=msid:<stream> <track>`) an offer sends, and its inactive sections.
fn offered(offer_sdp: &str) -> (Vec<String>, usize) {
    let mut sending = Vec::new();
    let mut inactive = 0;
    for section in offer_sdp.split("\nm=").skip(1) {
        if section.contains("a=inactive") {
            inactive += 1;
        }
        if !(section.contains("a=sendonly") || section.contains("a=sendrecv")) {
            continue;
        }
        for line in section.lines() {
            if let Some(rest) = line.trim().strip_prefix("a=msid:") {
                if let Some(track) = rest.split_whitespace().nth(1) {
                    sending.push(track.to_owned());
                }
            }
        }
    }
    (sending, inactive)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_track_stopped_by_its_publisher_ends_for_subscribers() {
    let sfu = sfu((47900, 47999), SfuLimits::default()).await;

    // A publishes a camera, a screen share and a third video track.
    let (mut a, _a_tracks) = client("A").await;
    let camera = local_track("cam", RtpCodecKind::Video, "video/VP8", 90_000, 0, 4001);
    let screen = local_track("screen", RtpCodecKind::Video, "video/VP8", 90_000, 0, 4002);
    let extra = local_track("extra", RtpCodecKind::Video, "video/VP8", 90_000, 0, 4003);
    let camera_sender = a.pc.add_track(camera.clone()).await.unwrap();
    let screen_sender = a.pc.add_track(screen.clone()).await.unwrap();
    let extra_transceiver =
        a.pc.add_transceiver_from_track(extra.clone(), None)
            .await
            .unwrap();
    let extra_sender = extra_transceiver.sender().await.unwrap().unwrap();
    join(&sfu, "room", &mut a).await;
    let pt = payload_type(&camera_sender).await;
    let camera_writer = publish(camera, 4001, payload_type(&camera_sender).await, 33, 3000);
    let screen_writer = publish(screen, 4002, payload_type(&screen_sender).await, 33, 3000);
    let extra_writer = publish(extra, 4003, payload_type(&extra_sender).await, 33, 3000);
    assert_eq!(pt, payload_type(&extra_sender).await);

    let (mut b, b_tracks) = client("B").await;
    b.pc.add_track(local_track(
        "b",
        RtpCodecKind::Audio,
        "audio/opus",
        48_000,
        2,
        4004,
    ))
    .await
    .unwrap();
    count(&mut b, b_tracks);
    join(&sfu, "room", &mut b).await;

    let ids = {
        let mut ids = None;
        for _ in 0..200 {
            if let (Some(c), Some(s), Some(e)) = (
                forwarded(&sfu, "A", "cam-video"),
                forwarded(&sfu, "A", "screen-video"),
                forwarded(&sfu, "A", "extra-video"),
            ) {
                ids = Some((c, s, e));
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        ids.expect("A's three tracks published")
    };
    let (cam_id, screen_id, extra_id) = ids;
    wait_until(&mut b, "A's three tracks at B", |b| {
        [&cam_id, &screen_id, &extra_id]
            .iter()
            .all(|t| track_packets(b, t) > 10)
    })
    .await;
    while b.offers.try_recv().is_ok() {}

    // The screen share ends: A removes its sender (the section goes inactive) and
    // offers again.
    a.pc.remove_track(&screen_sender).await.unwrap();
    screen_writer.abort();
    reoffer(&sfu, &a).await;
    let offer = timeout(GUARD, b.offers.recv()).await.unwrap().unwrap();
    let (sending, inactive) = offered(&offer);
    assert!(
        !sending.contains(&screen_id),
        "screen still offered:\n{offer}"
    );
    assert!(
        sending.contains(&cam_id) && sending.contains(&extra_id),
        "{offer}"
    );
    assert!(inactive >= 1, "no inactive section:\n{offer}");
    let stats = sfu.stats();
    assert!(
        forwarded(&sfu, "A", "screen-video").is_none(),
        "stats still list the stopped track: {stats}"
    );
    assert_eq!(
        stats["rooms"]["room"]["participants"]["A"]["published"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{stats}"
    );
    let screen_at_stop = track_packets(&b, &screen_id);
    let camera_at_stop = track_packets(&b, &cam_id);
    wait_until(&mut b, "the camera after the screen share ended", |b| {
        track_packets(b, &cam_id) > camera_at_stop + 30
    })
    .await;
    assert_eq!(track_packets(&b, &screen_id), screen_at_stop);

    // The third track stops by direction: A sets its transceiver inactive.
    extra_transceiver
        .set_direction(rtc::rtp_transceiver::RTCRtpTransceiverDirection::Inactive)
        .await
        .unwrap();
    extra_writer.abort();
    reoffer(&sfu, &a).await;
    let offer = timeout(GUARD, b.offers.recv()).await.unwrap().unwrap();
    let (sending, inactive) = offered(&offer);
    assert_eq!(sending, vec![cam_id.clone()], "{offer}");
    assert!(inactive >= 2, "{offer}");
    assert!(forwarded(&sfu, "A", "extra-video").is_none());
    let camera_now = track_packets(&b, &cam_id);
    wait_until(&mut b, "the camera still flows", |b| {
        track_packets(b, &cam_id) > camera_now + 30
    })
    .await;

    camera_writer.abort();
    sfu.disconnect(&"A".to_owned()).await;
    sfu.disconnect(&"B".to_owned()).await;
    let _ = a.pc.close().await;
    let _ = b.pc.close().await;
}

/// Polls the SFU's stats (they signal no change) until they list the publication of
/// `client_track` by `publisher`; its forwarded track id.
async fn published_as(sfu: &conclave_media::Sfu, publisher: &str, client_track: &str) -> String {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(20));
    timeout(GUARD, async {
        loop {
            if let Some(id) = forwarded(sfu, publisher, client_track) {
                return id;
            }
            tick.tick().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{publisher}'s {client_track} never published"))
}

/// A stops the screen share on `transceiver` by direction and offers again: B's next
/// offer no longer sends `stopped` (only `still`), and stats drop `client_track`.
async fn stop_by_direction(
    sfu: &conclave_media::Sfu,
    a: &Client,
    b: &mut Client,
    transceiver: &std::sync::Arc<dyn webrtc::rtp_transceiver::RtpTransceiver>,
    client_track: &str,
    still: &str,
) {
    transceiver
        .set_direction(rtc::rtp_transceiver::RTCRtpTransceiverDirection::Inactive)
        .await
        .unwrap();
    reoffer(sfu, a).await;
    let offer = timeout(GUARD, b.offers.recv()).await.unwrap().unwrap();
    assert_eq!(offered(&offer).0, vec![still.to_owned()], "{offer}");
    assert!(forwarded(sfu, "A", client_track).is_none());
}

/// B's next offer sends exactly `tracks`.
async fn offered_next(b: &mut Client, tracks: &[&String]) {
    let offer = timeout(GUARD, b.offers.recv()).await.unwrap().unwrap();
    let (mut sending, _) = offered(&offer);
    sending.sort();
    let mut expected: Vec<String> = tracks.iter().map(|t| (*t).clone()).collect();
    expected.sort();
    assert_eq!(sending, expected, "{offer}");
}

/// Stats list A's camera and `client_track` (and nothing else), the latter with packets
/// forwarded to B.
fn assert_published(sfu: &conclave_media::Sfu, client_track: &str) {
    let stats = sfu.stats();
    let published = stats["rooms"]["room"]["participants"]["A"]["published"]
        .as_array()
        .unwrap();
    assert_eq!(published.len(), 2, "{stats}");
    let track = published
        .iter()
        .find(|t| t["client_track_id"] == client_track)
        .unwrap();
    assert!(
        track["subscribers"]["B"]["packets"].as_u64().unwrap() > 10,
        "{stats}"
    );
}

/// A publisher stops its screen share by setting the transceiver `inactive`, then
/// reuses that transceiver (direction back to `sendonly`) and offers again, twice: once
/// for a new track (`replace_track`: a new track id, the sender's SSRC kept, as a
/// browser's `replaceTrack` does), once for the same track id again. Each time the
/// subscriber is offered a new forwarded track, receives its packets, and stats list it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_transceiver_publishes_its_new_track() {
    use rtc::rtp_transceiver::RTCRtpTransceiverDirection::Sendonly;

    // Given A publishing a camera and a screen share (its own transceiver), and B
    // receiving both.
    let sfu = sfu((48000, 48099), SfuLimits::default()).await;
    let (mut a, _a_tracks) = client("A").await;
    let camera = local_track("cam", RtpCodecKind::Video, "video/VP8", 90_000, 0, 4101);
    let screen = local_track("screen", RtpCodecKind::Video, "video/VP8", 90_000, 0, 4102);
    let camera_sender = a.pc.add_track(camera.clone()).await.unwrap();
    let screen_transceiver =
        a.pc.add_transceiver_from_track(screen.clone(), None)
            .await
            .unwrap();
    let screen_sender = screen_transceiver.sender().await.unwrap().unwrap();
    join(&sfu, "room", &mut a).await;
    let pt = payload_type(&camera_sender).await;
    let camera_writer = publish(camera, 4101, pt, 33, 3000);
    // The webrtc crate keeps the sender's first track object bound through
    // `replace_track`: every track of this sender is written through it, on its SSRC.
    let screen_writer = publish(screen.clone(), 4102, pt, 33, 3000);

    let (mut b, b_tracks) = client("B").await;
    b.pc.add_track(local_track(
        "b",
        RtpCodecKind::Audio,
        "audio/opus",
        48_000,
        2,
        4104,
    ))
    .await
    .unwrap();
    count(&mut b, b_tracks);
    join(&sfu, "room", &mut b).await;
    let cam_id = published_as(&sfu, "A", "cam-video").await;
    let screen_id = published_as(&sfu, "A", "screen-video").await;
    wait_until(&mut b, "A's camera and screen at B", |b| {
        track_packets(b, &cam_id) > 10 && track_packets(b, &screen_id) > 10
    })
    .await;
    while b.offers.try_recv().is_ok() {}

    // When A stops the screen share by direction,
    screen_writer.abort();
    stop_by_direction(
        &sfu,
        &a,
        &mut b,
        &screen_transceiver,
        "screen-video",
        &cam_id,
    )
    .await;
    // then reuses its transceiver for a new track (direction back to sendonly first:
    // the webrtc crate has no sender on a transceiver that does not send) and offers,
    let slides = local_track("slides", RtpCodecKind::Video, "video/VP8", 90_000, 0, 4102);
    screen_transceiver.set_direction(Sendonly).await.unwrap();
    screen_sender.replace_track(slides).await.unwrap();
    reoffer(&sfu, &a).await;
    let slides_writer = publish(screen.clone(), 4102, pt, 33, 3000);

    // then the SFU publishes a new track, B is offered it and receives it, stats list it.
    let slides_id = published_as(&sfu, "A", "slides-video").await;
    assert_ne!(slides_id, screen_id);
    offered_next(&mut b, &[&cam_id, &slides_id]).await;
    wait_until(&mut b, "the new track at B", |b| {
        track_packets(b, &slides_id) > 10
    })
    .await;
    assert_published(&sfu, "slides-video");

    // When A stops it again and resumes the same transceiver with the same track (its
    // track id unchanged: the webrtc crate raises no second `on_track` for it),
    slides_writer.abort();
    stop_by_direction(
        &sfu,
        &a,
        &mut b,
        &screen_transceiver,
        "slides-video",
        &cam_id,
    )
    .await;
    screen_transceiver.set_direction(Sendonly).await.unwrap();
    reoffer(&sfu, &a).await;
    let resumed_writer = publish(screen, 4102, pt, 33, 3000);

    // then it is published again, under a new forwarded id, and flows to B.
    let resumed_id = published_as(&sfu, "A", "slides-video").await;
    assert_ne!(resumed_id, slides_id);
    offered_next(&mut b, &[&cam_id, &resumed_id]).await;
    wait_until(&mut b, "the resumed track at B", |b| {
        track_packets(b, &resumed_id) > 10
    })
    .await;
    assert_published(&sfu, "slides-video");

    for w in [camera_writer, resumed_writer] {
        w.abort();
    }
    sfu.disconnect(&"A".to_owned()).await;
    sfu.disconnect(&"B".to_owned()).await;
    let _ = a.pc.close().await;
    let _ = b.pc.close().await;
}

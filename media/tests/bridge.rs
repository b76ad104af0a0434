//! Integration: a UDP "phone" in the G.711 mixer and a synthetic WebRTC browser in the
//! SFU, in one room of one media node, hear each other through the bridge; moderation
//! holds across it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::f64::consts::PI;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{client, join, local_track, payload_type, sfu, LOCAL};
use conclave_media::audio::{
    goertzel, OpusDecoder, OpusEncoder, FRAME_WIDE, RATE_NARROW, RATE_WIDE,
};
use conclave_media::rtp::{RtpHeader, RtpPacket};
use conclave_media::{MediaConfig, MediaKind, MediaNode, SfuLimits, G711};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::net::UdpSocket;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemoteEvent;

const PHONE_HZ: f64 = 600.0;
const BROWSER_HZ: f64 = 1000.0;
const DEADLINE: Duration = Duration::from_secs(15);

fn tone(out: &mut [i16], rate: u32, freq: f64, start: usize) {
    for (i, s) in out.iter_mut().enumerate() {
        let t = (start + i) as f64 / f64::from(rate);
        *s = (0.3 * 32767.0 * (2.0 * PI * freq * t).sin()) as i16;
    }
}

/// Decoded audio with arrival times.
type Heard = Arc<Mutex<Vec<(Instant, Vec<i16>)>>>;

/// Whether `freq` dominates what was heard since `since` (at least 10 frames, the tone
/// 10x stronger than an unrelated frequency).
fn hears(heard: &Heard, since: Instant, rate: u32, freq: f64) -> bool {
    let frames: Vec<i16> = heard
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t >= since)
        .flat_map(|(_, f)| f.iter().copied())
        .collect();
    let frame = (rate / 50) as usize;
    if frames.len() < 10 * frame {
        return false;
    }
    let tail = &frames[frames.len() - 10 * frame..];
    goertzel(tail, rate, freq) > 10.0 * goertzel(tail, rate, 2300.0).max(1e-9)
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_and_a_browser_hear_each_other_and_mutes_hold_across_the_bridge() {
    let base = 30000 + (std::process::id() % 100) as u16 * 100;
    let node = MediaNode::start(MediaConfig {
        bind: LOCAL,
        announce: LOCAL,
        port_min: base,
        port_max: base + 49,
        jitter_ms: 40,
        ..MediaConfig::default()
    })
    .await
    .unwrap();
    let sfu = sfu((base + 50, base + 99), SfuLimits::default()).await;
    node.bridge().attach(&sfu);

    // A phone in "room" as session "caller", sending a 600 Hz tone.
    let socket = Arc::new(UdpSocket::bind((LOCAL, 0)).await.unwrap());
    let leg = node
        .open_leg("room", "caller", G711::Pcmu, 0, None)
        .await
        .unwrap();
    node.set_remote(leg.id, socket.local_addr().unwrap(), None)
        .unwrap();
    let tx = socket.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for n in 0u32.. {
            tick.tick().await;
            let mut pcm = [0i16; 160];
            tone(&mut pcm, RATE_NARROW, PHONE_HZ, n as usize * 160);
            let mut payload = [0u8; 160];
            G711::Pcmu.encode(&pcm, &mut payload);
            let h = RtpHeader {
                marker: n == 0,
                payload_type: 0,
                sequence: n as u16,
                timestamp: n * 160,
                ssrc: 77,
            };
            let mut buf = [0u8; 172];
            let len = h.write(&payload, &mut buf).unwrap();
            if tx.send_to(&buf[..len], leg.local).await.is_err() {
                return;
            }
        }
    });
    let phone_heard: Heard = Arc::default();
    let (rx, store) = (socket.clone(), phone_heard.clone());
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = rx.recv_from(&mut buf).await {
            if let Ok(p) = RtpPacket::parse(&buf[..n]) {
                let mut pcm = vec![0i16; p.payload.len()];
                G711::Pcmu.decode(p.payload, &mut pcm);
                store.lock().unwrap().push((Instant::now(), pcm));
            }
        }
    });

    // A browser "B" publishing Opus with a 1 kHz tone.
    let (mut b, mut b_tracks) = client("B").await;
    let track = local_track("b", RtpCodecKind::Audio, "audio/opus", 48_000, 2, 4242);
    let sender = b.pc.add_track(track.clone()).await.unwrap();
    join(&sfu, "room", &mut b).await;
    let pt = payload_type(&sender).await;
    tokio::spawn(async move {
        let mut enc = OpusEncoder::new(32_000).unwrap();
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for n in 0u32.. {
            tick.tick().await;
            let mut pcm = [0i16; FRAME_WIDE];
            tone(&mut pcm, RATE_WIDE, BROWSER_HZ, n as usize * FRAME_WIDE);
            let mut out = [0u8; 1500];
            let len = enc.encode(&pcm, &mut out).unwrap();
            let packet = rtp::Packet {
                header: rtp::Header {
                    version: 2,
                    payload_type: pt,
                    sequence_number: n as u16,
                    timestamp: n * 960,
                    ssrc: 4242,
                    ..Default::default()
                },
                payload: Bytes::copy_from_slice(&out[..len]),
            };
            if track.write_rtp(packet).await.is_err() {
                return;
            }
        }
    });
    // B decodes whatever arrives under the caller's session id.
    let browser_heard: Heard = Arc::default();
    let store = browser_heard.clone();
    tokio::spawn(async move {
        while let Some(remote) = b_tracks.recv().await {
            if remote.stream_id().await != "caller" {
                continue;
            }
            let store = store.clone();
            tokio::spawn(async move {
                let mut dec = OpusDecoder::new().unwrap();
                while let Some(event) = remote.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(p) = event {
                        let mut pcm = [0i16; FRAME_WIDE];
                        if dec.decode(&p.payload, &mut pcm).is_ok() {
                            store.lock().unwrap().push((Instant::now(), pcm.to_vec()));
                        }
                    }
                }
            });
        }
    });

    // Both directions carry the other side's tone.
    let start = Instant::now();
    eventually("the phone hears the browser's 1 kHz", || {
        hears(&phone_heard, start, RATE_NARROW, BROWSER_HZ)
    })
    .await;
    eventually("the browser hears the phone's 600 Hz", || {
        hears(&browser_heard, start, RATE_WIDE, PHONE_HZ)
    })
    .await;
    let stats = node.bridge().stats();
    assert_eq!((stats.callers, stats.browser_inputs), (1, 1), "{stats:?}");
    let sfu_stats = sfu.stats();
    assert_eq!(
        sfu_stats["rooms"]["room"]["participants"]["caller"]["connection"], "bridge",
        "{sfu_stats}"
    );

    // A moderator mutes the browser: the phone stops hearing it.
    sfu.set_forwarding(&"B".to_owned(), MediaKind::Audio, false);
    let muted = Instant::now() + Duration::from_millis(200);
    eventually("the phone no longer hears the muted browser", || {
        Instant::now() > muted + Duration::from_millis(300)
            && !hears(&phone_heard, muted, RATE_NARROW, BROWSER_HZ)
    })
    .await;

    // The phone is muted: the browser stops receiving it; unmuted, it comes back.
    node.set_muted(leg.id, true).unwrap();
    let muted = Instant::now() + Duration::from_millis(200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after: usize = browser_heard
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t >= muted)
        .count();
    assert!(
        after <= 2,
        "{after} frames of a muted caller reached the browser"
    );
    node.set_muted(leg.id, false).unwrap();
    let back = Instant::now();
    eventually("the unmuted phone is heard again", || {
        hears(&browser_heard, back, RATE_WIDE, PHONE_HZ)
    })
    .await;

    // The call ends: its track leaves the room.
    node.close_leg(leg.id).unwrap();
    eventually("the caller's track is gone from the SFU", || {
        sfu.stats()["rooms"]["room"]["participants"]
            .get("caller")
            .is_none()
    })
    .await;
    assert_eq!(node.bridge().stats().callers, 0);
}

//! Integration: three UDP "phones" on loopback talk to a real MediaNode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::f32::consts::PI;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use conclave_media::rtp::{RtpHeader, RtpPacket};
use conclave_media::{LegId, MediaConfig, MediaEvent, MediaNode, G711};
use tokio::net::UdpSocket;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const FREQS: [f32; 3] = [450.0, 1000.0, 1900.0];

fn tone_frame(freq: f32, frame: u32) -> [i16; 160] {
    let mut out = [0i16; 160];
    for (i, s) in out.iter_mut().enumerate() {
        let n = (frame as usize * 160 + i) as f32;
        *s = (0.25 * 32767.0 * (2.0 * PI * freq * n / 8000.0).sin()) as i16;
    }
    out
}

fn goertzel(samples: &[i16], freq: f32) -> f32 {
    let w = 2.0 * PI * freq / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = f32::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0).sqrt() / samples.len() as f32
}

/// A port range unlikely to collide with parallel test binaries.
fn config() -> MediaConfig {
    let base = 20000 + (std::process::id() % 400) as u16 * 100;
    MediaConfig {
        bind: LOCAL,
        announce: LOCAL,
        port_min: base,
        port_max: base + 99,
        jitter_ms: 40,
        ..MediaConfig::default()
    }
}

type Received = Arc<Mutex<Vec<(Instant, Vec<i16>)>>>;

struct Phone {
    leg: LegId,
    received: Received,
}

async fn phone(node: &MediaNode, codec: G711, freq: f32, ssrc: u32) -> Phone {
    let socket = Arc::new(UdpSocket::bind((LOCAL, 0)).await.unwrap());
    let info = node
        .open_leg(
            "room-a",
            "caller",
            codec,
            codec.static_payload_type(),
            Some(101),
        )
        .await
        .unwrap();
    assert_eq!(info.local.port() % 2, 0);
    node.set_remote(info.id, socket.local_addr().unwrap(), None)
        .unwrap();
    // sender: one 20 ms tone packet per tick
    let tx = socket.clone();
    let dest = info.local;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for frame in 0u32.. {
            tick.tick().await;
            let mut payload = [0u8; 160];
            codec.encode(&tone_frame(freq, frame), &mut payload);
            let h = RtpHeader {
                marker: frame == 0,
                payload_type: codec.static_payload_type(),
                sequence: frame as u16,
                timestamp: frame * 160,
                ssrc,
            };
            let mut buf = [0u8; 172];
            let n = h.write(&payload, &mut buf).unwrap();
            if tx.send_to(&buf[..n], dest).await.is_err() {
                return;
            }
        }
    });
    // receiver: decode everything the node sends
    let received: Received = Arc::default();
    let (rx, store) = (socket.clone(), received.clone());
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = rx.recv_from(&mut buf).await {
            if let Ok(p) = RtpPacket::parse(&buf[..n]) {
                let mut pcm = vec![0i16; p.payload.len()];
                codec.decode(p.payload, &mut pcm);
                store.lock().unwrap().push((Instant::now(), pcm));
            }
        }
    });
    Phone {
        leg: info.id,
        received,
    }
}

fn frames_since(p: &Phone, since: Instant) -> Vec<Vec<i16>> {
    p.received
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t >= since)
        .map(|(_, f)| f.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_phones_hear_each_other_and_a_mute_takes_effect_within_100ms() {
    // given a node and three phones sending distinct tones
    let node = MediaNode::start(config()).await.unwrap();
    let phones = vec![
        phone(&node, G711::Pcmu, FREQS[0], 11).await,
        phone(&node, G711::Pcma, FREQS[1], 22).await,
        phone(&node, G711::Pcmu, FREQS[2], 33).await,
    ];
    tokio::time::sleep(Duration::from_millis(600)).await;

    // then each phone hears the two others and not itself
    let recent = Instant::now() - Duration::from_millis(200);
    for (i, p) in phones.iter().enumerate() {
        let frames = frames_since(p, recent);
        assert!(frames.len() >= 5, "phone {i} got {} frames", frames.len());
        for f in &frames[1..frames.len() - 1] {
            for (j, freq) in FREQS.iter().enumerate() {
                let a = goertzel(f, *freq);
                if i == j {
                    assert!(a < 0.02, "phone {i} hears itself ({a})");
                } else {
                    assert!(a > 0.1, "phone {i} misses phone {j} ({a})");
                }
            }
        }
    }

    // when phone 0 is muted by the server
    let muted_at = Instant::now();
    node.set_muted(phones[0].leg, true).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    // then its tone is gone from the others' streams within 100 ms
    for p in &phones[1..] {
        let frames = frames_since(p, muted_at + Duration::from_millis(100));
        assert!(frames.len() >= 10);
        for f in &frames {
            assert!(goertzel(f, FREQS[0]) < 0.02, "muted tone still heard");
        }
    }
    // and the muted phone still hears the others
    let f = frames_since(&phones[0], muted_at + Duration::from_millis(100));
    assert!(goertzel(&f[f.len() / 2], FREQS[1]) > 0.1);

    let stats = node.stats();
    assert_eq!((stats.legs, stats.conferences), (3, 1));
    assert!(stats.packets_in > 50 && stats.packets_out > 50);
    drop(phones);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_over_udp_is_reported_once() {
    let node = MediaNode::start(config()).await.unwrap();
    let mut events = node.events();
    let socket = UdpSocket::bind((LOCAL, 0)).await.unwrap();
    let info = node
        .open_leg("room-b", "caller", G711::Pcma, 8, Some(101))
        .await
        .unwrap();
    node.set_remote(info.id, socket.local_addr().unwrap(), None)
        .unwrap();
    for (i, flags) in [0x0Au8, 0x0A, 0x8A, 0x8A, 0x8A].into_iter().enumerate() {
        let h = RtpHeader {
            marker: i == 0,
            payload_type: 101,
            sequence: i as u16,
            timestamp: 8000,
            ssrc: 5,
        };
        let mut buf = [0u8; 16];
        let n = h.write(&[11, flags, 0, 160], &mut buf).unwrap();
        socket.send_to(&buf[..n], info.local).await.unwrap();
    }
    let e = tokio::time::timeout(Duration::from_secs(2), events.recv())
        .await
        .unwrap();
    assert_eq!(
        e,
        Some(MediaEvent::Dtmf {
            leg: info.id,
            digit: '#'
        })
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(events.try_recv().is_err());
    node.shutdown().await;
}

#[tokio::test]
async fn unknown_legs_bad_config_and_exhaustion_are_typed_errors() {
    let mut cfg = config();
    cfg.ptime_ms = 30;
    assert_eq!(
        MediaNode::start(cfg).await.unwrap_err().code(),
        "media.invalid_config"
    );
    let mut cfg = config();
    cfg.port_min += 40;
    cfg.port_max = cfg.port_min + 3; // two pairs
    let node = MediaNode::start(cfg).await.unwrap();
    assert_eq!(
        node.set_muted(LegId(999), true).unwrap_err().code(),
        "media.unknown_leg"
    );
    let a = node
        .open_leg("c", "caller", G711::Pcmu, 0, None)
        .await
        .unwrap();
    let _b = node
        .open_leg("c", "caller", G711::Pcmu, 0, None)
        .await
        .unwrap();
    let err = node
        .open_leg("c", "caller", G711::Pcmu, 0, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "media.ports_exhausted");
    // when a leg closes, then its ports can be reused
    node.close_leg(a.id).unwrap();
    // (the aborted receive task releases its socket at its next poll)
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(node
        .open_leg("c", "caller", G711::Pcmu, 0, None)
        .await
        .is_ok());
    assert_eq!(
        node.open_leg("c", "caller", G711::Pcmu, 72, None)
            .await
            .unwrap_err()
            .code(),
        "media.invalid_payload_type"
    );
    node.shutdown().await;
    assert_eq!(
        node.open_leg("c", "caller", G711::Pcmu, 0, None)
            .await
            .unwrap_err()
            .code(),
        "media.shut_down"
    );
}

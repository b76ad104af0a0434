//! Statistics as JSON, grouped like Jitsi's colibri stats: rooms, their participants,
//! each published track with its counters and per-subscriber forwarding.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use super::Inner;

pub(crate) fn snapshot(inner: &Inner) -> Value {
    let participants: Vec<_> = inner.state().participants.values().cloned().collect();
    let mut rooms: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let (mut packets_in, mut packets_out, mut bytes_in, mut bytes_out) = (0u64, 0u64, 0u64, 0u64);
    let (mut dropped, mut send_errors, mut keyframes, mut withheld, mut tracks) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for p in &participants {
        let mut published = Vec::new();
        // An ended publication is on its way out of the list (its task is returning).
        for x in p
            .publications()
            .into_iter()
            .filter(|x| !x.ended.load(Ordering::Acquire))
        {
            let mut subscribers = BTreeMap::new();
            for o in x.outlets() {
                let (packets, bytes) = (
                    o.packets.load(Ordering::Relaxed),
                    o.bytes.load(Ordering::Relaxed),
                );
                let (d, e) = (
                    o.dropped.load(Ordering::Relaxed),
                    o.send_errors.load(Ordering::Relaxed),
                );
                packets_out += packets;
                bytes_out += bytes;
                dropped += d;
                send_errors += e;
                subscribers.insert(
                    o.subscriber.clone(),
                    json!({
                        "packets": packets,
                        "bytes": bytes,
                        "dropped": d,
                        "send_errors": e,
                        "keyframe_requests": o.keyframe_requests.load(Ordering::Relaxed),
                    }),
                );
            }
            packets_in += x.packets_in.load(Ordering::Relaxed);
            bytes_in += x.bytes_in.load(Ordering::Relaxed);
            keyframes += x.keyframe_requests.load(Ordering::Relaxed);
            withheld += x.packets_withheld.load(Ordering::Relaxed);
            tracks += 1;
            published.push(json!({
                "track_id": super::negotiate::forwarded_track_id(&x),
                "client_track_id": x.track_id,
                "kind": x.kind.as_str(),
                "codec": x.codec.mime_type,
                "ssrc": x.ssrc,
                "packets_in": x.packets_in.load(Ordering::Relaxed),
                "bytes_in": x.bytes_in.load(Ordering::Relaxed),
                "packets_withheld": x.packets_withheld.load(Ordering::Relaxed),
                "keyframe_requests": x.keyframe_requests.load(Ordering::Relaxed),
                "subscriber_count": subscribers.len(),
                "subscribers": subscribers,
            }));
        }
        let state = *p.connection.lock().unwrap_or_else(|e| e.into_inner());
        rooms.entry(p.room.clone()).or_default().insert(
            p.id.clone(),
            json!({
                "connection": state.to_string(),
                "audio_forwarded": p.forwarding.audio.load(Ordering::Relaxed),
                "video_forwarded": p.forwarding.video.load(Ordering::Relaxed),
                "audio_level_extension": p.audio_level_id.load(Ordering::Relaxed) != 0,
                "candidates": p.candidates.load(Ordering::Relaxed),
                "published": published,
            }),
        );
    }
    let rooms: BTreeMap<String, Value> = rooms
        .into_iter()
        .map(|(room, members)| {
            let dominant = inner.dominant_speaker(&room);
            (
                room,
                json!({
                    "participant_count": members.len(),
                    "dominant_speaker": dominant,
                    "participants": members,
                }),
            )
        })
        .collect();
    let refusals: BTreeMap<&str, u64> = inner
        .refusals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    json!({
        "room_count": rooms.len(),
        "participant_count": participants.len(),
        "packets_in": packets_in,
        "bytes_in": bytes_in,
        "packets_forwarded": packets_out,
        "bytes_forwarded": bytes_out,
        "track_count": tracks,
        "packets_dropped": dropped,
        "packets_withheld": withheld,
        "send_errors": send_errors,
        "keyframe_requests": keyframes,
        "tracks_refused": inner.tracks_refused.load(Ordering::Relaxed),
        "dominant_speaker_changes": inner.dominant_changes.load(Ordering::Relaxed),
        "refusals": refusals,
        "rooms": rooms,
    })
}

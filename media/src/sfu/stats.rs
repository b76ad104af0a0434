//! Statistics as JSON, grouped like Jitsi's colibri stats: rooms, their participants,
//! each published track with its counters and per-subscriber forwarding.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{json, Value};

use std::sync::Arc;

use super::forward::Publication;
use super::Inner;

#[derive(Default)]
struct Totals {
    packets_in: u64,
    packets_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    dropped: u64,
    send_errors: u64,
    keyframes: u64,
    withheld: u64,
    tracks: u64,
    switches: u64,
}

/// A rank's RID among the publication's layers (null: none forwarded yet).
fn rid_of(x: &Publication, rank: Option<u8>) -> Value {
    let Some(rank) = rank else {
        return Value::Null;
    };
    x.layers()
        .iter()
        .find(|l| l.rank == rank)
        .map_or(Value::Null, |l| Value::from(l.rid.clone()))
}

/// The live publications among `list` as JSON, added to the totals.
fn published(list: Vec<Arc<Publication>>, t: &mut Totals) -> Vec<Value> {
    let mut published = Vec::new();
    // An ended publication is on its way out of the list (its task is returning).
    for x in list
        .into_iter()
        .filter(|x| !x.ended.load(Ordering::Acquire))
    {
        let mut subscribers = BTreeMap::new();
        let simulcast = x.simulcast();
        for o in x.outlets() {
            let (packets, bytes) = (
                o.packets.load(Ordering::Relaxed),
                o.bytes.load(Ordering::Relaxed),
            );
            let (d, e) = (
                o.dropped.load(Ordering::Relaxed),
                o.send_errors.load(Ordering::Relaxed),
            );
            t.packets_out += packets;
            t.bytes_out += bytes;
            t.dropped += d;
            t.send_errors += e;
            let switches = o.layer_switches.load(Ordering::Relaxed);
            t.switches += switches;
            let (current, target) = {
                let s = o.selector();
                (s.current, s.target)
            };
            let mut entry = json!({
                "packets": packets,
                "bytes": bytes,
                "dropped": d,
                "send_errors": e,
                "keyframe_requests": o.keyframe_requests.load(Ordering::Relaxed),
                "remb_bps": o.estimate.load(Ordering::Relaxed),
                "audio_level_extension": o.audio_level_id.load(Ordering::Relaxed) != 0,
            });
            if simulcast {
                entry["layer"] = rid_of(&x, current);
                entry["target_layer"] = rid_of(&x, target);
                entry["max_layer"] = rid_of(&x, Some(o.max_layer.load(Ordering::Relaxed)));
                entry["layer_switches"] = Value::from(switches);
            }
            subscribers.insert(o.subscriber.clone(), entry);
        }
        t.packets_in += x.packets_in.load(Ordering::Relaxed);
        t.bytes_in += x.bytes_in.load(Ordering::Relaxed);
        t.keyframes += x.keyframe_requests.load(Ordering::Relaxed);
        t.withheld += x.packets_withheld.load(Ordering::Relaxed);
        t.tracks += 1;
        let now = Instant::now();
        let layers: Vec<Value> = x
            .layers()
            .iter()
            .map(|l| {
                json!({
                    "rid": l.rid,
                    "ssrc": l.ssrc,
                    "bitrate_bps": l.bitrate(now),
                    "packets": l.packets,
                    "bytes": l.bytes,
                    "live": l.live(now),
                })
            })
            .collect();
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
            "simulcast": simulcast,
            "layers": layers,
            "subscriber_count": subscribers.len(),
            "subscribers": subscribers,
        }));
    }
    published
}

pub(crate) fn snapshot(inner: &Inner) -> Value {
    let (participants, locals): (Vec<_>, Vec<_>) = {
        let state = inner.state();
        (
            state.participants.values().cloned().collect(),
            state.locals.values().cloned().collect(),
        )
    };
    let mut rooms: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut t = Totals::default();
    for p in &participants {
        let published = published(p.publications(), &mut t);
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
    // The bridge's SIP callers: a publication each, no connection.
    for (room, x) in locals {
        let id = x.publisher.clone();
        let published = published(vec![x], &mut t);
        rooms.entry(room).or_default().insert(
            id,
            json!({ "connection": "bridge", "published": published }),
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
        "packets_in": t.packets_in,
        "bytes_in": t.bytes_in,
        "packets_forwarded": t.packets_out,
        "bytes_forwarded": t.bytes_out,
        "track_count": t.tracks,
        "packets_dropped": t.dropped,
        "packets_withheld": t.withheld,
        "send_errors": t.send_errors,
        "keyframe_requests": t.keyframes,
        "layer_switches": t.switches,
        "tracks_refused": inner.tracks_refused.load(Ordering::Relaxed),
        "dominant_speaker_changes": inner.dominant_changes.load(Ordering::Relaxed),
        "refusals": refusals,
        "rooms": rooms,
    })
}

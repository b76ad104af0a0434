//! The media node (G.711 mixer, SIP↔browser bridge, recorder) as a status source:
//! `media_node` in /about/health, `conclave_mixer_*` and `conclave_bridge_*` in
//! /metrics.

use std::fmt::Write as _;
use std::sync::Arc;

use conclave_gateway_web::StatusSource;
use conclave_media::MediaNode;
use serde_json::json;

/// The media node's status source.
pub fn source(node: MediaNode) -> Arc<dyn StatusSource> {
    crate::status::GatewayStatus::source("media_node", Arc::new(node), health, metrics)
}

fn health(node: &MediaNode) -> serde_json::Value {
    let m = node.stats();
    let b = node.bridge().stats();
    json!({
        "status": "ok",
        "mixer": {
            "legs": m.legs, "conferences": m.conferences,
            "packets_in": m.packets_in, "packets_out": m.packets_out,
            "late": m.late, "lost": m.lost, "malformed": m.malformed,
            "timeouts": m.timeouts, "send_errors": m.send_errors,
            "frames": m.frames, "frames_skipped": m.frames_skipped,
        },
        "bridge": b,
        "recording_rooms": node.bridge().recording_rooms().len(),
    })
}

/// One Prometheus sample with its help and type.
fn line(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

fn metrics(node: &MediaNode) -> String {
    let m = node.stats();
    let b = node.bridge().stats();
    let mut out = String::new();
    for (name, kind, help, value) in [
        (
            "conclave_mixer_legs",
            "gauge",
            "SIP media legs in the mixer",
            m.legs,
        ),
        (
            "conclave_mixer_conferences",
            "gauge",
            "conferences with SIP legs",
            m.conferences,
        ),
        (
            "conclave_mixer_packets_in_total",
            "counter",
            "RTP packets received from phones",
            m.packets_in,
        ),
        (
            "conclave_mixer_packets_out_total",
            "counter",
            "RTP packets sent to phones",
            m.packets_out,
        ),
        (
            "conclave_mixer_late_total",
            "counter",
            "packets after their playout time",
            m.late,
        ),
        (
            "conclave_mixer_lost_total",
            "counter",
            "frames missing at playout (concealed)",
            m.lost,
        ),
        (
            "conclave_mixer_frames_skipped_total",
            "counter",
            "mixer ticks skipped (the thread was late)",
            m.frames_skipped,
        ),
        (
            "conclave_bridge_rooms",
            "gauge",
            "rooms the bridge serves (SIP callers or a recording)",
            b.rooms,
        ),
        (
            "conclave_bridge_callers",
            "gauge",
            "SIP legs known to the bridge",
            b.callers,
        ),
        (
            "conclave_bridge_browser_inputs",
            "gauge",
            "browser audio tracks decoded for SIP callers",
            b.browser_inputs,
        ),
        (
            "conclave_bridge_recordings",
            "gauge",
            "rooms being recorded",
            b.recordings,
        ),
        (
            "conclave_bridge_browser_packets_total",
            "counter",
            "browser Opus packets given to the bridge",
            b.browser_packets,
        ),
        (
            "conclave_bridge_decode_errors_total",
            "counter",
            "browser Opus packets that did not decode",
            b.decode_errors,
        ),
        (
            "conclave_bridge_underruns_total",
            "counter",
            "browser playout queue underruns",
            b.underruns,
        ),
        (
            "conclave_bridge_throttled_total",
            "counter",
            "browser packets beyond the decoding budget",
            b.throttled,
        ),
        (
            "conclave_bridge_caller_frames_total",
            "counter",
            "SIP caller frames encoded for browsers",
            b.caller_frames,
        ),
        (
            "conclave_bridge_encode_errors_total",
            "counter",
            "SIP caller frames that failed to encode",
            b.encode_errors,
        ),
    ] {
        line(&mut out, name, kind, help, value);
    }
    out
}

//! Health, metrics and the OpenAPI document.

use std::fmt::Write as _;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use conclave_engine::service::LATENCY_BUCKETS;
use conclave_engine::Rejection;
use serde_json::{json, Map, Value};

use crate::App;

pub async fn health(app: App) -> Response {
    let engine_ok = app.engine.healthy();
    let mut sources = Map::new();
    let mut all_ok = engine_ok;
    for s in app.status.iter() {
        all_ok &= s.healthy();
        sources.insert(s.name(), s.health());
    }
    // One reason for as long as it lasts: a storage failure (a full disk) keeps
    // health at 503 until the journal has recovered by itself, however commands fare.
    let failure = app.engine.storage_failure();
    let engine = match &failure {
        Some(f) => format!("storage_failed: {}", f.reason),
        None if engine_ok => "ok".to_owned(),
        None if app.engine.read_only().is_some() => "read_only".to_owned(),
        None => "resynchronizing".to_owned(),
    };
    let storage = match &failure {
        None => json!({ "status": "ok" }),
        Some(f) => json!({
            "status": "failed",
            "error": f.reason,
            "retrying": f.retrying,
            "failed_for_secs": f.for_duration.as_secs(),
            "attempts": f.attempts,
            "next_attempt_in_secs": f.next_attempt_in.map(|d| d.as_secs_f64()),
        }),
    };
    let body = json!({
        "status": if all_ok { "ok" } else { "unhealthy" },
        "engine": engine,
        "storage": storage,
        "journal_head": app.engine.journal().head(),
        "committed_head": app.engine.head(),
        "uptime_secs": app.started.elapsed().as_secs(),
        "sources": sources,
        "media": app.media.health(),
    });
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub async fn metrics(app: App) -> Response {
    let (rooms, active, members, sessions) = app.engine.read(|st| {
        (
            st.rooms.len(),
            st.active_rooms(),
            st.rooms.values().map(|r| r.members.len()).sum::<usize>(),
            st.online,
        )
    });
    let m = app.engine.metrics();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        "conclave_up",
        "1 when the engine accepts commands normally.",
        f64::from(u8::from(app.engine.healthy())),
    );
    gauge("conclave_rooms", "Rooms that exist.", rooms as f64);
    gauge(
        "conclave_active_rooms",
        "Rooms with at least one person present (Kamailio active_rooms).",
        active as f64,
    );
    gauge(
        "conclave_members",
        "People present, summed over rooms.",
        members as f64,
    );
    gauge(
        "conclave_sessions",
        "Sessions connected to the server.",
        sessions as f64,
    );
    gauge(
        "conclave_journal_head",
        "Sequence number of the last durable journal record.",
        app.engine.journal().head() as f64,
    );
    gauge(
        "conclave_committed_head",
        "Sequence number the committed state covers.",
        app.engine.head() as f64,
    );
    gauge(
        "conclave_participant_tokens",
        "Live participant bearer tokens (in memory).",
        app.tokens.len() as f64,
    );
    let _ = writeln!(out, "# HELP conclave_commands_total Commands received by the engine, by name.\n# TYPE conclave_commands_total counter");
    for (name, n) in &m.commands {
        let _ = writeln!(
            out,
            "conclave_commands_total{{command=\"{}\"}} {n}",
            label(name)
        );
    }
    let _ = writeln!(out, "# HELP conclave_rejections_total Refused commands, by stable code.\n# TYPE conclave_rejections_total counter");
    for code in Rejection::ALL_CODES {
        let n = m.rejections.get(*code).copied().unwrap_or(0);
        let _ = writeln!(out, "conclave_rejections_total{{code=\"{code}\"}} {n}");
    }
    for (code, n) in m
        .rejections
        .iter()
        .filter(|(c, _)| !Rejection::ALL_CODES.contains(&c.as_str()))
    {
        let _ = writeln!(
            out,
            "conclave_rejections_total{{code=\"{}\"}} {n}",
            label(code)
        );
    }
    let _ = writeln!(out, "# HELP conclave_append_latency_seconds Time from decision to durable acknowledgement of a command.\n# TYPE conclave_append_latency_seconds histogram");
    for (bound, n) in LATENCY_BUCKETS.iter().zip(&m.latency_buckets) {
        let _ = writeln!(
            out,
            "conclave_append_latency_seconds_bucket{{le=\"{bound}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "conclave_append_latency_seconds_bucket{{le=\"+Inf\"}} {}",
        m.latency_count
    );
    let _ = writeln!(
        out,
        "conclave_append_latency_seconds_sum {}",
        m.latency_sum_secs
    );
    let _ = writeln!(
        out,
        "conclave_append_latency_seconds_count {}",
        m.latency_count
    );
    let _ = writeln!(
        out,
        "# HELP conclave_password_checks_total Requests whose passwords were checked (argon2).\n# TYPE conclave_password_checks_total counter\nconclave_password_checks_total {}",
        m.password_checks
    );
    let _ = writeln!(
        out,
        "# HELP conclave_password_busy_total Requests refused as busy: no password-check slot came free in time.\n# TYPE conclave_password_busy_total counter\nconclave_password_busy_total {}",
        m.password_busy
    );
    let _ = writeln!(
        out,
        "# HELP conclave_denials_not_journaled_total Refusals answered but not journaled: repeats of the same refusal from the same source within a minute.\n# TYPE conclave_denials_not_journaled_total counter\nconclave_denials_not_journaled_total {}",
        m.denials_not_journaled
    );
    let _ = writeln!(
        out,
        "# HELP conclave_engine_queue_full_total Commands refused as busy: the engine's command queue was full.\n# TYPE conclave_engine_queue_full_total counter\nconclave_engine_queue_full_total {}",
        m.queue_full
    );
    let _ = writeln!(
        out,
        "# HELP conclave_engine_queued_commands Commands waiting for the engine's decider.\n# TYPE conclave_engine_queued_commands gauge\nconclave_engine_queued_commands {}",
        m.queued_commands
    );
    out.push_str(&app.media.metrics());
    for s in app.status.iter() {
        let text = s.metrics();
        out.push_str(&text);
        if !text.is_empty() && !text.ends_with('\n') {
            out.push('\n');
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

pub async fn openapi(app: App) -> Json<Value> {
    Json((*app.openapi).clone())
}

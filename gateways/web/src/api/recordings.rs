//! Room recordings: a moderator starts and stops one; participants list the room's
//! recordings with their files (name, length, duration, blake3) as the journal has
//! them, so what an auditor is handed can be checked (`conclave verify-recording`).

use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use conclave_engine::access::Sight;
use conclave_engine::event::EventKind;
use conclave_engine::state::Recording;
use conclave_engine::{Command, RecordingId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{answer, parse_room, room_actor, run};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Ctx, PathParams};
use crate::views;
use crate::App;

/// `POST /rooms/{room}/recording` body (optional: an empty body records audio only).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StartRecording {
    #[serde(default)]
    video: bool,
}

/// Starts the room's recording (moderator); answers 201 with its id.
pub async fn start_recording(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
    Body(b): Body<StartRecording>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    let o = run(
        &app,
        &ctx,
        actor,
        Command::StartRecording {
            room,
            video: b.video,
        },
    )
    .await?;
    let recording = o.events.iter().find_map(|a| match &a.event.kind {
        EventKind::RecordingStarted { recording, .. } => Some(recording.to_string()),
        _ => None,
    });
    let mut body = views::outcome(&o);
    if let Some(m) = body.as_object_mut() {
        m.insert("recording".into(), json!(recording));
    }
    Ok(answer(StatusCode::CREATED, body))
}

/// Stops the room's recording (moderator).
pub async fn stop_recording(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Response> {
    let room = parse_room(&room)?;
    let actor = room_actor(&ctx, &room)?;
    let o = run(&app, &ctx, actor, Command::StopRecording { room }).await?;
    Ok(answer(StatusCode::OK, views::outcome(&o)))
}

/// The room's recordings, oldest first: participants of the room, or the admin (who
/// also sees those of a room that no longer exists, until its name is reused).
pub async fn list_recordings(
    app: App,
    ctx: Ctx,
    PathParams(room): PathParams<String>,
) -> ApiResult<Json<Value>> {
    let name = parse_room(&room)?;
    let now = app.engine.now();
    app.engine.read(|st| {
        if !matches!(ctx.caller, Caller::Admin) {
            let sight = crate::query::sight(st, &ctx, &name, now);
            match (&ctx.caller, sight) {
                (_, None) => {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "room.not_found",
                        format!("room {name} does not exist"),
                    ))
                }
                (Caller::Anonymous, _) => return Err(ApiError::unauthenticated()),
                (_, Some(s)) if s < Sight::Participant => {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "auth.token_scope",
                        "this needs a token issued for this room (or the admin token)",
                    ))
                }
                _ => {}
            }
        }
        // A name that never had a room with recordings is not found, as on every
        // room route (a room that is gone still lists its recordings to the admin).
        if !st.rooms.contains_key(&name) && !st.recordings.values().any(|r| r.room == name) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "room.not_found",
                format!("room {name} does not exist"),
            ));
        }
        let active = st
            .rooms
            .get(&name)
            .and_then(|r| r.recording.as_ref())
            .map(|a| a.id.to_string());
        let list: Vec<Value> = st
            .recordings_of(&name)
            .into_iter()
            .map(|(id, r)| recording_view(id, r))
            .collect();
        Ok(Json(json!({
            "room": name.as_str(),
            "active": active,
            "recordings": list,
        })))
    })
}

/// One recording as the API shows it.
fn recording_view(id: &RecordingId, r: &Recording) -> Value {
    let t =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    json!({
        "id": id.as_str(),
        "started_at": t(r.started_at),
        "stopped_at": r.stopped_at.map(t),
        "video": r.video,
        "by": r.by.as_ref().map(|p| p.to_string()),
        "files": r.files.iter().map(|f| json!({
            "name": f.name,
            "kind": f.kind.as_str(),
            "track": f.track,
            "bytes": f.bytes,
            "duration_ms": f.duration_ms,
            "blake3": f.blake3,
        })).collect::<Vec<_>>(),
        "erased": r.erased.map(|e| e.as_str()),
    })
}

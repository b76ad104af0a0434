//! What a room WebSocket takes from its client: media signalling (SDP offer/answer and
//! trickle ICE with the media plane) and chat and moderation commands, each run through
//! the same handler as its REST route, with the token's participant as actor.
//!
//! Messages are JSON objects with a `type` and an optional `id` (a string of at most 128
//! characters or a number) that the answer carries back. One worker task per socket
//! takes them in order, so a slow command never holds up the events the socket sends.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::Response;
use conclave_engine::RoomName;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::api;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Body, Ctx, PathParams};
use crate::media_plane::MediaSignal;
use crate::App;

/// Largest message a client may send (an SDP offer with many tracks fits easily).
pub const MAX_INBOUND_BYTES: usize = 64 * 1024;
/// Frames above this close the socket outright (the protocol layer's own cut).
pub const MAX_FRAME_BYTES: usize = 128 * 1024;
/// Messages a client may send in a burst, and per second sustained.
const BURST: f64 = 100.0;
const PER_SEC: f64 = 20.0;
/// Refused messages in a row after which the socket is closed (policy violation).
pub const MAX_STRIKES: u32 = 200;
/// Messages waiting for the worker; more are refused (`ws.busy`).
pub const QUEUE: usize = 32;
/// Longest an answer body is read back from a handler.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Who is at the other end of a socket, as its upgrade request said.
#[derive(Clone)]
pub(crate) struct Peer {
    pub app: App,
    pub caller: Caller,
    pub credential: Option<crate::credential::Credential>,
    pub remote: Option<SocketAddr>,
    /// The socket's room (`None` for the admin's every-room socket).
    pub room: Option<RoomName>,
}

impl Peer {
    fn ctx(&self) -> Ctx {
        Ctx {
            caller: self.caller.clone(),
            credential: self.credential.clone(),
            correlation_id: crate::extract::new_correlation_id(),
            remote: self.remote,
            protocol: "websocket",
        }
    }

    /// The `media.config` message: whether media is on, and the ICE servers with TURN
    /// credentials for this session.
    pub(crate) fn media_config(&self) -> Value {
        let hub = &self.app.media;
        let session = match &self.caller {
            Caller::Participant { who, .. } => who.session.as_ref().map(|s| s.as_str().to_owned()),
            _ => None,
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        match (&hub.plane, session) {
            (Some(_), Some(s)) => json!({
                "type": "media.config", "enabled": true, "session": s,
                "ice_servers": hub.ice.servers(&s, now),
            }),
            (Some(_), None) => json!({
                "type": "media.config", "enabled": false, "session": null, "ice_servers": [],
                "reason": "media.no_session",
            }),
            (None, s) => json!({
                "type": "media.config", "enabled": false, "session": s, "ice_servers": [],
                "reason": "media.unavailable",
            }),
        }
    }
}

/// A typed error message to the client.
pub(crate) fn error(id: Option<&Value>, command: Option<&str>, e: &ApiError) -> Value {
    let mut v = json!({
        "type": "error",
        "code": e.code,
        "message": e.message,
        "status": e.status.as_u16(),
    });
    if let Some(c) = &e.correlation_id {
        v["correlation_id"] = json!(c);
    }
    if let Some(r) = e.retry_after {
        v["retry_after"] = json!(r);
    }
    tag(v, id, command)
}

fn tag(mut v: Value, id: Option<&Value>, command: Option<&str>) -> Value {
    if let Some(id) = id {
        v["id"] = id.clone();
    }
    if let Some(c) = command {
        v["command"] = json!(c);
    }
    v
}

/// What the media plane said, as a message to the client.
pub(crate) fn signal_json(s: MediaSignal) -> Value {
    match s {
        MediaSignal::Offer(sdp) => json!({"type": "media.offer", "sdp": sdp}),
        MediaSignal::Candidate(c) => json!({"type": "media.candidate", "candidate": c}),
        MediaSignal::Closed => json!({"type": "media.closed"}),
        MediaSignal::DominantSpeaker(session) => {
            json!({"type": "media.dominant_speaker", "session": session})
        }
    }
}

/// Per-socket rate limit: a token bucket.
pub(crate) struct Bucket {
    tokens: f64,
    at: Instant,
    /// Refusals in a row.
    pub strikes: u32,
}

impl Bucket {
    pub(crate) fn new() -> Self {
        Bucket {
            tokens: BURST,
            at: Instant::now(),
            strikes: 0,
        }
    }

    /// Takes one token; false when the client is over its rate.
    pub(crate) fn take(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * PER_SEC).min(BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            true
        } else {
            self.strikes += 1;
            false
        }
    }

    /// How long until the next token.
    pub(crate) fn wait(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / PER_SEC).max(0.0))
    }
}

fn invalid(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn media_error(e: crate::media_plane::MediaError) -> ApiError {
    let status = match e.code.as_str() {
        "media.unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "media.no_session" => StatusCode::CONFLICT,
        c if c.starts_with("auth.") => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, &e.code, e.message)
}

fn fields<T: DeserializeOwned>(m: Map<String, Value>) -> Result<T, ApiError> {
    serde_json::from_value(Value::Object(m)).map_err(|e| {
        ApiError::invalid(format!("invalid message: {}", crate::extract::describe(&e)))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sdp {
    sdp: String,
}

/// `media.layer`: the most a subscriber wants of a simulcast video it receives.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerPreference {
    track: String,
    max: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Candidate {
    candidate: Map<String, Value>,
}

/// The socket's media connection, held by its worker.
struct Media {
    generation: u64,
    /// The participant id once connected.
    id: Option<String>,
    signals: mpsc::Sender<MediaSignal>,
}

/// Takes the socket's messages in order and answers each (or not: a media answer or
/// candidate accepted needs no answer). Disconnects the media when the socket ends.
pub(crate) async fn worker(
    peer: Peer,
    mut inbound: mpsc::Receiver<String>,
    out: mpsc::Sender<Value>,
    signals: mpsc::Sender<MediaSignal>,
) {
    let mut media = Media {
        generation: peer.app.media.generation(),
        id: None,
        signals,
    };
    while let Some(text) = inbound.recv().await {
        if let Some(reply) = handle(&peer, &mut media, &text).await {
            if out.send(reply).await.is_err() {
                break;
            }
        }
    }
    if let Some(id) = media.id.take() {
        peer.app.media.release(&id, media.generation).await;
    }
}

/// One message: its answer, if any.
async fn handle(peer: &Peer, media: &mut Media, text: &str) -> Option<Value> {
    let mut m = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Some(error(
                None,
                None,
                &invalid("input.invalid", "a message is a JSON object with a `type`"),
            ))
        }
        Err(e) => {
            return Some(error(
                None,
                None,
                &invalid("input.invalid_json", format!("not JSON: {e}")),
            ))
        }
    };
    let id = m.remove("id");
    let id_ok = match &id {
        None | Some(Value::Number(_)) => true,
        Some(Value::String(s)) => s.len() <= 128,
        Some(_) => false,
    };
    if !id_ok {
        let e = ApiError::invalid("id: a string of at most 128 characters, or a number");
        return Some(error(None, None, &e));
    }
    let id = id.as_ref();
    let kind = match m.remove("type") {
        Some(Value::String(k)) if k.len() <= 64 => k,
        _ => {
            let e = ApiError::invalid("type: required, a string");
            return Some(error(id, None, &e));
        }
    };
    // Every message re-checks the token, as every request does.
    if let Err(e) = crate::revocation::still_valid(&peer.app, peer.caller.clone()) {
        return Some(error(id, Some(&kind), &e));
    }
    let answer = if kind.starts_with("media.") {
        signalling(peer, media, &kind, m).await
    } else {
        command(peer, &kind, m).await
    };
    match answer {
        Ok(Some(v)) => Some(tag(v, id, None)),
        Ok(None) => None,
        Err(e) => Some(error(id, Some(&kind), &e)),
    }
}

/// Connects the socket's session to the media plane unless it already holds it.
async fn ensure_connected(peer: &Peer, media: &mut Media) -> Result<String, ApiError> {
    let hub = &peer.app.media;
    if let Some(id) = &media.id {
        if hub.holds(id, media.generation) {
            return Ok(id.clone());
        }
    }
    let Caller::Participant { who, .. } = &peer.caller else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "media.no_session",
            "media needs a participant token with a session",
        ));
    };
    let id = hub
        .connect(
            &peer.app.engine,
            who,
            media.generation,
            media.signals.clone(),
        )
        .await
        .map_err(media_error)?;
    media.id = Some(id.clone());
    Ok(id)
}

async fn signalling(
    peer: &Peer,
    media: &mut Media,
    kind: &str,
    m: Map<String, Value>,
) -> Result<Option<Value>, ApiError> {
    let Some(plane) = peer.app.media.plane.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "media.unavailable",
            "this server has no media plane",
        ));
    };
    match kind {
        "media.offer" => {
            let Sdp { sdp } = fields(m)?;
            let id = ensure_connected(peer, media).await?;
            let answer = plane.offer(&id, sdp).await.map_err(media_error)?;
            Ok(Some(json!({"type": "media.answer", "sdp": answer})))
        }
        "media.answer" => {
            let Sdp { sdp } = fields(m)?;
            let id = ensure_connected(peer, media).await?;
            plane.answer(&id, sdp).await.map_err(media_error)?;
            Ok(None)
        }
        "media.candidate" => {
            let Candidate { candidate } = fields(m)?;
            let id = ensure_connected(peer, media).await?;
            plane
                .candidate(&id, Value::Object(candidate))
                .await
                .map_err(media_error)?;
            Ok(None)
        }
        "media.layer" => {
            // Rate-limited with every other message of the socket (`events.rs`).
            let LayerPreference { track, max } = fields(m)?;
            if track.is_empty() || track.len() > 256 {
                return Err(ApiError::invalid("track: 1 to 256 characters"));
            }
            if !matches!(max.as_str(), "q" | "h" | "f") {
                return Err(ApiError::invalid("max: one of \"q\", \"h\", \"f\""));
            }
            let Some(id) = media
                .id
                .clone()
                .filter(|id| peer.app.media.holds(id, media.generation))
            else {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "media.not_connected",
                    "media.layer needs the socket's media connection",
                ));
            };
            plane
                .set_max_layer(&id, &track, &max)
                .map_err(media_error)?;
            Ok(None)
        }
        "media.close" => {
            fields::<Map<String, Value>>(m.clone())?;
            if !m.is_empty() {
                return Err(ApiError::invalid("media.close takes no fields"));
            }
            if let Some(id) = media.id.take() {
                peer.app.media.release(&id, media.generation).await;
            }
            Ok(Some(json!({"type": "media.closed"})))
        }
        _ => Err(invalid(
            "ws.unknown_type",
            format!("unknown message type {kind:?}; see docs/api.md"),
        )),
    }
}

/// Runs one command through its REST handler, as the socket's caller.
async fn command(
    peer: &Peer,
    kind: &str,
    m: Map<String, Value>,
) -> Result<Option<Value>, ApiError> {
    let Some(room) = &peer.room else {
        return Err(invalid(
            "ws.no_room",
            "commands go over a room's socket (/rooms/{room}/ws)",
        ));
    };
    let (app, ctx, path) = (
        peer.app.clone(),
        peer.ctx(),
        PathParams(room.as_str().to_owned()),
    );
    let correlation = ctx.correlation_id.clone();
    macro_rules! with_body {
        ($h:path) => {
            $h(app, ctx, path, Body(fields(m)?)).await
        };
    }
    macro_rules! no_body {
        ($h:path) => {{
            if !m.is_empty() {
                return Err(ApiError::invalid(format!("{kind} takes no fields")));
            }
            $h(app, ctx, path).await
        }};
    }
    let resp = match kind {
        "chat" => with_body!(api::post_message),
        "mute" => with_body!(api::mute),
        "unmute" => with_body!(api::unmute),
        "pause_video" => with_body!(api::pause_video),
        "resume_video" => with_body!(api::resume_video),
        "kick" => with_body!(api::kick),
        "ban" => with_body!(api::ban_room),
        "admit" => with_body!(api::admit),
        "reject" => with_body!(api::reject_knock),
        "role" => with_body!(api::grant_role),
        "raise_hand" => no_body!(api::raise_hand),
        "lower_hand" => with_body!(api::lower_hand),
        "lock" => no_body!(api::lock_room),
        "unlock" => no_body!(api::unlock_room),
        "subject" => with_body!(api::set_subject),
        "moderated_chat" => with_body!(api::moderated_chat),
        "leave" => with_body!(api::leave),
        "recording.start" => with_body!(api::start_recording),
        "recording.stop" => no_body!(api::stop_recording),
        _ => {
            return Err(invalid(
                "ws.unknown_type",
                format!("unknown message type {kind:?}; see docs/api.md"),
            ))
        }
    };
    let resp = resp.map_err(|e| e.with_correlation(&correlation))?;
    Ok(Some(result(kind, resp).await))
}

async fn result(kind: &str, resp: Response) -> Value {
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), MAX_ANSWER_BYTES)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or(Value::Null);
    json!({"type": "result", "command": kind, "code": "ok", "status": status, "result": body})
}

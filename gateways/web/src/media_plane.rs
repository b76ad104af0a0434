//! The media plane as the web gateway sees it: a selective forwarding unit that
//! terminates one WebRTC peer connection per participant. The gateway carries the
//! signalling (SDP and trickle ICE over the room WebSocket, `ws_session.rs`) and enforces
//! moderation on it from the committed feed ([`enforce`]); the media plane itself
//! decides nothing. The binary adapts `media::sfu::Sfu` to [`MediaPlane`]; without one
//! (`None`) the server runs without media and the page says so.
//!
//! A participant is a web session: its id is the session id the token was issued for.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use conclave_engine::service::{Engine, FeedEvent, FeedFilter};
use conclave_engine::state::Gate;
use conclave_engine::{EventKind, Principal, RoomName};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::auth::Participant;
use crate::ice::IceSettings;
use crate::revocation::{self, Reach};

/// A boxed future, as the trait's async methods return (object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The participant id of the media plane: the web session id.
pub type ParticipantId = String;

/// What kind of media a forwarding decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

/// What the media plane tells a participant's client, unasked.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaSignal {
    /// A new offer (renegotiation: someone published or left); the client answers.
    Offer(String),
    /// A trickled ICE candidate of the server (`RTCIceCandidateInit` JSON).
    Candidate(Value),
    /// The peer connection is gone (failed, or closed by the plane).
    Closed,
    /// The room's dominant speaker (a participant id: the web session id, which is
    /// also the MediaStream id of its tracks). Presentation data, not journaled.
    DominantSpeaker(ParticipantId),
}

/// A refusal or failure of the media plane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct MediaError {
    /// Stable code sent to the client (`media.*`).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl MediaError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        MediaError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// The selective forwarding unit behind the web gateway (object safe: futures boxed).
pub trait MediaPlane: Send + Sync + 'static {
    /// Opens the participant's peer connection in `room`; the plane's unasked messages
    /// (renegotiation offers, candidates, the end) go to `signals`.
    fn connect<'a>(
        &'a self,
        room: &'a str,
        participant: &'a str,
        signals: mpsc::Sender<MediaSignal>,
    ) -> BoxFuture<'a, Result<(), MediaError>>;
    /// The client's offer; answers the server's SDP answer.
    fn offer<'a>(
        &'a self,
        participant: &'a str,
        sdp: String,
    ) -> BoxFuture<'a, Result<String, MediaError>>;
    /// The client's answer to a server offer.
    fn answer<'a>(
        &'a self,
        participant: &'a str,
        sdp: String,
    ) -> BoxFuture<'a, Result<(), MediaError>>;
    /// A trickled ICE candidate of the client (`RTCIceCandidateInit` JSON).
    fn candidate<'a>(
        &'a self,
        participant: &'a str,
        candidate: Value,
    ) -> BoxFuture<'a, Result<(), MediaError>>;
    /// Whether the participant's media of `kind` is forwarded to the others.
    fn set_forwarding(&self, participant: &str, kind: MediaKind, allowed: bool);
    /// The subscriber's preference for a simulcast video it receives (`track`: the
    /// forwarded track id): at most the layer `max` (`q`, `h` or `f`). Presentation
    /// only: the plane still lowers the layer when the subscriber's bandwidth is short.
    /// A plane without simulcast refuses it (`media.unsupported`).
    fn set_max_layer(&self, participant: &str, track: &str, max: &str) -> Result<(), MediaError> {
        let _ = (participant, track, max);
        Err(MediaError::new(
            "media.unsupported",
            "this media plane does not choose simulcast layers",
        ))
    }
    /// Closes the participant's peer connection.
    fn disconnect<'a>(&'a self, participant: &'a str) -> BoxFuture<'a, ()>;
    /// Statistics (JSON), for health, `/debug/media` and `/metrics`: rooms →
    /// participants → tracks; top-level totals (`participant_count`, `track_count`,
    /// `packets_in`, `packets_forwarded`, `bytes_forwarded`, `packets_dropped`,
    /// `keyframe_requests`, ...) become `conclave_media_*` metrics when present.
    fn stats(&self) -> Value;
}

/// Media plane totals exported to `/metrics`: (stats key, metric name, type, help).
const MEDIA_METRICS: &[(&str, &str, &str, &str)] = &[
    (
        "room_count",
        "rooms",
        "gauge",
        "Rooms with media participants.",
    ),
    (
        "participant_count",
        "participants",
        "gauge",
        "Media participants (peer connections).",
    ),
    (
        "track_count",
        "tracks",
        "gauge",
        "Tracks published and forwarded.",
    ),
    (
        "packets_in",
        "packets_received_total",
        "counter",
        "RTP packets received from publishers.",
    ),
    (
        "bytes_in",
        "bytes_received_total",
        "counter",
        "RTP payload bytes received from publishers.",
    ),
    (
        "packets_forwarded",
        "packets_forwarded_total",
        "counter",
        "RTP packets forwarded to subscribers.",
    ),
    (
        "bytes_forwarded",
        "bytes_forwarded_total",
        "counter",
        "RTP payload bytes forwarded to subscribers.",
    ),
    (
        "packets_dropped",
        "packets_dropped_total",
        "counter",
        "RTP packets dropped: a subscriber's queue was full.",
    ),
    (
        "packets_withheld",
        "packets_withheld_total",
        "counter",
        "RTP packets withheld by moderation (muted audio, paused video).",
    ),
    (
        "send_errors",
        "send_errors_total",
        "counter",
        "RTP packets that could not be sent to a subscriber.",
    ),
    (
        "keyframe_requests",
        "keyframe_requests_total",
        "counter",
        "Keyframe requests (PLI) sent to publishers.",
    ),
    (
        "layer_switches",
        "layer_switches_total",
        "counter",
        "Simulcast layer switches, all subscribers.",
    ),
    (
        "tracks_refused",
        "tracks_refused_total",
        "counter",
        "Tracks not forwarded: beyond a publisher's bound.",
    ),
    (
        "dominant_speaker_changes",
        "dominant_speaker_changes_total",
        "counter",
        "Dominant speaker changes, all rooms.",
    ),
];

/// One web session connected to the media plane.
#[derive(Clone)]
struct Connected {
    who: Participant,
    /// Which socket holds it (a reload takes over the session from the old socket).
    generation: u64,
}

/// The media plane, the ICE settings, and which web sessions are connected to it.
pub(crate) struct MediaHub {
    pub(crate) plane: Option<Arc<dyn MediaPlane>>,
    pub(crate) ice: IceSettings,
    sessions: Mutex<HashMap<ParticipantId, Connected>>,
    generations: AtomicU64,
}

impl MediaHub {
    pub(crate) fn new(plane: Option<Arc<dyn MediaPlane>>, ice: IceSettings) -> Self {
        MediaHub {
            plane,
            ice,
            sessions: Mutex::default(),
            generations: AtomicU64::new(1),
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<ParticipantId, Connected>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh generation for one socket's connection.
    pub(crate) fn generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed)
    }

    /// Connects `who`'s session (its id is the participant id) and applies the
    /// moderation state in force, so that a client muted before it connected is muted.
    pub(crate) async fn connect(
        &self,
        engine: &Engine,
        who: &Participant,
        generation: u64,
        signals: mpsc::Sender<MediaSignal>,
    ) -> Result<ParticipantId, MediaError> {
        let plane = self.plane.as_ref().ok_or_else(|| {
            MediaError::new("media.unavailable", "this server has no media plane")
        })?;
        let id = who
            .session
            .as_ref()
            .ok_or_else(|| {
                MediaError::new(
                    "media.no_session",
                    "this token has no session (a room creator's token): join first",
                )
            })?
            .as_str()
            .to_owned();
        let previous = self.sessions().get(&id).cloned();
        if previous.is_some() {
            // Another socket of the same session (a reload): it loses the media.
            plane.disconnect(&id).await;
        }
        plane.connect(who.room.as_str(), &id, signals).await?;
        self.sessions().insert(
            id.clone(),
            Connected {
                who: who.clone(),
                generation,
            },
        );
        // Registered first, then the state read: a moderation event committed in
        // between is applied by the follower as well (set_forwarding is idempotent).
        let (audio, video) = engine.read(|st| {
            let p = st.principal_of(&who.identity);
            st.rooms
                .get(&who.room)
                .and_then(|r| r.members.get(&p))
                .map_or((true, true), |m| {
                    (m.audio == Gate::Open, m.video == Gate::Open)
                })
        });
        plane.set_forwarding(&id, MediaKind::Audio, audio);
        plane.set_forwarding(&id, MediaKind::Video, video);
        if !revocation::holds(engine, who) {
            self.release(&id, generation).await;
            return Err(MediaError::new(
                "auth.token_revoked",
                "this token's session has ended",
            ));
        }
        Ok(id)
    }

    /// Disconnects a session if `generation` still holds it.
    pub(crate) async fn release(&self, id: &str, generation: u64) {
        let mine = {
            let mut s = self.sessions();
            match s.get(id) {
                Some(c) if c.generation == generation => {
                    s.remove(id);
                    true
                }
                _ => false,
            }
        };
        if let (true, Some(plane)) = (mine, &self.plane) {
            plane.disconnect(id).await;
        }
    }

    /// Whether `generation` still holds the session `id`.
    pub(crate) fn holds(&self, id: &str, generation: u64) -> bool {
        self.sessions()
            .get(id)
            .is_some_and(|c| c.generation == generation)
    }

    /// Health details: whether media is on, and how many sessions are connected.
    pub(crate) fn health(&self) -> Value {
        match &self.plane {
            None => json!({"enabled": false}),
            Some(p) => {
                // The totals only: per-room detail is at /debug/media (admin).
                let stats = p.stats();
                let totals: serde_json::Map<String, Value> = stats
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(_, v)| v.is_number())
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "enabled": true,
                    "sessions": self.sessions().len(),
                    "stats": totals,
                })
            }
        }
    }

    /// The media plane's statistics, per room and participant (`/debug/media`).
    pub(crate) fn debug(&self) -> Value {
        match &self.plane {
            None => json!({"enabled": false}),
            Some(p) => json!({
                "enabled": true,
                "sessions": self.sessions().len(),
                "stats": p.stats(),
            }),
        }
    }

    /// `/metrics` lines for the media plane's totals.
    pub(crate) fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let Some(plane) = &self.plane else {
            return String::new();
        };
        let stats = plane.stats();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP conclave_media_sessions Web sessions connected to the media plane.\n# TYPE conclave_media_sessions gauge\nconclave_media_sessions {}",
            self.sessions().len()
        );
        for (key, name, kind, help) in MEDIA_METRICS {
            if let Some(v) = stats.get(key).and_then(Value::as_u64) {
                let _ = writeln!(
                    out,
                    "# HELP conclave_media_{name} {help}\n# TYPE conclave_media_{name} {kind}\nconclave_media_{name} {v}"
                );
            }
        }
        out
    }

    /// Applies one committed event to the connected sessions: mutes and video pauses
    /// become forwarding decisions, the end of a session's right a disconnect.
    pub(crate) async fn apply(&self, engine: &Engine, e: &FeedEvent) {
        let Some(plane) = &self.plane else {
            return;
        };
        use EventKind as E;
        let gate = match &e.event.kind {
            E::AudioMuted { room, subject, .. } => Some((room, subject, MediaKind::Audio, false)),
            E::AudioUnmuted { room, subject } => Some((room, subject, MediaKind::Audio, true)),
            E::VideoPaused { room, subject, .. } => Some((room, subject, MediaKind::Video, false)),
            E::VideoResumed { room, subject } => Some((room, subject, MediaKind::Video, true)),
            _ => None,
        };
        if let Some((room, subject, kind, allowed)) = gate {
            for id in self.sessions_of(engine, room, subject) {
                plane.set_forwarding(&id, kind, allowed);
            }
            return;
        }
        let room = match revocation::reach(&e.event.kind) {
            Reach::Nowhere => return,
            Reach::Everywhere => None,
            Reach::Room => e
                .record
                .stream
                .strip_prefix("room:")
                .and_then(|r| RoomName::lookup(r).ok()),
        };
        let ended: Vec<(ParticipantId, u64)> = self
            .sessions()
            .iter()
            .filter(|(_, c)| room.as_ref().is_none_or(|r| &c.who.room == r))
            .filter(|(_, c)| !revocation::holds(engine, &c.who))
            .map(|(id, c)| (id.clone(), c.generation))
            .collect();
        for (id, generation) in ended {
            tracing::debug!(session = %id, seq = e.seq(), "media connection ended by the feed");
            self.release(&id, generation).await;
        }
    }

    /// The connected sessions of `subject` in `room` (every web session of that person).
    fn sessions_of(&self, engine: &Engine, room: &RoomName, subject: &Principal) -> Vec<String> {
        let candidates: Vec<(String, Participant)> = self
            .sessions()
            .iter()
            .filter(|(_, c)| &c.who.room == room)
            .map(|(id, c)| (id.clone(), c.who.clone()))
            .collect();
        engine.read(|st| {
            candidates
                .into_iter()
                .filter(|(_, who)| &st.principal_of(&who.identity) == subject)
                .map(|(id, _)| id)
                .collect()
        })
    }
}

/// Follows the committed feed from now on and enforces moderation on the media plane
/// (see [`MediaHub::apply`]). Ends when the engine stops.
pub(crate) async fn enforce(engine: Engine, hub: Arc<MediaHub>) {
    let mut feed = engine.subscribe(engine.head() + 1, FeedFilter::all());
    while let Some(e) = feed.follow("media enforcement").await {
        hub.apply(&engine, &e).await;
    }
}

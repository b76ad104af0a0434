//! The selective forwarding unit for browsers: one WebRTC peer connection per
//! participant; every published audio and video track is forwarded, undecoded, to every
//! other participant of the same room.
//!
//! The web gateway drives it: [`Sfu::connect`] opens a participant, the client's offer
//! (its published tracks) is answered by [`Sfu::offer`], and the SFU renegotiates with
//! its own offers ([`SfuSignal::Offer`]) whenever the set of tracks a participant should
//! receive changes. Moderation ([`Sfu::set_forwarding`], [`Sfu::disconnect`]) comes from
//! the engine's committed events, never from the client.
//!
//! Files: `peer.rs` (the peer connection and its events), `negotiate.rs` (server offers,
//! glare, subscriptions), `forward.rs` (the packet path, keyframe requests),
//! `simulcast.rs` (one layer per subscriber, chosen by preference and REMB),
//! `vp8.rs` (keyframes and picture ids), `rid_reports.rs` (browsers keep tagging
//! their layers), `keyframe.rs` (PLI/FIR/REMB reach us),
//! `speaker.rs` (dominant speaker from audio
//! levels), `limits.rs` (bounds on what a client may ask), `candidates.rs`,
//! `config.rs`, `stats.rs`.

mod candidates;
mod config;
mod error;
mod forward;
mod keyframe;
mod limits;
mod local;
mod negotiate;
mod peer;
mod rid_reports;
mod simulcast;
mod speaker;
mod stats;
mod stopped;
mod vp8;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::sync::mpsc;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState};

pub use config::{SfuConfig, SfuLimits};
pub use error::SfuError;
pub use local::{LocalTrack, MediaTap, VideoPacket};
pub use simulcast::SimulcastLayer;

use config::PortPicker;
use forward::{Forwarding, Publication};
use negotiate::Negotiation;

/// The web session id of a participant.
pub type ParticipantId = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// What the SFU sends a client through the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum SfuSignal {
    /// Server-initiated renegotiation: the client answers with [`Sfu::answer`].
    Offer(String),
    /// One of our ICE candidates, as `RTCIceCandidateInit` JSON.
    Candidate(serde_json::Value),
    /// The connection failed; the participant is disconnected.
    Closed,
    /// The room's dominant speaker changed (RFC 6464 audio levels, with hysteresis);
    /// sent to every participant of the room, and on connecting. Presentation data:
    /// not journaled, and dropped rather than waited for when a client lags.
    DominantSpeaker(ParticipantId),
}

/// Cheap to clone: every clone drives the same SFU.
#[derive(Clone)]
pub struct Sfu {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: SfuConfig,
    ports: PortPicker,
    next_id: AtomicU64,
    state: Mutex<State>,
    /// Dominant-speaker detectors by room.
    speakers: Mutex<HashMap<String, speaker::Detector>>,
    /// Refusals by stable code, for statistics.
    refusals: Mutex<HashMap<&'static str, u64>>,
    /// Tracks not forwarded: beyond the publisher's bound.
    tracks_refused: AtomicU64,
    dominant_changes: AtomicU64,
    /// The SIP bridge's tap on browsers' audio (see `local.rs`).
    tap: OnceLock<Arc<dyn MediaTap>>,
    /// Where tasks started from outside tokio (the bridge's mixer thread) run.
    runtime: tokio::runtime::Handle,
}

#[derive(Default)]
struct State {
    participants: HashMap<ParticipantId, Arc<Participant>>,
    /// Moderation switches by participant, set before or after `connect`.
    forwarding: HashMap<ParticipantId, Arc<Forwarding>>,
    /// Publications the media node makes (the bridge's SIP callers), by publication
    /// id, with their room.
    locals: HashMap<u64, (String, Arc<Publication>)>,
}

pub(crate) struct Participant {
    id: ParticipantId,
    room: String,
    pc: Arc<dyn PeerConnection>,
    signals: mpsc::Sender<SfuSignal>,
    forwarding: Arc<Forwarding>,
    publications: Mutex<Vec<Arc<Publication>>>,
    negotiation: tokio::sync::Mutex<Negotiation>,
    closed: AtomicBool,
    connection: Mutex<RTCPeerConnectionState>,
    /// Our queue towards this participant (see `forward::drain`).
    outbox: mpsc::Sender<forward::Queued>,
    /// The header extension id of RFC 6464 audio levels in its offers (0: none).
    audio_level_id: Arc<AtomicU8>,
    /// Its receiver's latest REMB bandwidth estimate, bit/s (0: none yet).
    estimate: Arc<AtomicU64>,
    /// ICE candidates it gave, inline and trickled.
    candidates: AtomicUsize,
    /// Its descriptions (offers and answers), rate-limited.
    renegotiations: Mutex<limits::Bucket>,
}

impl Participant {
    fn set_state(&self, state: RTCPeerConnectionState) {
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    fn publications(&self) -> Vec<Arc<Publication>> {
        self.publications
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn participant(&self, id: &str) -> Option<Arc<Participant>> {
        self.state().participants.get(id).cloned()
    }

    /// Everyone else in `room`.
    fn others(&self, room: &str, except: &str) -> Vec<Arc<Participant>> {
        self.state()
            .participants
            .values()
            .filter(|p| p.room == room && p.id != except)
            .cloned()
            .collect()
    }

    /// Our SDP as the client should see it (announced addresses in its candidates).
    fn announced(&self, sdp: &str) -> String {
        candidates::announce_sdp(sdp, self.config.bind, &self.config.announce)
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn refused(&self, e: SfuError) -> SfuError {
        *self
            .refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(e.code())
            .or_default() += 1;
        e
    }

    /// One forwarded audio packet's level (-dBov) from `who` in `room`; tells the
    /// room when its dominant speaker changes.
    fn observe_level(&self, room: &str, who: &str, level: u8) {
        let changed = {
            let mut speakers = self.speakers.lock().unwrap_or_else(|p| p.into_inner());
            let d = speakers.entry(room.to_owned()).or_default();
            let now = Instant::now();
            d.observe(who, level, now);
            d.evaluate(now)
        };
        let Some(dominant) = changed else {
            return;
        };
        self.dominant_changes.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(room, participant = %dominant, "dominant speaker");
        for p in self.others(room, "") {
            // Presentation data: a lagging client misses a change rather than
            // holding up the forwarding task this runs on.
            let _ = p
                .signals
                .try_send(SfuSignal::DominantSpeaker(dominant.clone()));
        }
    }

    fn dominant_speaker(&self, room: &str) -> Option<ParticipantId> {
        self.speakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(room)
            .and_then(|d| d.dominant().cloned())
    }

    /// Checks a client description against the bounds and the rate limit; counts its
    /// candidates and notes its audio-level extension id.
    fn admit_description(&self, p: &Participant, sdp: &str) -> Result<(), SfuError> {
        let bounds = &self.config.limits;
        if !p
            .renegotiations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(Instant::now())
        {
            return Err(self.refused(SfuError::RateLimited));
        }
        // A description's inline candidates are its own, not added to the trickled
        // count: every renegotiation repeats them, and counting them again refused a
        // browser after a few renegotiations.
        limits::check_description(sdp, bounds, p.candidates.load(Ordering::Relaxed))
            .map_err(|e| self.refused(e))?;
        if let Some(id) = negotiate::audio_level_id(sdp) {
            p.audio_level_id.store(id, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Sfu {
    pub async fn new(config: SfuConfig) -> Result<Sfu, SfuError> {
        config.validate()?;
        Ok(Sfu {
            inner: Arc::new(Inner {
                ports: PortPicker::new(&config),
                config,
                next_id: AtomicU64::new(1),
                state: Mutex::new(State::default()),
                speakers: Mutex::default(),
                refusals: Mutex::default(),
                tracks_refused: AtomicU64::new(0),
                dominant_changes: AtomicU64::new(0),
                tap: OnceLock::new(),
                runtime: tokio::runtime::Handle::current(),
            }),
        })
    }

    /// Opens a participant's peer connection in `room`; signals for the client arrive
    /// on `signals`.
    pub async fn connect(
        &self,
        room: &str,
        participant: &ParticipantId,
        signals: mpsc::Sender<SfuSignal>,
    ) -> Result<(), SfuError> {
        if self.inner.participant(participant).is_some() {
            return Err(SfuError::AlreadyConnected(participant.clone()));
        }
        self.room_has_space(room)?;
        let addr = self.inner.ports.pick()?;
        let handler = Arc::new(peer::PeerEvents {
            sfu: Arc::downgrade(&self.inner),
            participant: participant.clone(),
        });
        let pc = peer::build(addr, self.inner.config.loopback_only, handler).await?;
        let bounds = &self.inner.config.limits;
        let (outbox, queue) = mpsc::channel(bounds.subscriber_queue);
        let inserted = {
            let mut state = self.inner.state();
            let present = state
                .participants
                .values()
                .filter(|p| p.room == room)
                .count();
            if present >= bounds.max_participants_per_room {
                Err(SfuError::RoomFull {
                    room: room.to_owned(),
                    max: bounds.max_participants_per_room,
                })
            } else if state.participants.contains_key(participant) {
                Err(SfuError::AlreadyConnected(participant.clone()))
            } else {
                let forwarding = state
                    .forwarding
                    .entry(participant.clone())
                    .or_default()
                    .clone();
                state.participants.insert(
                    participant.clone(),
                    Arc::new(Participant {
                        id: participant.clone(),
                        room: room.to_owned(),
                        pc: pc.clone(),
                        signals,
                        forwarding,
                        publications: Mutex::new(Vec::new()),
                        negotiation: tokio::sync::Mutex::new(Negotiation::default()),
                        closed: AtomicBool::new(false),
                        connection: Mutex::new(RTCPeerConnectionState::New),
                        outbox,
                        audio_level_id: Arc::new(AtomicU8::new(0)),
                        estimate: Arc::new(AtomicU64::new(0)),
                        candidates: AtomicUsize::new(0),
                        renegotiations: Mutex::new(limits::Bucket::new(
                            bounds.renegotiation_burst,
                            bounds.renegotiation_refill,
                            Instant::now(),
                        )),
                    }),
                );
                Ok(())
            }
        };
        if let Err(e) = inserted {
            // Lost a race with a concurrent connect of the same id or into the room.
            let _ = pc.close().await;
            return Err(self.inner.refused(e));
        }
        tokio::spawn(forward::drain(queue));
        if let Some(dominant) = self.inner.dominant_speaker(room) {
            if let Some(p) = self.inner.participant(participant) {
                let _ = p.signals.try_send(SfuSignal::DominantSpeaker(dominant));
            }
        }
        tracing::debug!(participant = %participant, room, %addr, "sfu participant connected");
        Ok(())
    }

    /// The client's offer (it publishes its tracks; the first offer starts the
    /// session); returns the answer SDP.
    pub async fn offer(
        &self,
        participant: &ParticipantId,
        sdp: String,
    ) -> Result<String, SfuError> {
        let p = self.get(participant)?;
        self.inner.admit_description(&p, &sdp)?;
        let sdp = candidates::filter_sdp(&sdp, self.inner.config.loopback_only);
        negotiate::client_offer(&self.inner, &p, sdp).await
    }

    /// The client's answer to an [`SfuSignal::Offer`].
    pub async fn answer(&self, participant: &ParticipantId, sdp: String) -> Result<(), SfuError> {
        let p = self.get(participant)?;
        self.inner.admit_description(&p, &sdp)?;
        let sdp = candidates::filter_sdp(&sdp, self.inner.config.loopback_only);
        negotiate::client_answer(&self.inner, &p, sdp).await
    }

    /// A trickled client candidate (`RTCIceCandidateInit` JSON). In loopback-only
    /// mode a candidate not on loopback is ignored.
    pub async fn candidate(
        &self,
        participant: &ParticipantId,
        candidate: serde_json::Value,
    ) -> Result<(), SfuError> {
        let p = self.get(participant)?;
        let bounds = &self.inner.config.limits;
        let size = candidate
            .get("candidate")
            .and_then(|c| c.as_str())
            .map_or(0, str::len);
        if size > bounds.max_candidate_bytes {
            return Err(self.inner.refused(SfuError::TooLarge {
                what: "candidate bytes",
                size,
                max: bounds.max_candidate_bytes,
            }));
        }
        if p.candidates.fetch_add(1, Ordering::Relaxed) >= bounds.max_candidates {
            return Err(self.inner.refused(SfuError::TooManyCandidates {
                max: bounds.max_candidates,
            }));
        }
        let init: RTCIceCandidateInit = serde_json::from_value(candidate)
            .map_err(|e| SfuError::InvalidSignal(e.to_string()))?;
        if !candidates::acceptable(&init, self.inner.config.loopback_only) {
            return Ok(());
        }
        p.pc.add_ice_candidate(init).await.map_err(error::invalid)
    }

    /// Server-enforced moderation: a muted participant's audio / paused video is not
    /// forwarded, whatever the client sends. Holds for a participant not yet connected.
    pub fn set_forwarding(&self, participant: &ParticipantId, kind: MediaKind, allowed: bool) {
        let (forwarding, publications) = {
            let mut state = self.inner.state();
            let forwarding = state
                .forwarding
                .entry(participant.clone())
                .or_default()
                .clone();
            let publications = state
                .participants
                .get(participant)
                .map(|p| p.publications())
                .unwrap_or_default();
            (forwarding, publications)
        };
        let was = forwarding.flag(kind).swap(allowed, Ordering::Relaxed);
        // Subscribers of a resumed video need a keyframe to decode anything.
        if allowed && !was && kind == MediaKind::Video {
            for publication in publications.into_iter().filter(|p| p.kind == kind) {
                tokio::spawn(async move { publication.request_keyframe(true).await });
            }
        }
    }

    /// The subscriber's preference for a simulcast video it receives: at most
    /// `layer` (the forwarded track id is the one its offer carried). Takes effect at
    /// the next keyframe of the layer chosen; a track without simulcast ignores it.
    pub fn set_max_layer(
        &self,
        subscriber: &ParticipantId,
        track: &str,
        layer: SimulcastLayer,
    ) -> Result<(), SfuError> {
        let p = self.get(subscriber)?;
        let candidates: Vec<Arc<Publication>> = self
            .inner
            .others(&p.room, &p.id)
            .iter()
            .flat_map(|o| o.publications())
            .chain(self.inner.local_publications(&p.room))
            .collect();
        let outlet = candidates
            .iter()
            .filter(|x| negotiate::forwarded_track_id(x) == track)
            .flat_map(|x| x.outlets())
            .find(|o| &o.subscriber == subscriber)
            .ok_or_else(|| SfuError::UnknownTrack(track.to_owned()))?;
        outlet.max_layer.store(layer.rank(), Ordering::Relaxed);
        Ok(())
    }

    /// Closes the peer connection (kick, ban, leave); its tracks leave every
    /// subscriber (renegotiation). Unknown participants are ignored.
    pub async fn disconnect(&self, participant: &ParticipantId) {
        let removed = {
            let mut state = self.inner.state();
            state.forwarding.remove(participant);
            state.participants.remove(participant)
        };
        let Some(p) = removed else {
            return;
        };
        if p.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(d) = self
            .inner
            .speakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&p.room)
        {
            d.remove(participant);
        }
        negotiate::leave(&self.inner, &p).await;
        if let Err(e) = p.pc.close().await {
            tracing::debug!(participant = %participant, error = %e, "closing peer connection");
        }
        tracing::debug!(participant = %participant, "sfu participant disconnected");
    }

    /// Per-room and per-participant statistics as JSON (like Jitsi's colibri stats).
    pub fn stats(&self) -> serde_json::Value {
        stats::snapshot(&self.inner)
    }

    /// `sfu.room_full` before any port is taken, when the room is at its bound.
    fn room_has_space(&self, room: &str) -> Result<(), SfuError> {
        let max = self.inner.config.limits.max_participants_per_room;
        let present = self
            .inner
            .state()
            .participants
            .values()
            .filter(|p| p.room == room)
            .count();
        if present >= max {
            return Err(self.inner.refused(SfuError::RoomFull {
                room: room.to_owned(),
                max,
            }));
        }
        Ok(())
    }

    fn get(&self, participant: &ParticipantId) -> Result<Arc<Participant>, SfuError> {
        self.inner
            .participant(participant)
            .ok_or_else(|| SfuError::UnknownParticipant(participant.clone()))
    }
}

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
//! `keyframe.rs` (PLI/FIR reach us), `candidates.rs`, `config.rs`, `stats.rs`.

mod candidates;
mod config;
mod error;
mod forward;
mod keyframe;
mod negotiate;
mod peer;
mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use webrtc::peer_connection::{PeerConnection, RTCIceCandidateInit, RTCPeerConnectionState};

pub use config::SfuConfig;
pub use error::SfuError;

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
}

#[derive(Default)]
struct State {
    participants: HashMap<ParticipantId, Arc<Participant>>,
    /// Moderation switches by participant, set before or after `connect`.
    forwarding: HashMap<ParticipantId, Arc<Forwarding>>,
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
        let addr = self.inner.ports.pick()?;
        let handler = Arc::new(peer::PeerEvents {
            sfu: Arc::downgrade(&self.inner),
            participant: participant.clone(),
        });
        let pc = peer::build(addr, self.inner.config.loopback_only, handler).await?;
        let inserted = {
            let mut state = self.inner.state();
            if state.participants.contains_key(participant) {
                false
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
                    }),
                );
                true
            }
        };
        if !inserted {
            // Lost a race with a concurrent connect of the same id.
            let _ = pc.close().await;
            return Err(SfuError::AlreadyConnected(participant.clone()));
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
        let sdp = candidates::filter_sdp(&sdp, self.inner.config.loopback_only);
        negotiate::client_offer(&self.inner, &p, sdp).await
    }

    /// The client's answer to an [`SfuSignal::Offer`].
    pub async fn answer(&self, participant: &ParticipantId, sdp: String) -> Result<(), SfuError> {
        let p = self.get(participant)?;
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

    fn get(&self, participant: &ParticipantId) -> Result<Arc<Participant>, SfuError> {
        self.inner
            .participant(participant)
            .ok_or_else(|| SfuError::UnknownParticipant(participant.clone()))
    }
}

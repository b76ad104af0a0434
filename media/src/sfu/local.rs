//! What the media node itself puts into the SFU and takes out of it: the SIP bridge.
//!
//! A [`LocalTrack`] is an audio publication with no peer connection behind it (a SIP
//! caller's voice, encoded as Opus by the bridge); every browser in the room subscribes
//! to it like to any other track, under the caller's session id as MediaStream id. An
//! [`MediaTap`] receives every browser's forwarded audio packet, after moderation, so
//! a muted browser is not heard on the SIP side either.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use rtc::rtp;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::forward::{Forwarding, LocalPacket, Publication, Source, Taps};
use super::{negotiate, peer, Inner, MediaKind, ParticipantId, Sfu};

/// Receives browsers' media for the bridge and the recorder. Called on the forwarding
/// task of each publication, after moderation (a muted participant's audio, a paused
/// video never arrive): it must not block (decode and queue, nothing more).
pub trait MediaTap: Send + Sync {
    /// One forwarded Opus packet of `publisher`'s publication `publication` in `room`
    /// (sequence numbers continuous across withheld packets).
    fn audio(&self, room: &str, publisher: &str, publication: u64, sequence: u16, payload: &[u8]);
    /// One forwarded VP8 packet of the track subscribers know as `track`; `true` asks
    /// the publisher for a keyframe (a recorder that has none to start from), which the
    /// SFU sends at most every 300 ms.
    fn video(&self, room: &str, track: &str, packet: VideoPacket<'_>) -> bool;
    /// The publication ended (its publisher left or stopped the track).
    fn ended(&self, room: &str, publisher: &str, publication: u64, kind: MediaKind);
}

/// One video RTP packet as forwarded (sequence numbers continuous across withheld
/// packets).
#[derive(Debug, Clone, Copy)]
pub struct VideoPacket<'a> {
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: &'a [u8],
}

/// Packets queued towards one local publication's forwarding task; beyond this the
/// newest are dropped (a stalled task must not grow memory).
const LOCAL_QUEUE: usize = 64;

/// An Opus audio track the media node publishes into a room. Dropping it ends the
/// publication: every subscriber is renegotiated without it.
pub struct LocalTrack {
    queue: mpsc::Sender<LocalPacket>,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for LocalTrack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTrack")
            .field("ssrc", &self.ssrc)
            .finish_non_exhaustive()
    }
}

/// Samples per 20 ms Opus frame on the 48 kHz RTP clock.
const FRAME_TICKS: u32 = 960;

impl LocalTrack {
    /// Sends one 20 ms Opus frame with its RFC 6464 level (0 loudest, 127 silence).
    /// Never waits: a full queue drops the frame (counted). `false` once the
    /// publication has ended.
    pub fn send(&mut self, opus: &[u8], level: u8) -> bool {
        let mut packet = rtp::Packet::default();
        packet.header.version = 2;
        packet.header.payload_type = 111;
        packet.header.sequence_number = self.sequence;
        packet.header.timestamp = self.timestamp;
        packet.header.ssrc = self.ssrc;
        packet.payload = Bytes::copy_from_slice(opus);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME_TICKS);
        match self.queue.try_send((packet, Some(level.min(127)))) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// A frame not sent (silence, or a muted caller): the RTP clock goes on, so the
    /// next packet's timestamp tells the receiver how long the gap was.
    pub fn skip(&mut self) {
        self.timestamp = self.timestamp.wrapping_add(FRAME_TICKS);
    }

    /// Frames dropped because the forwarding task was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // Without randomness the SSRC is still unique within its room's subscriptions
    // (the outlets rewrite it per subscriber anyway).
    let _ = getrandom::fill(&mut bytes);
    u32::from_be_bytes(bytes)
}

impl Sfu {
    /// The bridge's tap on browsers' audio; set once (a second call is ignored).
    pub fn set_tap(&self, tap: Arc<dyn MediaTap>) {
        let _ = self.inner.tap.set(tap);
    }

    /// Publishes an Opus audio track for `participant` (a session with no peer
    /// connection, a SIP caller) in `room`; every browser there is offered it. Callable
    /// from any thread.
    pub fn publish_local_audio(&self, room: &str, participant: &ParticipantId) -> LocalTrack {
        let inner = &self.inner;
        let (queue, receiver) = mpsc::channel(LOCAL_QUEUE);
        let ssrc = random_u32();
        let forwarding = inner
            .state()
            .forwarding
            .entry(participant.clone())
            .or_insert_with(|| Arc::new(Forwarding::default()))
            .clone();
        let publication = Arc::new(Publication::new(
            inner.next_id(),
            participant.clone(),
            MediaKind::Audio,
            format!("{participant}-bridge"),
            ssrc,
            peer::opus(),
            Source::Local(tokio::sync::Mutex::new(receiver)),
            forwarding,
            Some(Taps {
                sfu: Arc::downgrade(inner),
                room: room.to_owned(),
                ext_id: Arc::new(AtomicU8::new(0)),
                bridged: false,
            }),
        ));
        inner
            .state()
            .locals
            .insert(publication.id, (room.to_owned(), publication.clone()));
        let (inner2, room2) = (inner.clone(), room.to_owned());
        inner.runtime.spawn(async move {
            for other in inner2.others(&room2, "") {
                tokio::spawn(negotiate::renegotiate(inner2.clone(), other));
            }
            publication.clone().run().await;
            {
                let mut state = inner2.state();
                state.locals.remove(&publication.id);
                let publisher = &publication.publisher;
                let still_used = state.participants.contains_key(publisher)
                    || state
                        .locals
                        .values()
                        .any(|(_, p)| &p.publisher == publisher);
                if !still_used {
                    state.forwarding.remove(publisher);
                }
            }
            for other in inner2.others(&room2, "") {
                tokio::spawn(negotiate::renegotiate(inner2.clone(), other));
            }
        });
        LocalTrack {
            queue,
            ssrc,
            sequence: u16::try_from(random_u32() >> 17).unwrap_or(0),
            timestamp: random_u32(),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The rooms that have browser participants, in one pass over the participants
    /// (the bridge asks once per tick, and publishes only where someone would hear).
    pub fn rooms_with_participants(&self) -> std::collections::HashSet<String> {
        self.inner
            .state()
            .participants
            .values()
            .map(|p| p.room.clone())
            .collect()
    }
}

impl Inner {
    /// The local publications of `room`.
    pub(crate) fn local_publications(&self, room: &str) -> Vec<Arc<Publication>> {
        self.state()
            .locals
            .values()
            .filter(|(r, _)| r == room)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

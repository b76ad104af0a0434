//! The committed event feed: every journaled event, in journal order, delivered only
//! after the engine has applied it to the committed state.
//!
//! The completer pushes each applied batch into a bounded ring of recent events and then
//! moves the feed's head. A subscription reads by sequence number: from the ring while
//! the events it wants are still there, from the journal (decoded as on start-up) when it
//! has fallen behind or starts in the past. Both sources are addressed by the same gap-free
//! sequence and never read past the committed head, so the hand-over from history to live
//! can neither skip nor repeat an event, and a slow subscriber costs memory only for its
//! own read-ahead: it never holds the ring back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use conclave_journal::{Reader, Record};
use serde_json::Value;
use tokio::sync::watch;

use super::audit::AuditEntry;
use super::{from_record, EngineError};
use crate::event::Event;
use crate::ids::{Address, RoomName};
use crate::json::event_json;

/// Events kept in memory for live subscribers by default.
pub const DEFAULT_FEED_CAPACITY: usize = 16_384;

/// Events read from the journal per refill by a subscriber that is behind the ring.
const HISTORY_CHUNK: u64 = 256;

/// One committed event with its record: sequence, stream version, time, actor and origin.
#[derive(Debug)]
pub struct FeedEvent {
    pub record: Record,
    pub event: Event,
    /// When this `FeedEvent` was built. Live: by the completer, right after applying the
    /// event to the committed state (the rest of its batch is applied, then the batch is
    /// pushed into the ring), so `committed_at.elapsed()` on receipt is the subscriber's
    /// lag behind the committed state. Read back from the journal by a subscriber behind
    /// the ring or starting in the past: the time it was read, not when it committed.
    pub committed_at: Instant,
    /// The serialized views, each made once by the first subscriber that asks. Text, not
    /// a JSON tree: every stream sends text, and whoever drops the last reference (the
    /// ring, evicting it) frees one buffer, not a tree of them.
    full: OnceLock<Arc<str>>,
    participant: OnceLock<Arc<str>>,
}

/// Who an event's JSON is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedView {
    /// Operators: everything, the stored remote address included.
    Full,
    /// Participants: everything but stored remote addresses (the record's, and the one
    /// a join or denial carries: even as a keyed hash it would let participants follow
    /// one person across rooms).
    Participant,
}

impl FeedEvent {
    pub(crate) fn new(record: Record, event: Event) -> Self {
        FeedEvent {
            record,
            event,
            committed_at: Instant::now(),
            full: OnceLock::new(),
            participant: OnceLock::new(),
        }
    }

    pub fn seq(&self) -> u64 {
        self.record.seq
    }

    /// The audit view of the event (`seq`, `at`, `stream`, `event_type`, metadata and
    /// the event's JSON view, as REST's audit pages and NATS show it) plus
    /// `stream_version`, as seen by `view`.
    pub fn json(&self, view: FeedView) -> Value {
        let entry = AuditEntry::new(&self.record, event_json(&self.event));
        let mut v = serde_json::to_value(entry).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            map.insert(
                "stream_version".into(),
                Value::from(self.record.stream_version),
            );
            if view == FeedView::Participant {
                map.remove("remote_addr");
                if let Some(Value::Object(data)) =
                    map.get_mut("event").and_then(|e| e.get_mut("data"))
                {
                    data.remove("remote");
                }
            }
        }
        v
    }

    /// [`FeedEvent::json`] serialized, made once per view and shared by every
    /// subscriber.
    pub fn text(&self, view: FeedView) -> Arc<str> {
        let cell = match view {
            FeedView::Full => &self.full,
            FeedView::Participant => &self.participant,
        };
        cell.get_or_init(|| Arc::from(self.json(view).to_string()))
            .clone()
    }

    /// Whether the event belongs to `room`'s stream.
    pub fn in_room(&self, room: &RoomName) -> bool {
        self.record
            .stream
            .strip_prefix("room:")
            .is_some_and(|r| r == room.as_str())
    }

    /// Whether `who` acted or appears anywhere in the event's data.
    pub fn concerns(&self, who: &Address) -> bool {
        let who = who.to_string();
        self.record.meta.actor.as_deref() == Some(who.as_str())
            || super::audit::mentions(&event_json(&self.event)["data"], &who)
    }
}

/// Which events a subscription delivers; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    pub room: Option<RoomName>,
    pub identity: Option<Address>,
}

impl FeedFilter {
    pub fn all() -> Self {
        FeedFilter::default()
    }

    pub fn room(room: RoomName) -> Self {
        FeedFilter {
            room: Some(room),
            identity: None,
        }
    }

    pub fn identity(identity: Address) -> Self {
        FeedFilter {
            room: None,
            identity: Some(identity),
        }
    }

    pub fn matches(&self, e: &FeedEvent) -> bool {
        self.room.as_ref().is_none_or(|r| e.in_room(r))
            && self.identity.as_ref().is_none_or(|a| e.concerns(a))
    }
}

/// Recent committed events, contiguous by sequence.
struct Ring {
    events: VecDeque<Arc<FeedEvent>>,
    /// The sequence of `events[0]`, or of the next event pushed when empty.
    first: u64,
    capacity: usize,
}

impl Ring {
    fn get(&self, seq: u64) -> Option<Arc<FeedEvent>> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        self.events.get(i).cloned()
    }
}

/// The feed's shared part: the ring and the committed head.
pub(crate) struct Feed {
    ring: Mutex<Ring>,
    head: watch::Sender<u64>,
    closed: AtomicBool,
}

impl Feed {
    pub(crate) fn new(head: u64, capacity: usize) -> Self {
        Feed {
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(capacity.min(4096)),
                first: head + 1,
                capacity: capacity.max(1),
            }),
            head: watch::channel(head).0,
            closed: AtomicBool::new(false),
        }
    }

    /// Adds events the committed state now includes (in order, following the last one)
    /// and moves the head past them.
    pub(crate) fn push(&self, events: impl IntoIterator<Item = FeedEvent>) {
        let mut head = None;
        // Evicted events are dropped after the lock is released: freeing them is the
        // costly part of a push.
        let mut evicted = Vec::new();
        {
            let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
            for e in events {
                let seq = e.seq();
                if seq != ring.first + ring.events.len() as u64 {
                    // Not contiguous (cannot happen while the decider is the only
                    // writer): start over, so the ring never answers for a missing seq.
                    evicted.extend(ring.events.drain(..));
                    ring.first = seq;
                }
                if ring.events.len() == ring.capacity {
                    evicted.extend(ring.events.pop_front());
                    ring.first += 1;
                }
                ring.events.push_back(Arc::new(e));
                head = Some(seq);
            }
        }
        if let Some(h) = head {
            self.head.send_replace(h);
        }
        drop(evicted);
    }

    /// Wakes every subscriber and makes them end: the engine is stopping.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.head.send_modify(|_| {});
    }

    pub(crate) fn subscribe(
        self: &Arc<Self>,
        journal: Reader,
        from: u64,
        filter: FeedFilter,
    ) -> FeedSubscription {
        FeedSubscription {
            feed: self.clone(),
            head_rx: self.head.subscribe(),
            journal,
            next: from.max(1),
            filter,
            buffered: VecDeque::new(),
        }
    }

    /// Resolves once the committed state covers `seq`.
    pub(crate) async fn wait_for(&self, seq: u64) -> Result<(), EngineError> {
        let mut rx = self.head.subscribe();
        loop {
            if *rx.borrow_and_update() >= seq {
                return Ok(());
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(EngineError::Stopped);
            }
            rx.changed().await.map_err(|_| EngineError::Stopped)?;
        }
    }
}

/// An ordered stream of committed events from a starting sequence.
pub struct FeedSubscription {
    feed: Arc<Feed>,
    head_rx: watch::Receiver<u64>,
    journal: Reader,
    /// The next sequence to look at.
    next: u64,
    filter: FeedFilter,
    /// Events read ahead from the journal, in order, not yet filtered.
    buffered: VecDeque<Arc<FeedEvent>>,
}

impl FeedSubscription {
    /// The sequence number after the last event delivered or skipped by the filter: where
    /// a client resumes (pass it as `from`) to see every later event once.
    pub fn position(&self) -> u64 {
        self.buffered.front().map_or(self.next, |e| e.seq())
    }

    /// [`FeedSubscription::next`] for a follower that runs until the engine stops:
    /// `None` once it stops, or after any other error, logged as `who` having stopped
    /// following the feed.
    pub async fn follow(&mut self, who: &str) -> Option<Arc<FeedEvent>> {
        match self.next().await {
            Ok(e) => Some(e),
            Err(EngineError::Stopped) => None,
            Err(err) => {
                tracing::error!(error = %err, "{who} stopped following the feed");
                None
            }
        }
    }

    /// The next matching committed event, waiting for it if need be. Fails with
    /// [`EngineError::Stopped`] once the engine stops.
    pub async fn next(&mut self) -> Result<Arc<FeedEvent>, EngineError> {
        loop {
            if let Some(e) = self.take()? {
                if self.filter.matches(&e) {
                    return Ok(e);
                }
                continue;
            }
            if self.feed.closed.load(Ordering::Acquire) {
                return Err(EngineError::Stopped);
            }
            self.head_rx
                .changed()
                .await
                .map_err(|_| EngineError::Stopped)?;
        }
    }

    /// The next matching event if it is committed already, without waiting (for batching
    /// what is ready).
    pub fn try_next(&mut self) -> Result<Option<Arc<FeedEvent>>, EngineError> {
        while let Some(e) = self.take()? {
            if self.filter.matches(&e) {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    /// The next committed event by sequence, matching or not, if the head has reached it.
    fn take(&mut self) -> Result<Option<Arc<FeedEvent>>, EngineError> {
        if let Some(e) = self.buffered.pop_front() {
            return Ok(Some(e));
        }
        let head = *self.head_rx.borrow_and_update();
        if self.next > head {
            return Ok(None);
        }
        let from_ring = {
            let ring = self.feed.ring.lock().unwrap_or_else(|p| p.into_inner());
            ring.get(self.next)
        };
        if let Some(e) = from_ring {
            self.next += 1;
            return Ok(Some(e));
        }
        self.refill(head)?;
        Ok(self.buffered.pop_front())
    }

    /// Reads the next events from the journal: the subscriber is behind the ring.
    fn refill(&mut self, head: u64) -> Result<(), EngineError> {
        let to = head.min(self.next.saturating_add(HISTORY_CHUNK - 1));
        for record in self.journal.read_range(self.next, to)? {
            if record.seq != self.next {
                return Err(EngineError::Codec {
                    seq: self.next,
                    reason: format!("missing; the next stored record is {}", record.seq),
                });
            }
            let event = from_record(&self.journal, &record)?;
            self.buffered
                .push_back(Arc::new(FeedEvent::new(record, event)));
            self.next += 1;
        }
        Ok(())
    }
}

//! A room's chat history read from the engine's journal: the discussion history sent on
//! join (XEP-0045 §7.2.14, [`recent`]) and the XEP-0313 archive ([`query`]). The journal
//! is the archive: every message posted in the room is a `chat_message` record of the
//! room's stream, its body personal content that retention may purge (a purged message
//! is not shown). A message's archive id is its engine message id, the stanza id the
//! room gave it.
//!
//! Reading backwards. The journal reads a stream from a version to its end
//! (`read_stream(stream, from_version)`, through the stream index) and has no reverse or
//! bounded-range read. So history is read from the end in windows: the last 64
//! versions, then from twice as far back, and so on, each read keeping only the
//! versions it had not seen. A join thus reads about as many records as lie between the
//! end and the oldest message it sends (at most four times that), never the whole
//! stream; and [`recent`] gives up after [`RECENT_SCAN_LIMIT`] records. A reverse or
//! bounded-range read in the journal would make each window cost only itself.
//!
//! The walk stops at the room's creation: the stream of a room name that was destroyed
//! and created again holds the old room's messages before it, and they are not the new
//! room's history. The engine never lets journal time go backwards, so a `start` bound
//! also ends the walk.
//!
//! Reads are blocking journal reads: call from `spawn_blocking` in async code.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use conclave_engine::event::{Event, EventKind, StreamId};
use conclave_engine::ids::{Address, RoomName};
use conclave_engine::service::{from_record, Engine, EngineError};
use conclave_journal::{Reader, Record};
use thiserror::Error;

use crate::mam::{MamQuery, MAX_PAGE};

/// The event type of a chat message in the journal.
pub const CHAT_MESSAGE: &str = "chat_message";
/// Event types that begin (`room_create`) or end a room's life: history never crosses
/// them.
pub const BOUNDARIES: [&str; 3] = ["room_create", "room_delete", "room_expire"];
/// Records the first backward read takes; each next one reaches twice as far.
pub const FIRST_WINDOW: u64 = 64;
/// Most records of the room's stream [`recent`] looks through for messages: a join
/// never costs more than reading about four times this many (a room whose last
/// messages lie further back than this, behind joins and leaves, sends no history).
pub const RECENT_SCAN_LIMIT: u64 = 5_000;

/// A message of the room's archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// Its journal sequence number.
    pub seq: u64,
    /// Its archive id: the engine's message id.
    pub id: String,
    /// When it was posted.
    pub at: DateTime<Utc>,
    /// The identity it was posted with.
    pub from: Address,
    /// The text.
    pub body: String,
}

/// One page of an archive query: messages oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MamPage {
    /// The messages of the page, oldest first.
    pub messages: Vec<ArchivedMessage>,
    /// True when no further page lies in the direction of paging: after the last one
    /// (forward), before the first one (with `before`).
    pub complete: bool,
    /// The first message's id.
    pub first: Option<String>,
    /// The last message's id.
    pub last: Option<String>,
    /// How many messages match the query's filters, when the read saw them all (a
    /// query without `after` or `before`); otherwise not counted (RSM makes it
    /// optional).
    pub count: Option<usize>,
}

/// Why an archive query failed.
#[derive(Debug, Clone, Error)]
pub enum ArchiveError {
    /// Reading the journal failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// An `after` or `before` id that is not in the room's archive.
    #[error("no message {0:?} in the archive")]
    ItemNotFound(String),
}

impl ArchiveError {
    /// A stable code for logs and tests.
    pub fn code(&self) -> &str {
        match self {
            ArchiveError::Engine(e) => e.code(),
            ArchiveError::ItemNotFound(_) => "archive.item_not_found",
        }
    }

    /// The XMPP stanza error condition.
    pub fn condition(&self) -> &'static str {
        match self {
            ArchiveError::Engine(_) => "internal-server-error",
            ArchiveError::ItemNotFound(_) => "item-not-found",
        }
    }
}

/// What history is read from: the journal (its [`Reader`]), or anything reading like
/// it (tests count the reads).
pub trait StreamSource {
    /// The stream's current version (0 when it has no records).
    fn stream_version(&self, stream: &str) -> u64;
    /// The stream's records from `from_version` to its end, in order.
    fn read_stream(&self, stream: &str, from_version: u64) -> Result<Vec<Record>, EngineError>;
    /// The domain event of a record, personal content included unless purged.
    fn decode(&self, record: &Record) -> Result<Event, EngineError>;
}

impl StreamSource for Reader {
    fn stream_version(&self, stream: &str) -> u64 {
        Reader::stream_version(self, stream)
    }

    fn read_stream(&self, stream: &str, from_version: u64) -> Result<Vec<Record>, EngineError> {
        Ok(Reader::read_stream(self, stream, from_version)?)
    }

    fn decode(&self, record: &Record) -> Result<Event, EngineError> {
        from_record(self, record)
    }
}

/// A message as found, its body `None` when purged.
struct Found {
    seq: u64,
    id: String,
    at: DateTime<Utc>,
    from: Address,
    body: Option<String>,
}

impl Found {
    fn into_archived(self) -> Option<ArchivedMessage> {
        Some(ArchivedMessage {
            seq: self.seq,
            id: self.id,
            at: self.at,
            from: self.from,
            body: self.body?,
        })
    }
}

/// The room's stream read from its end towards its start, message by message, up to
/// the room's creation.
struct Backward<'a, S: ?Sized> {
    source: &'a S,
    stream: String,
    /// Versions at and above this have been read.
    floor: u64,
    window: u64,
    /// Read and not yet looked at, oldest first.
    buffer: Vec<Record>,
    /// Records looked at.
    examined: u64,
    limit: u64,
    ended: bool,
}

impl<'a, S: StreamSource + ?Sized> Backward<'a, S> {
    fn new(source: &'a S, room: &RoomName, limit: u64) -> Self {
        let stream = StreamId::Room(room.clone()).to_string();
        let version = source.stream_version(&stream);
        Backward {
            source,
            stream,
            floor: version + 1,
            window: FIRST_WINDOW,
            buffer: Vec::new(),
            examined: 0,
            limit,
            ended: false,
        }
    }

    /// The next older message, `None` at the room's creation, the stream's start or
    /// the limit.
    fn next(&mut self) -> Result<Option<Found>, EngineError> {
        while !self.ended {
            let Some(record) = self.next_record()? else {
                break;
            };
            self.examined += 1;
            if self.examined > self.limit || BOUNDARIES.contains(&record.event_type.as_str()) {
                self.ended = true;
                break;
            }
            if record.event_type != CHAT_MESSAGE {
                continue;
            }
            if let EventKind::MessagePosted {
                message,
                address,
                body,
                ..
            } = self.source.decode(&record)?.kind
            {
                return Ok(Some(Found {
                    seq: record.seq,
                    id: message.to_string(),
                    at: record.timestamp,
                    from: address,
                    body,
                }));
            }
        }
        Ok(None)
    }

    fn next_record(&mut self) -> Result<Option<Record>, EngineError> {
        loop {
            if let Some(r) = self.buffer.pop() {
                return Ok(Some(r));
            }
            if self.floor <= 1 {
                return Ok(None);
            }
            let from = self.floor.saturating_sub(self.window).max(1);
            let ceiling = self.floor;
            let mut records = self.source.read_stream(&self.stream, from)?;
            records.retain(|r| r.stream_version >= from && r.stream_version < ceiling);
            records.sort_by_key(|r| r.stream_version);
            self.buffer = records;
            self.floor = from;
            self.window = self.window.saturating_mul(2);
        }
    }
}

/// The last `max` messages of the room, oldest first (purged ones left out), for the
/// discussion history sent on join. Looks through at most [`RECENT_SCAN_LIMIT`] records.
pub fn recent(
    engine: &Engine,
    room: &RoomName,
    max: usize,
) -> Result<Vec<ArchivedMessage>, EngineError> {
    let reader: &Reader = engine.journal();
    recent_in(reader, room, max)
}

/// [`recent`] over any [`StreamSource`].
pub fn recent_in<S: StreamSource + ?Sized>(
    source: &S,
    room: &RoomName,
    max: usize,
) -> Result<Vec<ArchivedMessage>, EngineError> {
    let mut out = Vec::new();
    if max == 0 {
        return Ok(out);
    }
    let mut walk = Backward::new(source, room, RECENT_SCAN_LIMIT);
    while let Some(found) = walk.next()? {
        if let Some(m) = found.into_archived() {
            out.push(m);
            if out.len() >= max {
                break;
            }
        }
    }
    out.reverse();
    Ok(out)
}

/// One page of the room's archive for an XEP-0313 query (see [`MamQuery`]): the
/// messages matching `with`, `start` and `end`, after `after` and before `before`; the
/// first `max` of them, or the last `max` when `before` is given (an empty `before` is
/// the archive's last page). `max` is capped at [`MAX_PAGE`]. An `after` or `before` id
/// that is not a message of the room is [`ArchiveError::ItemNotFound`].
///
/// Cost: the walk goes from the end back to wherever the page is decided. The last
/// page (`before` empty, what clients ask for first) and the pages before a recent id
/// read only the end of the stream; a forward page reads back to its `after` id, its
/// `start`, or for the archive's first page the room's creation; paging backwards
/// through a whole long archive reads the end again for every page. A bounded-range
/// read in the journal would make each page cost only itself.
pub fn query(engine: &Engine, room: &RoomName, q: &MamQuery) -> Result<MamPage, ArchiveError> {
    let reader: &Reader = engine.journal();
    query_in(reader, room, q)
}

/// [`query`] over any [`StreamSource`].
pub fn query_in<S: StreamSource + ?Sized>(
    source: &S,
    room: &RoomName,
    q: &MamQuery,
) -> Result<MamPage, ArchiveError> {
    let max = q.max.min(MAX_PAGE);
    let upper = q.before.as_deref().filter(|b| !b.is_empty());
    let lower = q.after.as_deref();
    // Backward: the last `max` before `before`; forward: the first `max` after `after`.
    let backward = q.before.is_some();
    let mut seen_upper = upper.is_none();
    let mut seen_lower = false;
    // Nothing older can be wanted (the lower anchor, the start time): only anchors are
    // still looked for.
    let mut closed = false;
    // Backward: the page is full and one more was found.
    let mut more = false;
    // Collected newest first.
    let mut page: VecDeque<ArchivedMessage> = VecDeque::new();
    let mut total = 0usize;
    let mut walk = Backward::new(source, room, u64::MAX);
    loop {
        let pending = !seen_upper || (lower.is_some() && !seen_lower);
        if (closed || more) && !pending {
            break;
        }
        let Some(found) = walk.next()? else {
            break;
        };
        if !seen_upper {
            seen_upper = Some(found.id.as_str()) == upper;
            if Some(found.id.as_str()) == lower {
                // The lower anchor is newer than the upper one: an empty range.
                seen_lower = true;
                closed = true;
            }
            continue;
        }
        if Some(found.id.as_str()) == lower {
            seen_lower = true;
            closed = true;
            continue;
        }
        if closed || more {
            continue;
        }
        if q.start.is_some_and(|start| found.at < start) {
            closed = true;
            continue;
        }
        if q.end.is_some_and(|end| found.at > end)
            || q.with.as_ref().is_some_and(|w| *w != found.from)
        {
            continue;
        }
        let Some(m) = found.into_archived() else {
            continue;
        };
        total += 1;
        if backward {
            if page.len() < max {
                page.push_back(m);
            } else {
                more = true;
            }
        } else {
            // Older ones replace the newest: the first `max` are the oldest.
            page.push_back(m);
            if page.len() > max {
                page.pop_front();
            }
        }
    }
    if !seen_upper {
        return Err(ArchiveError::ItemNotFound(
            upper.unwrap_or_default().to_owned(),
        ));
    }
    if let Some(lower) = lower {
        if !seen_lower {
            return Err(ArchiveError::ItemNotFound(lower.to_owned()));
        }
    }
    let complete = if backward { !more } else { total <= max };
    let count = (!backward && upper.is_none() && lower.is_none()).then_some(total);
    let messages: Vec<ArchivedMessage> = page.into_iter().rev().collect();
    Ok(MamPage {
        complete,
        first: messages.first().map(|m| m.id.clone()),
        last: messages.last().map(|m| m.id.clone()),
        count,
        messages,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::cell::Cell;

    use chrono::TimeDelta;
    use conclave_engine::context::Actor;
    use conclave_engine::ids::{MessageId, Principal, SessionId};
    use conclave_engine::model::RoomConfig;
    use conclave_engine::testing::t0;
    use conclave_journal::{AppendRequest, Journal, JournalConfig, NewRecord, SyncMode};

    use super::*;

    fn alice() -> Address {
        Address::parse("xmpp:alice@example.org").unwrap()
    }

    fn bob() -> Address {
        Address::parse("xmpp:bob@example.org").unwrap()
    }

    fn room(name: &str) -> RoomName {
        RoomName::from_stored(name.to_owned())
    }

    /// Counts what is read from the journal.
    struct Counting<'a> {
        inner: &'a Reader,
        records: Cell<u64>,
        reads: Cell<u64>,
    }

    impl StreamSource for Counting<'_> {
        fn stream_version(&self, stream: &str) -> u64 {
            self.inner.stream_version(stream)
        }
        fn read_stream(&self, stream: &str, from: u64) -> Result<Vec<Record>, EngineError> {
            let out = StreamSource::read_stream(self.inner, stream, from)?;
            self.records.set(self.records.get() + out.len() as u64);
            self.reads.set(self.reads.get() + 1);
            Ok(out)
        }
        fn decode(&self, record: &Record) -> Result<Event, EngineError> {
            self.inner.decode(record)
        }
    }

    fn counting(reader: &Reader) -> Counting<'_> {
        Counting {
            inner: reader,
            records: Cell::new(0),
            reads: Cell::new(0),
        }
    }

    /// What goes into the test journal.
    enum Item {
        Create,
        Delete,
        Renew,
        Message(&'static str, Address),
        Purged(&'static str),
    }

    /// A journal holding `items` in the room's stream (and some of another room's),
    /// one second apart from t0, each message's id `m<index>` unless named.
    struct Fixture {
        _dir: tempfile::TempDir,
        journal: Journal,
    }

    fn record(room: &RoomName, at: DateTime<Utc>, kind: EventKind) -> NewRecord {
        let event = Event {
            at,
            actor: Actor::Identity(alice()),
            kind,
        };
        let encoded = conclave_engine::codec::encode(&event).unwrap();
        NewRecord {
            stream: StreamId::Room(room.clone()).to_string(),
            event_type: encoded.event_type.to_owned(),
            schema_version: encoded.schema_version,
            timestamp: at,
            payload: encoded.payload,
            content: encoded.personal_content,
            meta: Default::default(),
        }
    }

    fn message(room: &RoomName, id: &str, from: &Address, body: Option<String>) -> EventKind {
        EventKind::MessagePosted {
            room: room.clone(),
            message: MessageId::from_stored(id.to_owned()),
            from: Principal::Address(from.clone()),
            address: from.clone(),
            body,
            html_stripped: false,
        }
    }

    /// Records per append: a busy engine's group commits are of this order, and each
    /// append is a journal chunk of its own (a record read decodes its chunk).
    const BATCH: usize = 16;

    fn build(rooms: &[(&RoomName, Vec<Item>)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig {
            sync: SyncMode::None,
            ..JournalConfig::default()
        };
        let journal = Journal::open(dir.path().join("journal"), config).unwrap();
        let mut records = Vec::new();
        let mut at = t0();
        // Interleaved: the other rooms' records between this one's.
        let longest = rooms
            .iter()
            .map(|(_, items)| items.len())
            .max()
            .unwrap_or(0);
        for i in 0..longest {
            for (name, items) in rooms {
                let Some(item) = items.get(i) else { continue };
                at += TimeDelta::seconds(1);
                let kind = match item {
                    Item::Create => EventKind::RoomCreated {
                        room: (*name).clone(),
                        parent: None,
                        owner: Principal::Address(alice()),
                        config: RoomConfig::default(),
                    },
                    Item::Delete => EventKind::RoomDeleted {
                        room: (*name).clone(),
                        reason: conclave_engine::event::DeleteReason::Destroyed,
                    },
                    Item::Renew => EventKind::SessionRenewed {
                        room: (*name).clone(),
                        principal: Principal::Address(alice()),
                        session: SessionId::from_stored("s1".into()),
                        until: at,
                    },
                    Item::Message(id, from) => {
                        message(name, id, from, Some(format!("body of {id}")))
                    }
                    Item::Purged(id) => message(name, id, &alice(), None),
                };
                records.push(record(name, at, kind));
                if records.len() == BATCH {
                    journal
                        .append_blocking(AppendRequest {
                            records: std::mem::take(&mut records),
                            ..AppendRequest::default()
                        })
                        .unwrap();
                }
            }
        }
        if !records.is_empty() {
            journal
                .append_blocking(AppendRequest {
                    records,
                    ..AppendRequest::default()
                })
                .unwrap();
        }
        Fixture { _dir: dir, journal }
    }

    /// Message ids as `&'static str` for the fixture.
    fn ids(n: usize) -> Vec<&'static str> {
        (0..n)
            .map(|i| &*Box::leak(format!("m{i}").into_boxed_str()))
            .collect()
    }

    fn chat(n: usize) -> Vec<Item> {
        let mut items = vec![Item::Create];
        for (i, id) in ids(n).into_iter().enumerate() {
            let from = if i.is_multiple_of(2) { alice() } else { bob() };
            items.push(Item::Message(id, from));
        }
        items
    }

    fn page_ids(page: &MamPage) -> Vec<&str> {
        page.messages.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn the_boundaries_are_engine_event_types() {
        for t in BOUNDARIES.iter().chain([&CHAT_MESSAGE]) {
            assert!(conclave_engine::codec::current_version(t).is_some(), "{t}");
        }
    }

    #[test]
    fn recent_reads_a_100k_room_from_its_end_only() {
        let big = room("big");
        // 100 000 records: a creation, then mostly lease renewals with a message
        // every tenth record.
        let mut items = vec![Item::Create];
        let names = ids(10_000);
        for i in 1..100_000usize {
            if i.is_multiple_of(10) {
                items.push(Item::Message(names[i / 10], alice()));
            } else {
                items.push(Item::Renew);
            }
        }
        let fx = build(&[(&big, items)]);
        let reader: &Reader = &fx.journal;
        assert_eq!(reader.stream_version("room:big"), 100_000);
        let source = counting(reader);
        let got = recent_in(&source, &big, 20).unwrap();
        assert_eq!(got.len(), 20);
        assert_eq!(got[0].id, "m9980");
        assert_eq!(got[19].id, "m9999");
        assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
        // 20 messages lie in the last 200 records: windows of 64, 128, 256 read.
        assert!(
            source.records.get() <= 4 * 200 + FIRST_WINDOW,
            "{}",
            source.records.get()
        );
        assert_eq!(source.reads.get(), 3);

        // A room with nothing to show gives up after the scan limit, not the stream.
        let source = counting(reader);
        let got = recent_in(&source, &room("big"), 2_000).unwrap();
        assert_eq!(got.len(), RECENT_SCAN_LIMIT as usize / 10);
        assert!(
            source.records.get() < 4 * RECENT_SCAN_LIMIT,
            "{}",
            source.records.get()
        );

        // A last page of the archive reads from the end too.
        let source = counting(reader);
        let q = MamQuery {
            max: 50,
            before: Some(String::new()),
            ..MamQuery::default()
        };
        let page = query_in(&source, &big, &q).unwrap();
        assert_eq!(page.messages.len(), 50);
        assert_eq!(page.last.as_deref(), Some("m9999"));
        assert!(!page.complete);
        assert!(
            source.records.get() <= 4 * 510 + FIRST_WINDOW,
            "{}",
            source.records.get()
        );
        // And the page before a recent message.
        let source = counting(reader);
        let q = MamQuery {
            max: 10,
            before: Some("m9950".into()),
            ..MamQuery::default()
        };
        let page = query_in(&source, &big, &q).unwrap();
        assert_eq!(page.first.as_deref(), Some("m9940"));
        assert_eq!(page.last.as_deref(), Some("m9949"));
        assert!(source.records.get() < 4_000, "{}", source.records.get());
    }

    #[test]
    fn recent_is_oldest_first_and_skips_purged_and_other_rooms() {
        let r = room("r");
        let other = room("other");
        let fx = build(&[
            (
                &r,
                vec![
                    Item::Create,
                    Item::Message("a", alice()),
                    Item::Purged("p"),
                    Item::Renew,
                    Item::Message("b", bob()),
                    Item::Message("c", alice()),
                ],
            ),
            (&other, chat(10)),
        ]);
        let reader: &Reader = &fx.journal;
        let got = recent_in(reader, &r, 20).unwrap();
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(got[1].from, bob());
        assert_eq!(got[1].body, "body of b");
        assert!(got[0].at < got[1].at);
        let got = recent_in(reader, &r, 2).unwrap();
        let ids: Vec<&str> = got.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert!(recent_in(reader, &r, 0).unwrap().is_empty());
        assert!(recent_in(reader, &room("none"), 20).unwrap().is_empty());
    }

    #[test]
    fn a_recreated_room_does_not_inherit_the_old_history() {
        let r = room("r");
        let fx = build(&[(
            &r,
            vec![
                Item::Create,
                Item::Message("old", alice()),
                Item::Delete,
                Item::Create,
                Item::Message("new", alice()),
            ],
        )]);
        let reader: &Reader = &fx.journal;
        let got = recent_in(reader, &r, 20).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "new");
        // The old room's ids are not anchors of the new archive.
        let q = MamQuery {
            after: Some("old".into()),
            ..MamQuery::default()
        };
        assert_eq!(
            query_in(reader, &r, &q).unwrap_err().condition(),
            "item-not-found"
        );
        // A destroyed room has no history.
        let gone = room("gone");
        let fx = build(&[(
            &gone,
            vec![Item::Create, Item::Message("x", alice()), Item::Delete],
        )]);
        let reader: &Reader = &fx.journal;
        assert!(recent_in(reader, &gone, 20).unwrap().is_empty());
    }

    #[test]
    fn mam_pages_forward_and_backward() {
        let r = room("r");
        let fx = build(&[(&r, chat(25))]);
        let reader: &Reader = &fx.journal;
        let q = |max: usize, after: Option<&str>, before: Option<&str>| MamQuery {
            max,
            after: after.map(str::to_owned),
            before: before.map(str::to_owned),
            ..MamQuery::default()
        };
        // The first page, then the next ones after its last.
        let page = query_in(reader, &r, &q(10, None, None)).unwrap();
        assert_eq!(page_ids(&page), ids(10));
        assert_eq!(page.first.as_deref(), Some("m0"));
        assert_eq!(page.last.as_deref(), Some("m9"));
        assert!(!page.complete);
        assert_eq!(page.count, Some(25));
        let page = query_in(reader, &r, &q(10, Some("m9"), None)).unwrap();
        assert_eq!(page_ids(&page), ids(20)[10..]);
        assert!(!page.complete);
        assert_eq!(page.count, None);
        let page = query_in(reader, &r, &q(10, Some("m19"), None)).unwrap();
        assert_eq!(page_ids(&page), ids(25)[20..]);
        assert!(page.complete);
        let page = query_in(reader, &r, &q(10, Some("m24"), None)).unwrap();
        assert!(page.messages.is_empty());
        assert!(page.complete);
        assert_eq!((page.first, page.last), (None, None));
        // The last page, then the ones before its first.
        let page = query_in(reader, &r, &q(10, None, Some(""))).unwrap();
        assert_eq!(page_ids(&page), ids(25)[15..]);
        assert!(!page.complete);
        let page = query_in(reader, &r, &q(10, None, Some("m15"))).unwrap();
        assert_eq!(page_ids(&page), ids(15)[5..]);
        assert!(!page.complete);
        let page = query_in(reader, &r, &q(10, None, Some("m5"))).unwrap();
        assert_eq!(page_ids(&page), ids(5));
        assert!(page.complete);
        // Exactly a page left is complete.
        let page = query_in(reader, &r, &q(5, None, Some("m5"))).unwrap();
        assert_eq!(page_ids(&page), ids(5));
        assert!(page.complete);
        let page = query_in(reader, &r, &q(5, Some("m19"), None)).unwrap();
        assert!(page.complete);
        // Between two ids.
        let page = query_in(reader, &r, &q(10, Some("m3"), Some("m7"))).unwrap();
        assert_eq!(page_ids(&page), ["m4", "m5", "m6"]);
        assert!(page.complete);
        let page = query_in(reader, &r, &q(10, Some("m7"), Some("m3"))).unwrap();
        assert!(page.messages.is_empty());
        // The count alone.
        let page = query_in(reader, &r, &q(0, None, None)).unwrap();
        assert!(page.messages.is_empty());
        assert_eq!(page.count, Some(25));
        assert!(!page.complete);
        // Pages are capped.
        let big = build(&[(&r, chat(150))]);
        let page = query_in(&*big.journal, &r, &q(1000, None, None)).unwrap();
        assert_eq!(page.messages.len(), MAX_PAGE);
        // Unknown anchors.
        for (after, before) in [
            (Some("nope"), None),
            (None, Some("nope")),
            (Some("m3"), Some("nope")),
        ] {
            let err = query_in(reader, &r, &q(10, after, before)).unwrap_err();
            assert_eq!(err.code(), "archive.item_not_found");
        }
    }

    #[test]
    fn mam_filters_by_time_and_sender() {
        let r = room("r");
        let fx = build(&[(&r, chat(20))]);
        let reader: &Reader = &fx.journal;
        let all = query_in(reader, &r, &MamQuery::default()).unwrap().messages;
        assert_eq!(all.len(), 20);
        // With: alice posted the even ones.
        let q = MamQuery {
            with: Some(alice()),
            ..MamQuery::default()
        };
        let page = query_in(reader, &r, &q).unwrap();
        assert_eq!(page.count, Some(10));
        assert!(page.messages.iter().all(|m| m.from == alice()));
        // Start and end are inclusive.
        let q = MamQuery {
            start: Some(all[5].at),
            end: Some(all[8].at),
            ..MamQuery::default()
        };
        let page = query_in(reader, &r, &q).unwrap();
        assert_eq!(page_ids(&page), ["m5", "m6", "m7", "m8"]);
        assert!(page.complete);
        // Backward within a time range, with an anchor older than the start.
        let q = MamQuery {
            start: Some(all[10].at),
            after: Some("m2".into()),
            before: Some(String::new()),
            max: 3,
            ..MamQuery::default()
        };
        let page = query_in(reader, &r, &q).unwrap();
        assert_eq!(page_ids(&page), ["m17", "m18", "m19"]);
        assert!(!page.complete);
        // Everything filtered, senders combined with pages.
        let q = MamQuery {
            with: Some(bob()),
            max: 2,
            before: Some("m9".into()),
            ..MamQuery::default()
        };
        let page = query_in(reader, &r, &q).unwrap();
        assert_eq!(page_ids(&page), ["m5", "m7"]);
        assert!(!page.complete);
    }

    #[test]
    fn the_engine_reads_its_own_journal() {
        // Through Engine: an engine over a fresh data directory has no rooms.
        let dir = tempfile::tempdir().unwrap();
        let mut config = conclave_engine::service::EngineConfig::new(dir.path());
        config.journal.sync = SyncMode::None;
        let engine = Engine::open(config).unwrap();
        assert!(recent(&engine, &room("r"), 20).unwrap().is_empty());
        let page = query(&engine, &room("r"), &MamQuery::default()).unwrap();
        assert!(page.messages.is_empty() && page.complete);
        assert_eq!(page.count, Some(0));
    }
}

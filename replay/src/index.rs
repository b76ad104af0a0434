//! Point-in-time reconstruction: periodic snapshots of the whole state, plus a short
//! catch-up from the nearest one.
//!
//! One pass over the journal folds every event with the engine's own `evolve` and keeps
//! a copy of the state every `snapshot_every` records, and every record's time. The
//! state's collections are persistent maps ([`conclave_engine::state::Map`]), so a
//! snapshot is a clone that shares everything with the live state and the snapshot
//! before it: it costs the nodes the fold changes after it, not the size of the state.
//! A running server keeps its index current from the engine's committed feed
//! ([`ReplayIndex::apply`]) instead of re-reading the journal. The state
//! as of sequence `n` is then the snapshot at or before `n` plus at most
//! `snapshot_every - 1` events. For one room the catch-up decodes only the events that
//! can change that room (its own stream, account and server streams, and room creation
//! or deletion, which moves rooms in and out of the tree); other rooms' traffic is
//! skipped by stream name without being decoded.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use conclave_engine::{evolve, Event, Policy, RoomName, State};
use conclave_journal::{Hash, Journal, Record, ZERO_HASH};

use crate::error::{ReplayError, Result};
use crate::view::{RoomView, ServerView};
use crate::walk::decode_for_state;

/// How to build an index.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Records between snapshots: smaller answers faster and holds more memory.
    pub snapshot_every: u64,
    /// The configured policy the server started from (replay starts from it, as the
    /// engine does; run-time policy changes are journaled and replayed).
    pub policy: Policy,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            snapshot_every: 4096,
            policy: Policy::default(),
        }
    }
}

/// Snapshots and record times of one journal up to `head`.
pub struct ReplayIndex {
    config: IndexConfig,
    head: u64,
    head_hash: Hash,
    /// Running maximum of record times (micros), at index `seq - 1`: monotone even if a
    /// clock went backwards, so "as of time T" is a binary search.
    times: Vec<i64>,
    /// `(seq, state after seq)`, ascending, starting with `(0, empty state)`.
    snapshots: Vec<(u64, Arc<State>)>,
    /// The state at `head`, kept to extend the index.
    last: State,
    /// Every (account, identity) link ever made, unlinked ones included: a person's
    /// timeline covers identities they used before an unlink too.
    links: BTreeSet<(String, String)>,
}

impl ReplayIndex {
    /// Folds the whole journal once.
    pub fn build(journal: &Journal, config: IndexConfig) -> Result<Self> {
        let mut index = ReplayIndex::new(config)?;
        index.refresh(journal)?;
        Ok(index)
    }

    /// An index of nothing yet (head 0), to be extended with [`ReplayIndex::refresh`]
    /// or [`ReplayIndex::apply`].
    pub fn new(config: IndexConfig) -> Result<Self> {
        if config.snapshot_every == 0 {
            return Err(ReplayError::InvalidArgument(
                "snapshot_every must be at least 1".into(),
            ));
        }
        let empty = State::new(config.policy.clone());
        Ok(ReplayIndex {
            head: 0,
            head_hash: ZERO_HASH,
            times: Vec::new(),
            snapshots: vec![(0, Arc::new(empty.clone()))],
            last: empty,
            links: BTreeSet::new(),
            config,
        })
    }

    /// Folds the records appended since the index was built or last refreshed.
    ///
    /// One thread: decoding on a second thread was measured slower, as every decoded
    /// event is then freed on another thread than the one that allocated it.
    pub fn refresh(&mut self, journal: &Journal) -> Result<u64> {
        let mut added = 0;
        for record in journal.iter_from(self.head + 1) {
            let record = record?;
            let event = decode_for_state(journal, &record)?;
            self.push(&record, &event);
            added += 1;
        }
        Ok(added)
    }

    /// Folds one committed event as the engine's feed delivers it (record and decoded
    /// event), so a live server's index never re-reads what the engine already decoded.
    /// An event at or below the head is ignored (`Ok(false)`); a gap (events the feed
    /// skipped or the index has not seen) is filled from the journal first.
    pub fn apply(&mut self, journal: &Journal, record: &Record, event: &Event) -> Result<bool> {
        if record.seq <= self.head {
            return Ok(false);
        }
        if record.seq > self.head + 1 {
            for earlier in journal.iter_range(self.head + 1, record.seq - 1) {
                let earlier = earlier?;
                let e = decode_for_state(journal, &earlier)?;
                self.push(&earlier, &e);
            }
        }
        if record.seq != self.head + 1 {
            return Err(ReplayError::InvalidArgument(format!(
                "record {} does not follow the indexed head {}",
                record.seq, self.head
            )));
        }
        self.push(record, event);
        Ok(true)
    }

    /// Folds the record after the head.
    fn push(&mut self, record: &Record, event: &Event) {
        if let Some(link) = conclave_engine::retention::link_of(event) {
            self.links.insert(link);
        }
        evolve(&mut self.last, event);
        let max = self
            .times
            .last()
            .copied()
            .unwrap_or(i64::MIN)
            .max(record.timestamp.timestamp_micros());
        self.times.push(max);
        self.head = record.seq;
        self.head_hash = record.hash;
        if record.seq.is_multiple_of(self.config.snapshot_every) {
            // A clone of persistent maps: shares every node with `last` until the fold
            // changes it.
            self.snapshots
                .push((record.seq, Arc::new(self.last.clone())));
        }
    }

    /// The last sequence number indexed.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The hash of the record at `head`.
    pub fn head_hash(&self) -> Hash {
        self.head_hash
    }

    /// Snapshots held (including the empty one at 0).
    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    /// The state at the head.
    pub fn current(&self) -> &State {
        &self.last
    }

    /// The last sequence number at or before time `t` (0 if the journal starts later).
    pub fn seq_at(&self, t: DateTime<Utc>) -> u64 {
        let micros = t.timestamp_micros();
        self.times.partition_point(|m| *m <= micros) as u64
    }

    /// The first sequence number at or after time `t` (head + 1 if none).
    pub fn first_seq_from(&self, t: DateTime<Utc>) -> u64 {
        let micros = t.timestamp_micros();
        self.times.partition_point(|m| *m < micros) as u64 + 1
    }

    /// Everything that names one person: the principal given (`account:<id>` or an
    /// address), the account(s) any of its identities were ever linked to, and every
    /// identity ever linked to those accounts.
    pub fn person_names(&self, who: &str) -> BTreeSet<String> {
        conclave_engine::retention::person_names(&self.links, who)
    }

    /// The time of record `seq` as the index saw it (the running maximum).
    pub fn time_of(&self, seq: u64) -> Option<DateTime<Utc>> {
        let i = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.times
            .get(i)
            .and_then(|m| DateTime::from_timestamp_micros(*m))
    }

    fn check(&self, seq: u64) -> Result<()> {
        if seq > self.head {
            return Err(ReplayError::InvalidArgument(format!(
                "sequence {seq} is past the indexed head {}",
                self.head
            )));
        }
        Ok(())
    }

    fn snapshot_before(&self, seq: u64) -> &(u64, Arc<State>) {
        let i = self.snapshots.partition_point(|(s, _)| *s <= seq);
        // The first snapshot is at 0, so `i >= 1` for every `seq`.
        &self.snapshots[i.saturating_sub(1)]
    }

    /// The whole server's state as of `seq` (after applying record `seq`).
    pub fn state_at(&self, journal: &Journal, seq: u64) -> Result<State> {
        self.check(seq)?;
        if seq == self.head {
            return Ok(self.last.clone());
        }
        let (base, snapshot) = self.snapshot_before(seq);
        let mut state = State::clone(snapshot);
        if *base < seq {
            for record in journal.iter_range(base + 1, seq) {
                let record = record?;
                evolve(&mut state, &decode_for_state(journal, &record)?);
            }
        }
        Ok(state)
    }

    /// One room as of `seq`; `None` if it did not exist then.
    pub fn room_at(
        &self,
        journal: &Journal,
        room: &RoomName,
        seq: u64,
    ) -> Result<Option<RoomView>> {
        self.check(seq)?;
        let state = if seq == self.head {
            None
        } else {
            let (base, snapshot) = self.snapshot_before(seq);
            // O(1): the clone shares the snapshot's nodes; the catch-up copies only the
            // paths its events change.
            let mut state = State::clone(snapshot);
            let own = format!("room:{room}");
            if *base < seq {
                for record in journal.iter_range(base + 1, seq) {
                    let record = record?;
                    if !affects_room(&record.stream, &record.event_type, &own) {
                        continue;
                    }
                    evolve(&mut state, &decode_for_state(journal, &record)?);
                }
            }
            Some(state)
        };
        let state = state.as_ref().unwrap_or(&self.last);
        Ok(RoomView::of(state, room, seq, self.time_of(seq)))
    }

    /// The whole server as of `seq`, as a view.
    pub fn server_at(&self, journal: &Journal, seq: u64) -> Result<ServerView> {
        let state = self.state_at(journal, seq)?;
        Ok(ServerView::of(&state, seq, self.time_of(seq)))
    }
}

/// Whether a record can change room `own` (`room:<name>`): its own stream, account and
/// server streams (links, bans, disabled accounts, autobans), and the creation or
/// deletion of any room (parents and children).
pub(crate) fn affects_room(stream: &str, event_type: &str, own: &str) -> bool {
    stream == own
        || !stream.starts_with("room:")
        || matches!(event_type, "room_create" | "room_delete" | "room_expire")
}

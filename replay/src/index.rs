//! Point-in-time reconstruction: periodic snapshots of the whole state, plus a short
//! catch-up from the nearest one.
//!
//! One pass over the journal folds every event with the engine's own `evolve` and keeps
//! a copy of the state every `snapshot_every` records, and every record's time. The state
//! as of sequence `n` is then the snapshot at or before `n` plus at most
//! `snapshot_every - 1` events. For one room the catch-up decodes only the events that
//! can change that room (its own stream, account and server streams, and room creation
//! or deletion, which moves rooms in and out of the tree); other rooms' traffic is
//! skipped by stream name without being decoded.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use conclave_engine::model::RoomConfig;
use conclave_engine::state::Room;
use conclave_engine::{evolve, Policy, RoomName, State};
use conclave_journal::{Hash, Journal, ZERO_HASH};

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
        if config.snapshot_every == 0 {
            return Err(ReplayError::InvalidArgument(
                "snapshot_every must be at least 1".into(),
            ));
        }
        let empty = State::new(config.policy.clone());
        let mut index = ReplayIndex {
            head: 0,
            head_hash: ZERO_HASH,
            times: Vec::new(),
            snapshots: vec![(0, Arc::new(empty.clone()))],
            last: empty,
            links: BTreeSet::new(),
            config,
        };
        index.refresh(journal)?;
        Ok(index)
    }

    /// Folds the records appended since the index was built or last refreshed.
    ///
    /// One thread: decoding on a second thread was measured slower, as every decoded
    /// event is then freed on another thread than the one that allocated it.
    pub fn refresh(&mut self, journal: &Journal) -> Result<u64> {
        let mut added = 0;
        let mut max = self.times.last().copied().unwrap_or(i64::MIN);
        for record in journal.iter_from(self.head + 1) {
            let record = record?;
            let event = decode_for_state(journal, &record)?;
            if let Some(link) = conclave_engine::retention::link_of(&event) {
                self.links.insert(link);
            }
            evolve(&mut self.last, &event);
            max = max.max(record.timestamp.timestamp_micros());
            self.times.push(max);
            self.head = record.seq;
            self.head_hash = record.hash;
            added += 1;
            if record.seq.is_multiple_of(self.config.snapshot_every) {
                self.snapshots
                    .push((record.seq, Arc::new(self.last.clone())));
            }
        }
        Ok(added)
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
            let mut state = partial_clone(snapshot, room);
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

/// A copy of `full` that is exact for `room` and cheap: server-wide and account state
/// in full, `room` in full, every other room as an empty shell that keeps only what the
/// room tree needs (parent, depth, children, owning account), so that creations and
/// deletions replay exactly as on the full state.
fn partial_clone(full: &State, room: &RoomName) -> State {
    let rooms = full
        .rooms
        .iter()
        .map(|(name, r)| {
            if name == room {
                return (name.clone(), r.clone());
            }
            let mut shell = Room::new(
                r.parent.clone(),
                r.depth,
                r.created_at,
                RoomConfig::default(),
            );
            shell.children.clone_from(&r.children);
            shell.account.clone_from(&r.account);
            (name.clone(), shell)
        })
        .collect();
    State {
        policy: full.policy.clone(),
        accounts: full.accounts.clone(),
        identities: full.identities.clone(),
        rooms,
        room_keys: full.room_keys.clone(),
        server_bans: full.server_bans.clone(),
        server_address_bans: full.server_address_bans.clone(),
        autobans: full.autobans.clone(),
        // Failure counts only feed autoban decisions, never a room's state.
        failures: Default::default(),
        online: full.online,
        // Credentials never change a room's state.
        sip_credentials: Default::default(),
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

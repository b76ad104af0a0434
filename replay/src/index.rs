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
//!
//! One in [`IndexConfig::persist_one_in`] snapshots can be stored on disk
//! ([`ReplayIndex::persist_job`], module [`crate::persist`]), so a restarted server opens
//! the index lazily ([`ReplayIndex::open_persisted`]): it reads the record times and the
//! list of stored snapshots, loads one snapshot when a query needs it and folds from
//! there, while the dense index is rebuilt in the background.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use conclave_engine::{evolve, Event, Policy, RoomName, State};
use conclave_journal::{Hash, Journal, Record, ZERO_HASH};

use crate::error::{ReplayError, Result};
use crate::persist;
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
    /// One snapshot in this many is stored on disk by [`ReplayIndex::persist_job`]
    /// (with the default spacing, one every 65 536 records), plus the state at the head.
    pub persist_one_in: u64,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            snapshot_every: 4096,
            policy: Policy::default(),
            persist_one_in: 16,
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
    /// `(seq, state after seq)`, ascending, starting with `(0, empty state)` (held).
    snapshots: Vec<(u64, Slot)>,
    /// The state at `head`, kept to extend the index; `None` in an index opened from
    /// stored snapshots, which extends only its times and links (its queries fold from
    /// the last stored snapshot) until it is replaced by a dense one.
    last: Option<State>,
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
            snapshots: vec![(0, Slot::Held(Arc::new(empty.clone()), ZERO_HASH))],
            last: Some(empty),
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
        let Some(last) = self.last.as_mut() else {
            // An index opened from stored snapshots: times and links only.
            self.extend_times(record);
            return;
        };
        evolve(last, event);
        let snapshot = record
            .seq
            .is_multiple_of(self.config.snapshot_every)
            .then(|| Arc::new(last.clone()));
        self.extend_times(record);
        if let Some(state) = snapshot {
            // A clone of persistent maps: shares every node with `last` until the fold
            // changes it.
            self.snapshots
                .push((record.seq, Slot::Held(state, record.hash)));
        }
    }

    fn extend_times(&mut self, record: &Record) {
        let max = self
            .times
            .last()
            .copied()
            .unwrap_or(i64::MIN)
            .max(record.timestamp.timestamp_micros());
        self.times.push(max);
        self.head = record.seq;
        self.head_hash = record.hash;
    }

    /// The last sequence number indexed.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The hash of the record at `head`.
    pub fn head_hash(&self) -> Hash {
        self.head_hash
    }

    /// Snapshots held or stored (including the empty one at 0).
    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    /// The state at the head; `None` in an index opened from stored snapshots (use
    /// [`ReplayIndex::state_at`] with [`ReplayIndex::head`]).
    pub fn current(&self) -> Option<&State> {
        self.last.as_ref()
    }

    /// Whether this index was opened from stored snapshots and has not folded the
    /// journal itself (its queries fold from the last stored snapshot before them).
    pub fn is_lazy(&self) -> bool {
        self.last.is_none()
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

    /// The nearest usable snapshot at or before `seq`: a stored one is loaded on first
    /// use; one that cannot be loaded is skipped for the one before it.
    fn snapshot_before(&self, journal: &Journal, seq: u64) -> (u64, Arc<State>) {
        let mut i = self.snapshots.partition_point(|(s, _)| *s <= seq);
        while i > 0 {
            i -= 1;
            let (at, slot) = &self.snapshots[i];
            if let Some(state) = slot.state(journal, *at) {
                return (*at, state);
            }
        }
        // Unreachable: the first snapshot is the held empty state at 0.
        (0, Arc::new(State::new(self.config.policy.clone())))
    }

    /// The whole server's state as of `seq` (after applying record `seq`).
    pub fn state_at(&self, journal: &Journal, seq: u64) -> Result<State> {
        self.check(seq)?;
        if let Some(last) = self.last.as_ref().filter(|_| seq == self.head) {
            return Ok(last.clone());
        }
        let (base, snapshot) = self.snapshot_before(journal, seq);
        let mut state = State::clone(&snapshot);
        if base < seq {
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
        if let Some(last) = self.last.as_ref().filter(|_| seq == self.head) {
            return Ok(RoomView::of(last, room, seq, self.time_of(seq)));
        }
        let (base, snapshot) = self.snapshot_before(journal, seq);
        // O(1): the clone shares the snapshot's nodes; the catch-up copies only the
        // paths its events change.
        let mut state = State::clone(&snapshot);
        let own = format!("room:{room}");
        if base < seq {
            for record in journal.iter_range(base + 1, seq) {
                let record = record?;
                if !affects_room(&record.stream, &record.event_type, &own) {
                    continue;
                }
                evolve(&mut state, &decode_for_state(journal, &record)?);
            }
        }
        Ok(RoomView::of(&state, room, seq, self.time_of(seq)))
    }

    /// The whole server as of `seq`, as a view.
    pub fn server_at(&self, journal: &Journal, seq: u64) -> Result<ServerView> {
        let state = self.state_at(journal, seq)?;
        Ok(ServerView::of(&state, seq, self.time_of(seq)))
    }
}

/// A snapshot: in memory, or stored on disk and loaded on first use.
enum Slot {
    /// The state and the hash of the record it is after.
    Held(Arc<State>, Hash),
    Stored {
        dir: PathBuf,
        hash: Hash,
        /// `None` once loading failed: the file is then ignored.
        loaded: OnceLock<Option<Arc<State>>>,
    },
}

impl Slot {
    fn state(&self, journal: &Journal, seq: u64) -> Option<Arc<State>> {
        match self {
            Slot::Held(state, _) => Some(state.clone()),
            Slot::Stored { dir, hash, loaded } => loaded
                .get_or_init(|| match persist::load_snapshot(dir, seq, hash, journal) {
                    Ok(state) => Some(Arc::new(state)),
                    Err(why) => {
                        tracing::warn!(seq, %why, "ignoring a stored replay snapshot");
                        None
                    }
                })
                .clone(),
        }
    }
}

impl ReplayIndex {
    /// Opens the index stored in `dir` (by [`ReplayIndex::persist_job`]) for `journal`,
    /// lazily: reads the record times, the links and the list of stored snapshots, and
    /// loads no snapshot until a query needs one. Records after the stored head are
    /// folded for their times and links only. `None` (and why, logged) if nothing
    /// usable is stored: none, unreadable, another build of the state, another starting
    /// policy or another journal.
    pub fn open_persisted(journal: &Journal, config: IndexConfig, dir: &Path) -> Option<Self> {
        let meta = match persist::load_meta(dir, &config.policy, journal) {
            Ok(meta) => meta,
            Err(why) => {
                tracing::info!(dir = %dir.display(), %why, "no usable stored replay index; building it");
                return None;
            }
        };
        let mut index = ReplayIndex::new(config).ok()?;
        let mut t = 0i64;
        index.times = meta
            .time_deltas
            .iter()
            .map(|d| {
                t = t.wrapping_add(*d);
                t
            })
            .collect();
        index.links = meta.links.into_iter().collect();
        index.head = meta.head;
        index.head_hash = meta.head_hash;
        index.last = None;
        for (seq, hash) in meta.snapshots {
            index.snapshots.push((
                seq,
                Slot::Stored {
                    dir: dir.to_path_buf(),
                    hash,
                    loaded: OnceLock::new(),
                },
            ));
        }
        match index.refresh(journal) {
            Ok(_) => Some(index),
            Err(e) => {
                tracing::warn!(error = %e, "cannot extend the stored replay index; building it");
                None
            }
        }
    }

    /// What [`PersistJob::write`] needs to store this index in `dir`: the snapshots at
    /// multiples of `snapshot_every * persist_one_in` and the state at the head (shared
    /// with the index, not copied), the times and the links. `None` for an index opened
    /// from stored snapshots (what it could store is already there).
    pub fn persist_job(&self, dir: &Path) -> Option<PersistJob> {
        let last = self.last.as_ref()?;
        let spacing = self
            .config
            .snapshot_every
            .saturating_mul(self.config.persist_one_in.max(1));
        let mut snapshots: Vec<(u64, Hash, Arc<State>)> = self
            .snapshots
            .iter()
            .filter(|(seq, _)| *seq > 0 && seq.is_multiple_of(spacing) && *seq < self.head)
            .filter_map(|(seq, slot)| match slot {
                Slot::Held(state, hash) => Some((*seq, *hash, state.clone())),
                Slot::Stored { .. } => None,
            })
            .collect();
        if self.head > 0 {
            snapshots.push((self.head, self.head_hash, Arc::new(last.clone())));
        }
        let mut prev = 0i64;
        let time_deltas = self
            .times
            .iter()
            .map(|t| {
                let d = t.wrapping_sub(prev);
                prev = *t;
                d
            })
            .collect();
        Some(PersistJob {
            dir: dir.to_path_buf(),
            policy: persist::policy_digest(&self.config.policy),
            head: self.head,
            head_hash: self.head_hash,
            time_deltas,
            links: self.links.iter().cloned().collect(),
            snapshots,
        })
    }
}

/// A snapshot of an index to store, taken under the index's lock and written without
/// it ([`PersistJob::write`]).
pub struct PersistJob {
    dir: PathBuf,
    policy: Hash,
    head: u64,
    head_hash: Hash,
    time_deltas: Vec<i64>,
    links: Vec<(String, String)>,
    snapshots: Vec<(u64, Hash, Arc<State>)>,
}

/// What [`PersistJob::write`] did.
#[derive(Debug, Clone, Default)]
pub struct PersistReport {
    /// Snapshot files stored (written now or found sound).
    pub snapshots: usize,
    /// Snapshot files written now.
    pub written: usize,
    /// Bytes of the directory after the write (meta and snapshots).
    pub bytes: u64,
}

impl PersistJob {
    /// The head the job stores.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Writes the snapshots not already stored soundly, then the meta that lists them,
    /// then removes the files it no longer lists.
    pub fn write(self) -> Result<PersistReport> {
        let dir = &self.dir;
        std::fs::create_dir_all(dir).map_err(|e| ReplayError::io(dir, e))?;
        let mut hashes = Vec::with_capacity(self.snapshots.len());
        let mut report = PersistReport::default();
        for (seq, hash, state) in &self.snapshots {
            let (seq, hash) = (*seq, *hash);
            if !persist::snapshot_is_stored(dir, seq, &hash) {
                persist::write_snapshot(dir, seq, &hash, state)
                    .map_err(|e| ReplayError::io(dir, e))?;
                report.written += 1;
            }
            hashes.push((seq, hash));
        }
        report.snapshots = hashes.len();
        let meta = persist::Meta {
            head: self.head,
            head_hash: self.head_hash,
            policy: self.policy,
            time_deltas: self.time_deltas,
            links: self.links,
            snapshots: hashes,
        };
        persist::write_meta(dir, &meta).map_err(|e| ReplayError::io(dir, e))?;
        report.bytes = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        Ok(report)
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

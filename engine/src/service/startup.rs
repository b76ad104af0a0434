//! Start-up checks: the engine starts only on a journal that holds everything its data
//! directory shows was acknowledged, and whose chain verifies.
//!
//! The data directory keeps evidence of what was acknowledged outside the journal
//! database, so that a journal deleted with its directory, or replaced by an older copy,
//! is not mistaken for a new one:
//! - `journal-head`, the head witness: the journal's durable-head marker, written beside
//!   the one inside `journal/` after every durable flush that moved the head
//!   ([`conclave_journal::JournalConfig::head_witness`]). It names a durable record:
//!   a journal without it is refused whatever the sync mode.
//! - the checkpoint in `projections/`: the committed state with the (sequence, hash) it
//!   covers. It covers acknowledged records, which with sync mode `always` are durable:
//!   a journal that ends before it is refused. With `batch` and `none` a crash may lose
//!   acknowledged records by design, so a journal that ends before the checkpoint only
//!   logs a warning there, unless the journal is gone altogether (no crash does that).
//!
//! Refusing is the default for every finding. The escape hatches are explicit, one-off
//! operator decisions recorded in the data directory by `conclave journal` commands,
//! not flags that could stay in a service file and wave through the next incident:
//! - [`accept_loss`] (`conclave journal accept-loss`) moves the evidence aside (renamed
//!   with a `.lost-<unix time>` suffix, never deleted), after which the engine starts
//!   from what the journal holds;
//! - [`allow_read_only`] (`conclave journal allow-read-only --seq N`) lets the engine
//!   start read-only on a journal whose first bad record is `N` and whose head has not
//!   moved since: the state as of record `N - 1`, every command refused, health
//!   degraded. Any other damage is refused again.

use std::path::{Path, PathBuf};

use conclave_journal::{
    read_head_marker, Hash, Journal, JournalError, SyncMode, VerifyFailure, HEAD_MARKER,
};

use super::checkpoint::CheckpointStore;
use super::EngineError;

/// Where a data directory keeps the journal and the evidence about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataLayout {
    pub root: PathBuf,
}

impl DataLayout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataLayout { root: root.into() }
    }

    /// The journal's sled directory.
    pub fn journal(&self) -> PathBuf {
        self.root.join("journal")
    }

    /// The head witness (see the module documentation).
    pub fn head_witness(&self) -> PathBuf {
        self.root.join("journal-head")
    }

    /// The checkpoint store.
    pub fn projections(&self) -> PathBuf {
        self.root.join("projections")
    }

    /// The operator's decision to start read-only on a damaged journal.
    pub fn read_only_decision(&self) -> PathBuf {
        self.root.join("journal-read-only")
    }

    /// Whether the journal directory holds a database (not nothing, not an empty
    /// directory where sled would create a new one).
    pub fn has_journal(&self) -> bool {
        self.journal().join("db").is_file()
    }
}

/// What the data directory says was acknowledged, read without writing anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The head witness: a durable (sequence, hash).
    pub witness: Option<(u64, Hash)>,
    /// The checkpoint's (sequence, hash).
    pub checkpoint: Option<(u64, Hash)>,
}

impl Evidence {
    /// Reads the evidence of `layout`: the witness file, and the checkpoint from a
    /// private copy of the store. Only reads.
    pub fn read(layout: &DataLayout) -> Result<Evidence, EngineError> {
        Ok(Evidence {
            witness: read_head_marker(&layout.head_witness())?,
            checkpoint: CheckpointStore::head_of_copy(&layout.projections()),
        })
    }

    /// The highest head the evidence names (0 if none).
    pub fn expected_head(&self) -> u64 {
        [self.witness, self.checkpoint]
            .into_iter()
            .flatten()
            .map(|(seq, _)| seq)
            .max()
            .unwrap_or(0)
    }
}

/// Refuses to go on when the journal is missing but the head witness names records:
/// checked before anything is opened or created.
pub(super) fn refuse_missing_journal(layout: &DataLayout) -> Result<(), EngineError> {
    if layout.has_journal() {
        return Ok(());
    }
    if let Some((seq, _)) = read_head_marker(&layout.head_witness())? {
        if seq > 0 {
            return Err(refuse_loss(
                layout,
                seq,
                0,
                &layout.head_witness(),
                "missing",
            ));
        }
    }
    Ok(())
}

/// Checks the journal's head `found` against the checkpoint's head (the witness is
/// checked by the journal itself on open). `journal_existed`: whether the database was
/// there before this start (if not, it is about to be created empty).
pub(super) fn check_checkpoint(
    layout: &DataLayout,
    found: u64,
    journal_existed: bool,
    checkpoint: Option<(u64, Hash)>,
    sync: SyncMode,
) -> Result<(), EngineError> {
    let Some((seq, _)) = checkpoint else {
        return Ok(());
    };
    if seq <= found {
        return Ok(());
    }
    if !journal_existed {
        return Err(refuse_loss(
            layout,
            seq,
            found,
            &layout.projections(),
            "missing",
        ));
    }
    if sync == SyncMode::Always {
        return Err(refuse_loss(
            layout,
            seq,
            found,
            &layout.projections(),
            "short",
        ));
    }
    tracing::warn!(
        journal = %layout.journal().display(),
        checkpoint = seq,
        journal_head = found,
        ?sync,
        "the journal ends before the checkpoint: acknowledged records were lost in a crash, \
         as this sync mode allows; starting from what the journal holds"
    );
    Ok(())
}

/// Logs what the operator can do about a journal that does not open: shorter than its
/// marker or the witness, or damaged where opening reads (sled's recovery, the last
/// record). Returns the error as the engine's.
pub(super) fn explain_open_error(layout: &DataLayout, e: JournalError) -> EngineError {
    match e {
        JournalError::Truncated {
            acknowledged,
            found,
        } => {
            // Which marker said so: the witness outside, or the marker inside.
            let witness = read_head_marker(&layout.head_witness()).ok().flatten();
            let evidence = if witness.is_some_and(|(seq, _)| seq == acknowledged) {
                layout.head_witness()
            } else {
                layout.journal().join(HEAD_MARKER)
            };
            refuse_loss(
                layout,
                acknowledged,
                found,
                &evidence,
                "shorter than acknowledged, or replaced",
            )
        }
        other => {
            tracing::error!(
                journal = %layout.journal().display(),
                error = %other,
                code = other.code(),
                recovery = %format!(
                    "restore {} from a backup; inspect with `conclave journal verify --data {}`",
                    layout.journal().display(),
                    layout.root.display()
                ),
                "refusing to start: the journal cannot be opened"
            );
            EngineError::Journal(other)
        }
    }
}

/// The refusal of a journal missing or shorter than the evidence: logged with every
/// detail (directory, heads, evidence, recovery), returned as `journal.truncated`.
fn refuse_loss(
    layout: &DataLayout,
    expected: u64,
    found: u64,
    evidence: &Path,
    how: &str,
) -> EngineError {
    tracing::error!(
        journal = %layout.journal().display(),
        expected_head = expected,
        found_head = found,
        evidence = %evidence.display(),
        recovery = %format!(
            "restore {} from a backup; or, to start from what is left, `conclave journal accept-loss --data {}`",
            layout.journal().display(),
            layout.root.display()
        ),
        "refusing to start: the journal is {how}: it does not hold record {expected}, which was acknowledged (found head {found})"
    );
    EngineError::Journal(JournalError::Truncated {
        acknowledged: expected,
        found,
    })
}

/// How the journal passed the start-up verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// The chain verifies.
    Verified,
    /// It does not, and the operator chose a read-only start on this damage.
    ReadOnly(ReadOnly),
}

/// A read-only start on a damaged journal: what is known to be bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnly {
    /// The first bad record; the state is the journal's up to the record before it.
    pub first_bad: u64,
    /// The journal's head (records after `first_bad` are not applied).
    pub head: u64,
    /// What is wrong with it, and where.
    pub problem: String,
}

/// Verifies the whole chain; refuses a damaged journal unless the operator's read-only
/// decision names exactly this damage.
pub(super) fn verify(layout: &DataLayout, journal: &Journal) -> Result<Integrity, EngineError> {
    let started = std::time::Instant::now();
    let report = journal.verify()?;
    let decision = read_decision(&layout.read_only_decision())?;
    tracing::info!(
        records = report.records_checked,
        elapsed_ms = started.elapsed().as_millis() as u64,
        ok = report.is_ok(),
        "journal verified at start"
    );
    let Some(failure) = report.first_failure else {
        if decision.is_some() {
            tracing::warn!(
                decision = %layout.read_only_decision().display(),
                "the journal verifies: the read-only decision is stale and ignored; remove it"
            );
        }
        return Ok(Integrity::Verified);
    };
    let head = journal.head();
    let problem = describe_problem(&failure);
    if decision == Some((failure.seq, head)) {
        tracing::error!(
            journal = %layout.journal().display(),
            first_bad = failure.seq,
            head,
            problem = %problem,
            "starting READ-ONLY on a damaged journal, as decided in {}: the state is as of record {}, every command is refused",
            layout.read_only_decision().display(),
            failure.seq - 1
        );
        return Ok(Integrity::ReadOnly(ReadOnly {
            first_bad: failure.seq,
            head,
            problem,
        }));
    }
    tracing::error!(
        journal = %layout.journal().display(),
        first_bad = failure.seq,
        head,
        problem = %problem,
        decision = ?decision,
        recovery = %format!(
            "restore {} from a backup; inspect with `conclave journal verify --data {}`; or start read-only on this damage with `conclave journal allow-read-only --data {} --seq {}`",
            layout.journal().display(),
            layout.root.display(),
            layout.root.display(),
            failure.seq
        ),
        "refusing to start: journal record {} is damaged",
        failure.seq
    );
    Err(EngineError::Journal(JournalError::Corrupt {
        seq: failure.seq,
        reason: format!("{problem} (chain verification at start)"),
    }))
}

/// A failure with where its bytes are, for messages: "record N: what [where]".
pub fn describe(failure: &VerifyFailure) -> String {
    format!("record {}: {}", failure.seq, describe_problem(failure))
}

/// What is wrong with the failing record, and where its bytes are.
fn describe_problem(failure: &VerifyFailure) -> String {
    match &failure.location {
        Some(at) => format!("{} [{at}]", failure.problem),
        None => failure.problem.to_string(),
    }
}

const DECISION_MAGIC: &str = "conclave-journal-read-only v1";

/// Reads a read-only decision: (first bad record, head). A damaged file is an error.
fn read_decision(path: &Path) -> Result<Option<(u64, u64)>, EngineError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EngineError::Journal(JournalError::Open {
                path: path.display().to_string(),
                reason: e.to_string(),
            }))
        }
    };
    let parse = || {
        let mut lines = text.lines();
        if lines.next()? != DECISION_MAGIC {
            return None;
        }
        let first_bad = lines.next()?.strip_prefix("first_bad ")?.parse().ok()?;
        let head = lines.next()?.strip_prefix("head ")?.parse().ok()?;
        Some((first_bad, head))
    };
    parse().map(Some).ok_or_else(|| {
        EngineError::Journal(JournalError::Open {
            path: path.display().to_string(),
            reason: "the read-only decision is malformed".into(),
        })
    })
}

/// Records the operator's decision to start read-only on a journal whose first bad
/// record is `first_bad` and whose head is `head` (durably, in the data directory).
pub fn allow_read_only(
    layout: &DataLayout,
    first_bad: u64,
    head: u64,
) -> Result<PathBuf, EngineError> {
    let path = layout.read_only_decision();
    let text = format!("{DECISION_MAGIC}\nfirst_bad {first_bad}\nhead {head}\n");
    conclave_journal::durable::replace_file(&path, text.as_bytes()).map_err(|e| {
        EngineError::Journal(JournalError::Storage(format!("{}: {e}", path.display())))
    })?;
    Ok(path)
}

/// What [`accept_loss`] moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedLoss {
    /// (from, to) renames.
    pub moved: Vec<(PathBuf, PathBuf)>,
}

/// Whether a piece of evidence `(seq, hash)` contradicts `journal` (`None`: missing): the
/// journal ends before `seq`, or holds another record there.
pub fn contradicts(journal: Option<&Journal>, evidence: Option<(u64, Hash)>) -> bool {
    let Some((seq, hash)) = evidence else {
        return false;
    };
    if seq == 0 {
        return false;
    }
    match journal {
        None => true,
        Some(j) => seq > j.head() || !matches!(j.get(seq), Ok(Some(r)) if r.hash == hash),
    }
}

/// The operator accepts that the journal lost acknowledged records: every piece of
/// evidence that `journal` (what is left of it, opened without its own marker check;
/// `None` if it is missing) contradicts is renamed aside with a `.lost-<unix time>`
/// suffix (kept for inspection, never deleted), so the next start goes on from what the
/// journal holds. Run with the server stopped.
pub fn accept_loss(
    layout: &DataLayout,
    journal: Option<&Journal>,
) -> Result<AcceptedLoss, EngineError> {
    let evidence = Evidence::read(layout)?;
    let inner = layout.journal().join(HEAD_MARKER);
    let inner_head = read_head_marker(&inner).ok().flatten();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut moved = Vec::new();
    for (path, found) in [
        (layout.head_witness(), evidence.witness),
        (inner, inner_head),
        (layout.projections(), evidence.checkpoint),
    ] {
        if !contradicts(journal, found) {
            continue;
        }
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".lost-{stamp}"));
        let to = path.with_file_name(name);
        std::fs::rename(&path, &to).map_err(|e| {
            EngineError::Journal(JournalError::Storage(format!(
                "moving {} aside: {e}",
                path.display()
            )))
        })?;
        if let Some(dir) = to.parent() {
            let _ = conclave_journal::durable::sync_dir(dir);
        }
        moved.push((path, to));
    }
    Ok(AcceptedLoss { moved })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use conclave_journal::storage::SledStorage;
    use conclave_journal::{JournalConfig, JournalCopy};

    use super::*;
    use crate::command::Command;
    use crate::service::{Engine, EngineConfig, Request};
    use crate::{Actor, Address, Origin, Principal, RoomName};

    fn config(dir: &Path, sync: SyncMode) -> EngineConfig {
        let mut c = EngineConfig::new(dir);
        c.journal.sync = sync;
        c
    }

    fn create_room(name: &str) -> Request {
        let command = Command::CreateRoom {
            room: RoomName::lookup(name).unwrap(),
            parent: None,
            private: false,
            owner: Some(Principal::Address(
                Address::parse("sip:alice@example.org").unwrap(),
            )),
            max_members: None,
            welcome_text: None,
            access_password_hash: None,
            server_password: None,
        };
        let origin = Origin {
            gateway: "test".into(),
            protocol: "none".into(),
            remote_addr: None,
        };
        Request::new(command, Actor::Admin, origin)
    }

    fn create(engine: &Engine, name: &str) {
        engine.execute_blocking(create_room(name)).unwrap();
    }

    /// Opens the engine, creates `rooms` rooms named `<prefix><i>`, shuts it down
    /// (writing a checkpoint at the head); returns the head.
    fn run(dir: &Path, sync: SyncMode, prefix: &str, rooms: usize) -> u64 {
        let engine = Engine::open(config(dir, sync)).unwrap();
        for i in 0..rooms {
            create(&engine, &format!("{prefix}{i}"));
        }
        engine.shutdown();
        engine.head()
    }

    fn refusal(dir: &Path, sync: SyncMode) -> EngineError {
        match Engine::open(config(dir, sync)) {
            Ok(engine) => panic!("started at head {} instead of refusing", engine.head()),
            Err(e) => e,
        }
    }

    #[test]
    fn a_brand_new_data_directory_starts_and_then_keeps_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        let head = run(dir.path(), SyncMode::Always, "r", 3);
        assert!(head >= 3);
        assert_eq!(
            read_head_marker(&layout.head_witness())
                .unwrap()
                .map(|w| w.0),
            Some(head)
        );
        let evidence = Evidence::read(&layout).unwrap();
        assert_eq!(evidence.checkpoint.map(|c| c.0), Some(head));
        assert_eq!(evidence.expected_head(), head);
        // And it starts again.
        assert_eq!(
            Engine::open(config(dir.path(), SyncMode::Always))
                .unwrap()
                .head(),
            head
        );
    }

    #[test]
    fn a_deleted_journal_is_refused_and_not_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        let head = run(dir.path(), SyncMode::Always, "r", 3);
        std::fs::remove_dir_all(layout.journal()).unwrap();
        let e = refusal(dir.path(), SyncMode::Always);
        assert_eq!(e.code(), "journal.truncated");
        assert!(
            matches!(e, EngineError::Journal(JournalError::Truncated { acknowledged, found: 0 }) if acknowledged == head),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("at least {head}")) && msg.contains("found head: 0"),
            "{msg}"
        );
        assert!(
            !layout.journal().exists(),
            "no new journal in place of the lost one"
        );
    }

    #[test]
    fn a_deleted_journal_is_refused_by_the_checkpoint_alone_whatever_the_sync_mode() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        let head = run(dir.path(), SyncMode::None, "r", 3);
        // A data directory from before the witness: only the checkpoint remembers.
        std::fs::remove_dir_all(layout.journal()).unwrap();
        std::fs::remove_file(layout.head_witness()).unwrap();
        for sync in [SyncMode::Always, SyncMode::None] {
            let e = refusal(dir.path(), sync);
            assert!(
                matches!(e, EngineError::Journal(JournalError::Truncated { acknowledged, found: 0 }) if acknowledged == head),
                "{e:?}"
            );
            assert!(!layout.journal().exists());
        }
    }

    /// A journal rolled back to an older copy (with its own older witness) while the
    /// checkpoint covers more: refused when acknowledged means durable (`always`); with
    /// `none` that loss is what the mode allows, so the start goes on from what is left.
    #[test]
    fn a_journal_behind_the_checkpoint_is_refused_when_acknowledged_means_durable() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        let old_head = run(dir.path(), SyncMode::Always, "a", 2);
        let old = dir.path().join("old");
        conclave_journal::copy_journal_dir(&layout.journal(), &old).unwrap();
        let old_witness = std::fs::read(layout.head_witness()).unwrap();
        let head = run(dir.path(), SyncMode::Always, "b", 3);
        assert!(head > old_head);
        std::fs::remove_dir_all(layout.journal()).unwrap();
        std::fs::rename(&old, layout.journal()).unwrap();
        std::fs::write(layout.head_witness(), old_witness).unwrap();
        let e = refusal(dir.path(), SyncMode::Always);
        assert!(
            matches!(e, EngineError::Journal(JournalError::Truncated { acknowledged, found }) if acknowledged == head && found == old_head),
            "{e:?}"
        );
        let engine = Engine::open(config(dir.path(), SyncMode::None)).unwrap();
        assert_eq!(engine.head(), old_head);
    }

    #[test]
    fn accepting_the_loss_moves_the_evidence_aside_and_the_next_start_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        run(dir.path(), SyncMode::Always, "r", 3);
        std::fs::remove_dir_all(layout.journal()).unwrap();
        refusal(dir.path(), SyncMode::Always);
        let accepted = accept_loss(&layout, None).unwrap();
        let moved: Vec<_> = accepted
            .moved
            .iter()
            .map(|(from, _)| from.clone())
            .collect();
        assert_eq!(moved, vec![layout.head_witness(), layout.projections()]);
        for (_, to) in &accepted.moved {
            assert!(to.exists(), "{} kept, not deleted", to.display());
            assert!(to.to_string_lossy().contains(".lost-"));
        }
        let engine = Engine::open(config(dir.path(), SyncMode::Always)).unwrap();
        assert_eq!(engine.head(), 0);
        create(&engine, "again");
        engine.shutdown();
        // Nothing left to accept once the evidence agrees with the journal.
        let copy =
            JournalCopy::open_without_marker(&layout.journal(), JournalConfig::default()).unwrap();
        assert!(accept_loss(&layout, Some(&copy)).unwrap().moved.is_empty());
    }

    /// Damages a record in the middle of the journal (through sled, as a flipped bit in
    /// a stored value) and returns the record that verification names.
    fn damage_middle(layout: &DataLayout) -> u64 {
        {
            let storage = SledStorage::open(&layout.journal(), 1 << 20).unwrap();
            let tree = storage.raw_tree();
            let chunks: Vec<_> = tree.scan_prefix(b"g").keys().map(|k| k.unwrap()).collect();
            let key = chunks[chunks.len() / 2].clone();
            let mut bytes = tree.get(&key).unwrap().unwrap().to_vec();
            let at = bytes.len() - 40;
            bytes[at] ^= 0x10;
            tree.insert(key, bytes).unwrap();
            tree.flush().unwrap();
        }
        let copy = JournalCopy::open(&layout.journal(), JournalConfig::default()).unwrap();
        let seq = copy.verify().unwrap().first_failure.unwrap().seq;
        assert!(seq > 1 && seq < copy.head());
        seq
    }

    #[test]
    fn a_damaged_record_refuses_the_start_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        run(dir.path(), SyncMode::Always, "r", 12);
        let bad = damage_middle(&layout);
        // The checkpoint covers the head, so the state could be rebuilt without reading
        // the damaged record: only the verification at start finds it.
        let e = refusal(dir.path(), SyncMode::Always);
        assert_eq!(e.code(), "journal.corrupt");
        assert!(
            matches!(&e, EngineError::Journal(JournalError::Corrupt { seq, .. }) if *seq == bad),
            "{e:?}"
        );
        assert!(e.to_string().contains(&format!("record {bad}")), "{e}");
        // A decision about other damage does not open it.
        allow_read_only(&layout, bad + 1, 100).unwrap();
        assert_eq!(
            refusal(dir.path(), SyncMode::Always).code(),
            "journal.corrupt"
        );
    }

    #[test]
    fn a_read_only_start_on_the_decided_damage_serves_the_good_prefix_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        let head = run(dir.path(), SyncMode::Always, "r", 12);
        let bad = damage_middle(&layout);
        allow_read_only(&layout, bad, head).unwrap();
        let checkpoint = Evidence::read(&layout).unwrap().checkpoint;
        let witness = std::fs::read(layout.head_witness()).unwrap();
        {
            let engine = Engine::open(config(dir.path(), SyncMode::Always)).unwrap();
            let ro = engine.read_only().unwrap();
            assert_eq!((ro.first_bad, ro.head), (bad, head));
            assert_eq!(engine.head(), bad - 1, "the state stops before the damage");
            assert_eq!(engine.journal().head(), head);
            assert!(!engine.healthy());
            assert_eq!(engine.journal().damage().and_then(|d| d.seq), Some(bad));
            let refused = engine.execute_blocking(create_room("more")).unwrap_err();
            assert_eq!(refused.code(), "journal.poisoned");
            assert!(refused.to_string().contains(&format!("record {bad}")));
            assert_eq!(
                engine.tick_now_blocking().unwrap_err().code(),
                "journal.poisoned"
            );
            assert!(engine.checkpoint().is_err());
            engine.shutdown();
        }
        // The checkpoint (which covers the damaged records) and the witness are kept.
        assert_eq!(Evidence::read(&layout).unwrap().checkpoint, checkpoint);
        assert_eq!(std::fs::read(layout.head_witness()).unwrap(), witness);
        assert_eq!(
            JournalCopy::open(&layout.journal(), JournalConfig::default())
                .unwrap()
                .head(),
            head
        );
    }

    #[test]
    fn a_stale_read_only_decision_is_ignored_on_a_journal_that_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let layout = DataLayout::new(dir.path());
        let head = run(dir.path(), SyncMode::Always, "r", 2);
        allow_read_only(&layout, 2, head).unwrap();
        let engine = Engine::open(config(dir.path(), SyncMode::Always)).unwrap();
        assert!(engine.read_only().is_none() && engine.healthy());
        std::fs::write(layout.read_only_decision(), b"junk").unwrap();
        drop(engine);
        assert_eq!(
            refusal(dir.path(), SyncMode::Always).code(),
            "journal.open_failed"
        );
    }
}

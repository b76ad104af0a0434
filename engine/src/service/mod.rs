//! The Engine service: the pure core wired to the journal.
//!
//! One decider thread owns the working state. For each command it reads the clock,
//! calls [`decide`], submits the events to the journal without waiting, folds them into
//! its working state and moves on to the next command; appends are chained on the
//! journal head (`expected_head`) so that if one fails, every append decided after it
//! fails too instead of landing on a state that never was. A completer thread takes the
//! journal's acknowledgements in order, applies the events to the committed state (what
//! queries see: only durable facts) and only then answers the caller. So commands are
//! serialized (one decision at a time, against everything decided before), while the
//! journal's group commit makes durable throughput grow with concurrency.
//!
//! On an append failure the decider resynchronizes: it waits until the completer has
//! drained everything in flight and restarts from the committed state.

pub mod audit;
mod checkpoint;
mod metrics;
mod password;
pub mod purge;
mod records;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use conclave_journal::{
    AppendRequest, AppendTicket, Hash, Journal, JournalConfig, JournalError, ZERO_HASH,
};
use thiserror::Error;
use tokio::sync::oneshot;

use crate::command::Command;
use crate::context::{Actor, Context, Origin};
use crate::decide::decide;
use crate::event::Event;
use crate::evolve::evolve;
use crate::ids::IdSeed;
use crate::policy::{IpKey, Policy};
use crate::rejection::{http_status, Rejected, Rejection};
use crate::state::State;
use crate::tick::tick;

use checkpoint::CheckpointStore;
pub use metrics::{Metrics, MetricsSnapshot, LATENCY_BUCKETS};
pub use password::{hash_password, Argon2Verifier, Prechecked};
pub use purge::PurgeOutcome;
pub use records::from_record;

/// How to run the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Holds `journal/` and `projections/`.
    pub data_dir: PathBuf,
    /// Server policy from configuration (see [`Engine::open`] for how it meets the journal).
    pub policy: Policy,
    /// Key for obfuscating remote addresses in stored metadata.
    pub ip_key: IpKey,
    pub journal: JournalConfig,
    /// Records between state checkpoints.
    pub checkpoint_every: u64,
    /// How often expiry (rooms, invitations, bans) is checked.
    pub tick_interval: Duration,
}

impl EngineConfig {
    /// Defaults for a data directory: seed policy, checkpoints every 10 000 records,
    /// expiry checked every second.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            policy: Policy::default(),
            ip_key: IpKey([0; 32]),
            journal: JournalConfig::default(),
            checkpoint_every: 10_000,
            tick_interval: Duration::from_secs(1),
        }
    }
}

/// A command with who sent it and how.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub actor: Actor,
    pub origin: Origin,
    /// Set by gateways that have one (a request id); generated otherwise.
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The credential that authorized this command when it is not the actor's own
    /// (`admin`, `service:<name>` acting as a person); journaled with the events.
    pub authorized_by: Option<String>,
}

impl Request {
    pub fn new(command: Command, actor: Actor, origin: Origin) -> Self {
        Request {
            command,
            actor,
            origin,
            correlation_id: None,
            causation_id: None,
            authorized_by: None,
        }
    }
}

/// An event as it was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub seq: u64,
    pub stream: String,
    pub event: Event,
}

/// What an accepted command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub correlation_id: String,
    /// Empty for a command that changed nothing (an idempotent repeat).
    pub events: Vec<Applied>,
    /// The committed journal head after this command.
    pub head: u64,
}

/// Why a command did not take effect.
#[derive(Debug, Clone, Error)]
pub enum EngineError {
    /// The domain refused it; `recorded` are the sequence numbers of the events journaled
    /// anyway (the denial itself, autoban consequences).
    #[error("{rejection}")]
    Rejected {
        rejection: Rejection,
        correlation_id: String,
        recorded: Vec<u64>,
    },
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("record {seq} cannot be decoded: {reason}")]
    Codec { seq: u64, reason: String },
    #[error("cannot encode an event: {0}")]
    Encode(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("the engine is stopped")]
    Stopped,
    /// Work moved to the blocking pool did not finish (it panicked or the runtime is
    /// shutting down).
    #[error("background task: {0}")]
    Task(String),
}

impl EngineError {
    /// The stable code: the rejection's own code for domain refusals.
    pub fn code(&self) -> &str {
        match self {
            EngineError::Rejected { rejection, .. } => rejection.code(),
            EngineError::Journal(e) => e.code(),
            EngineError::Codec { .. } => "engine.codec",
            EngineError::Encode(_) => "engine.encode",
            EngineError::Checkpoint(_) => "engine.checkpoint",
            EngineError::Stopped => "engine.stopped",
            EngineError::Task(_) => "engine.task",
        }
    }

    /// The HTTP status a web gateway answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            EngineError::Rejected { rejection, .. } => http_status(rejection.code()),
            EngineError::Journal(
                JournalError::HeadConflict { .. } | JournalError::Conflict { .. },
            ) => 503,
            _ => 500,
        }
    }
}

/// The committed state: exactly the journal up to `head`.
pub(crate) struct Committed {
    pub state: State,
    pub head: u64,
    pub head_hash: Hash,
}

type Reply = oneshot::Sender<Result<Outcome, EngineError>>;

enum Job {
    Command {
        req: Box<Request>,
        reply: Reply,
        passwords: Prechecked,
    },
    Tick,
}

/// What the completer waits for, in submission order.
enum Pending {
    /// One journal append holding the records of every journaled command in `decided`,
    /// in order.
    Append {
        ticket: AppendTicket,
        decided: Vec<Decided>,
    },
    Answer {
        reply: Reply,
        result: Result<Outcome, EngineError>,
    },
    Barrier(mpsc::Sender<()>),
}

/// One decided job in a batch, answered once everything before it is durable.
enum Decided {
    /// Its events are records of the batch's append.
    Journaled {
        events: Vec<Event>,
        correlation_id: String,
        /// The caller, if any, and the rejection to answer with after journaling.
        reply: Option<Reply>,
        rejection: Option<Rejection>,
        started: Instant,
    },
    /// An answer that needs no record (a refusal, a command that changed nothing), sent
    /// in order so it never reveals a decision that is not yet durable.
    Answer {
        reply: Reply,
        result: Result<Outcome, EngineError>,
    },
}

/// Most jobs decided into one journal append. The decider takes only what is already
/// queued, so a batch never waits for more work.
const MAX_BATCH: usize = 64;

struct Inner {
    journal: Journal,
    committed: RwLock<Committed>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    failed: AtomicBool,
    metrics: Metrics,
    config: EngineConfig,
    checkpoints: CheckpointStore,
    checkpointing: Mutex<()>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Dropping it wakes and ends the clock thread.
    clock_stop: Mutex<Option<mpsc::Sender<()>>>,
}

impl Inner {
    /// The committed state, for reading.
    fn committed(&self) -> std::sync::RwLockReadGuard<'_, Committed> {
        self.committed.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Saves the committed state with the sequence and hash it covers.
    /// Writes a checkpoint of the committed state. The state is encoded under the read
    /// lock, which is released before the disk write. One checkpoint at a time, so an
    /// older state never overwrites a newer one (after a purge, the newer one is the one
    /// without the purged content).
    fn checkpoint(&self) -> Result<u64, EngineError> {
        let _one_at_a_time = lock(&self.checkpointing);
        let (head, bytes) = {
            let c = self.committed();
            (c.head, checkpoint::encode(c.head, &c.head_hash, &c.state)?)
        };
        self.checkpoints.store(bytes)?;
        Ok(head)
    }
}

/// Shuts the engine down when the last [`Engine`] handle goes away (the engine's own
/// threads hold the inner state, not this guard).
struct Running(Arc<Inner>);

impl Drop for Running {
    fn drop(&mut self) {
        shutdown(&self.0);
    }
}

/// A running engine. Cheap to clone; the last clone stops it.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
    _running: Arc<Running>,
}

impl Engine {
    /// Opens the journal and projections under `config.data_dir`, loads the newest
    /// usable checkpoint, replays the journal's tail, and starts the engine threads.
    ///
    /// Policy: the configuration's policy applies at every start, except the fields that
    /// are changed at run time through commands (server password, log days, IP
    /// obfuscation, welcome text): once the journal holds state, their journaled values
    /// win, and configuration provides only their initial values.
    pub fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        conclave_journal::durable::create_dir_all(&config.data_dir)
            .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", config.data_dir.display())))?;
        let journal = Journal::open(config.data_dir.join("journal"), config.journal.clone())?;
        let checkpoints = CheckpointStore::open(&config.data_dir.join("projections"))?;
        let committed = rebuild(&journal, &checkpoints, &config.policy)?;
        let (tx, rx) = mpsc::channel();
        let inner = Arc::new(Inner {
            journal,
            committed: RwLock::new(committed),
            jobs: Mutex::new(Some(tx)),
            failed: AtomicBool::new(false),
            metrics: Metrics::default(),
            config,
            checkpoints,
            checkpointing: Mutex::new(()),
            threads: Mutex::new(Vec::new()),
            clock_stop: Mutex::new(None),
        });
        let (pending_tx, pending_rx) = mpsc::channel();
        let mut threads = Vec::new();
        {
            let inner = inner.clone();
            threads.push(spawn("engine-decider", move || {
                decider(inner, rx, pending_tx)
            })?);
        }
        // Periodic checkpoints run beside the completer, which only asks for one; a
        // request while one is being written is dropped (the next one covers it).
        let (checkpoint_tx, checkpoint_rx) = mpsc::sync_channel::<()>(1);
        {
            let inner = inner.clone();
            threads.push(spawn("engine-completer", move || {
                completer(inner, pending_rx, checkpoint_tx)
            })?);
        }
        {
            let inner = inner.clone();
            threads.push(spawn("engine-checkpoint", move || {
                for () in checkpoint_rx {
                    if let Err(e) = inner.checkpoint() {
                        tracing::warn!(error = %e, "checkpoint failed");
                    }
                }
            })?);
        }
        {
            let weak = Arc::downgrade(&inner);
            let every = inner.config.tick_interval;
            let (stop_tx, stop_rx) = mpsc::channel();
            *lock(&inner.clock_stop) = Some(stop_tx);
            threads.push(spawn("engine-clock", move || clock(weak, every, stop_rx))?);
        }
        *lock(&inner.threads) = threads;
        Ok(Engine {
            _running: Arc::new(Running(inner.clone())),
            inner,
        })
    }

    /// Decides, journals and applies a command; answers once its events are durable.
    /// Password attempts are verified on tokio's blocking pool first (see
    /// [`Prechecked`]), never on the decider.
    pub async fn execute(&self, req: Request) -> Result<Outcome, EngineError> {
        let (hashes, attempts) = self.password_work(&req.command);
        let passwords = if attempts.is_empty() || hashes.is_empty() {
            Prechecked::default()
        } else {
            tokio::task::spawn_blocking(move || Prechecked::compute(&hashes, &attempts))
                .await
                .unwrap_or_default()
        };
        let rx = self.enqueue(req, passwords)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// [`Engine::execute`] for threads outside an async runtime.
    pub fn execute_blocking(&self, req: Request) -> Result<Outcome, EngineError> {
        let (hashes, attempts) = self.password_work(&req.command);
        let rx = self.enqueue(req, Prechecked::compute(&hashes, &attempts))?;
        rx.blocking_recv().map_err(|_| EngineError::Stopped)?
    }

    /// The stored hashes a command's password attempts may be checked against (server
    /// password, the target room's access and owner passwords) and the attempts.
    fn password_work(&self, command: &Command) -> (Vec<String>, Vec<String>) {
        let credentials = match command {
            Command::Join { credentials, .. } | Command::CallAccount { credentials, .. } => {
                credentials
            }
            _ => return (Vec::new(), Vec::new()),
        };
        let attempts: Vec<String> = [
            &credentials.server_password,
            &credentials.password,
            &credentials.owner_password,
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose().to_owned())
        .collect();
        if attempts.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let hashes = self.read(|state| {
            let room = match command {
                Command::CallAccount { account, .. } => state
                    .accounts
                    .get(account)
                    .and_then(|a| a.rendezvous.as_ref()),
                _ => command.room(),
            }
            .and_then(|name| state.rooms.get(name));
            let mut hashes: Vec<String> =
                state.policy.server_password_hash.iter().cloned().collect();
            if let Some(room) = room {
                hashes.extend(room.config.access_password_hash.iter().cloned());
                hashes.extend(room.reserved.iter().cloned());
            }
            hashes
        });
        (hashes, attempts)
    }

    fn enqueue(
        &self,
        req: Request,
        passwords: Prechecked,
    ) -> Result<oneshot::Receiver<Result<Outcome, EngineError>>, EngineError> {
        let (reply, rx) = oneshot::channel();
        let jobs = lock(&self.inner.jobs);
        let tx = jobs.as_ref().ok_or(EngineError::Stopped)?;
        tx.send(Job::Command {
            req: Box::new(req),
            reply,
            passwords,
        })
        .map_err(|_| EngineError::Stopped)?;
        Ok(rx)
    }

    /// Reads the committed state (durable facts only).
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.inner.committed().state)
    }

    /// The sequence number the committed state covers.
    pub fn head(&self) -> u64 {
        self.inner.committed().head
    }

    pub fn journal(&self) -> &Journal {
        &self.inner.journal
    }

    /// The data directory (journal, projections; replay keeps its signing key here).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.config.data_dir
    }

    /// Queries the audit view (see [`audit::query`]).
    pub fn audit(&self, q: &audit::AuditQuery) -> Result<Vec<audit::AuditEntry>, EngineError> {
        audit::query(&self.inner.journal, q)
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Whether the engine is accepting commands normally (false after an append
    /// failure until it has resynchronized).
    pub fn healthy(&self) -> bool {
        !self.inner.failed.load(Ordering::Relaxed) && lock(&self.inner.jobs).is_some()
    }

    /// Writes a checkpoint of the committed state now.
    pub fn checkpoint(&self) -> Result<u64, EngineError> {
        self.inner.checkpoint()
    }

    /// Stops accepting commands, finishes what is in flight, writes a checkpoint and
    /// stops the threads. Also happens when the last handle is dropped.
    pub fn shutdown(&self) {
        shutdown(&self.inner);
    }
}

fn shutdown(inner: &Inner) {
    lock(&inner.jobs).take();
    lock(&inner.clock_stop).take();
    let threads = std::mem::take(&mut *lock(&inner.threads));
    if threads.is_empty() {
        return;
    }
    for t in threads {
        let _ = t.join();
    }
    if let Err(e) = inner.checkpoint() {
        tracing::warn!(error = %e, "final checkpoint failed");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, EngineError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| EngineError::Checkpoint(format!("cannot start {name}: {e}")))
}

/// Loads the checkpoint if it matches the journal, then replays the rest.
fn rebuild(
    journal: &Journal,
    checkpoints: &CheckpointStore,
    policy: &Policy,
) -> Result<Committed, EngineError> {
    let mut committed = Committed {
        state: State::new(policy.clone()),
        head: 0,
        head_hash: ZERO_HASH,
    };
    if let Some(c) = checkpoints.load() {
        let matches = c.seq <= journal.head()
            && (c.seq == 0 || journal.get(c.seq)?.is_some_and(|r| r.hash == c.hash));
        if matches {
            committed = Committed {
                state: c.state,
                head: c.seq,
                head_hash: c.hash,
            };
        } else {
            tracing::warn!(
                seq = c.seq,
                "the checkpoint does not match the journal; rebuilding"
            );
        }
    }
    for record in journal.iter_from(committed.head + 1) {
        let record = record?;
        let event = from_record(journal, &record)?;
        evolve(&mut committed.state, &event);
        committed.head = record.seq;
        committed.head_hash = record.hash;
    }
    apply_static_policy(&mut committed.state.policy, policy);
    Ok(committed)
}

/// Configuration owns every policy field except those changed at run time by commands.
fn apply_static_policy(current: &mut Policy, configured: &Policy) {
    let runtime = (
        current.server_password_hash.take(),
        current.log_days,
        current.obfuscate_ips,
        std::mem::take(&mut current.welcome_text),
    );
    *current = configured.clone();
    current.server_password_hash = runtime.0;
    current.log_days = runtime.1;
    current.obfuscate_ips = runtime.2;
    current.welcome_text = runtime.3;
}

/// Unguessable, unique values without a system call per command: a keyed hash of a
/// counter under a key drawn once from the OS.
struct Nonces {
    key: [u8; 32],
    counter: u64,
}

impl Nonces {
    fn new() -> Self {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            // Without OS randomness, fall back to the clock: ids stay unique, not secret.
            tracing::error!("no OS randomness: invitation ids are predictable");
            let t = Utc::now().timestamp_nanos_opt().unwrap_or_default();
            key[..8].copy_from_slice(&t.to_le_bytes());
        }
        Nonces { key, counter: 0 }
    }

    fn next(&mut self, bytes: usize) -> String {
        self.counter += 1;
        let h = blake3::keyed_hash(&self.key, &self.counter.to_le_bytes());
        conclave_journal::hex(&h.as_bytes()[..bytes.min(32)])
    }

    /// Seed for the ids one decision mints (invitation tokens are bearer secrets).
    fn seed(&mut self) -> IdSeed {
        IdSeed::new(self.next(16))
    }

    fn correlation_id(&mut self) -> String {
        self.next(8)
    }
}

struct Decider {
    inner: Arc<Inner>,
    working: State,
    /// The head once everything submitted so far is durable.
    head: u64,
    last_now: DateTime<Utc>,
    pending: mpsc::Sender<Pending>,
    nonces: Nonces,
    /// Records and decisions of the batch being built, not yet submitted.
    records: Vec<conclave_journal::NewRecord>,
    decided: Vec<Decided>,
}

fn decider(inner: Arc<Inner>, jobs: mpsc::Receiver<Job>, pending: mpsc::Sender<Pending>) {
    let (working, head) = {
        let c = inner.committed();
        (c.state.clone(), c.head)
    };
    let mut d = Decider {
        inner,
        working,
        head,
        last_now: DateTime::<Utc>::MIN_UTC,
        pending,
        nonces: Nonces::new(),
        records: Vec::new(),
        decided: Vec::new(),
    };
    // Decide everything already queued, then submit it as one append: the journal and
    // the completer then handle one request and one wake-up per batch, not per command.
    while let Ok(first) = jobs.recv() {
        if d.inner.failed.load(Ordering::Acquire) {
            d.resync();
        }
        d.job(first);
        for job in jobs.try_iter().take(MAX_BATCH - 1) {
            d.job(job);
        }
        d.submit();
    }
}

impl Decider {
    /// Time never goes backwards in the journal, even if the system clock does.
    fn now(&mut self) -> DateTime<Utc> {
        self.last_now = self.last_now.max(Utc::now());
        self.last_now
    }

    fn resync(&mut self) {
        let (tx, rx) = mpsc::channel();
        if self.pending.send(Pending::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
        self.inner.failed.store(false, Ordering::Release);
        let c = self.inner.committed();
        self.working = c.state.clone();
        self.head = c.head;
        tracing::warn!(head = self.head, "engine resynchronized with the journal");
    }

    fn command(&mut self, req: Request, reply: Reply, passwords: &Prechecked) {
        let started = Instant::now();
        let authorized_by = req.authorized_by.clone();
        let correlation_id = match req.correlation_id.clone() {
            Some(c) => c,
            None => self.nonces.correlation_id(),
        };
        let ctx = Context {
            actor: req.actor,
            origin: req.origin,
            now: self.now(),
            correlation_id: correlation_id.clone(),
            causation_id: req.causation_id,
            ids: self.nonces.seed(),
            ip_key: self.inner.config.ip_key.clone(),
        };
        self.inner.metrics.command(req.command.name());
        match decide(&self.working, &req.command, &ctx, passwords) {
            Ok(events) if events.is_empty() => {
                let head = self.speculative_head();
                self.decided.push(Decided::Answer {
                    reply,
                    result: Ok(Outcome {
                        correlation_id,
                        events: Vec::new(),
                        head,
                    }),
                });
            }
            Ok(events) => self.stage(events, &ctx, authorized_by, Some(reply), None, started),
            Err(Rejected { rejection, record }) => {
                self.inner.metrics.rejection(rejection.code());
                if record.is_empty() {
                    self.decided.push(Decided::Answer {
                        reply,
                        result: Err(EngineError::Rejected {
                            rejection,
                            correlation_id,
                            recorded: Vec::new(),
                        }),
                    });
                } else {
                    self.stage(
                        record,
                        &ctx,
                        authorized_by,
                        Some(reply),
                        Some(rejection),
                        started,
                    );
                }
            }
        }
    }

    fn job(&mut self, job: Job) {
        match job {
            Job::Command {
                req,
                reply,
                passwords,
            } => self.command(*req, reply, &passwords),
            Job::Tick => self.tick(),
        }
    }

    /// The head once the batch so far is durable.
    fn speculative_head(&self) -> u64 {
        self.head + self.records.len() as u64
    }

    fn tick(&mut self) {
        let now = self.now();
        let events = tick(&self.working, now);
        if events.is_empty() {
            return;
        }
        let ctx = Context {
            actor: Actor::Service("clock".into()),
            origin: Origin {
                gateway: "engine".into(),
                protocol: "internal".into(),
                remote_addr: None,
            },
            now,
            correlation_id: self.nonces.correlation_id(),
            causation_id: None,
            ids: self.nonces.seed(),
            ip_key: self.inner.config.ip_key.clone(),
        };
        self.stage(events, &ctx, None, None, None, Instant::now());
    }

    /// Adds a decision's records to the batch and its events to the working state.
    fn stage(
        &mut self,
        events: Vec<Event>,
        ctx: &Context,
        authorized_by: Option<String>,
        reply: Option<Reply>,
        rejection: Option<Rejection>,
        started: Instant,
    ) {
        let mut records = Vec::with_capacity(events.len());
        let max_bytes = self.inner.config.journal.max_record_bytes;
        for e in &events {
            // A record the journal would refuse is refused here, alone: in the batch's
            // append it would fail every command batched with it.
            let record = records::to_record(e, ctx, &self.working, authorized_by.as_deref())
                .map_err(|err| EngineError::Encode(err.to_string()))
                .and_then(|r| r.validate(max_bytes).map(|()| r).map_err(EngineError::from));
            match record {
                Ok(r) => records.push(r),
                Err(err) => {
                    if let Some(reply) = reply {
                        self.decided.push(Decided::Answer {
                            reply,
                            result: Err(err),
                        });
                    }
                    return;
                }
            }
        }
        for e in &events {
            evolve(&mut self.working, e);
        }
        self.records.extend(records);
        self.decided.push(Decided::Journaled {
            events,
            correlation_id: ctx.correlation_id.clone(),
            reply,
            rejection,
            started,
        });
    }

    /// Submits the batch as one append chained on the head, and hands it to the completer.
    fn submit(&mut self) {
        let decided = std::mem::take(&mut self.decided);
        let records = std::mem::take(&mut self.records);
        if records.is_empty() {
            for d in decided {
                if let Decided::Answer { reply, result } = d {
                    let _ = self.pending.send(Pending::Answer { reply, result });
                }
            }
            return;
        }
        let n = records.len() as u64;
        let req = AppendRequest {
            expected: Vec::new(),
            expected_head: Some(self.head),
            records,
        };
        match self.inner.journal.submit(req) {
            Ok(ticket) => {
                self.head += n;
                let _ = self.pending.send(Pending::Append { ticket, decided });
            }
            Err(e) => {
                // The working state already holds the batch's events: start over from
                // the committed state before the next decision.
                self.inner.failed.store(true, Ordering::Release);
                for d in decided {
                    let (reply, result) = match d {
                        Decided::Journaled { reply, .. } => (reply, Err(e.clone().into())),
                        Decided::Answer { reply, result } => (Some(reply), result),
                    };
                    if let Some(reply) = reply {
                        let _ = self.pending.send(Pending::Answer { reply, result });
                    }
                }
            }
        }
    }
}

fn completer(
    inner: Arc<Inner>,
    pending: mpsc::Receiver<Pending>,
    checkpoint: mpsc::SyncSender<()>,
) {
    let mut since_checkpoint = 0u64;
    for item in pending {
        match item {
            Pending::Barrier(done) => {
                let _ = done.send(());
            }
            Pending::Answer { reply, result } => {
                let _ = reply.send(result);
            }
            Pending::Append { ticket, decided } => {
                let answers = match ticket.wait() {
                    Ok(appended) => {
                        since_checkpoint += appended.records.len() as u64;
                        apply(&inner, &appended.records, decided)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "append failed; resynchronizing");
                        inner.failed.store(true, Ordering::Release);
                        failed(decided, &e)
                    }
                };
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
                if since_checkpoint >= inner.config.checkpoint_every {
                    since_checkpoint = 0;
                    let _ = checkpoint.try_send(());
                }
            }
        }
    }
}

/// Applies a durable batch to the committed state under one lock and returns the
/// answers, to be sent once the lock is released.
fn apply(
    inner: &Inner,
    records: &[conclave_journal::Record],
    decided: Vec<Decided>,
) -> Vec<(Reply, Result<Outcome, EngineError>)> {
    let mut answers = Vec::with_capacity(decided.len());
    let mut records = records.iter();
    let mut c = inner.committed.write().unwrap_or_else(|p| p.into_inner());
    for d in decided {
        let (events, correlation_id, reply, rejection, started) = match d {
            Decided::Answer { reply, result } => {
                answers.push((reply, result));
                continue;
            }
            Decided::Journaled {
                events,
                correlation_id,
                reply,
                rejection,
                started,
            } => (events, correlation_id, reply, rejection, started),
        };
        let mut applied = Vec::with_capacity(events.len());
        // Events first: zip stops at the first side that ends, so the batch's records
        // iterator is not advanced past this command's records.
        for (event, record) in events.into_iter().zip(records.by_ref()) {
            evolve(&mut c.state, &event);
            c.head = record.seq;
            c.head_hash = record.hash;
            applied.push(Applied {
                seq: record.seq,
                stream: record.stream.clone(),
                event,
            });
        }
        inner.metrics.committed(started.elapsed());
        let Some(reply) = reply else { continue };
        let result = match rejection {
            None => Ok(Outcome {
                correlation_id,
                events: applied,
                head: c.head,
            }),
            Some(rejection) => Err(EngineError::Rejected {
                rejection,
                correlation_id,
                recorded: applied.iter().map(|a| a.seq).collect(),
            }),
        };
        answers.push((reply, result));
    }
    answers
}

/// The answers of a batch whose append failed: its journaled commands fail with the
/// journal's error, answers decided alongside them stand.
fn failed(decided: Vec<Decided>, e: &JournalError) -> Vec<(Reply, Result<Outcome, EngineError>)> {
    decided
        .into_iter()
        .filter_map(|d| match d {
            Decided::Journaled { reply, .. } => {
                reply.map(|r| (r, Err(EngineError::Journal(e.clone()))))
            }
            Decided::Answer { reply, result } => Some((reply, result)),
        })
        .collect()
}

/// Drives expiry: asks the decider to tick until the engine stops.
fn clock(inner: std::sync::Weak<Inner>, every: Duration, stop: mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        let Some(inner) = inner.upgrade() else { return };
        let jobs = lock(&inner.jobs);
        match jobs.as_ref() {
            Some(tx) if tx.send(Job::Tick).is_ok() => {}
            _ => return,
        }
    }
}

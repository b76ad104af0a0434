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
mod clock;
mod completer;
mod config;
mod decider;
mod denials;
mod error;
pub mod feed;
mod gateway;
mod metrics;
mod nonces;
mod password;
mod pipeline;
pub mod purge;
mod rebuild;
mod records;
mod remotes;
mod request;
pub mod startup;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use conclave_journal::{Hash, Journal, JournalError};
use tokio::sync::oneshot;

use crate::command::Command;
use crate::state::State;

pub use checkpoint::build as state_build;
use checkpoint::CheckpointStore;
use clock::{clock, Alarm};
pub use clock::{Clock, SystemClock, TestClock};
use completer::completer;
pub use config::{EngineConfig, WrapStorage, DEFAULT_MAX_QUEUED_COMMANDS, DEFAULT_TICK_INTERVAL};
use decider::decider;
pub use error::EngineError;
use feed::Feed;
pub use feed::{FeedEvent, FeedFilter, FeedSubscription, FeedView};
pub use gateway::{GatewayHandle, GatewayScope};
pub use metrics::{Metrics, MetricsSnapshot, LATENCY_BUCKETS};
pub use password::{hash_password, Argon2Verifier, Prechecked};
use pipeline::Job;
pub use purge::PurgeOutcome;
use rebuild::rebuild;
pub use records::from_record;
pub use request::{Applied, Outcome, Request};
use startup::{DataLayout, Integrity};
pub use startup::{Evidence, ReadOnly};

/// The committed state: exactly the journal up to `head`.
pub(crate) struct Committed {
    pub state: State,
    pub head: u64,
    pub head_hash: Hash,
}

struct Inner {
    journal: Journal,
    committed: RwLock<Committed>,
    /// Committed events for subscribers, fed by the completer after each apply.
    feed: Arc<Feed>,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Places taken in the decider's queue (bounded by `config.max_queued_commands`).
    queued: Arc<std::sync::atomic::AtomicUsize>,
    failed: AtomicBool,
    metrics: Metrics,
    config: EngineConfig,
    checkpoints: CheckpointStore,
    checkpointing: Mutex<()>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Wakes the clock thread; stopping it ends the thread.
    alarm: Arc<Alarm>,
    /// Runs password checks on a few threads with a bounded queue (argon2 memory).
    hash_pool: password::HashPool,
    /// Set when the operator chose a read-only start on a damaged journal: every command
    /// and tick is refused, no checkpoint is written.
    read_only: Option<ReadOnly>,
}

impl Inner {
    /// The committed state, for reading.
    fn committed(&self) -> std::sync::RwLockReadGuard<'_, Committed> {
        self.committed.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a password check on the bounded pool, or refuses as busy. The source is
    /// the request's remote IP address (its port dropped), so one address gets a fair
    /// share of the pool (see [`password::HashPool`]).
    fn queue_password_check(
        &self,
        origin: &crate::context::Origin,
        hashes: Vec<String>,
        attempts: Vec<String>,
    ) -> Result<oneshot::Receiver<Prechecked>, EngineError> {
        let source = origin.remote_addr.as_deref().map(|r| {
            r.parse::<std::net::SocketAddr>()
                .map(|sa| sa.ip().to_string())
                .unwrap_or_else(|_| r.to_owned())
        });
        match self.hash_pool.submit(source.as_deref(), hashes, attempts) {
            Ok(rx) => {
                self.metrics.password_check();
                Ok(rx)
            }
            Err(password::HashPoolError::Busy) => {
                self.metrics.password_busy();
                Err(EngineError::Busy("password checks"))
            }
            Err(password::HashPoolError::Stopped) => Err(EngineError::Stopped),
        }
    }

    /// While the journal refuses writes after a storage failure (a full disk), every
    /// command is refused at once with `journal.poisoned` (503 with Retry-After), until
    /// the journal has recovered by itself.
    fn refuse_while_storage_failed(&self) -> Result<(), EngineError> {
        match self.journal.write_failure() {
            None => Ok(()),
            Some(f) => Err(EngineError::Journal(JournalError::Poisoned(f.reason))),
        }
    }

    /// The error every command gets on a read-only start.
    fn refuse_read_only(&self) -> Result<(), EngineError> {
        match &self.read_only {
            None => Ok(()),
            Some(ro) => Err(EngineError::Journal(JournalError::Poisoned(
                read_only_reason(ro),
            ))),
        }
    }

    /// Asks the decider for a tick; `None` once the engine is stopping (or on a read-only
    /// start, which never ticks: expiry would journal).
    fn ask_tick(&self) -> Option<oneshot::Receiver<Result<Outcome, EngineError>>> {
        if self.read_only.is_some() {
            return None;
        }
        let (reply, rx) = oneshot::channel();
        lock(&self.jobs).as_ref()?.send(Job::Tick(reply)).ok()?;
        Some(rx)
    }

    /// Saves the committed state with the sequence and hash it covers.
    /// Writes a checkpoint of the committed state. The state is encoded under the read
    /// lock, which is released before the disk write. One checkpoint at a time, so an
    /// older state never overwrites a newer one (after a purge, the newer one is the one
    /// without the purged content).
    fn checkpoint(&self) -> Result<u64, EngineError> {
        // The checkpoint on disk may cover records that are now unreadable: it is
        // evidence of what was acknowledged, never replaced by an older state.
        self.refuse_read_only()?;
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

/// Password checks that may wait per worker: at 20–40 ms a check, a full queue clears in
/// about a second; a request that finds it full is refused at once as busy
/// (`engine.busy`, 503 with Retry-After) instead of queuing without bound.
const HASH_QUEUE_PER_WORKER: usize = 16;

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
    ///
    /// Start-up checks ([`startup`]): the journal must hold everything the data
    /// directory's evidence (head witness, checkpoint) says was acknowledged, or the
    /// start is refused with `journal.truncated`; and its whole chain must verify, or the
    /// start is refused with `journal.corrupt` naming the first bad record, unless the
    /// operator decided on a read-only start on exactly that damage
    /// ([`Engine::read_only`]).
    pub fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        conclave_journal::durable::create_dir_all(&config.data_dir)
            .map_err(|e| EngineError::Checkpoint(format!("{}: {e}", config.data_dir.display())))?;
        let layout = DataLayout::new(&config.data_dir);
        startup::refuse_missing_journal(&layout)?;
        let checkpoints = CheckpointStore::open(&layout.projections())?;
        let journal_existed = layout.has_journal();
        if !journal_existed {
            startup::check_checkpoint(&layout, 0, false, checkpoints.head(), config.journal.sync)?;
        }
        let journal_config = conclave_journal::JournalConfig {
            head_witness: Some(layout.head_witness()),
            ..config.journal.clone()
        };
        let opened = match &config.journal_storage {
            None => Journal::open(layout.journal(), journal_config),
            Some(wrap) => {
                let wrap = wrap.0.clone();
                Journal::open_wrapped(layout.journal(), journal_config, move |sled| wrap(sled))
            }
        };
        let journal = opened.map_err(|e| startup::explain_open_error(&layout, e))?;
        startup::check_checkpoint(
            &layout,
            journal.head(),
            journal_existed,
            checkpoints.head(),
            config.journal.sync,
        )?;
        let read_only = match startup::verify(&layout, &journal)? {
            Integrity::Verified => None,
            Integrity::ReadOnly(ro) => {
                journal.refuse_writes(&read_only_reason(&ro));
                Some(ro)
            }
        };
        let up_to = read_only.as_ref().map(|ro| ro.first_bad - 1);
        let committed = rebuild(&journal, &checkpoints, &config.policy, up_to)?;
        let (tx, rx) = mpsc::channel();
        let feed = Arc::new(Feed::new(committed.head, config.feed_capacity));
        let inner = Arc::new(Inner {
            journal,
            committed: RwLock::new(committed),
            feed,
            jobs: Mutex::new(Some(tx)),
            queued: Arc::default(),
            failed: AtomicBool::new(false),
            metrics: Metrics::default(),
            config,
            checkpoints,
            checkpointing: Mutex::new(()),
            threads: Mutex::new(Vec::new()),
            alarm: Arc::new(Alarm::default()),
            hash_pool: {
                let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
                password::HashPool::new(workers, workers * HASH_QUEUE_PER_WORKER, workers).map_err(
                    |e| EngineError::Checkpoint(format!("cannot start password checks: {e}")),
                )?
            },
            read_only,
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
            let inner = inner.clone();
            threads.push(spawn("engine-clock", move || clock(inner))?);
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
        let (hashes, attempts) = self.password_work(&req);
        let passwords = if attempts.is_empty() || hashes.is_empty() {
            Prechecked::default()
        } else {
            let rx = self
                .inner
                .queue_password_check(&req.origin, hashes, attempts)?;
            rx.await.map_err(|_| EngineError::Stopped)?
        };
        let rx = self.enqueue(req, passwords)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// [`Engine::execute`], with the command queued before this returns when it has no
    /// password to check: commands submitted one after another from one task are then
    /// decided in that order, while their answers are awaited concurrently (a gateway
    /// relaying one client's messages keeps them in order without waiting for each to
    /// be durable before queueing the next). A command with passwords to check is
    /// queued once they are checked, as `execute` does.
    pub fn submit(
        &self,
        req: Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Outcome, EngineError>> + Send>>
    {
        let (hashes, attempts) = self.password_work(&req);
        if attempts.is_empty() || hashes.is_empty() {
            let rx = self.enqueue(req, Prechecked::default());
            Box::pin(async move { rx?.await.map_err(|_| EngineError::Stopped)? })
        } else {
            let engine = self.clone();
            Box::pin(async move { engine.execute(req).await })
        }
    }

    /// [`Engine::execute`] for threads outside an async runtime.
    pub fn execute_blocking(&self, req: Request) -> Result<Outcome, EngineError> {
        let (hashes, attempts) = self.password_work(&req);
        let passwords = if attempts.is_empty() || hashes.is_empty() {
            Prechecked::default()
        } else {
            let rx = self
                .inner
                .queue_password_check(&req.origin, hashes, attempts)?;
            rx.blocking_recv().map_err(|_| EngineError::Stopped)?
        };
        let rx = self.enqueue(req, passwords)?;
        rx.blocking_recv().map_err(|_| EngineError::Stopped)?
    }

    /// The stored hashes a command's password attempts may be checked against (server
    /// password, the target room's access and owner passwords; the server password for
    /// a room creation) and the attempts.
    ///
    /// None when the join would be refused before any password is checked (a missing
    /// room, a ban, an autoban, a taken session): those cost no argon2.
    /// The context a password precheck asks the decision rules in: the request's actor,
    /// origin and the engine's address key, as the decider will decide it.
    fn precheck_context(&self, req: &Request) -> crate::context::Context {
        let mut ctx = crate::context::Context::new(req.actor.clone(), self.now(), "precheck");
        ctx.origin = req.origin.clone();
        ctx.ip_key = self.inner.config.ip_key.clone();
        ctx
    }

    fn password_work(&self, req: &Request) -> (Vec<String>, Vec<String>) {
        let command = &req.command;
        let (credentials, session) = match command {
            Command::Join {
                credentials,
                session,
                ..
            }
            | Command::CallAccount {
                credentials,
                session,
                ..
            } => (credentials, session),
            // A guest creating a room on a server with a password (see `decide::rooms`).
            Command::CreateRoom {
                server_password: Some(attempt),
                ..
            } => {
                let ctx = self.precheck_context(req);
                let hashes = self.read(|state| {
                    crate::decide::create_checks_server_password(state, &ctx, command)
                        .then(|| state.policy.server_password_hash.clone())
                        .flatten()
                });
                return (
                    hashes.into_iter().collect(),
                    vec![attempt.expose().to_owned()],
                );
            }
            // A knock asks for the server password only (the lobby decides the rest).
            Command::Knock {
                room,
                session,
                server_password: Some(attempt),
            } => {
                let ctx = self.precheck_context(req);
                let hashes = self.read(|state| {
                    if crate::decide::refused_before_passwords(state, &ctx, room, session) {
                        return None;
                    }
                    state.policy.server_password_hash.clone()
                });
                return (
                    hashes.into_iter().collect(),
                    vec![attempt.expose().to_owned()],
                );
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
            .cloned();
            let Some(name) = room else {
                return Vec::new();
            };
            let ctx = self.precheck_context(req);
            if crate::decide::refused_before_passwords(state, &ctx, &name, session) {
                return Vec::new();
            }
            let Some(room) = state.rooms.get(&name) else {
                return Vec::new();
            };
            let mut hashes: Vec<String> =
                state.policy.server_password_hash.iter().cloned().collect();
            hashes.extend(room.config.access_password_hash.iter().cloned());
            hashes.extend(room.reserved.iter().cloned());
            hashes
        });
        (hashes, attempts)
    }

    fn enqueue(
        &self,
        req: Request,
        passwords: Prechecked,
    ) -> Result<oneshot::Receiver<Result<Outcome, EngineError>>, EngineError> {
        self.inner.refuse_read_only()?;
        self.inner.refuse_while_storage_failed()?;
        let (reply, rx) = oneshot::channel();
        let jobs = lock(&self.inner.jobs);
        let tx = jobs.as_ref().ok_or(EngineError::Stopped)?;
        let slot = pipeline::Slot::take(&self.inner.queued, self.inner.config.max_queued_commands)
            .ok_or_else(|| {
                self.inner.metrics.queue_full();
                EngineError::Busy("the engine's command queue")
            })?;
        tx.send(Job::Command {
            req: Box::new(req),
            reply,
            passwords,
            slot,
        })
        .map_err(|_| EngineError::Stopped)?;
        Ok(rx)
    }

    /// Tests only: holds the decider (it decides nothing) until the returned sender is
    /// dropped, so a test can fill the bounded command queue deterministically.
    #[doc(hidden)]
    pub fn hold_decider(&self) -> Option<mpsc::Sender<()>> {
        let (tx, rx) = mpsc::channel();
        lock(&self.inner.jobs).as_ref()?.send(Job::Hold(rx)).ok()?;
        Some(tx)
    }

    /// The engine's clock ([`EngineConfig::clock`]).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.config.clock
    }

    /// The time on the engine's clock: what a gateway turns a duration into an instant
    /// with (a ban for ten minutes). Events are stamped by the decider, never earlier than
    /// the event before, even if the clock goes back.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.config.clock.now()
    }

    /// Expires now whatever is due at the clock's current time, and resolves once the
    /// tick's events and everything decided before it are committed. The clock thread
    /// does this by itself when a deadline comes; a test on a [`TestClock`] calls it after
    /// moving the clock to know, without waiting, that the engine has caught up with the
    /// new time. The outcome lists this tick's events only: a tick the clock thread asked
    /// for first may already have expired them ([`crate::testing::advance`] returns
    /// both).
    pub async fn tick_now(&self) -> Result<Outcome, EngineError> {
        self.inner.refuse_read_only()?;
        let answer = self.inner.ask_tick().ok_or(EngineError::Stopped)?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    /// [`Engine::tick_now`] for threads outside an async runtime.
    pub fn tick_now_blocking(&self) -> Result<Outcome, EngineError> {
        self.inner.refuse_read_only()?;
        let answer = self.inner.ask_tick().ok_or(EngineError::Stopped)?;
        answer.blocking_recv().map_err(|_| EngineError::Stopped)?
    }

    /// Reads the committed state (durable facts only).
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.inner.committed().state)
    }

    /// The sequence number the committed state covers.
    pub fn head(&self) -> u64 {
        self.inner.committed().head
    }

    /// Committed events from sequence `from` on (1 for everything), in journal order,
    /// each delivered once the committed state includes it; only those `filter` lets
    /// through. A client that resumes from [`FeedSubscription::position`] sees every
    /// later event exactly once.
    pub fn subscribe(&self, from: u64, filter: FeedFilter) -> FeedSubscription {
        self.inner
            .feed
            .subscribe(self.inner.journal.reader(), from, filter)
    }

    /// Resolves once the committed state covers sequence `seq` (read-your-writes for a
    /// gateway that learnt of an event by another path).
    pub async fn wait_for(&self, seq: u64) -> Result<(), EngineError> {
        self.inner.feed.wait_for(seq).await
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
        let mut m = self.inner.metrics.snapshot();
        m.queued_commands = self.inner.queued.load(Ordering::Acquire) as u64;
        m
    }

    /// Whether the engine is accepting commands normally: false while the journal
    /// refuses writes after a storage failure ([`Engine::storage_failure`]) and until the
    /// engine has resynchronized after it, and always on a read-only start.
    pub fn healthy(&self) -> bool {
        self.inner.read_only.is_none()
            && self.inner.journal.write_failure().is_none()
            && !self.inner.failed.load(Ordering::Acquire)
            && lock(&self.inner.jobs).is_some()
    }

    /// Set while the journal refuses writes after a storage failure (a full disk): what
    /// failed, and whether the journal retries by itself (it reopens its storage with
    /// backoff, 1 s doubling up to 30 s by default). Commands are refused meanwhile with
    /// `journal.poisoned`; reads go on from the committed state.
    pub fn storage_failure(&self) -> Option<conclave_journal::WriteFailure> {
        if self.inner.read_only.is_some() {
            return None;
        }
        self.inner.journal.write_failure()
    }

    /// Set when the engine runs read-only on a damaged journal (an operator's decision,
    /// see [`startup`]): the state is the journal's up to the record before the first bad
    /// one, and every command is refused with `journal.poisoned` (503).
    pub fn read_only(&self) -> Option<&ReadOnly> {
        self.inner.read_only.as_ref()
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
    inner.alarm.stop();
    inner.hash_pool.stop();
    let threads = std::mem::take(&mut *lock(&inner.threads));
    if threads.is_empty() {
        return;
    }
    for t in threads {
        let _ = t.join();
    }
    // The completer has pushed its last events: subscribers drain them, then end.
    inner.feed.close();
    if inner.read_only.is_some() {
        return;
    }
    if let Err(e) = inner.checkpoint() {
        tracing::warn!(error = %e, "final checkpoint failed");
    }
}

/// Why a read-only engine refuses writes (the `journal.poisoned` reason).
fn read_only_reason(ro: &ReadOnly) -> String {
    format!(
        "read-only start on a damaged journal: record {} is bad ({}); the state is as of record {}",
        ro.first_bad,
        ro.problem,
        ro.first_bad - 1
    )
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

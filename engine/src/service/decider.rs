//! The decider thread: decides commands against the working state and submits each
//! batch's events as one journal append chained on the head.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;

use chrono::{DateTime, Utc};
use conclave_journal::AppendRequest;

use super::denials::DenialThrottle;
use super::nonces::Nonces;
use super::pipeline::{Decided, Job, Pending, Reply, MAX_BATCH};
use super::remotes::RemoteMemo;
use super::{records, EngineError, Inner, Outcome, Prechecked, Request};
use crate::context::{Actor, Context, Origin};
use crate::decide::decide;
use crate::event::Event;
use crate::evolve::evolve;
use crate::rejection::{Rejected, Rejection};
use crate::state::State;
use crate::tick::tick;

/// How often a failed engine looks whether the journal accepts writes again.
const RESYNC_POLL: std::time::Duration = std::time::Duration::from_millis(100);

pub(super) struct Decider {
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
    remotes: RemoteMemo,
    denials: DenialThrottle,
}

pub(super) fn decider(
    inner: Arc<Inner>,
    jobs: mpsc::Receiver<Job>,
    pending: mpsc::Sender<Pending>,
) {
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
        remotes: RemoteMemo::default(),
        denials: DenialThrottle::default(),
    };
    // Decide everything already queued, then submit it as one append: the journal and
    // the completer then handle one request and one wake-up per batch, not per command.
    loop {
        let first = if d.inner.failed.load(Ordering::Acquire) {
            // After a failed append: resynchronize as soon as the journal accepts writes
            // again (it recovers by itself), not only when the next command comes, so
            // health turns back without traffic.
            match jobs.recv_timeout(RESYNC_POLL) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if d.inner.journal.write_failure().is_none() {
                        d.resync();
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match jobs.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
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
    /// The engine's clock ([`super::EngineConfig::clock`]), the only time the decider
    /// reads. Time never goes backwards in the journal, even if the clock does.
    fn now(&mut self) -> DateTime<Utc> {
        self.last_now = self.last_now.max(self.inner.config.clock.now());
        self.last_now
    }

    /// Starts over from the committed state once everything in flight is answered. If the
    /// committed state no longer matches the journal's head (a journal that recovered
    /// from a storage failure decides from what is on disk), it is rebuilt from the
    /// checkpoint and the journal first. While the journal still refuses writes, the
    /// engine stays marked failed, so health stays unhealthy without flip-flopping.
    fn resync(&mut self) {
        let (tx, rx) = mpsc::channel();
        if self.pending.send(Pending::Barrier(tx)).is_ok() {
            let _ = rx.recv();
        }
        let journal = &self.inner.journal;
        let storage_failed = journal.write_failure().is_some();
        if !storage_failed {
            let (head, hash) = {
                let c = self.inner.committed();
                (c.head, c.head_hash)
            };
            if head != journal.head() || hash != journal.head_hash() {
                tracing::error!(
                    committed = head,
                    journal_head = journal.head(),
                    "the committed state does not match the journal after its recovery; rebuilding"
                );
                match super::rebuild(
                    journal,
                    &self.inner.checkpoints,
                    &self.inner.config.policy,
                    None,
                ) {
                    Ok(rebuilt) => {
                        *self
                            .inner
                            .committed
                            .write()
                            .unwrap_or_else(|p| p.into_inner()) = rebuilt;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "rebuilding the committed state failed; retrying");
                        return;
                    }
                }
            }
        }
        self.inner.failed.store(storage_failed, Ordering::Release);
        let c = self.inner.committed();
        self.working = c.state.clone();
        self.head = c.head;
        if !storage_failed {
            tracing::warn!(head = self.head, "engine resynchronized with the journal");
        }
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
            scope: req.scope,
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
                let journaled = !record.is_empty() && self.journal_denial(&ctx, &record);
                if !journaled {
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

    /// Whether a refusal's record is journaled, or answered only as a repeat from the
    /// same source (see [`DenialThrottle`]).
    fn journal_denial(&mut self, ctx: &Context, record: &[Event]) -> bool {
        let source = match ctx.origin.remote_addr.as_deref() {
            Some(raw) => self
                .remotes
                .stored(raw, self.working.policy.obfuscate_ips, &ctx.ip_key),
            None => ctx.actor.to_string(),
        };
        let autoban_on = self.working.policy.autoban.attempts > 0;
        let journal = self.denials.journal(record, &source, autoban_on, ctx.now);
        if !journal {
            self.inner.metrics.denial_not_journaled();
        }
        journal
    }

    fn job(&mut self, job: Job) {
        match job {
            Job::Command {
                req,
                reply,
                passwords,
                slot,
            } => {
                self.command(*req, reply, &passwords);
                drop(slot);
            }
            Job::Tick(reply) => self.tick(reply),
            Job::Hold(until) => {
                let _ = until.recv();
            }
            // The loop resynchronizes before any job once an append has failed.
            Job::Resync => {}
        }
    }

    /// The head once the batch so far is durable.
    fn speculative_head(&self) -> u64 {
        self.head + self.records.len() as u64
    }

    /// Expiry at the current time. The answer, like a command's, is sent once the tick's
    /// events and everything decided before them are durable and applied.
    fn tick(&mut self, reply: Reply) {
        let now = self.now();
        let events = tick(&self.working, now);
        if events.is_empty() {
            let head = self.speculative_head();
            self.decided.push(Decided::Answer {
                reply,
                result: Ok(Outcome {
                    correlation_id: String::new(),
                    events: Vec::new(),
                    head,
                }),
            });
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
            scope: None,
        };
        self.stage(events, &ctx, None, Some(reply), None, Instant::now());
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
        let remote = ctx.origin.remote_addr.as_deref().map(|raw| {
            self.remotes
                .stored(raw, self.working.policy.obfuscate_ips, &ctx.ip_key)
        });
        let meta = ctx.record_meta_with(remote);
        for e in &events {
            // A record the journal would refuse is refused here, alone: in the batch's
            // append it would fail every command batched with it.
            let record = records::to_record(e, &meta, authorized_by.as_deref())
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

//! The completer thread: takes the journal's acknowledgements in order, applies them to
//! the committed state and only then answers the callers.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use conclave_journal::JournalError;

use super::pipeline::{Decided, Job, Pending, Reply};
use super::{Applied, EngineError, FeedEvent, Inner, Outcome};
use crate::evolve::evolve;

pub(super) fn completer(
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
                        let (answers, committed) = apply(&inner, appended.records, decided);
                        // Subscribers see the events before any caller hears of them.
                        inner.feed.push(committed);
                        answers
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "append failed; resynchronizing");
                        inner.failed.store(true, Ordering::Release);
                        if let Some(jobs) = super::lock(&inner.jobs).as_ref() {
                            let _ = jobs.send(Job::Resync);
                        }
                        failed(decided, &for_callers(e))
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

type Answers = Vec<(Reply, Result<Outcome, EngineError>)>;

/// Applies a durable batch to the committed state under one lock and returns the
/// answers, to be sent once the lock is released, and the events for the feed.
fn apply(
    inner: &Inner,
    records: Vec<conclave_journal::Record>,
    decided: Vec<Decided>,
) -> (Answers, Vec<FeedEvent>) {
    let mut answers = Vec::with_capacity(decided.len());
    let mut committed = Vec::with_capacity(records.len());
    let mut records = records.into_iter();
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
                event: event.clone(),
            });
            committed.push(FeedEvent::new(record, event));
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
    (answers, committed)
}

/// What callers are told when their append failed: a failed write or flush left the
/// journal refusing writes until it recovers by itself, so they hear that, as every
/// command meanwhile does (`journal.poisoned`: 503 with Retry-After), with the storage
/// error as the reason; other errors as they are.
fn for_callers(e: JournalError) -> JournalError {
    match e {
        JournalError::Storage(_) => JournalError::Poisoned(e.to_string()),
        other => other,
    }
}

/// The answers of a batch whose append failed: its journaled commands fail with the
/// journal's error, answers decided alongside them stand.
fn failed(decided: Vec<Decided>, e: &JournalError) -> Answers {
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

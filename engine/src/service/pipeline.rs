//! What flows from the caller to the decider, and from the decider to the completer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use conclave_journal::AppendTicket;
use tokio::sync::oneshot;

use super::{EngineError, Outcome, Prechecked, Request};
use crate::event::Event;
use crate::rejection::Rejection;

pub(super) type Reply = oneshot::Sender<Result<Outcome, EngineError>>;

pub(super) enum Job {
    Command {
        req: Box<Request>,
        reply: Reply,
        passwords: Prechecked,
        /// Its place in the bounded queue, given back once it is decided.
        slot: Slot,
    },
    /// Expiry at the decider's current time, answered once its events (possibly none)
    /// and everything decided before it are committed.
    Tick(Reply),
    /// Tests only ([`super::Engine::hold_decider`]): the decider waits until the
    /// sender is dropped, so the queue can be seen filling up.
    Hold(mpsc::Receiver<()>),
    /// Sent by the completer after a failed append: wakes the decider, which then
    /// resynchronizes as soon as the journal accepts writes again, without waiting for
    /// a command.
    Resync,
}

/// One place in the decider's bounded queue (see
/// [`super::EngineConfig::max_queued_commands`]); dropping it gives it back.
pub(super) struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A place if fewer than `max` are taken.
    pub(super) fn take(taken: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(taken.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the completer waits for, in submission order.
pub(super) enum Pending {
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
pub(super) enum Decided {
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
pub(super) const MAX_BATCH: usize = 64;

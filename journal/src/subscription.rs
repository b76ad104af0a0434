//! Tailing: catch up from storage, then follow acknowledgements live.
//!
//! A subscription only ever reads by sequence number from storage, up to the acknowledged
//! head; the live part merely wakes it when the head moves. So there is one code path for
//! history and live records, and the hand-over cannot skip or repeat a record.

use std::collections::VecDeque;
use std::future::Future;

use tokio::sync::watch;

use crate::error::{JournalError, Result};
use crate::reader::Reader;
use crate::record::Record;

/// Records read from storage per refill.
const CHUNK: u64 = 512;

/// An ordered stream of records from a starting sequence, never ending while the
/// journal is open.
pub struct Subscription {
    journal: Reader,
    head_rx: watch::Receiver<u64>,
    next: u64,
    buffered: VecDeque<Record>,
}

impl Subscription {
    pub(crate) fn new(journal: Reader, head_rx: watch::Receiver<u64>, from: u64) -> Self {
        Subscription {
            journal,
            head_rx,
            next: from,
            buffered: VecDeque::new(),
        }
    }

    /// The sequence number of the record `next` will return.
    pub fn position(&self) -> u64 {
        self.buffered.front().map_or(self.next, |r| r.seq)
    }

    /// The next record, waiting for it if it is not acknowledged yet.
    pub async fn next(&mut self) -> Result<Record> {
        loop {
            if let Some(r) = self.buffered.pop_front() {
                return Ok(r);
            }
            let head = *self.head_rx.borrow_and_update();
            if self.next <= head {
                let to = head.min(self.next.saturating_add(CHUNK - 1));
                let chunk = self.journal.read_range(self.next, to)?;
                let mut expect = self.next;
                for r in chunk {
                    if r.seq != expect {
                        return Err(JournalError::Corrupt {
                            seq: expect,
                            reason: format!("missing; the next stored record is {}", r.seq),
                        });
                    }
                    expect += 1;
                    self.buffered.push_back(r);
                }
                if expect <= to {
                    return Err(JournalError::Corrupt {
                        seq: expect,
                        reason: "acknowledged but not found in storage".into(),
                    });
                }
                self.next = expect;
                continue;
            }
            self.head_rx
                .changed()
                .await
                .map_err(|_| JournalError::Closed)?;
        }
    }

    /// The next record if one is already acknowledged, without waiting.
    pub fn try_next(&mut self) -> Result<Option<Record>> {
        if self.buffered.is_empty() && self.next > *self.head_rx.borrow() {
            return Ok(None);
        }
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let fut = std::pin::pin!(self.next());
        match fut.poll(&mut cx) {
            std::task::Poll::Ready(r) => r.map(Some),
            std::task::Poll::Pending => Ok(None),
        }
    }
}

//! The outbox: follows the engine's committed feed from the persisted cursor and
//! publishes every record, in order, once the engine has applied it (so what a NATS
//! subscriber learns, a REST read already shows), advancing the cursor only on the
//! server's word.
//!
//! JetStream: the first record of a session is published alone and its PubAck awaited
//! (it may be a duplicate of one acknowledged before a crash: `Nats-Msg-Id` makes the
//! stream drop it). After that, up to `window` publishes are pipelined, each carrying
//! `Nats-Expected-Last-Msg-Id` = the previous sequence: if a message were lost in a
//! reconnect while a later one got through, the server refuses the later one instead of
//! storing it out of order, and the session restarts from the first unacknowledged
//! record. Acks are consumed in order, so the cursor never passes a gap.
//!
//! Core NATS: a batch is published, then a request on a subject nobody serves makes a
//! round trip (the server answers "no responders"), which proves the server processed
//! every message before it; only then does the cursor move.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::connection::State;
use async_nats::jetstream::context::{PublishAckFuture, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::{jetstream, Client};
use conclave_engine::service::{Engine, EngineError, FeedEvent, FeedFilter, FeedSubscription};
use tokio::sync::watch;

use crate::cursor::CursorFile;
use crate::envelope::{envelope_of, Envelope};
use crate::error::NatsError;
use crate::status::Shared;
use crate::Settings;

pub(crate) struct Publisher {
    pub engine: Engine,
    pub client: Client,
    pub js: Option<jetstream::Context>,
    pub settings: Arc<Settings>,
    pub shared: Arc<Shared>,
    pub cursor_tx: watch::Sender<u64>,
    pub stop: watch::Receiver<bool>,
}

impl Publisher {
    pub async fn run(mut self) {
        let mut backoff = self.settings.backoff_min;
        loop {
            if *self.stop.borrow() {
                return;
            }
            let before = self.shared.cursor.load(Ordering::Acquire);
            let err = match self.session().await {
                Ok(()) => return,
                Err(e) => e,
            };
            self.shared.publish_errors.fetch_add(1, Ordering::Relaxed);
            self.shared.error(err.code(), err.to_string());
            if self.shared.cursor.load(Ordering::Acquire) > before {
                backoff = self.settings.backoff_min;
            }
            if matches!(err, NatsError::OutOfOrder { .. }) {
                tracing::info!(error = %err, "restarting publication unpipelined");
                continue;
            }
            tracing::warn!(error = %err, retry_in = ?backoff, "NATS publication interrupted");
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.changed() => return,
            }
            backoff = (backoff * 2).min(self.settings.backoff_max);
        }
    }

    /// Publishes from the cursor on until stopped (`Ok`) or until something fails.
    async fn session(&mut self) -> Result<(), NatsError> {
        if !self.wait_connected().await {
            return Ok(());
        }
        let cursor = self.shared.cursor.load(Ordering::Acquire);
        let sub = self.engine.subscribe(cursor + 1, FeedFilter::all());
        match self.js.clone() {
            Some(js) => self.jetstream_session(&js, sub).await,
            None => self.core_session(sub).await,
        }
    }

    /// Waits for a connection; false if stopped meanwhile.
    async fn wait_connected(&mut self) -> bool {
        loop {
            if *self.stop.borrow() {
                return false;
            }
            if self.client.connection_state() == State::Connected {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = self.stop.changed() => return false,
            }
        }
    }

    /// The next record, or `None` once stopped.
    async fn next_or_stop(
        &mut self,
        sub: &mut FeedSubscription,
    ) -> Result<Option<Arc<FeedEvent>>, NatsError> {
        tokio::select! {
            r = sub.next() => Ok(Some(r.map_err(feed_error)?)),
            _ = self.stop.changed() => Ok(None),
        }
    }

    fn envelope(&self, e: &FeedEvent) -> Envelope {
        envelope_of(
            &self.settings.prefix,
            &self.settings.source,
            &e.record,
            Ok(&e.event),
        )
    }

    fn advance(&self, seq: u64, n: u64) {
        self.shared.cursor.store(seq, Ordering::Release);
        self.shared.published.fetch_add(n, Ordering::Relaxed);
        self.cursor_tx.send_replace(seq);
    }

    async fn jetstream_session(
        &mut self,
        js: &jetstream::Context,
        mut sub: FeedSubscription,
    ) -> Result<(), NatsError> {
        let mut inflight: VecDeque<(u64, PublishAckFuture)> = VecDeque::new();
        let mut pipelined = false;
        let mut last_sent = 0u64;
        loop {
            if inflight.is_empty() {
                let Some(record) = self.next_or_stop(&mut sub).await? else {
                    return Ok(());
                };
                let expect = pipelined.then_some(last_sent);
                let fut = send_js(js, self.envelope(&record), expect).await?;
                last_sent = record.seq();
                inflight.push_back((record.seq(), fut));
            }
            if pipelined {
                while inflight.len() < self.settings.window {
                    let Some(record) = sub.try_next().map_err(feed_error)? else {
                        break;
                    };
                    let fut = send_js(js, self.envelope(&record), Some(last_sent)).await?;
                    last_sent = record.seq();
                    inflight.push_back((record.seq(), fut));
                }
            }
            let Some((seq, fut)) = inflight.pop_front() else {
                continue;
            };
            let ack = fut.await.map_err(|e| publish_error(seq, &e))?;
            if ack.duplicate {
                self.shared.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            self.advance(seq, 1);
            pipelined = true;
        }
    }

    async fn core_session(&mut self, mut sub: FeedSubscription) -> Result<(), NatsError> {
        let confirm_subject = format!("{}.outbox.confirm", self.settings.prefix);
        loop {
            let Some(first) = self.next_or_stop(&mut sub).await? else {
                return Ok(());
            };
            let mut batch = vec![first];
            while batch.len() < self.settings.window {
                match sub.try_next().map_err(feed_error)? {
                    Some(r) => batch.push(r),
                    None => break,
                }
            }
            let mut last = 0;
            for record in &batch {
                if self.client.connection_state() != State::Connected {
                    return Err(NatsError::Publish {
                        seq: record.seq(),
                        reason: "not connected".into(),
                    });
                }
                let env = self.envelope(record);
                self.client
                    .publish_with_headers(env.subject, env.headers, env.payload)
                    .await
                    .map_err(|e| NatsError::Publish {
                        seq: record.seq(),
                        reason: e.to_string(),
                    })?;
                last = record.seq();
            }
            let req = async_nats::Request::new().timeout(Some(self.settings.ack_timeout));
            match self.client.send_request(confirm_subject.clone(), req).await {
                Ok(_) => {}
                Err(e) if e.kind() == RequestErrorKind::NoResponders => {}
                Err(e) => {
                    return Err(NatsError::Publish {
                        seq: last,
                        reason: format!("no confirmation round trip: {e}"),
                    })
                }
            }
            self.advance(last, batch.len() as u64);
        }
    }
}

async fn send_js(
    js: &jetstream::Context,
    env: Envelope,
    expected_last: Option<u64>,
) -> Result<PublishAckFuture, NatsError> {
    let mut publish = PublishMessage::build()
        .payload(env.payload)
        .headers(env.headers);
    if let Some(prev) = expected_last {
        publish = publish.expected_last_message_id(prev.to_string());
    }
    js.send_publish(env.subject, publish)
        .await
        .map_err(|e| publish_error(env.seq, &e))
}

fn publish_error(seq: u64, e: &async_nats::jetstream::context::PublishError) -> NatsError {
    match e.kind() {
        PublishErrorKind::WrongLastMessageId => NatsError::OutOfOrder {
            seq,
            expected: seq.saturating_sub(1),
        },
        PublishErrorKind::StreamNotFound => NatsError::Publish {
            seq,
            reason: "no JetStream stream captures the event subjects \
                     (run `conclave nats setup`)"
                .into(),
        },
        _ => NatsError::Publish {
            seq,
            reason: e.to_string(),
        },
    }
}

/// Writes the cursor file whenever the acknowledged cursor moves, at most once per
/// `every`, and a last time when the publisher ends.
pub(crate) async fn persist_cursor(
    file: CursorFile,
    mut rx: watch::Receiver<u64>,
    shared: Arc<Shared>,
    every: Duration,
) {
    let mut stored = *rx.borrow_and_update();
    loop {
        let ended = rx.changed().await.is_err();
        let value = *rx.borrow_and_update();
        if value != stored {
            let f = file.clone();
            let r = tokio::task::spawn_blocking(move || f.store(value)).await;
            match r {
                Ok(Ok(())) => {
                    stored = value;
                    shared.persisted.store(value, Ordering::Release);
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot store the NATS cursor");
                    shared.error(e.code(), e.to_string());
                }
                Err(e) => shared.error("nats.cursor", e.to_string()),
            }
        }
        if ended {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

/// The feed ends only when the engine stops; anything else is a read failure.
fn feed_error(e: EngineError) -> NatsError {
    match e {
        EngineError::Journal(j) => NatsError::Journal(j),
        other => NatsError::Subscribe(format!("committed feed: {other}")),
    }
}

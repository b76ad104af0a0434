//! How handlers talk to the transaction layer: they run as tasks (they wait for the
//! engine), the layer lives in the server's one core task, and this channel joins them.

use tokio::sync::{mpsc, oneshot};

use crate::transaction::{Peer, ServerKey};

/// What a handler asks the core task to do.
#[derive(Debug)]
pub enum CoreCommand {
    /// Answer a server transaction.
    Respond {
        key: ServerKey,
        response: rsip::Response,
    },
    /// Send a request in a new client transaction; `done` gets its final outcome.
    Send {
        to: Peer,
        request: rsip::Request,
        done: oneshot::Sender<ClientOutcome>,
    },
}

/// How a request we sent ended.
#[derive(Debug, Clone)]
pub enum ClientOutcome {
    /// A final response.
    Answered(u16),
    /// No final response in time (Timer F).
    TimedOut,
    /// The core stopped or could not send it (a closed connection).
    NotSent,
}

impl ClientOutcome {
    /// Whether the request was answered with 2xx.
    pub fn delivered(&self) -> bool {
        matches!(self, ClientOutcome::Answered(code) if (200..300).contains(code))
    }
}

/// A handler's end of the channel.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<CoreCommand>,
}

impl Outbox {
    pub fn new(tx: mpsc::Sender<CoreCommand>) -> Self {
        Outbox { tx }
    }

    /// Answers `key`. Dropped only when the core is gone (the server stops).
    pub async fn respond(&self, key: &ServerKey, response: rsip::Response) {
        let _ = self
            .tx
            .send(CoreCommand::Respond {
                key: key.clone(),
                response,
            })
            .await;
    }

    /// Sends `request` to `to` and waits for how it ended.
    pub async fn request(&self, to: Peer, request: rsip::Request) -> ClientOutcome {
        let (done, rx) = oneshot::channel();
        if self
            .tx
            .send(CoreCommand::Send { to, request, done })
            .await
            .is_err()
        {
            return ClientOutcome::NotSent;
        }
        rx.await.unwrap_or(ClientOutcome::NotSent)
    }
}

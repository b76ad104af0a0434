//! Non-INVITE client transaction state (RFC 3261 §17.1.2).

use std::time::{Duration, Instant};

use super::types::{ClientKey, Peer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientState {
    Trying,
    Proceeding,
    /// A final arrived (Timer K running): retransmitted finals are absorbed.
    Completed,
}

#[derive(Debug)]
pub(crate) struct ClientTx {
    pub key: ClientKey,
    pub peer: Peer,
    pub bytes: Vec<u8>,
    pub state: ClientState,
    /// Timer E (UDP only).
    pub retransmit_at: Option<Instant>,
    pub interval: Duration,
    /// Timer F, then Timer K.
    pub end_at: Option<Instant>,
}

impl ClientTx {
    pub fn deadline(&self) -> Option<Instant> {
        match (self.retransmit_at, self.end_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

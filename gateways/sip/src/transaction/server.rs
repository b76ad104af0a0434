//! Server transaction state (RFC 3261 §17.2, RFC 6026 §8).

use std::time::{Duration, Instant};

use super::types::{Peer, ServerKey};

/// Where a server transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerState {
    /// Non-INVITE, no response from the TU yet: retransmissions are absorbed silently.
    Trying,
    /// A provisional was sent (for INVITE, the layer's own `100 Trying` first).
    Proceeding,
    /// A final was sent (non-2xx for INVITE): retransmissions get it again.
    Completed,
    /// INVITE: the ACK of our non-2xx arrived (Timer I running).
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026); it is retransmitted until the ACK (§13.3.1.4).
    Accepted,
}

#[derive(Debug)]
pub(crate) struct ServerTx {
    pub key: ServerKey,
    pub peer: Peer,
    pub invite: bool,
    pub state: ServerState,
    /// The last response sent, as bytes (resent on retransmitted requests and timers).
    pub last: Option<Vec<u8>>,
    /// Timer G, or the 2xx retransmission.
    pub retransmit_at: Option<Instant>,
    pub interval: Duration,
    /// Timers H, I, J, L, or the guard while waiting for the TU.
    pub end_at: Option<Instant>,
    /// INVITE in Accepted: the ACK arrived.
    pub acked: bool,
    /// INVITE: a CANCEL already reported it.
    pub cancelled: bool,
    /// INVITE in Accepted: its entry in the 2xx-ACK index.
    pub ack_index: Option<(String, u32)>,
}

impl ServerTx {
    pub fn deadline(&self) -> Option<Instant> {
        match (self.retransmit_at, self.end_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the TU may still send a final response.
    pub fn awaits_final(&self) -> bool {
        matches!(self.state, ServerState::Trying | ServerState::Proceeding)
    }
}

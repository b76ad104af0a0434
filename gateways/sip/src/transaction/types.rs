//! What goes in and out of the transaction layer.

use std::net::SocketAddr;
use std::time::Duration;

/// The transport a message came over or leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// Whether the transport is reliable (no retransmissions, zero wait timers).
    pub fn is_reliable(self) -> bool {
        matches!(self, Self::Tcp)
    }
}

/// The other end: address, transport, and for TCP the connection id the shell gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    pub connection: Option<u64>,
}

impl Peer {
    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Udp,
            addr,
            connection: None,
        }
    }

    pub fn tcp(addr: SocketAddr, connection: u64) -> Self {
        Self {
            transport: Transport::Tcp,
            addr,
            connection: Some(connection),
        }
    }
}

/// RFC 3261 timer values and the layer's bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
    /// Most live transactions (server and client); beyond it new requests get `503`.
    pub max_transactions: usize,
    /// Most live server transactions of one source address: one address's flood of new
    /// requests gets `503` itself and leaves room for everyone else.
    pub max_transactions_per_address: usize,
    /// Longest an INVITE server transaction waits for the TU's final response before the
    /// layer answers `408` itself (no RFC timer; it keeps a stuck TU from pinning state).
    pub invite_guard: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            // A completed non-INVITE transaction lingers 32 s over UDP (Timer J) to
            // absorb retransmissions, and each MESSAGE fanned out to 9 members opens 9
            // client transactions (5 s each, Timer K): at R MESSAGEs a second into such
            // a room about 77 R are live. 200 000 (under 1 KiB each: about 150 MiB at
            // worst) serves 2 500 MESSAGEs a second; one address (a proxy in front
            // carries everyone's) may hold half.
            max_transactions: 200_000,
            max_transactions_per_address: 100_000,
            invite_guard: Duration::from_secs(300),
        }
    }
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, J (UDP), L, and the 2xx ACK wait.
    pub fn t64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Identifies a server transaction (RFC 3261 §17.2.3): top Via branch and sent-by, and
/// the method (ACK counted as INVITE). A branch without the magic cookie adds Call-ID,
/// CSeq number and From tag (an approximation of the RFC 2543 rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    pub(crate) branch: String,
    pub(crate) sent_by: String,
    pub(crate) method: &'static str,
    pub(crate) legacy: Option<(String, u32, String)>,
}

impl ServerKey {
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The request method (`INVITE`, `MESSAGE`, ...).
    pub fn method(&self) -> &'static str {
        self.method
    }
}

/// Identifies one of our client transactions (RFC 3261 §17.1.3): branch and CSeq method.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey {
    pub(crate) branch: String,
    pub(crate) method: &'static str,
}

impl ClientKey {
    pub fn branch(&self) -> &str {
        &self.branch
    }

    pub fn method(&self) -> &'static str {
        self.method
    }
}

/// What the layer asks of the shell (`Transmit`) and of the TU (everything else).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes to send.
    Transmit { to: Peer, bytes: Vec<u8> },
    /// A new request (never a retransmission); answer it with `respond(key, ..)`.
    Request {
        key: ServerKey,
        from: Peer,
        request: rsip::Request,
    },
    /// An ACK outside any transaction: the ACK of a 2xx (§13.3.1.4), for the dialog.
    Ack { from: Peer, request: rsip::Request },
    /// A CANCEL matched this pending INVITE; the layer answered the CANCEL `200`; the TU
    /// should answer the INVITE `487`.
    Cancelled { invite: ServerKey },
    /// A response (provisional or final) to one of our requests.
    Response {
        key: ClientKey,
        response: rsip::Response,
    },
    /// Timer F: no final response to our request (or it could not be sent at all).
    Timeout { key: ClientKey },
    /// Our 2xx to this INVITE got no ACK within 64*T1: the TU ends the call (BYE).
    AckTimeout { invite: ServerKey },
}

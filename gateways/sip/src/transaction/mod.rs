//! RFC 3261 §17 transactions, sans-IO (messages and `now` in, outputs polled, the next
//! deadline computed), with RFC 6026's Accepted state.
//!
//! Choices where the RFCs leave room:
//! - An INVITE gets `100 Trying` from the layer at once (§17.2.1 allows it).
//! - The UAS core's 2xx retransmission (§13.3.1.4: T1 doubling to T2 until the ACK,
//!   64*T1 at most) lives here, in the Accepted state, on every transport as the RFC
//!   says; no ACK in time gives `Output::AckTimeout` and the TU sends BYE. An ACK
//!   matching no transaction goes to the TU (`Output::Ack`) and also stops that
//!   retransmission (matched by Call-ID and CSeq number).
//! - CANCEL matches INVITE transactions only (CANCEL of a non-INVITE is a SHOULD NOT,
//!   §9.1); unmatched, the layer answers `481` statelessly.
//! - Max-Forwards 0 on a new request other than OPTIONS: the layer answers `483`
//!   through a transaction (so the ACK of an INVITE is absorbed); OPTIONS goes to the
//!   TU (§11).
//! - Over `max_transactions`: a stateless `503` with `Retry-After: 5`, nothing stored.
//!   Stateless answers carry a To tag starting `sl.`; their ACKs are absorbed.
//! - A non-INVITE server transaction the TU never answers ends after 64*T1; an
//!   INVITE one after `invite_guard`, with a `408` from the layer.
//! - Over TCP: no Timer G/E retransmissions and Timers I, J, K are zero.
//! - Responses go to the peer the request came from (rport-like, NAT-friendly).

mod client;
mod keys;
mod layer;
mod server;
mod types;

pub use layer::TransactionLayer;
pub use types::{ClientKey, Output, Peer, ServerKey, TimerConfig, Transport};

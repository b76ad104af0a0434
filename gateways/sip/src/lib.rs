//! The SIP gateway: SIP phones and SIP MESSAGE clients in Conclave rooms.
//!
//! Every protocol layer is sans-IO (bytes and time in, bytes and deadlines out) and
//! tested without sockets; only `server` touches the network and the engine.
//! - `wire`: parsing and checking messages (rsip underneath), TCP stream framing, and
//!   building responses;
//! - `transaction`: the RFC 3261 §17 server and client transactions;
//! - `digest`: digest authentication (RFC 7616/8760: MD5 and SHA-256, `qop=auth`);
//! - `imc`: Kamailio-IMC-style conferencing commands over `MESSAGE`;
//! - `sdp`, `info`, `session_timer`: the offer/answer, DTMF over `INFO`, and RFC 4028
//!   session timers of audio calls.

pub mod app;
pub mod config;
pub mod digest;
pub mod imc;
pub mod info;
pub mod registrar;
pub mod sdp;
pub mod server;
pub mod session_timer;
pub mod transaction;
pub mod wire;

//! Kamailio-IMC-style conferencing over SIP `MESSAGE`: `#create`, `#join`, `#invite`,
//! `#accept`, `#deny`, `#remove`, `#exit`, `#destroy`, `#list` and `#help`, sent to the
//! manager URI or to a room URI, and chat lines sent to a room URI.
//!
//! Every command is one or more engine commands through the gateway's
//! [`GatewayHandle`], with the sender as the actor: a room made here is the room REST
//! users see, and a ban made anywhere refuses the SIP identity at once. Membership is a
//! session ([`im_session`]). Answers are a SIP status plus, as Kamailio sends them,
//! `*** ...` notice `MESSAGE`s; how a refusal answers is the engine's table
//! ([`conclave_engine::ImcOutcome`]). What the room hears about events, whoever caused
//! them, is [`notices_for`] and [`chat_line`], delivered through a [`Roster`].
//!
//! - `command`: reading a body into a command (pure);
//! - `addressing`: URIs, and the room and user arguments;
//! - `execute`: running a command against the engine;
//! - `fanout`: events into notices and chat lines (pure);
//! - `session`: the IM session id and the roster of IM members;
//! - `notice`: the texts.

mod addressing;
mod command;
mod execute;
mod fanout;
mod notice;
mod session;

use std::net::SocketAddr;

use conclave_engine::service::GatewayHandle;
use conclave_engine::Address;

pub use addressing::{Addressing, Target};
pub use command::{parse, ImcCommand, ImcError, Parsed};
pub use fanout::{chat_line, notices_for, ChatLine, EventNotice, Recipients};
pub use session::{im_session, Roster};

/// A `MESSAGE` with a non-empty body, as the transaction user hands it over.
#[derive(Debug, Clone)]
pub struct ImcRequest {
    /// The sender (`sip:`), already authenticated.
    pub sender: Address,
    /// What the Request-URI names.
    pub target: Target,
    /// The body (text).
    pub body: String,
    /// Where it came from (journaled, obfuscated by policy; address bans apply to it).
    pub remote: Option<SocketAddr>,
    /// The Call-ID: the engine's correlation id.
    pub call_id: String,
}

/// The answer: the final response to the `MESSAGE`, and notices to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImcReply {
    /// SIP status code.
    pub status: u16,
    /// Reason phrase (one printable line).
    pub reason: String,
    /// `Retry-After` seconds, for what is only temporarily impossible.
    pub retry_after: Option<u32>,
    /// `MESSAGE`s to send.
    pub notices: Vec<Notice>,
}

/// A `MESSAGE` the gateway sends: from a room's or the manager's URI to someone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The recipient.
    pub to: Address,
    /// The room's or the manager's URI.
    pub from_uri: String,
    /// The text.
    pub body: String,
}

/// The IMC service: cheap to clone, shared by every transaction.
#[derive(Clone)]
pub struct Imc {
    handle: GatewayHandle,
    addressing: Addressing,
}

impl Imc {
    /// An IMC service acting through `handle` (scoped to `sip:`, named `sip`), with
    /// `command_char` starting commands (it replaces `addressing.command_char`).
    pub fn new(handle: GatewayHandle, mut addressing: Addressing, command_char: char) -> Self {
        addressing.command_char = command_char;
        Imc { handle, addressing }
    }

    /// The addressing in force (with the command character).
    pub fn addressing(&self) -> &Addressing {
        &self.addressing
    }

    /// Answers one `MESSAGE`.
    pub async fn handle(&self, req: ImcRequest) -> ImcReply {
        execute::handle(self, req).await
    }
}

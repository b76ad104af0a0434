//! What a gateway sends the engine and what comes back.

use crate::command::Command;
use crate::context::{Actor, Origin};
use crate::event::Event;

/// A command with who sent it and how.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub actor: Actor,
    pub origin: Origin,
    /// Set by gateways that have one (a request id); generated otherwise.
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// The credential that authorized this command when it is not the actor's own
    /// (`admin`, `service:<name>` acting as a person); journaled with the events.
    pub authorized_by: Option<String>,
    /// The address schemes the sending gateway may act for; set by
    /// [`super::GatewayHandle`] (`None`: any).
    pub scope: Option<std::sync::Arc<[crate::ids::Scheme]>>,
}

impl Request {
    pub fn new(command: Command, actor: Actor, origin: Origin) -> Self {
        Request {
            command,
            actor,
            origin,
            correlation_id: None,
            causation_id: None,
            authorized_by: None,
            scope: None,
        }
    }
}

/// An event as it was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub seq: u64,
    pub stream: String,
    pub event: Event,
}

/// What an accepted command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub correlation_id: String,
    /// Empty for a command that changed nothing (an idempotent repeat).
    pub events: Vec<Applied>,
    /// The committed journal head after this command.
    pub head: u64,
}

//! What `decide` knows about the world besides the state: who acts, through which
//! gateway, at what time, and the inputs it must not produce itself (ids, keys).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{Address, IdSeed};
use crate::policy::{stored_remote_addr, IpKey, Policy};

/// Who issued a command.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Actor {
    /// A person, by the identity they authenticated with on their gateway.
    Identity(Address),
    /// The server operator (admin token, CLI).
    Admin,
    /// A trusted internal component (the clock driving expiry, a gateway acting on its
    /// own behalf). Services have operator rights.
    Service(String),
}

impl Actor {
    /// Operator-level actors bypass room permissions.
    pub fn is_privileged(&self) -> bool {
        matches!(self, Actor::Admin | Actor::Service(_))
    }

    /// The identity behind the actor, if it is a person.
    pub fn identity(&self) -> Option<&Address> {
        match self {
            Actor::Identity(a) => Some(a),
            _ => None,
        }
    }
}

impl Actor {
    /// Parses the display form: `admin`, `service:<name>` or an identity address.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "admin" {
            return Ok(Actor::Admin);
        }
        if let Some(name) = s.strip_prefix("service:") {
            return Ok(Actor::Service(name.to_owned()));
        }
        Address::parse(s)
            .map(Actor::Identity)
            .map_err(|e| e.to_string())
    }
}

/// Actors travel as their display form.
impl Serialize for Actor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Actor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Actor::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Identity(a) => write!(f, "{a}"),
            Actor::Admin => f.write_str("admin"),
            Actor::Service(s) => write!(f, "service:{s}"),
        }
    }
}

/// Where a command came from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Origin {
    /// Gateway name: "web", "sip", "xmpp", "nats", "cli"...
    pub gateway: String,
    /// Wire protocol: "https", "ws", "sip", "xmpp"...
    pub protocol: String,
    /// Remote address as seen by the gateway (`ip` or `ip:port`); stored only through
    /// [`crate::policy::stored_remote_addr`].
    pub remote_addr: Option<String>,
}

/// Everything a decision depends on besides state and command.
#[derive(Debug, Clone)]
pub struct Context {
    /// Who acts.
    pub actor: Actor,
    /// Through which gateway.
    pub origin: Origin,
    /// The time of the decision (read by the service, never by the core).
    pub now: DateTime<Utc>,
    /// Ties together everything caused by one request.
    pub correlation_id: String,
    /// The event or command that caused this command, if any.
    pub causation_id: Option<String>,
    /// Seed for ids minted by this decision.
    pub ids: IdSeed,
    /// Key for obfuscating remote addresses (from configuration).
    pub ip_key: IpKey,
    /// The address schemes the gateway may act for (`None`: any; see
    /// [`crate::service::GatewayHandle`]).
    pub scope: Option<std::sync::Arc<[crate::ids::Scheme]>>,
}

impl Context {
    /// A context with empty origin, a seed equal to the correlation id and a zero key:
    /// convenient for tests and tools; services fill every field.
    pub fn new(actor: Actor, now: DateTime<Utc>, correlation_id: impl Into<String>) -> Self {
        let correlation_id = correlation_id.into();
        Context {
            actor,
            origin: Origin::default(),
            now,
            ids: IdSeed::new(correlation_id.clone()),
            correlation_id,
            causation_id: None,
            ip_key: IpKey([0; 32]),
            scope: None,
        }
    }
}

/// The metadata the journal stores next to every event of one command: who, through
/// which gateway and protocol, from where (already obfuscated by policy), and the
/// correlation / causation ids. Built here so the raw remote address never reaches
/// storage by accident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordMeta {
    /// Who acted.
    pub actor: Actor,
    /// Gateway name.
    pub gateway: String,
    /// Wire protocol.
    pub protocol: String,
    /// Remote address as it may be stored (keyed hash when `obfuscate_ips` is on).
    pub remote: Option<String>,
    /// Correlation id.
    pub correlation_id: String,
    /// Causation id.
    pub causation_id: Option<String>,
}

impl Context {
    /// The record metadata for this command under `policy`.
    pub fn record_meta(&self, policy: &Policy) -> RecordMeta {
        self.record_meta_with(
            self.origin
                .remote_addr
                .as_deref()
                .map(|r| stored_remote_addr(r, policy.obfuscate_ips, &self.ip_key)),
        )
    }

    /// The record metadata with the remote address already in its stored form (the
    /// engine service remembers stored forms; see `service::remotes`).
    pub fn record_meta_with(&self, stored_remote: Option<String>) -> RecordMeta {
        RecordMeta {
            actor: self.actor.clone(),
            gateway: self.origin.gateway.clone(),
            protocol: self.origin.protocol.clone(),
            remote: stored_remote,
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
        }
    }
}

/// Checks a password attempt against a stored argon2 PHC hash. Injected so the core stays
/// deterministic and cheap to test; the service implements it with `argon2`.
pub trait PasswordVerifier {
    /// Whether `attempt` matches `stored_hash`. Must not panic on malformed hashes.
    fn verify(&self, stored_hash: &str, attempt: &str) -> bool;
}

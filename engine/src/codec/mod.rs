//! Events as journal records: `(event_type, schema_version, payload, personal_content)`.
//!
//! Domain events are converted to frozen storage types ([`stored`]) and written with
//! bincode 2 (serde, standard config). Personal content (chat bodies, display names)
//! is kept out of the payload and returned separately so the journal can put it in its
//! content side store and purge it under retention or erasure while the hash chain
//! (which covers a digest of it) still verifies. `decode` copes with purged content:
//! the field becomes `None`.
//!
//! | module | idea |
//! | --- | --- |
//! | [`stored`] | the frozen storage structs, per schema version |
//! | [`types`] | the type table: name, current version and decoder, one row per type |
//! | `encode` | domain → storage, one arm per event variant |
//! | `convert` | the shared value types (times, principals, roles...) both ways |
//! | [`upcast`] | old versions → current, byte to byte (`peer_kick` v1 → v2) |

mod convert;
mod encode;
pub mod stored;
pub mod types;
pub mod upcast;

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

use crate::event::Event;
use convert::{actor_in, actor_out, time_in};
use stored::v1;
pub use types::{TypeSpec, TYPES};
pub use upcast::{Upcaster, UPCASTERS};

/// Why a record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The event type is not known to this build.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The type is known but not in this version (too new, or no upcaster).
    #[error("unknown schema version {version} of event type {event_type:?}")]
    UnknownVersion {
        /// The type.
        event_type: String,
        /// The version.
        version: u16,
    },
    /// The bytes do not decode as the type's storage struct.
    #[error("cannot decode {event_type} v{version}: {reason}")]
    Payload {
        /// The type.
        event_type: String,
        /// The version.
        version: u16,
        /// The decoder's message.
        reason: String,
    },
    /// A decoded field is not valid in the domain.
    #[error("invalid {field} in stored event: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Encoding failed (should not happen for well-formed events).
    #[error("cannot encode {event_type}: {reason}")]
    Encode {
        /// The type.
        event_type: &'static str,
        /// The encoder's message.
        reason: String,
    },
}

/// An encoded event, ready for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Stable snake_case type name.
    pub event_type: &'static str,
    /// Schema version of `payload`.
    pub schema_version: u16,
    /// bincode of `(Envelope, payload struct)`.
    pub payload: Vec<u8>,
    /// bincode of the personal text, if the event carries any.
    pub personal_content: Option<Vec<u8>>,
}

/// The current schema version of a type, if known.
pub fn current_version(event_type: &str) -> Option<u16> {
    types::spec(event_type).map(|t| t.version)
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn ser<T: Serialize>(event_type: &'static str, value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode {
        event_type,
        reason: e.to_string(),
    })
}

fn de<T: DeserializeOwned>(event_type: &str, version: u16, bytes: &[u8]) -> Result<T, CodecError> {
    let err = |reason: String| CodecError::Payload {
        event_type: event_type.to_owned(),
        version,
        reason,
    };
    let (value, read) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| err(e.to_string()))?;
    if read != bytes.len() {
        return Err(err(format!("{} trailing bytes", bytes.len() - read)));
    }
    Ok(value)
}

/// Encode an event as a journal record.
pub fn encode(event: &Event) -> Result<Encoded, CodecError> {
    let t = event.type_name();
    let spec = types::spec(t).ok_or_else(|| CodecError::UnknownType(t.to_owned()))?;
    let env = v1::Envelope {
        at_secs: event.at.timestamp(),
        at_nanos: event.at.timestamp_subsec_nanos(),
        actor: actor_out(&event.actor),
    };
    let (payload, personal_content) = encode::payload(spec.name, &env, &event.kind)?;
    Ok(Encoded {
        event_type: spec.name,
        schema_version: spec.version,
        payload,
        personal_content,
    })
}

/// Decode a journal record into a domain event, upcasting old versions first.
/// `content` is the personal content as stored, or `None` if there was none or it was
/// purged: personal fields then decode as `None`.
pub fn decode(
    event_type: &str,
    schema_version: u16,
    payload: &[u8],
    content: Option<&[u8]>,
) -> Result<Event, CodecError> {
    let spec =
        types::spec(event_type).ok_or_else(|| CodecError::UnknownType(event_type.to_owned()))?;
    if schema_version == 0 || schema_version > spec.version {
        return Err(CodecError::UnknownVersion {
            event_type: event_type.to_owned(),
            version: schema_version,
        });
    }
    let bytes = upcast::to_current(spec.name, schema_version, spec.version, payload)?;
    let (env, kind) = spec.decode(&types::Raw {
        name: spec.name,
        version: spec.version,
        payload: &bytes,
        content,
    })?;
    Ok(Event {
        at: time_in("at", env.at_secs, env.at_nanos)?,
        actor: actor_in(env.actor)?,
        kind,
    })
}

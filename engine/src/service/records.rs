//! Between domain events and journal records: encoding with metadata, and decoding with
//! the personal content fetched from the journal's side store.

use conclave_journal::{Content, Metadata, NewRecord, Reader, Record};

use crate::codec::{self, CodecError};
use crate::context::Context;
use crate::event::Event;
use crate::state::State;

use super::EngineError;

/// The journal record for an event decided in `ctx`. The remote address is stored
/// obfuscated when the policy says so (Mumble `obfuscate-ips`).
pub(crate) fn to_record(
    event: &Event,
    ctx: &Context,
    state: &State,
    authorized_by: Option<&str>,
) -> Result<NewRecord, CodecError> {
    let encoded = codec::encode(event)?;
    let meta = ctx.record_meta(&state.policy);
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(NewRecord {
        stream: event.stream().to_string(),
        event_type: encoded.event_type.to_owned(),
        schema_version: encoded.schema_version,
        timestamp: event.at,
        payload: encoded.payload,
        content: encoded.personal_content,
        meta: Metadata {
            actor: Some(event.actor.to_string()),
            gateway: nonempty(&meta.gateway),
            protocol: nonempty(&meta.protocol),
            remote_addr: meta.remote,
            correlation_id: Some(meta.correlation_id),
            causation_id: meta.causation_id,
            authorized_by: authorized_by.map(str::to_owned),
        },
    })
}

/// The domain event stored in a record; purged personal content decodes as absent.
pub fn from_record(journal: &Reader, record: &Record) -> Result<Event, EngineError> {
    let content = match &record.content_digest {
        None => None,
        Some(digest) => match journal.content(digest)? {
            Content::Present(bytes) => Some(bytes),
            Content::Purged => None,
        },
    };
    codec::decode(
        &record.event_type,
        record.schema_version,
        &record.payload,
        content.as_deref(),
    )
    .map_err(|e| EngineError::Codec {
        seq: record.seq,
        reason: e.to_string(),
    })
}

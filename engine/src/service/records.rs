//! Between domain events and journal records: encoding with metadata, and decoding with
//! the personal content fetched from the journal's side store.

use conclave_journal::{Content, Metadata, NewRecord, Reader, Record};

use crate::codec::{self, CodecError};
use crate::context::RecordMeta;
use crate::event::Event;

use super::EngineError;

/// The journal record for an event with the metadata of the command that decided it
/// ([`crate::Context::record_meta`]: the remote address already obfuscated when the
/// policy says so, Mumble `obfuscate-ips`).
pub(crate) fn to_record(
    event: &Event,
    meta: &RecordMeta,
    authorized_by: Option<&str>,
) -> Result<NewRecord, CodecError> {
    let encoded = codec::encode(event)?;
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
            remote_addr: meta.remote.clone(),
            correlation_id: Some(meta.correlation_id.clone()),
            causation_id: meta.causation_id.clone(),
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

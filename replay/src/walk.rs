//! Decoding records into events.

use conclave_engine::codec;
use conclave_engine::Event;
use conclave_journal::{Journal, Record};

use crate::error::{ReplayError, Result};

/// The domain event of a record, personal content included (purged content is `None`).
pub fn decode(journal: &Journal, record: &Record) -> Result<Event> {
    conclave_engine::service::from_record(journal, record).map_err(|e| ReplayError::Decode {
        seq: record.seq,
        reason: e.to_string(),
    })
}

/// The event as `evolve` needs it: chat bodies never reach the state, so their content
/// is not fetched (one storage read saved per message on a rebuild).
pub fn decode_for_state(journal: &Journal, record: &Record) -> Result<Event> {
    if record.event_type == "chat_message" {
        return codec::decode(
            &record.event_type,
            record.schema_version,
            &record.payload,
            None,
        )
        .map_err(|e| ReplayError::Decode {
            seq: record.seq,
            reason: e.to_string(),
        });
    }
    decode(journal, record)
}

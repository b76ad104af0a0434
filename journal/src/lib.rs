//! Conclave's journal: an append-only, hash-chained log of opaque typed records on sled.
//!
//! The journal is the source of truth for everything Conclave does; it knows nothing of
//! rooms. Each [`Record`] has a gap-free global sequence number, belongs to a stream (an
//! aggregate such as a room) with its own version, carries caller-given UTC time, an
//! event type name with a schema version, opaque payload bytes and metadata (actor,
//! origin, correlation). Records are chained: `hash = H(prev_hash, seq, fields)`, so any
//! change to a stored record is found by [`Journal::verify`].
//!
//! Personal content (chat bodies, display names) is kept out of the chained record, in a
//! side store addressed by a salted digest that the chain covers: purging it keeps the
//! chain verifiable and the digest reveals nothing about the purged text.
//!
//! Appends are acknowledged only once durable (sync mode [`SyncMode::Always`]); concurrent
//! appends share flushes (group commit) through a single writer thread.

mod codec;
mod config;
mod copy;
pub mod durable;
mod error;
mod head;
mod journal;
mod reader;
mod record;
mod shared;
pub mod storage;
mod subscription;
mod verify;
mod writer;

pub use codec::chain_hash;
pub use config::{
    JournalConfig, RecoveryBackoff, SyncMode, MAX_RECORD_BYTES_LIMIT, MAX_STREAM_BYTES,
};
pub use copy::{copy_journal_dir, JournalCopy, PrivateCopy};
pub use error::{JournalError, Result};
pub use head::{read_head_marker, HEAD_MARKER};
pub use journal::{hex, AppendTicket, Content, Journal, JournalStats};
pub use reader::Reader;
pub use record::{
    AppendRequest, Appended, ExpectedVersion, Hash, Metadata, NewRecord, Record, ZERO_HASH,
};
pub use shared::{Damage, WriteFailure};
pub use subscription::Subscription;
pub use verify::{RecordLocation, VerifyFailure, VerifyProblem, VerifyReport};

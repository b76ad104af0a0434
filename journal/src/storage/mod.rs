//! Where records live. The journal logic (sequencing, chaining, group commit) sits above
//! this trait; a backend only stores bytes atomically and durably on `flush`.

mod faults;
mod index_run;
mod sled_backend;

pub use faults::FaultyStorage;
pub use sled_backend::{sled_config, SledStorage};

use crate::error::Result;
use crate::record::Hash;

/// Everything one group commit writes; applied atomically by [`Storage::write`].
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// (first sequence number, chunk bytes): the records, framed by the journal.
    pub chunks: Vec<(u64, Vec<u8>)>,
    /// (stream, stream version, seq) index entries.
    pub stream_index: Vec<(String, u64, u64)>,
    /// When set, the stream index is complete up to this sequence number.
    pub indexed_up_to: Option<u64>,
    /// (digest, salted content) side-store entries.
    pub content: Vec<(Hash, Vec<u8>)>,
}

/// An iterator over stored (first seq, chunk bytes) pairs in ascending order.
pub type ChunkIter<'a> = Box<dyn Iterator<Item = Result<(u64, Vec<u8>)>> + Send + 'a>;

/// A storage backend for the journal. Chunks are opaque to it.
pub trait Storage: Send + Sync + 'static {
    /// The chunk with the highest first sequence number.
    fn last_chunk(&self) -> Result<Option<(u64, Vec<u8>)>>;
    /// Chunks in ascending order, starting with the one that holds `from_seq` (or the
    /// first one after it).
    fn chunks(&self, from_seq: u64) -> ChunkIter<'_>;
    /// Applies a batch atomically (all or nothing). Not necessarily durable.
    fn write(&self, batch: WriteBatch) -> Result<()>;
    /// Makes every completed write durable.
    fn flush(&self) -> Result<()>;
    /// (stream version, seq) pairs of a stream from `from_version` on, ascending.
    fn stream_entries(&self, stream: &str, from_version: u64) -> Result<Vec<(u64, u64)>>;
    /// A stream's highest version among records with sequence at most `max_seq` (0 if none).
    fn stream_head(&self, stream: &str, max_seq: u64) -> Result<u64>;
    /// The sequence number up to which the stream index is complete.
    fn indexed_up_to(&self) -> Result<u64>;
    /// Drops the whole stream index and resets its watermark to 0, for a rebuild.
    fn clear_stream_index(&self) -> Result<()>;
    /// The salted content stored under a digest, if not purged.
    fn content(&self, digest: &Hash) -> Result<Option<Vec<u8>>>;
    /// Removes content durably; true if it was present.
    fn purge_content(&self, digest: &Hash) -> Result<bool>;
    /// Records, outside the database, a head that is known to be durable, so that a
    /// database later found shorter (truncated, rolled back, replaced) is detected.
    fn save_durable_head(&self, seq: u64, hash: &Hash) -> Result<()>;
    /// The head last saved by [`Storage::save_durable_head`].
    fn durable_head(&self) -> Result<Option<(u64, Hash)>>;
    /// Removes chunks (by first sequence number) and content atomically and durably:
    /// records that were applied but never acknowledged, found on disk after a reopen.
    fn discard(&self, chunks: &[u64], content: &[Hash]) -> Result<()> {
        let _ = (chunks, content);
        Err(crate::error::JournalError::Storage(
            "this storage cannot discard records".into(),
        ))
    }
    /// Closes the backend and opens it again in place, after a failed write or flush:
    /// what the reopened backend holds is what was on disk (its own recovery decides).
    /// Readers keep their handle to this storage; they may see errors while it is
    /// closed. A backend that cannot reopen says so, and the journal stays refusing
    /// writes.
    fn reopen(&self) -> Result<()> {
        Err(crate::error::JournalError::Storage(
            "this storage cannot be reopened".into(),
        ))
    }
}

//! Where records live. The journal logic (sequencing, chaining, group commit) sits above
//! this trait; a backend only stores bytes atomically and durably on `flush`.

mod sled_backend;

pub use sled_backend::SledStorage;

use crate::error::Result;
use crate::record::Hash;

/// Everything one group commit writes; applied atomically by [`Storage::write`].
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// (seq, encoded record).
    pub records: Vec<(u64, Vec<u8>)>,
    /// (stream, stream version, seq) index entries.
    pub stream_index: Vec<(String, u64, u64)>,
    /// New head version per stream touched.
    pub stream_heads: Vec<(String, u64)>,
    /// (digest, salted content) side-store entries.
    pub content: Vec<(Hash, Vec<u8>)>,
}

/// An iterator over stored (seq, encoded record) pairs in ascending order.
pub type RecordIter<'a> = Box<dyn Iterator<Item = Result<(u64, Vec<u8>)>> + Send + 'a>;

/// A storage backend for the journal.
pub trait Storage: Send + Sync + 'static {
    /// The highest stored sequence number and its encoded record.
    fn last_record(&self) -> Result<Option<(u64, Vec<u8>)>>;
    /// Every stream's current version.
    fn stream_heads(&self) -> Result<Vec<(String, u64)>>;
    /// Applies a batch atomically (all or nothing). Not necessarily durable.
    fn write(&self, batch: WriteBatch) -> Result<()>;
    /// Makes every completed write durable.
    fn flush(&self) -> Result<()>;
    /// Records with sequence in `from..=to`, ascending.
    fn records(&self, from: u64, to: u64) -> RecordIter<'_>;
    /// (stream version, seq) pairs of a stream from `from_version` on, ascending.
    fn stream_entries(&self, stream: &str, from_version: u64) -> Result<Vec<(u64, u64)>>;
    /// The salted content stored under a digest, if not purged.
    fn content(&self, digest: &Hash) -> Result<Option<Vec<u8>>>;
    /// Removes content durably; true if it was present.
    fn purge_content(&self, digest: &Hash) -> Result<bool>;
}

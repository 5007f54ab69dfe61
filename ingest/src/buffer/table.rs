//! What a kind of buffered data (metrics, later logs and spans) supplies to the generic buffer.

use std::fmt::Debug;
use std::time::{Instant, SystemTime};

/// The rows one request adds to one shard, before they enter the builders.
pub trait ShardRows: Default + Debug + Send {
    fn clear(&mut self);
    fn is_empty(&self) -> bool;
    /// Bytes these rows will take in the builders.
    fn estimated_bytes(&self) -> u64;
}

/// A shard's open (still growing) Arrow builders.
pub trait OpenTable: Debug + Send + 'static {
    type Rows: ShardRows;
    type Sealed: SealedTable;

    /// Builders pre-sized for `capacity` rows.
    fn new(capacity: usize) -> Self;
    fn rows(&self) -> usize;
    /// Bytes accounted for these builders in the buffer total.
    fn bytes(&self) -> u64;
    /// When the first row arrived (for `seal_interval`).
    fn opened_at(&self) -> Option<Instant>;
    /// Appends rows; returns the bytes added beyond what [`OpenTable::bytes`] already counted at creation.
    fn append(&mut self, rows: &Self::Rows) -> u64;
    /// Finishes the builders into an immutable batch.
    fn seal(self, shard: usize, seq: u64) -> Result<Self::Sealed, arrow_schema::ArrowError>;
}

/// An immutable batch as subscribers receive it.
pub trait SealedTable: Debug + Send + Sync + 'static {
    /// Memory held by its record batches.
    fn bytes(&self) -> u64;
    fn sealed_at(&self) -> SystemTime;
    fn rows(&self) -> usize;
}

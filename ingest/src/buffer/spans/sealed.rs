//! A sealed, immutable batch of one shard's spans.

use std::time::SystemTime;

use arrow_array::RecordBatch;

use crate::buffer::table::SealedTable;

/// What a spans subscription hands out, shared as `Arc<SealedSpans>`.
#[derive(Debug)]
pub struct SealedSpans {
    pub shard: usize,
    /// Position in the shard's log; consecutive within a shard.
    pub seq: u64,
    pub sealed_at: SystemTime,
    /// Schema [`super::schema::SPANS`].
    pub spans: RecordBatch,
    /// Memory held by the record batch.
    pub bytes: u64,
}

impl SealedTable for SealedSpans {
    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn sealed_at(&self) -> SystemTime {
        self.sealed_at
    }

    fn rows(&self) -> usize {
        self.spans.num_rows()
    }
}

//! A sealed, immutable slice of one shard's log lines.

use std::time::SystemTime;

use arrow_array::RecordBatch;

use crate::buffer::table::SealedTable;

/// What a logs subscription hands out, shared as `Arc<LogsBatch>`.
#[derive(Debug)]
pub struct LogsBatch {
    pub shard: usize,
    /// Position in the shard's log; consecutive within a shard.
    pub seq: u64,
    pub sealed_at: SystemTime,
    /// Schema [`super::schema::LOGS`].
    pub logs: RecordBatch,
    pub bytes: u64,
}

impl SealedTable for LogsBatch {
    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn sealed_at(&self) -> SystemTime {
        self.sealed_at
    }

    fn rows(&self) -> usize {
        self.logs.num_rows()
    }
}

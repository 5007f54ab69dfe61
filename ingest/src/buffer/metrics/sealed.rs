//! A sealed, immutable slice of one shard's data.

use std::time::SystemTime;

use arrow_array::RecordBatch;

use crate::buffer::table::SealedTable;

/// What a subscription hands out. Shared as `Arc<SealedBatch>`: readers never copy the columns.
#[derive(Debug)]
pub struct SealedBatch {
    pub shard: usize,
    /// Position in the shard's log; consecutive within a shard.
    pub seq: u64,
    pub sealed_at: SystemTime,
    /// Schema [`super::schema::SAMPLES`].
    pub samples: RecordBatch,
    /// Schema [`super::schema::EXEMPLARS`], when the batch holds any.
    pub exemplars: Option<RecordBatch>,
    /// Schema [`super::schema::HISTOGRAMS`], when the batch holds any.
    pub histograms: Option<RecordBatch>,
    /// Memory held by the three tables.
    pub bytes: u64,
}

impl SealedBatch {
    pub fn sample_count(&self) -> usize {
        self.samples.num_rows()
    }

    pub fn exemplar_count(&self) -> usize {
        self.exemplars.as_ref().map_or(0, RecordBatch::num_rows)
    }

    pub fn histogram_count(&self) -> usize {
        self.histograms.as_ref().map_or(0, RecordBatch::num_rows)
    }
}

impl SealedTable for SealedBatch {
    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn sealed_at(&self) -> SystemTime {
        self.sealed_at
    }

    fn rows(&self) -> usize {
        self.sample_count() + self.exemplar_count() + self.histogram_count()
    }
}

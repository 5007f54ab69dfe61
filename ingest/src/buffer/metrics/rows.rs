//! Rows staged by a receiver before they enter the buffer, grouped by shard.

use crate::buffer::staged::Staged;
use crate::buffer::table::ShardRows;
use crate::series::SeriesId;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleRow {
    pub series: SeriesId,
    /// The series' slot in this process' registry ([`crate::series::SeriesRef::slot`]).
    pub slot: u32,
    pub timestamp_ms: i64,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarRow {
    pub series: SeriesId,
    pub timestamp_ms: i64,
    pub value: f64,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Canonical label encoding (see [`crate::series::LabelSetKey`]).
    pub labels: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HistogramRow {
    pub series: SeriesId,
    pub timestamp_ms: i64,
    /// An encoded remote-write 1.0 `Histogram`.
    pub encoded: Vec<u8>,
}

/// One shard's staged metric rows.
#[derive(Debug, Default)]
pub struct MetricsShardRows {
    pub(crate) samples: Vec<SampleRow>,
    pub(crate) exemplars: Vec<ExemplarRow>,
    pub(crate) histograms: Vec<HistogramRow>,
}

impl ShardRows for MetricsShardRows {
    fn clear(&mut self) {
        self.samples.clear();
        self.exemplars.clear();
        self.histograms.clear();
    }

    fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.exemplars.is_empty() && self.histograms.is_empty()
    }

    fn estimated_bytes(&self) -> u64 {
        (self.samples.len() * SAMPLE_ROW_BYTES) as u64
            + self.exemplars.iter().map(|e| exemplar_row_bytes(e) as u64).sum::<u64>()
            + self.histograms.iter().map(|h| histogram_row_bytes(h) as u64).sum::<u64>()
    }
}

impl Staged<MetricsShardRows> {
    pub fn push_sample(&mut self, row: SampleRow) {
        self.shard_for(row.series).samples.push(row);
    }

    pub fn push_exemplar(&mut self, row: ExemplarRow) {
        self.shard_for(row.series).exemplars.push(row);
    }

    pub fn push_histogram(&mut self, row: HistogramRow) {
        self.shard_for(row.series).histograms.push(row);
    }

    pub fn sample_count(&self) -> usize {
        self.shards.iter().map(|s| s.samples.len()).sum()
    }

    pub fn exemplar_count(&self) -> usize {
        self.shards.iter().map(|s| s.exemplars.len()).sum()
    }

    pub fn histogram_count(&self) -> usize {
        self.shards.iter().map(|s| s.histograms.len()).sum()
    }
}

/// series id + timestamp + value + registry slot.
pub(crate) const SAMPLE_ROW_BYTES: usize = 28;

pub(crate) fn exemplar_row_bytes(e: &ExemplarRow) -> usize {
    // fixed columns, three offsets, and the variable bytes
    24 + 12 + e.trace_id.as_ref().map_or(0, String::len) + e.span_id.as_ref().map_or(0, String::len) + e.labels.len()
}

pub(crate) fn histogram_row_bytes(h: &HistogramRow) -> usize {
    16 + 4 + h.encoded.len()
}

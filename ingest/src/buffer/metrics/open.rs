//! One shard's open (still growing) Arrow builders.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, Float64Builder, StringBuilder, TimestampMillisecondBuilder, UInt32Builder,
    UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};

use super::rows::{MetricsShardRows, SAMPLE_ROW_BYTES, exemplar_row_bytes, histogram_row_bytes};
use super::schema;
use super::sealed::SealedBatch;
use crate::buffer::table::OpenTable;

#[derive(Debug)]
pub struct MetricsOpen {
    capacity: usize,
    series: UInt64Builder,
    timestamps: TimestampMillisecondBuilder,
    values: Float64Builder,
    slots: UInt32Builder,
    exemplars: ExemplarBuilders,
    histograms: HistogramBuilders,
    /// Bytes this batch accounts for in the buffer total.
    bytes: u64,
    opened_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct ExemplarBuilders {
    series: UInt64Builder,
    timestamps: TimestampMillisecondBuilder,
    values: Float64Builder,
    trace_ids: StringBuilder,
    span_ids: StringBuilder,
    labels: BinaryBuilder,
}

#[derive(Debug, Default)]
struct HistogramBuilders {
    series: UInt64Builder,
    timestamps: TimestampMillisecondBuilder,
    encoded: BinaryBuilder,
}

impl OpenTable for MetricsOpen {
    type Rows = MetricsShardRows;
    type Sealed = SealedBatch;

    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            series: UInt64Builder::with_capacity(capacity),
            timestamps: TimestampMillisecondBuilder::with_capacity(capacity),
            values: Float64Builder::with_capacity(capacity),
            slots: UInt32Builder::with_capacity(capacity),
            exemplars: ExemplarBuilders::default(),
            histograms: HistogramBuilders::default(),
            bytes: (capacity * SAMPLE_ROW_BYTES) as u64,
            opened_at: None,
        }
    }

    fn rows(&self) -> usize {
        self.series.len() + self.exemplars.series.len() + self.histograms.series.len()
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    /// Appends rows; returns the bytes added beyond the pre-sized sample columns.
    fn append(&mut self, rows: &MetricsShardRows) -> u64 {
        if self.opened_at.is_none()
            && (!rows.samples.is_empty() || !rows.exemplars.is_empty() || !rows.histograms.is_empty())
        {
            self.opened_at = Some(Instant::now());
        }
        let mut added = 0u64;
        let before = self.series.len();
        for s in &rows.samples {
            self.series.append_value(s.series);
            self.timestamps.append_value(s.timestamp_ms);
            self.values.append_value(s.value);
            self.slots.append_value(s.slot);
        }
        let grown = (before + rows.samples.len()).saturating_sub(self.capacity.max(before));
        added += (grown * SAMPLE_ROW_BYTES) as u64;
        for e in &rows.exemplars {
            let b = &mut self.exemplars;
            b.series.append_value(e.series);
            b.timestamps.append_value(e.timestamp_ms);
            b.values.append_value(e.value);
            b.trace_ids.append_option(e.trace_id.as_deref());
            b.span_ids.append_option(e.span_id.as_deref());
            b.labels.append_value(&e.labels);
            added += exemplar_row_bytes(e) as u64;
        }
        for h in &rows.histograms {
            let b = &mut self.histograms;
            b.series.append_value(h.series);
            b.timestamps.append_value(h.timestamp_ms);
            b.encoded.append_value(&h.encoded);
            added += histogram_row_bytes(h) as u64;
        }
        self.bytes += added;
        added
    }

    /// Finishes the builders into a sealed batch. The caller installs a fresh `OpenBatch`.
    fn seal(mut self, shard: usize, seq: u64) -> Result<SealedBatch, arrow_schema::ArrowError> {
        let samples = RecordBatch::try_new(
            Arc::clone(&schema::SAMPLES),
            vec![
                Arc::new(self.series.finish()) as ArrayRef,
                Arc::new(self.timestamps.finish()),
                Arc::new(self.values.finish()),
                Arc::new(self.slots.finish()),
            ],
        )?;
        let exemplars = if self.exemplars.series.is_empty() {
            None
        } else {
            let b = &mut self.exemplars;
            Some(RecordBatch::try_new(
                Arc::clone(&schema::EXEMPLARS),
                vec![
                    Arc::new(b.series.finish()) as ArrayRef,
                    Arc::new(b.timestamps.finish()),
                    Arc::new(b.values.finish()),
                    Arc::new(b.trace_ids.finish()),
                    Arc::new(b.span_ids.finish()),
                    Arc::new(b.labels.finish()),
                ],
            )?)
        };
        let histograms = if self.histograms.series.is_empty() {
            None
        } else {
            let b = &mut self.histograms;
            Some(RecordBatch::try_new(
                Arc::clone(&schema::HISTOGRAMS),
                vec![
                    Arc::new(b.series.finish()) as ArrayRef,
                    Arc::new(b.timestamps.finish()),
                    Arc::new(b.encoded.finish()),
                ],
            )?)
        };
        let bytes = (samples.get_array_memory_size()
            + exemplars.as_ref().map_or(0, RecordBatch::get_array_memory_size)
            + histograms.as_ref().map_or(0, RecordBatch::get_array_memory_size)) as u64;
        Ok(SealedBatch { shard, seq, sealed_at: SystemTime::now(), samples, exemplars, histograms, bytes })
    }
}

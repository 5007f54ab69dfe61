//! One shard's open (still growing) logs builders.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arrow_array::builder::{ArrayBuilder, StringBuilder, TimestampNanosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};

use super::rows::{LOG_ROW_FIXED_BYTES, LogsShardRows, log_row_variable_bytes};
use super::schema;
use super::sealed::LogsBatch;
use crate::buffer::table::OpenTable;

#[derive(Debug)]
pub struct LogsOpen {
    capacity: usize,
    timestamp: TimestampNanosecondBuilder,
    observed: TimestampNanosecondBuilder,
    tenant: StringBuilder,
    service: StringBuilder,
    severity: StringBuilder,
    body: StringBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    labels: StringBuilder,
    attributes: StringBuilder,
    bytes: u64,
    opened_at: Option<Instant>,
}

/// String columns are pre-sized for offsets only: line sizes vary too much to guess their bytes.
fn strings(capacity: usize) -> StringBuilder {
    StringBuilder::with_capacity(capacity, 0)
}

impl OpenTable for LogsOpen {
    type Rows = LogsShardRows;
    type Sealed = LogsBatch;

    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            timestamp: TimestampNanosecondBuilder::with_capacity(capacity),
            observed: TimestampNanosecondBuilder::with_capacity(capacity),
            tenant: strings(capacity),
            service: strings(capacity),
            severity: strings(capacity),
            body: strings(capacity),
            trace_id: strings(capacity),
            span_id: strings(capacity),
            labels: strings(capacity),
            attributes: strings(capacity),
            bytes: (capacity * LOG_ROW_FIXED_BYTES) as u64,
            opened_at: None,
        }
    }

    fn rows(&self) -> usize {
        self.timestamp.len()
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    /// Appends rows; returns their string bytes plus the fixed part of rows beyond the pre-sized capacity.
    fn append(&mut self, rows: &LogsShardRows) -> u64 {
        if rows.rows.is_empty() {
            return 0;
        }
        self.opened_at.get_or_insert_with(Instant::now);
        let before = self.rows();
        let mut added = 0u64;
        for r in &rows.rows {
            self.timestamp.append_value(r.timestamp_ns);
            self.observed.append_value(r.observed_timestamp_ns);
            self.tenant.append_value(&r.tenant);
            self.service.append_option(r.service.as_deref());
            self.severity.append_option(r.severity.as_deref());
            self.body.append_value(&r.body);
            self.trace_id.append_option(r.trace_id.as_deref());
            self.span_id.append_option(r.span_id.as_deref());
            self.labels.append_value(&r.labels);
            self.attributes.append_value(&r.attributes);
            added += log_row_variable_bytes(r) as u64;
        }
        let grown = (before + rows.rows.len()).saturating_sub(self.capacity.max(before));
        added += (grown * LOG_ROW_FIXED_BYTES) as u64;
        self.bytes += added;
        added
    }

    fn seal(mut self, shard: usize, seq: u64) -> Result<LogsBatch, arrow_schema::ArrowError> {
        let logs = RecordBatch::try_new(
            Arc::clone(&schema::LOGS),
            vec![
                Arc::new(self.timestamp.finish()) as ArrayRef,
                Arc::new(self.observed.finish()),
                Arc::new(self.tenant.finish()),
                Arc::new(self.service.finish()),
                Arc::new(self.severity.finish()),
                Arc::new(self.body.finish()),
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.labels.finish()),
                Arc::new(self.attributes.finish()),
            ],
        )?;
        let bytes = logs.get_array_memory_size() as u64;
        Ok(LogsBatch { shard, seq, sealed_at: SystemTime::now(), logs, bytes })
    }
}

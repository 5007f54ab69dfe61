//! One shard's open (still growing) span builders.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arrow_array::builder::{
    BinaryBuilder, BinaryDictionaryBuilder, Int32Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};

use super::rows::{SpansShardRows, rows_bytes};
use super::schema;
use super::sealed::SealedSpans;
use crate::buffer::table::OpenTable;

pub struct SpansOpen {
    rows: usize,
    tenant: StringBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    service: StringBuilder,
    name: StringBuilder,
    kind: Int32Builder,
    start: TimestampNanosecondBuilder,
    duration_ns: Int64Builder,
    status_code: Int32Builder,
    status_message: StringBuilder,
    attributes: StringBuilder,
    span: BinaryBuilder,
    resource_scope: BinaryDictionaryBuilder<Int32Type>,
    /// Bytes this batch accounts for in the buffer total.
    bytes: u64,
    opened_at: Option<Instant>,
}

// By hand: arrow's dictionary builder is `Debug` only for value types that are, and binary is not.
impl std::fmt::Debug for SpansOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpansOpen").field("rows", &self.rows).field("bytes", &self.bytes).finish_non_exhaustive()
    }
}

impl OpenTable for SpansOpen {
    type Rows = SpansShardRows;
    type Sealed = SealedSpans;

    /// Spans vary too much in size to pre-size byte columns usefully, so nothing is reserved up front and
    /// every append accounts exactly what it adds.
    fn new(_capacity: usize) -> Self {
        Self {
            rows: 0,
            tenant: StringBuilder::new(),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            parent_span_id: StringBuilder::new(),
            service: StringBuilder::new(),
            name: StringBuilder::new(),
            kind: Int32Builder::new(),
            start: TimestampNanosecondBuilder::new(),
            duration_ns: Int64Builder::new(),
            status_code: Int32Builder::new(),
            status_message: StringBuilder::new(),
            attributes: StringBuilder::new(),
            span: BinaryBuilder::new(),
            resource_scope: BinaryDictionaryBuilder::new(),
            bytes: 0,
            opened_at: None,
        }
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    fn append(&mut self, rows: &SpansShardRows) -> u64 {
        if rows.spans.is_empty() {
            return 0;
        }
        self.opened_at.get_or_insert_with(Instant::now);
        for r in &rows.spans {
            self.tenant.append_value(&r.tenant);
            self.trace_id.append_value(&r.trace_id);
            self.span_id.append_value(&r.span_id);
            self.parent_span_id.append_option(r.parent_span_id.as_deref());
            self.service.append_option(r.service.as_deref());
            self.name.append_value(&r.name);
            self.kind.append_value(r.kind);
            self.start.append_value(r.start_unix_nano);
            self.duration_ns.append_value(r.duration_ns);
            self.status_code.append_value(r.status_code);
            self.status_message.append_option(r.status_message.as_deref());
            self.attributes.append_value(&r.attributes);
            self.span.append_value(&r.span);
            if let Err(e) = self.resource_scope.append(&*r.resource_scope) {
                // Only reachable with more than 2^31 distinct resources in one batch.
                tracing::error!(error = %e, "Span resource dictionary overflowed; the resource is lost.");
                self.resource_scope.append_null();
            }
        }
        self.rows += rows.spans.len();
        let added = rows_bytes(&rows.spans);
        self.bytes += added;
        added
    }

    fn seal(mut self, shard: usize, seq: u64) -> Result<SealedSpans, arrow_schema::ArrowError> {
        let spans = RecordBatch::try_new(
            Arc::clone(&schema::SPANS),
            vec![
                Arc::new(self.tenant.finish()) as ArrayRef,
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.parent_span_id.finish()),
                Arc::new(self.service.finish()),
                Arc::new(self.name.finish()),
                Arc::new(self.kind.finish()),
                Arc::new(self.start.finish()),
                Arc::new(self.duration_ns.finish()),
                Arc::new(self.status_code.finish()),
                Arc::new(self.status_message.finish()),
                Arc::new(self.attributes.finish()),
                Arc::new(self.span.finish()),
                Arc::new(self.resource_scope.finish()),
            ],
        )?;
        let bytes = spans.get_array_memory_size() as u64;
        Ok(SealedSpans { shard, seq, sealed_at: SystemTime::now(), spans, bytes })
    }
}

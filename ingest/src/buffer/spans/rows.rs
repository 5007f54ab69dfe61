//! Span rows staged by a receiver before they enter the buffer.

use std::sync::Arc;

use crate::buffer::staged::Staged;
use crate::buffer::table::ShardRows;

/// One span as the buffer stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    pub tenant: Arc<str>,
    /// Lower-case hex, 32 characters.
    pub trace_id: String,
    /// Lower-case hex, 16 characters.
    pub span_id: String,
    /// Lower-case hex, 16 characters; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The resource's `service.name`.
    pub service: Option<Arc<str>>,
    pub name: String,
    /// OTLP `SpanKind` number.
    pub kind: i32,
    pub start_unix_nano: i64,
    pub duration_ns: i64,
    /// OTLP `Status.StatusCode` number.
    pub status_code: i32,
    pub status_message: Option<String>,
    /// JSON object of the span's attributes.
    pub attributes: String,
    /// The encoded OTLP `Span`.
    pub span: Vec<u8>,
    /// Encoded `ResourceSpans` with the resource and one spanless `ScopeSpans`; shared by the rows of one
    /// resource and scope, which lets the estimate count it once.
    pub resource_scope: Arc<[u8]>,
}

/// One shard's staged span rows.
#[derive(Debug, Default)]
pub struct SpansShardRows {
    pub(crate) spans: Vec<SpanRow>,
}

impl ShardRows for SpansShardRows {
    fn clear(&mut self) {
        self.spans.clear();
    }

    fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    fn estimated_bytes(&self) -> u64 {
        rows_bytes(&self.spans)
    }
}

impl Staged<SpansShardRows> {
    /// Stages a span in the shard of its trace: every span of a trace lands in the same shard (and so
    /// reaches one forwarder worker and one detector partition).
    pub fn push(&mut self, row: SpanRow) {
        let key = xxhash_rust::xxh3::xxh3_64(row.trace_id.as_bytes());
        self.shard_for(key).spans.push(row);
    }

    pub fn span_count(&self) -> usize {
        self.shards.iter().map(|s| s.spans.len()).sum()
    }
}

/// Fixed-width columns (kind 4, start 8, duration 8, status 4, dictionary key 4), nine offsets of 4 bytes
/// and validity bits, rounded up.
const FIXED_ROW_BYTES: usize = 28 + 36 + 4;

/// What `rows` add to the builders. A `resource_scope` shared with the previous row (same allocation) is
/// counted once, as the dictionary stores it once.
pub(crate) fn rows_bytes(rows: &[SpanRow]) -> u64 {
    let mut total = 0usize;
    let mut previous: Option<&Arc<[u8]>> = None;
    for r in rows {
        total += FIXED_ROW_BYTES
            + r.tenant.len()
            + r.trace_id.len()
            + r.span_id.len()
            + r.parent_span_id.as_ref().map_or(0, String::len)
            + r.service.as_ref().map_or(0, |s| s.len())
            + r.name.len()
            + r.status_message.as_ref().map_or(0, String::len)
            + r.attributes.len()
            + r.span.len();
        if !previous.is_some_and(|p| Arc::ptr_eq(p, &r.resource_scope)) {
            total += r.resource_scope.len();
        }
        previous = Some(&r.resource_scope);
    }
    total as u64
}

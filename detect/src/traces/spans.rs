//! A sealed spans batch into the index, the RED windows and the service graph, and out as the failed and
//! slow spans the incident correlation looks at.

use std::time::Instant;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch};
use vigil_ingest::buffer::spans::SealedSpans;
use vigil_ingest::buffer::spans::schema::col;

use super::config::SpanKind;
use super::graph::SpanLink;
use super::ids::{TraceId, parse_span_id, parse_trace_id};
use super::index::{ERROR, RowRef, SLOW, SpanRef};
use super::red::SpanSample;
use super::{TraceStore, Tracer};

/// OTLP `Status.StatusCode` `ERROR`.
const STATUS_ERROR: i32 = 2;
/// The OpenTelemetry SDKs' name for a service that did not set `service.name`.
pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";

/// A failed or slow span, for the incident correlation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpanSignal {
    pub(crate) tenant: u32,
    pub(crate) trace: TraceId,
    pub(crate) span: u64,
    pub(crate) service: u32,
    pub(crate) name: String,
    pub(crate) end_ms: i64,
    pub(crate) duration_ns: i64,
    pub(crate) error: bool,
    pub(crate) slow: bool,
}

/// The columns of a spans batch, typed once.
struct Columns<'a> {
    tenant: &'a arrow_array::StringArray,
    trace: &'a arrow_array::StringArray,
    span: &'a arrow_array::StringArray,
    parent: &'a arrow_array::StringArray,
    service: &'a arrow_array::StringArray,
    name: &'a arrow_array::StringArray,
    kind: &'a arrow_array::Int32Array,
    start: &'a arrow_array::TimestampNanosecondArray,
    duration: &'a arrow_array::Int64Array,
    status: &'a arrow_array::Int32Array,
}

impl<'a> Columns<'a> {
    fn of(b: &'a RecordBatch) -> Option<Self> {
        let s = |i: usize| b.column(i).as_string_opt::<i32>();
        Some(Self {
            tenant: s(col::TENANT)?,
            trace: s(col::TRACE_ID)?,
            span: s(col::SPAN_ID)?,
            parent: s(col::PARENT_SPAN_ID)?,
            service: s(col::SERVICE)?,
            name: s(col::NAME)?,
            kind: b.column(col::KIND).as_primitive_opt::<Int32Type>()?,
            start: b.column(col::START).as_primitive_opt::<TimestampNanosecondType>()?,
            duration: b.column(col::DURATION_NS).as_primitive_opt::<Int64Type>()?,
            status: b.column(col::STATUS_CODE).as_primitive_opt::<Int32Type>()?,
        })
    }
}

impl Tracer {
    /// Reads one sealed spans batch; failed and slow spans go to `out`. Returns the rows read.
    pub(crate) fn ingest_spans(
        &mut self,
        store: &TraceStore,
        batch: &SealedSpans,
        wall_ms: i64,
        now: Instant,
        out: &mut Vec<SpanSignal>,
    ) -> usize {
        let Some(c) = Columns::of(&batch.spans) else {
            tracing::error!(shard = batch.shard, "A sealed spans batch does not have the spans schema. This is a bug.");
            return 0;
        };
        let shard = u16::try_from(batch.shard).unwrap_or(u16::MAX);
        let mut symbols = store.symbols.lock();
        let mut index = store.index.lock();
        let mut graph = store.graph.lock();
        let mut calls = Vec::new();
        for i in 0..batch.spans.num_rows() {
            let (Ok(trace), Some(span)) = (parse_trace_id(c.trace.value(i)), parse_span_id(c.span.value(i))) else {
                self.skipped_rows += 1;
                continue;
            };
            let parent = if c.parent.is_null(i) { 0 } else { parse_span_id(c.parent.value(i)).unwrap_or(0) };
            let service_name = if c.service.is_null(i) { UNKNOWN_SERVICE } else { c.service.value(i) };
            let (Some(tenant), Some(service)) = (symbols.intern(c.tenant.value(i)), symbols.intern(service_name))
            else {
                self.skipped_rows += 1;
                continue;
            };
            let duration_ns = c.duration.value(i);
            let end_ms = c.start.value(i).saturating_add(duration_ns).div_euclid(1_000_000);
            let error = c.status.value(i) == STATUS_ERROR;
            let (tenant_name, service_arc) = (symbols.name_or_empty(tenant), symbols.name_or_empty(service));
            let sample = SpanSample {
                tenant,
                tenant_name: &tenant_name,
                service,
                service_name: &service_arc,
                name: c.name.value(i),
                kind: SpanKind::from_otlp(c.kind.value(i)),
                root: parent == 0,
                end_ms,
                duration_ns,
                error,
            };
            let op = self.red.add(&sample, wall_ms, now);
            let slow = op.is_some_and(|op| self.red.is_slow(op, duration_ns));
            let flags = if error { ERROR } else { 0 } | if slow { SLOW } else { 0 };
            let at = RowRef { seq: batch.seq, row: u32::try_from(i).unwrap_or(u32::MAX), shard };
            index.add_span(tenant, trace, SpanRef { at, span, parent, service, flags, end_ms });
            let link = SpanLink { tenant, trace, span, parent, service, duration_ns, failed: error, end_ms };
            calls.clear();
            self.pending.observe(&link, now, &mut calls);
            for call in &calls {
                graph.record(tenant, call, now);
            }
            if error || slow {
                let name = c.name.value(i).to_owned();
                out.push(SpanSignal { tenant, trace, span, service, name, end_ms, duration_ns, error, slow });
            }
        }
        batch.spans.num_rows()
    }
}

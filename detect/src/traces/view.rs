//! One trace as the query API shows it: its spans and log lines read back from the buffers (by the index's
//! references), the series samples whose exemplars point at it, and where its failures and slowness start.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch, StringArray};
use vigil_ingest::buffer::logs::schema as log_col;
use vigil_ingest::buffer::spans::schema::col as span_col;
use vigil_ingest::series::decode_label_key;

use super::TraceStore;
use super::config::SpanKind;
use super::ids::{TraceId, span_hex, trace_hex};
use super::index::{ERROR, Entry, RowRef, SLOW};

#[derive(Debug, Clone, PartialEq)]
pub struct SpanView {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub service: Option<String>,
    pub name: String,
    pub kind: &'static str,
    pub start_ns: i64,
    pub duration_ns: i64,
    /// `STATUS_CODE_UNSET`, `STATUS_CODE_OK` or `STATUS_CODE_ERROR`.
    pub status: &'static str,
    pub status_message: Option<String>,
    /// The span's attributes, a JSON object.
    pub attributes: String,
    pub error: bool,
    /// A latency outlier for its operation (see `correlate.slow`).
    pub slow: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogView {
    pub timestamp_ns: i64,
    pub service: Option<String>,
    pub severity: Option<String>,
    pub body: String,
    pub span_id: Option<String>,
    /// The Loki stream labels, `{a="b"}`.
    pub labels: String,
}

/// A sample whose exemplar names the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesView {
    pub labels: BTreeMap<String, String>,
    pub timestamp_ms: i64,
    pub value: f64,
    pub span_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceView {
    pub trace_id: String,
    /// By start time.
    pub spans: Vec<SpanView>,
    /// By time.
    pub logs: Vec<LogView>,
    pub series: Vec<SeriesView>,
    pub services: Vec<String>,
    /// Services of the failed spans none of whose children failed: where the failures start.
    pub error_origins: Vec<String>,
    /// Likewise for latency outliers.
    pub slow_origins: Vec<String>,
    /// References the index did not keep (`correlate.index.max_refs_per_trace`).
    pub truncated: u32,
}

fn status(code: i32) -> &'static str {
    match code {
        1 => "STATUS_CODE_OK",
        2 => "STATUS_CODE_ERROR",
        _ => "STATUS_CODE_UNSET",
    }
}

fn opt(a: &StringArray, i: usize) -> Option<String> {
    (!a.is_null(i)).then(|| a.value(i).to_owned())
}

/// The batch with sequence number `seq` among a shard's batches (consecutive, oldest first).
fn find<T>(batches: &[Arc<T>], seq: u64, seq_of: impl Fn(&T) -> u64) -> Option<&T> {
    let first = seq_of(batches.first()?);
    let b = batches.get(usize::try_from(seq.checked_sub(first)?).ok()?)?;
    (seq_of(b) == seq).then_some(&**b)
}

/// The references (each with what the index knows of it) grouped by (shard, seq), so each batch is looked up
/// once.
fn by_batch<T>(refs: impl Iterator<Item = (RowRef, T)>) -> BTreeMap<(u16, u64), Vec<(usize, T)>> {
    let mut m: BTreeMap<(u16, u64), Vec<(usize, T)>> = BTreeMap::new();
    for (r, known) in refs {
        m.entry((r.shard, r.seq)).or_default().push((r.row as usize, known));
    }
    m
}

impl TraceStore {
    /// The tenant's trace, or `None` when Vigil holds nothing of it.
    pub(crate) fn trace(&self, tenant: &str, trace: &TraceId) -> Option<TraceView> {
        let (entry, names) = {
            let symbols = self.symbols.lock();
            let t = symbols.get(tenant)?;
            let entry: Entry = self.index.lock().get(t, trace)?.clone();
            let name = |s: u32| symbols.name_or_empty(s).to_string();
            let names = (
                entry.services().into_iter().map(name).collect::<Vec<_>>(),
                entry.origins(ERROR).iter().map(|s| name(s.service)).collect::<Vec<_>>(),
                entry.origins(SLOW).iter().map(|s| name(s.service)).collect::<Vec<_>>(),
            );
            (entry, names)
        };
        let mut spans = self.read_spans(&entry);
        spans.sort_by(|a, b| (a.start_ns, &a.span_id).cmp(&(b.start_ns, &b.span_id)));
        let mut logs = self.read_logs(&entry);
        logs.sort_by_key(|l| l.timestamp_ns);
        let series = entry
            .series
            .iter()
            .map(|s| SeriesView {
                labels: self
                    .registry
                    .key(s.series_id)
                    .map(|k| decode_label_key(&k).map(|p| (p.name.to_owned(), p.value.to_owned())).collect())
                    .unwrap_or_default(),
                timestamp_ms: s.timestamp_ms,
                value: s.value,
                span_id: (s.span != 0).then(|| span_hex(s.span)),
            })
            .collect();
        let dedup = |mut v: Vec<String>| {
            v.sort();
            v.dedup();
            v
        };
        let (services, errors, slow) = names;
        Some(TraceView {
            trace_id: trace_hex(trace),
            spans,
            logs,
            series,
            services,
            error_origins: dedup(errors),
            slow_origins: dedup(slow),
            truncated: entry.dropped,
        })
    }

    fn read_spans(&self, entry: &Entry) -> Vec<SpanView> {
        let mut out = Vec::new();
        for ((shard, seq), rows) in by_batch(entry.spans.iter().map(|s| (s.at, s.flags))) {
            let batches = self.spans.snapshot(usize::from(shard));
            let Some(batch) = find(&batches, seq, |b| b.seq) else { continue };
            for (row, flags) in rows {
                if let Some(v) = span_row(&batch.spans, row, flags) {
                    out.push(v);
                }
            }
        }
        out
    }

    fn read_logs(&self, entry: &Entry) -> Vec<LogView> {
        let mut out = Vec::new();
        for ((shard, seq), rows) in by_batch(entry.logs.iter().map(|r| (*r, ()))) {
            let batches = self.logs.snapshot(usize::from(shard));
            let Some(batch) = find(&batches, seq, |b| b.seq) else { continue };
            for (row, ()) in rows {
                if let Some(v) = log_row(&batch.logs, row) {
                    out.push(v);
                }
            }
        }
        out
    }
}

fn span_row(b: &RecordBatch, i: usize, flags: u8) -> Option<SpanView> {
    if i >= b.num_rows() {
        return None;
    }
    let s = |c: usize| b.column(c).as_string_opt::<i32>();
    let kind = b.column(span_col::KIND).as_primitive_opt::<Int32Type>()?.value(i);
    let code = b.column(span_col::STATUS_CODE).as_primitive_opt::<Int32Type>()?.value(i);
    Some(SpanView {
        span_id: s(span_col::SPAN_ID)?.value(i).to_owned(),
        parent_span_id: opt(s(span_col::PARENT_SPAN_ID)?, i),
        service: opt(s(span_col::SERVICE)?, i),
        name: s(span_col::NAME)?.value(i).to_owned(),
        kind: SpanKind::from_otlp(kind).label(),
        start_ns: b.column(span_col::START).as_primitive_opt::<TimestampNanosecondType>()?.value(i),
        duration_ns: b.column(span_col::DURATION_NS).as_primitive_opt::<Int64Type>()?.value(i),
        status: status(code),
        status_message: opt(s(span_col::STATUS_MESSAGE)?, i),
        attributes: s(span_col::ATTRIBUTES)?.value(i).to_owned(),
        error: flags & ERROR != 0,
        slow: flags & SLOW != 0,
    })
}

fn log_row(b: &RecordBatch, i: usize) -> Option<LogView> {
    if i >= b.num_rows() {
        return None;
    }
    let s = |c: usize| b.column(c).as_string_opt::<i32>();
    Some(LogView {
        timestamp_ns: b.column(log_col::TIMESTAMP).as_primitive_opt::<TimestampNanosecondType>()?.value(i),
        service: opt(s(log_col::SERVICE)?, i),
        severity: opt(s(log_col::SEVERITY)?, i),
        body: s(log_col::BODY)?.value(i).to_owned(),
        span_id: opt(s(log_col::SPAN_ID)?, i),
        labels: s(log_col::LABELS)?.value(i).to_owned(),
    })
}

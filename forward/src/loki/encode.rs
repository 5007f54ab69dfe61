//! Log rows → `logproto.PushRequest`s: one per tenant, lines grouped into streams by their label set,
//! entries of a stream in time order.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, RecordBatch, StringArray, TimestampNanosecondArray};
use vigil_ingest::buffer::logs::{LogsBatch, schema};
use vigil_proto::loki::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};

/// The columns of a logs batch the encoder reads. `None` when the batch does not have the logs schema.
pub(crate) struct Columns<'a> {
    timestamp: &'a TimestampNanosecondArray,
    tenant: &'a StringArray,
    body: &'a StringArray,
    trace_id: &'a StringArray,
    span_id: &'a StringArray,
    labels: &'a StringArray,
    attributes: &'a StringArray,
}

impl<'a> Columns<'a> {
    pub(crate) fn of(batch: &'a RecordBatch) -> Option<Self> {
        let s = |i: usize| batch.columns().get(i).and_then(|c| c.as_string_opt::<i32>());
        Some(Self {
            timestamp: batch.columns().get(schema::TIMESTAMP)?.as_primitive_opt::<TimestampNanosecondType>()?,
            tenant: s(schema::TENANT)?,
            body: s(schema::BODY)?,
            trace_id: s(schema::TRACE_ID)?,
            span_id: s(schema::SPAN_ID)?,
            labels: s(schema::LABELS)?,
            attributes: s(schema::ATTRIBUTES)?,
        })
    }
}

/// One tenant's request being filled.
#[derive(Debug, Default)]
struct TenantRequest {
    streams: Vec<StreamAdapter>,
    by_labels: HashMap<String, usize>,
    lines: usize,
}

/// A request ready to send.
#[derive(Debug)]
pub struct TenantPush {
    pub tenant: String,
    pub request: PushRequest,
    pub lines: usize,
}

/// Groups rows into per-tenant requests of at most `max_lines` lines.
#[derive(Debug)]
pub(crate) struct Grouper {
    max_lines: usize,
    tenants: HashMap<String, TenantRequest>,
}

impl Grouper {
    pub(crate) fn new(max_lines: usize) -> Self {
        Self { max_lines: max_lines.max(1), tenants: HashMap::new() }
    }

    /// Adds one row; returns its tenant's request when that reached `max_lines`.
    pub(crate) fn add(&mut self, c: &Columns<'_>, row: usize) -> Option<TenantPush> {
        let tenant = c.tenant.value(row);
        let t = match self.tenants.get_mut(tenant) {
            Some(t) => t,
            None => self.tenants.entry(tenant.to_owned()).or_default(),
        };
        let labels = c.labels.value(row);
        let index = match t.by_labels.get(labels) {
            Some(&i) => i,
            None => {
                t.streams.push(StreamAdapter { labels: labels.to_owned(), entries: Vec::new(), hash: 0 });
                t.by_labels.insert(labels.to_owned(), t.streams.len() - 1);
                t.streams.len() - 1
            }
        };
        let entry = EntryAdapter {
            timestamp: Some(Timestamp::from_unix_nanos(c.timestamp.value(row))),
            line: c.body.value(row).to_owned(),
            structured_metadata: structured_metadata(c, row),
        };
        if let Some(s) = t.streams.get_mut(index) {
            s.entries.push(entry);
        }
        t.lines += 1;
        if t.lines >= self.max_lines {
            let t = self.tenants.remove(tenant).unwrap_or_default();
            return Some(finish(tenant.to_owned(), t));
        }
        None
    }

    /// Every request still being filled.
    pub(crate) fn drain(&mut self) -> Vec<TenantPush> {
        let mut out: Vec<_> = self.tenants.drain().map(|(tenant, t)| finish(tenant, t)).collect();
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        out
    }
}

fn finish(tenant: String, t: TenantRequest) -> TenantPush {
    let mut streams = t.streams;
    for s in &mut streams {
        // Stable: lines with equal timestamps keep their arrival order, which Loki uses to tell them apart.
        s.entries.sort_by_key(|e| e.timestamp.map(|t| t.unix_nanos()));
    }
    TenantPush { tenant, request: PushRequest { streams }, lines: t.lines }
}

/// The row's attributes as structured metadata (see the module header of `loki`), plus its ids.
fn structured_metadata(c: &Columns<'_>, row: usize) -> Vec<LabelPairAdapter> {
    let mut out = Vec::new();
    let attributes = c.attributes.value(row);
    if attributes.len() > 2
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(attributes)
    {
        for (name, value) in map {
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            out.push(LabelPairAdapter { name: label_safe(&name), value });
        }
    }
    let has = |out: &[LabelPairAdapter], names: &[&str]| out.iter().any(|p| names.contains(&p.name.as_str()));
    if !c.trace_id.is_null(row) && !has(&out, &["trace_id", "traceID", "traceId"]) {
        out.push(LabelPairAdapter { name: "trace_id".into(), value: c.trace_id.value(row).to_owned() });
    }
    if !c.span_id.is_null(row) && !has(&out, &["span_id", "spanID", "spanId"]) {
        out.push(LabelPairAdapter { name: "span_id".into(), value: c.span_id.value(row).to_owned() });
    }
    out
}

/// Names outside `[a-zA-Z_][a-zA-Z0-9_]*` made safe as Loki's OTLP ingestion does (`.` → `_`); valid names
/// are left alone, so Loki-pushed metadata goes back unchanged.
fn label_safe(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Encodes whole sealed batches into per-tenant requests without a size cap (tests and tools; the worker
/// splits by `max_lines_per_request` itself).
pub fn encode_push_requests(batches: &[Arc<LogsBatch>]) -> Vec<TenantPush> {
    let mut g = Grouper::new(usize::MAX);
    for b in batches {
        if let Some(c) = Columns::of(&b.logs) {
            for row in 0..b.logs.num_rows() {
                let _ = g.add(&c, row);
            }
        }
    }
    g.drain()
}

#[cfg(test)]
mod tests;

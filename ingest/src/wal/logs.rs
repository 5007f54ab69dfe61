//! Logs records: one accepted push (Loki or OTLP) as a snappy-compressed Loki `logproto.PushRequest`, the
//! form the Loki forwarder sends, so forwarding needs no encoding. The request's lines are grouped into
//! streams by label set, entries of a stream in time order (stable: equal timestamps keep arrival order,
//! which Loki uses to tell such lines apart).
//!
//! Structured metadata: every key of the row's `attributes` JSON (for Loki-pushed lines, exactly the
//! structured metadata the client sent; for OTLP lines, the resource and record attributes that did not
//! become labels, as Loki's own OTLP ingestion does), names made label-safe (`.` → `_`), non-string values as
//! JSON text; plus `trace_id` and `span_id` from their columns unless the attributes already carry them.

use std::collections::HashMap;

use prost::Message;
use vigil_proto::loki::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};

use super::entry::{Entry, EntryError};
use crate::buffer::Staged;
use crate::buffer::logs::{LogRow, LogsShardRows};

/// The record body for the lines of one request of `tenant`.
pub(crate) fn record(tenant: &str, staged: &Staged<LogsShardRows>) -> Result<Vec<u8>, EntryError> {
    let (request, lines) = push_request(staged.shards.iter().flat_map(|s| s.rows.iter()));
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .map_err(|_| EntryError("snappy could not compress the push"))?;
    Entry::encode(tenant, [u32::try_from(lines).unwrap_or(u32::MAX), 0, 0], &compressed)
}

/// One `PushRequest` for `rows` (all of one tenant), and how many lines it holds.
pub(crate) fn push_request<'a>(rows: impl Iterator<Item = &'a LogRow>) -> (PushRequest, usize) {
    let mut streams: Vec<StreamAdapter> = Vec::new();
    let mut by_labels: HashMap<&str, usize> = HashMap::new();
    let mut lines = 0;
    for row in rows {
        let index = *by_labels.entry(&row.labels).or_insert_with(|| {
            streams.push(StreamAdapter { labels: row.labels.clone(), entries: Vec::new(), hash: 0 });
            streams.len() - 1
        });
        streams[index].entries.push(EntryAdapter {
            timestamp: Some(Timestamp::from_unix_nanos(row.timestamp_ns)),
            line: row.body.clone(),
            structured_metadata: structured_metadata(row),
        });
        lines += 1;
    }
    for s in &mut streams {
        s.entries.sort_by_key(|e| e.timestamp.map(|t| t.unix_nanos()));
    }
    (PushRequest { streams }, lines)
}

/// The row's attributes as structured metadata (see the module header), plus its ids.
fn structured_metadata(row: &LogRow) -> Vec<LabelPairAdapter> {
    let mut out = Vec::new();
    if row.attributes.len() > 2
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(&row.attributes)
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
    if let Some(trace_id) = &row.trace_id
        && !has(&out, &["trace_id", "traceID", "traceId"])
    {
        out.push(LabelPairAdapter { name: "trace_id".into(), value: trace_id.clone() });
    }
    if let Some(span_id) = &row.span_id
        && !has(&out, &["span_id", "spanID", "spanId"])
    {
        out.push(LabelPairAdapter { name: "span_id".into(), value: span_id.clone() });
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn row(labels: &str, ts: i64, body: &str, attrs: &str, trace: Option<&str>) -> LogRow {
        LogRow {
            timestamp_ns: ts,
            observed_timestamp_ns: ts,
            tenant: "a".into(),
            body: body.into(),
            trace_id: trace.map(str::to_owned),
            labels: labels.into(),
            attributes: attrs.into(),
            ..LogRow::default()
        }
    }

    #[test]
    fn groups_by_stream_sorts_entries_and_builds_metadata() {
        let rows = [
            row(r#"{job="x"}"#, 30, "third", "{}", None),
            row(r#"{job="y"}"#, 5, "other stream", r#"{"traceID":"abc","n":3,"k8s.pod":"p","nil":null}"#, Some("abc")),
            row(r#"{job="x"}"#, 10, "first", "{}", Some("def")),
            row(r#"{job="x"}"#, 10, "first, second of equal ts", "{}", None),
        ];
        let (request, lines) = push_request(rows.iter());
        assert_eq!(lines, 4);
        let labels: Vec<_> = request.streams.iter().map(|s| s.labels.as_str()).collect();
        assert_eq!(labels, vec![r#"{job="x"}"#, r#"{job="y"}"#]);
        let x: Vec<_> =
            request.streams[0].entries.iter().map(|e| (e.timestamp.unwrap().unix_nanos(), e.line.as_str())).collect();
        assert_eq!(x, vec![(10, "first"), (10, "first, second of equal ts"), (30, "third")]);
        let first = &request.streams[0].entries[0].structured_metadata;
        assert_eq!((first[0].name.as_str(), first[0].value.as_str()), ("trace_id", "def"));
        let mut meta: Vec<_> = request.streams[1].entries[0]
            .structured_metadata
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect();
        meta.sort();
        // traceID is already there: no second trace_id; null dropped; numbers as JSON text; names made safe.
        assert_eq!(meta, vec![("k8s_pod", "p"), ("n", "3"), ("traceID", "abc")]);
        assert_eq!(label_safe("9.x"), "_9_x");
    }

    #[test]
    fn a_record_is_the_tenant_and_a_snappy_push() {
        let mut staged = Staged::<LogsShardRows>::default();
        staged.reset(2);
        staged.push(row(r#"{job="x"}"#, 1, "one", "{}", None));
        staged.push(row(r#"{job="z"}"#, 2, "two", "{}", None));
        let entry = Entry::decode(&bytes::Bytes::from(record("team-a", &staged).unwrap())).unwrap();
        assert_eq!((entry.tenant.as_str(), entry.counts), ("team-a", [2, 0, 0]));
        let raw = snap::raw::Decoder::new().decompress_vec(&entry.payload).unwrap();
        assert_eq!(PushRequest::decode(raw.as_slice()).unwrap().streams.len(), 2);
    }
}

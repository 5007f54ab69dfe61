//! Logs records: one accepted push (Loki or OTLP) as a snappy-compressed Loki `logproto.PushRequest`, the
//! form the Loki forwarder sends, so forwarding needs no encoding. The request's lines are grouped into
//! streams by label set, entries of a stream in time order (stable: equal timestamps keep arrival order,
//! which Loki uses to tell such lines apart).
//!
//! Structured metadata: every key of the row's `attributes` JSON (for Loki-pushed lines, exactly the
//! structured metadata the client sent; for OTLP lines, the resource and record attributes that did not
//! become labels, as Loki's own OTLP ingestion does), names made label-safe (`.` → `_`), non-string values as
//! JSON text; plus `trace_id` and `span_id` from their columns unless the attributes already carry them.

use std::borrow::Cow;
use std::collections::HashMap;

use prost::encoding::encoded_len_varint;
use vigil_proto::loki::Timestamp;

use super::entry::{Entry, EntryError};
use crate::buffer::Staged;
use crate::buffer::logs::{LogRow, LogsShardRows};
use crate::put_varint;

/// The record body for the lines of one request of `tenant`.
pub(crate) fn record(tenant: &str, staged: &Staged<LogsShardRows>) -> Result<Vec<u8>, EntryError> {
    let mut raw = Vec::new();
    let lines = encode_push(staged.shards.iter().flat_map(|s| s.rows.iter()), &mut raw);
    let compressed =
        snap::raw::Encoder::new().compress_vec(&raw).map_err(|_| EntryError("snappy could not compress the push"))?;
    Entry::encode(tenant, [u32::try_from(lines).unwrap_or(u32::MAX), 0, 0], &compressed)
}

/// Appends one `logproto.PushRequest` for `rows` (all of one tenant) to `out`; returns how many lines it
/// holds. Written field by field from the rows, borrowing their strings: building prost's owned messages
/// first copied every line and label set twice and was most of the logs path's allocations.
pub(crate) fn encode_push<'a>(rows: impl Iterator<Item = &'a LogRow>, out: &mut Vec<u8>) -> usize {
    let mut streams: Vec<(&str, Vec<&LogRow>)> = Vec::new();
    let mut by_labels: HashMap<&str, usize> = HashMap::new();
    let mut lines = 0;
    for row in rows {
        let i = *by_labels.entry(&row.labels).or_insert_with(|| {
            streams.push((&row.labels, Vec::new()));
            streams.len() - 1
        });
        streams[i].1.push(row);
        lines += 1;
    }
    let mut metadata: Vec<Vec<(Cow<'_, str>, Cow<'_, str>)>> = Vec::new();
    for (labels, entries) in &mut streams {
        entries.sort_by_key(|r| r.timestamp_ns);
        metadata.clear();
        metadata.extend(entries.iter().map(|r| structured_metadata(r)));
        let entry_lens: Vec<usize> = entries.iter().zip(&metadata).map(|(r, m)| entry_len(r, m)).collect();
        let stream_len = field_len(labels.len()) + entry_lens.iter().map(|&l| field_len(l)).sum::<usize>();
        out.push(0x0a); // PushRequest.streams = 1
        put_varint(out, stream_len as u64);
        put_bytes(out, 0x0a, labels.as_bytes()); // StreamAdapter.labels = 1
        for ((row, meta), len) in entries.iter().zip(&metadata).zip(entry_lens) {
            out.push(0x12); // StreamAdapter.entries = 2
            put_varint(out, len as u64);
            out.push(0x0a); // EntryAdapter.timestamp = 1
            put_timestamp(out, row.timestamp_ns);
            put_bytes(out, 0x12, row.body.as_bytes()); // EntryAdapter.line = 2
            for (name, value) in meta {
                out.push(0x1a); // EntryAdapter.structured_metadata = 3
                put_varint(out, (field_len(name.len()) + field_len(value.len())) as u64);
                put_bytes(out, 0x0a, name.as_bytes());
                put_bytes(out, 0x12, value.as_bytes());
            }
        }
    }
    lines
}

/// Encoded length of the `google.protobuf.Timestamp` of `ns` (zero fields are not written).
fn timestamp_len(ns: i64) -> usize {
    let t = Timestamp::from_unix_nanos(ns);
    let field = |v: u64| if v == 0 { 0 } else { 1 + encoded_len_varint(v) };
    field(t.seconds as u64) + field(t.nanos as u64)
}

/// The timestamp's length prefix and fields.
fn put_timestamp(out: &mut Vec<u8>, ns: i64) {
    let t = Timestamp::from_unix_nanos(ns);
    put_varint(out, timestamp_len(ns) as u64);
    if t.seconds != 0 {
        out.push(0x08);
        put_varint(out, t.seconds as u64);
    }
    if t.nanos != 0 {
        out.push(0x10);
        put_varint(out, t.nanos as u64);
    }
}

fn entry_len(row: &LogRow, meta: &[(Cow<'_, str>, Cow<'_, str>)]) -> usize {
    let pairs: usize = meta.iter().map(|(n, v)| field_len(field_len(n.len()) + field_len(v.len()))).sum();
    field_len(timestamp_len(row.timestamp_ns)) + field_len(row.body.len()) + pairs
}

/// A length-delimited field of `len` bytes with a one-byte tag.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The row's attributes as structured metadata (see the module header), plus its ids.
fn structured_metadata(row: &LogRow) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let mut out: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
    if row.attributes.len() > 2
        && let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&row.attributes)
    {
        for (name, value) in map {
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            out.push((label_safe(name).into(), value.into()));
        }
    }
    let has = |out: &[(Cow<'_, str>, Cow<'_, str>)], names: &[&str]| out.iter().any(|(n, _)| names.contains(&&**n));
    if let Some(trace_id) = &row.trace_id
        && !has(&out, &["trace_id", "traceID", "traceId"])
    {
        out.push(("trace_id".into(), trace_id.as_str().into()));
    }
    if let Some(span_id) = &row.span_id
        && !has(&out, &["span_id", "spanID", "spanId"])
    {
        out.push(("span_id".into(), span_id.as_str().into()));
    }
    out
}

/// Names outside `[a-zA-Z_][a-zA-Z0-9_]*` made safe as Loki's OTLP ingestion does (`.` → `_`); valid names
/// are left alone (and not copied again), so Loki-pushed metadata goes back unchanged.
fn label_safe(name: String) -> String {
    let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().next().is_some_and(|c| !c.is_ascii_digit());
    if valid {
        return name;
    }
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use prost::Message;
    use vigil_proto::loki::PushRequest;

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
            row(
                r#"{job="y"}"#,
                1_700_000_000_123_456_789,
                "other stream",
                r#"{"traceID":"abc","n":3,"k8s.pod":"p","nil":null}"#,
                Some("abc"),
            ),
            row(r#"{job="x"}"#, 10, "first", "{}", Some("def")),
            row(r#"{job="x"}"#, 10, "first, second of equal ts", "{}", None),
        ];
        let mut raw = vec![];
        let lines = encode_push(rows.iter(), &mut raw);
        assert_eq!(lines, 4);
        let request = PushRequest::decode(raw.as_slice()).unwrap();
        let labels: Vec<_> = request.streams.iter().map(|s| s.labels.as_str()).collect();
        assert_eq!(labels, vec![r#"{job="x"}"#, r#"{job="y"}"#]);
        let x: Vec<_> =
            request.streams[0].entries.iter().map(|e| (e.timestamp.unwrap().unix_nanos(), e.line.as_str())).collect();
        assert_eq!(x, vec![(10, "first"), (10, "first, second of equal ts"), (30, "third")]);
        assert_eq!(request.streams[1].entries[0].timestamp.unwrap().unix_nanos(), 1_700_000_000_123_456_789);
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
        assert_eq!(label_safe("9.x".into()), "_9_x");
        assert_eq!(label_safe("k8s_pod".into()), "k8s_pod");
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

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use vigil_ingest::buffer::logs::LogRow;
use vigil_ingest::buffer::{BufferConfig, LogsBuffer};

use super::{Columns, Grouper, encode_push_requests, label_safe};

fn row(tenant: &str, labels: &str, ts: i64, body: &str, attrs: &str, trace: Option<&str>) -> LogRow {
    LogRow {
        timestamp_ns: ts,
        observed_timestamp_ns: ts,
        tenant: tenant.into(),
        body: body.into(),
        trace_id: trace.map(str::to_owned),
        labels: labels.into(),
        attributes: attrs.into(),
        ..LogRow::default()
    }
}

fn sealed(rows: Vec<LogRow>) -> Vec<Arc<vigil_ingest::buffer::logs::LogsBatch>> {
    let b = LogsBuffer::new(BufferConfig { shards: 1, batch_rows: 1024, ..BufferConfig::default() });
    let mut staged = b.staged_rows();
    for r in rows {
        staged.push(r);
    }
    b.append(&staged).unwrap();
    b.seal_all();
    b.snapshot(0)
}

#[test]
fn groups_by_tenant_and_stream_sorts_entries_and_builds_metadata() {
    let batches = sealed(vec![
        row("a", r#"{job="x"}"#, 30, "third", "{}", None),
        row("a", r#"{job="y"}"#, 5, "other stream", r#"{"traceID":"abc","n":3,"k8s.pod":"p","nil":null}"#, Some("abc")),
        row("b", r#"{job="x"}"#, 1, "tenant b", "{}", Some("def")),
        row("a", r#"{job="x"}"#, 10, "first", "{}", None),
        row("a", r#"{job="x"}"#, 10, "first, second of equal ts", "{}", None),
    ]);
    let pushes = encode_push_requests(&batches);
    assert_eq!(pushes.iter().map(|p| (p.tenant.as_str(), p.lines)).collect::<Vec<_>>(), vec![("a", 4), ("b", 1)]);
    let a = &pushes[0].request;
    assert_eq!(a.streams.iter().map(|s| s.labels.as_str()).collect::<Vec<_>>(), vec![r#"{job="x"}"#, r#"{job="y"}"#]);
    let lines: Vec<_> =
        a.streams[0].entries.iter().map(|e| (e.timestamp.unwrap().unix_nanos(), e.line.as_str())).collect();
    assert_eq!(lines, vec![(10, "first"), (10, "first, second of equal ts"), (30, "third")]);
    assert!(a.streams[0].entries[0].structured_metadata.is_empty());
    let mut meta: Vec<_> =
        a.streams[1].entries[0].structured_metadata.iter().map(|p| (p.name.as_str(), p.value.as_str())).collect();
    meta.sort();
    // traceID is already there: no second trace_id; null dropped; numbers as JSON text; names made safe.
    assert_eq!(meta, vec![("k8s_pod", "p"), ("n", "3"), ("traceID", "abc")]);
    let b = &pushes[1].request.streams[0].entries[0].structured_metadata;
    assert_eq!((b[0].name.as_str(), b[0].value.as_str()), ("trace_id", "def"));
}

#[test]
fn a_tenant_request_is_cut_at_max_lines() {
    let batches = sealed((0..5).map(|i| row("a", r#"{j="1"}"#, i, "l", "{}", None)).collect());
    let c = Columns::of(&batches[0].logs).unwrap();
    let mut g = Grouper::new(2);
    let full: Vec<_> = (0..5).filter_map(|r| g.add(&c, r)).map(|p| p.lines).collect();
    assert_eq!(full, vec![2, 2]);
    assert_eq!(g.drain().iter().map(|p| p.lines).collect::<Vec<_>>(), vec![1]);
    assert_eq!(label_safe("9.x"), "_9_x");
}

//! The spans table through the generic buffer: columns as stored, sharding by trace, shared resources.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType};

use super::schema::{SPANS, col};
use super::*;
use crate::buffer::{BufferConfig, SpansBuffer};

fn row(trace: u8, span: u8, resource: &Arc<[u8]>) -> SpanRow {
    SpanRow {
        tenant: Arc::from("t1"),
        trace_id: format!("{trace:032x}"),
        span_id: format!("{span:016x}"),
        parent_span_id: (span > 1).then(|| format!("{:016x}", span - 1)),
        service: Some(Arc::from("checkout")),
        name: format!("op{span}"),
        kind: 2,
        start_unix_nano: 1_000 + i64::from(span),
        duration_ns: 50,
        status_code: 0,
        status_message: None,
        attributes: r#"{"k":"v"}"#.to_owned(),
        span: vec![span; 10],
        resource_scope: Arc::clone(resource),
    }
}

fn buffer(shards: usize) -> Arc<SpansBuffer> {
    SpansBuffer::new(BufferConfig {
        shards,
        batch_rows: 1000,
        max_bytes: 64 << 20,
        seal_interval: Duration::from_secs(3600),
    })
}

#[test]
fn a_trace_stays_in_one_shard_and_columns_read_back() {
    let buffer = buffer(4);
    let resource: Arc<[u8]> = Arc::from(&b"resource-and-scope"[..]);
    let mut staged = buffer.staged_rows();
    for trace in 1..=8u8 {
        for span in 1..=3u8 {
            staged.push(row(trace, span, &resource));
        }
    }
    assert_eq!(staged.span_count(), 24);
    buffer.append(&staged).unwrap();
    buffer.seal_all();
    let mut seen = 0;
    for shard in 0..4 {
        for batch in buffer.snapshot(shard) {
            let b = &batch.spans;
            assert_eq!(b.schema(), *SPANS);
            let traces = b.column(col::TRACE_ID).as_string::<i32>();
            // Every trace found in this shard has all three of its spans here.
            for i in 0..b.num_rows() {
                let t = traces.value(i);
                assert_eq!((0..b.num_rows()).filter(|&j| traces.value(j) == t).count(), 3, "trace {t} split");
            }
            let parents = b.column(col::PARENT_SPAN_ID).as_string::<i32>();
            let names = b.column(col::NAME).as_string::<i32>();
            let starts = b.column(col::START).as_primitive::<TimestampNanosecondType>();
            let durations = b.column(col::DURATION_NS).as_primitive::<Int64Type>();
            let kinds = b.column(col::KIND).as_primitive::<Int32Type>();
            for i in 0..b.num_rows() {
                let n: i64 = names.value(i)[2..].parse().unwrap();
                assert_eq!(parents.is_null(i), n == 1);
                assert_eq!(starts.value(i), 1_000 + n);
                assert_eq!(durations.value(i), 50);
                assert_eq!(kinds.value(i), 2);
            }
            // One dictionary entry for the resource all rows share.
            let dict = b.column(col::RESOURCE_SCOPE).as_dictionary::<Int32Type>();
            assert_eq!(dict.values().len(), 1);
            assert_eq!(dict.values().as_binary::<i32>().value(0), b"resource-and-scope");
            seen += b.num_rows();
        }
    }
    assert_eq!(seen, 24);
}

#[test]
fn a_shared_resource_is_accounted_once_per_run() {
    let shared: Arc<[u8]> = Arc::from(vec![7u8; 1000]);
    let rows = vec![row(1, 1, &shared), row(1, 2, &shared)];
    let other: Arc<[u8]> = Arc::from(vec![7u8; 1000]);
    let split = vec![row(1, 1, &shared), row(1, 2, &other)];
    assert_eq!(rows::rows_bytes(&split) - rows::rows_bytes(&rows), 1000);
}

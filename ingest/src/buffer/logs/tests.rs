//! The logs table through the generic buffer: columns, stream sharding and order, memory accounting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;

use super::{LogRow, schema};
use crate::buffer::{BufferConfig, LogsBuffer};

fn row(tenant: &str, labels: &str, ts: i64, body: &str) -> LogRow {
    LogRow {
        timestamp_ns: ts,
        observed_timestamp_ns: ts + 1,
        tenant: tenant.into(),
        service: Some("api".into()),
        severity: None,
        body: body.into(),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        span_id: None,
        labels: labels.into(),
        attributes: "{}".into(),
    }
}

fn buffer(shards: usize) -> std::sync::Arc<LogsBuffer> {
    LogsBuffer::new(BufferConfig { shards, batch_rows: 64, max_bytes: 16 << 20, ..BufferConfig::default() })
}

#[test]
fn one_stream_stays_in_one_shard_in_order_with_every_column() {
    let b = buffer(4);
    let mut staged = b.staged_rows();
    for i in 0..20 {
        staged.push(row("t1", r#"{job="a"}"#, 1_000 + i, &format!("line {i}")));
        staged.push(row("t2", r#"{job="a"}"#, 5_000 + i, "other tenant"));
    }
    assert_eq!(staged.row_count(), 40);
    b.append(&staged).unwrap();
    b.seal_all();
    let mut seen_t1 = Vec::new();
    let mut shards_t1 = Vec::new();
    for shard in 0..b.shard_count() {
        for batch in b.snapshot(shard) {
            let logs = &batch.logs;
            assert_eq!(logs.schema(), *schema::LOGS);
            let tenant = logs.column(schema::TENANT).as_string::<i32>();
            let ts = logs.column(schema::TIMESTAMP).as_primitive::<TimestampNanosecondType>();
            let observed = logs.column(schema::OBSERVED_TIMESTAMP).as_primitive::<TimestampNanosecondType>();
            let body = logs.column(schema::BODY).as_string::<i32>();
            for r in 0..logs.num_rows() {
                if tenant.value(r) == "t1" {
                    seen_t1.push((ts.value(r), body.value(r).to_owned()));
                    assert_eq!(observed.value(r), ts.value(r) + 1);
                    if !shards_t1.contains(&shard) {
                        shards_t1.push(shard);
                    }
                }
            }
            assert!(logs.column(schema::SPAN_ID).is_null(0));
            assert!(logs.column(schema::SEVERITY).is_null(0));
            assert_eq!(logs.column(schema::SERVICE).as_string::<i32>().value(0), "api");
        }
    }
    assert_eq!(shards_t1.len(), 1, "one stream must stay in one shard");
    let expected: Vec<_> = (0..20).map(|i| (1_000 + i, format!("line {i}"))).collect();
    assert_eq!(seen_t1, expected);
}

#[test]
fn memory_is_accounted_and_full_buffer_refuses_whole_append() {
    let b = LogsBuffer::new(BufferConfig { shards: 1, batch_rows: 4, max_bytes: 4096, ..BufferConfig::default() });
    let base = b.used_bytes();
    let mut staged = b.staged_rows();
    staged.push(row("t", r#"{a="b"}"#, 1, &"x".repeat(100)));
    b.append(&staged).unwrap();
    assert!(b.used_bytes() >= base + 100, "string bytes must be accounted: {} vs {base}", b.used_bytes());
    // A lossless reader pins everything, so a large append cannot evict and must fail whole.
    let _sub = b.subscribe(0, crate::buffer::SubscriptionMode::Lossless);
    let mut big = b.staged_rows();
    big.push(row("t", r#"{a="b"}"#, 2, "small"));
    big.push(row("t", r#"{a="b"}"#, 3, &"y".repeat(8192)));
    assert!(b.append(&big).is_err());
    b.seal_all();
    let rows: usize = b.snapshot(0).iter().map(|s| s.logs.num_rows()).sum();
    assert_eq!(rows, 1, "a refused append adds nothing");
}

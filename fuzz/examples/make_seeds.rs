//! Writes the seed corpora under `fuzz/corpus/<target>/`: a few small, valid inputs per target, in the
//! framing each target expects (see `ingest/src/fuzzing.rs`).
//!
//! `cargo run --example make_seeds` from `fuzz/` (run once; the output is committed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use vigil_proto::{loki, prometheus as v1, prometheus_v2 as v2};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// Mode byte 0: the target compresses the rest itself. Mode byte 1: the rest is already compressed.
fn both_modes(target: &str, name: &str, raw: &[u8]) {
    write(target, &format!("{name}-raw"), &[&[0u8][..], raw].concat());
    let compressed = snap::raw::Encoder::new().compress_vec(raw).unwrap();
    write(target, &format!("{name}-snappy"), &[&[1u8][..], &compressed].concat());
}

fn label(name: &str, value: &str) -> v1::Label {
    v1::Label { name: name.into(), value: value.into() }
}

fn native_histogram() -> v1::Histogram {
    v1::Histogram {
        count: Some(v1::histogram::Count::CountInt(6)),
        sum: 12.5,
        schema: 1,
        zero_threshold: 1e-128,
        zero_count: Some(v1::histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![v1::BucketSpan { offset: 0, length: 2 }, v1::BucketSpan { offset: 3, length: 1 }],
        positive_deltas: vec![2, -1, 1],
        timestamp: 1_700_000_000_000,
        ..Default::default()
    }
}

fn rw1() -> Vec<u8> {
    let exemplar = v1::Exemplar {
        labels: vec![label("span_id", "00f067aa0ba902b7"), label("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")],
        value: 0.25,
        timestamp: 1_700_000_000_500,
    };
    v1::WriteRequest {
        timeseries: vec![
            v1::TimeSeries {
                labels: vec![label("__name__", "http_requests_total"), label("code", "200"), label("job", "api")],
                samples: vec![
                    v1::Sample { value: 1.0, timestamp: 1_700_000_000_000 },
                    v1::Sample { value: 2.0, timestamp: 1_700_000_015_000 },
                ],
                exemplars: vec![exemplar],
                histograms: vec![],
            },
            v1::TimeSeries {
                labels: vec![label("__name__", "latency_seconds"), label("job", "api")],
                histograms: vec![native_histogram()],
                ..Default::default()
            },
        ],
        metadata: vec![v1::MetricMetadata {
            r#type: v1::MetricType::Counter as i32,
            metric_family_name: "http_requests_total".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    }
    .encode_to_vec()
}

fn rw2() -> Vec<u8> {
    let symbols = ["", "__name__", "up", "job", "api", "trace_id", "4bf92f3577b34da6a3ce929d0e0e4736", "Up.", "lat"];
    let h = native_histogram();
    let histogram = v2::Histogram {
        count: Some(v1::histogram::Count::CountInt(6)),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: Some(v1::histogram::ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![v1::BucketSpan { offset: 0, length: 2 }],
        positive_deltas: vec![2, -1],
        timestamp: h.timestamp,
        ..Default::default()
    };
    v2::Request {
        symbols: symbols.iter().map(|s| (*s).to_owned()).collect(),
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![
                    v2::Sample { value: 1.0, timestamp: 1_700_000_000_000, start_timestamp: 0 },
                    v2::Sample { value: 0.0, timestamp: 1_700_000_015_000, start_timestamp: 0 },
                ],
                exemplars: vec![v2::Exemplar { labels_refs: vec![5, 6], value: 1.0, timestamp: 1_700_000_000_000 }],
                metadata: Some(v2::Metadata { r#type: v2::MetricType::Gauge as i32, help_ref: 7, unit_ref: 0 }),
                ..Default::default()
            },
            v2::TimeSeries { labels_refs: vec![1, 8, 3, 4], histograms: vec![histogram], ..Default::default() },
        ],
    }
    .encode_to_vec()
}

fn testdata(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ingest/src/otlp").join(path)).unwrap()
}

fn otlp() {
    // The receivers' own OTLP/JSON test data, and the same requests as protobuf.
    let metrics = testdata("metrics/testdata/metrics.json");
    let logs = testdata("logs/testdata/logs.json");
    let events = testdata("logs/testdata/events.json");
    let traces = testdata("traces/testdata/trace.json");
    write("otlp_json", "metrics", &[&[0u8][..], &metrics].concat());
    write("otlp_json", "logs", &[&[1u8][..], &logs].concat());
    write("otlp_json", "events", &[&[1u8][..], &events].concat());
    write("otlp_json", "traces", &[&[2u8][..], &traces].concat());
    let m: ExportMetricsServiceRequest = serde_json::from_slice(&metrics).unwrap();
    let l: ExportLogsServiceRequest = serde_json::from_slice(&logs).unwrap();
    let e: ExportLogsServiceRequest = serde_json::from_slice(&events).unwrap();
    let t: ExportTraceServiceRequest = serde_json::from_slice(&traces).unwrap();
    write("otlp_protobuf", "metrics", &[&[0u8][..], &m.encode_to_vec()].concat());
    write("otlp_protobuf", "logs", &[&[1u8][..], &l.encode_to_vec()].concat());
    write("otlp_protobuf", "events", &[&[1u8][..], &e.encode_to_vec()].concat());
    write("otlp_protobuf", "traces", &[&[2u8][..], &t.encode_to_vec()].concat());
}

fn loki_push() -> Vec<u8> {
    let entry = |s: i64, line: &str, meta: &[(&str, &str)]| loki::EntryAdapter {
        timestamp: Some(loki::Timestamp { seconds: s, nanos: 5 }),
        line: line.into(),
        structured_metadata: meta
            .iter()
            .map(|(n, v)| loki::LabelPairAdapter { name: (*n).into(), value: (*v).into() })
            .collect(),
    };
    loki::PushRequest {
        streams: vec![
            loki::StreamAdapter {
                labels: r#"{job="api", level="error", msg="say \"hi\"\n\u00e9\x41"}"#.into(),
                entries: vec![
                    entry(1_700_000_000, "first line", &[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]),
                    entry(1_700_000_001, "second line", &[]),
                ],
                hash: 0,
            },
            loki::StreamAdapter {
                labels: "{service_name=`checkout`, env=\"prod\",}".into(),
                entries: vec![entry(1_700_000_002, "{\"msg\":\"json line\"}", &[("level", "warn")])],
                hash: 0,
            },
        ],
    }
    .encode_to_vec()
}

const LOKI_JSON: &str = r#"{"streams":[{"stream":{"job":"api","level":"error"},"values":[["1700000000000000005","first line",{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}],["1700000001000000000","second line"]]},{"stream":{"service_name":"checkout","msg":"say \"hi\"\n\u00e9"},"values":[[1700000002000000000,"numeric timestamp",null]]}]}"#;

/// A segment record as the log writes it: `magic | length | CRC-32 | body`, little-endian.
fn frame(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&0x4c57_4756u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
}

/// A metrics log entry: `version | tenant length | tenant | counts (3 × u32) | snappy remote write 1.0`.
fn entry(tenant: &str, counts: [u32; 3], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![1, tenant.len() as u8];
    out.extend_from_slice(tenant.as_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn wal() {
    let payload = snap::raw::Encoder::new().compress_vec(&rw1()).unwrap();
    let mut segment = Vec::new();
    frame(&mut segment, &entry("anonymous", [2, 1, 1], &payload));
    frame(&mut segment, &entry("team-a", [2, 1, 1], &payload));
    let second = segment.len();
    frame(&mut segment, &entry("team-b", [2, 1, 1], &payload));
    // The logs and spans logs hold Loki pushes (snappy) and OTLP trace requests.
    let mut other_kinds = Vec::new();
    let push = snap::raw::Encoder::new().compress_vec(&loki_push()).unwrap();
    frame(&mut other_kinds, &entry("team-a", [3, 0, 0], &push));
    let traces: ExportTraceServiceRequest = serde_json::from_slice(&testdata("traces/testdata/trace.json")).unwrap();
    frame(&mut other_kinds, &entry("team-a", [1, 0, 0], &traces.encode_to_vec()));
    for target in ["wal_records", "wal_segment"] {
        write(target, "two-tenants", &segment);
        // A flipped byte in the third record and a torn tail: resync and repair.
        let mut damaged = segment.clone();
        damaged[second + 20] ^= 0x40;
        frame(&mut damaged, &entry("team-c", [2, 1, 1], &payload));
        damaged.truncate(damaged.len() - 7);
        write(target, "damaged", &damaged);
        write(target, "logs-and-spans", &other_kinds);
    }
}

fn main() {
    both_modes("remote_write_v1", "request", &rw1());
    both_modes("remote_write_v2", "request", &rw2());
    otlp();
    both_modes("loki_protobuf", "push", &loki_push());
    write("loki_json", "push", LOKI_JSON.as_bytes());
    wal();
}

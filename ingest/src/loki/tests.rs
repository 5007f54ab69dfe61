//! Tests of the Loki receiver: the label-set parser, both body formats, and the answers of the real router
//! to valid and malformed pushes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use prost::Message;
use tower::ServiceExt;
use vigil_proto::loki as proto;

use super::labels::{format, parse, sanitize_name, valid_name};
use super::*;
use crate::buffer::logs::schema;
use crate::buffer::{BufferConfig, LogsBuffer};
use crate::limits::IngestLimits;
use crate::telemetry::IngestMetrics;

// ------------------------------------------------------------------------------------------------------
// Label sets
// ------------------------------------------------------------------------------------------------------

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn parses_label_sets_with_escapes_spacing_and_backticks() {
    assert_eq!(parse(r#"{job="api", level="error"}"#).unwrap(), pairs(&[("job", "api"), ("level", "error")]));
    assert_eq!(parse(r#"  {a="1",b="2",}  "#).unwrap(), pairs(&[("a", "1"), ("b", "2")]));
    assert_eq!(parse("{}").unwrap(), pairs(&[]));
    assert_eq!(
        parse(r#"{msg="say \"hi\" \\ back\nslash\t\u00e9\x41"}"#).unwrap(),
        pairs(&[("msg", "say \"hi\" \\ back\nslash\té\x41")])
    );
    assert_eq!(parse("{path=`C:\\dir \"x\"`}").unwrap(), pairs(&[("path", "C:\\dir \"x\"")]));
    assert_eq!(parse("{ná=\"x\"}").unwrap_err().what, "expected '=' after a label name");
    assert_eq!(parse("{\u{3000}a=\"é\"\u{3000}}").unwrap(), pairs(&[("a", "é")]), "unicode whitespace");
}

#[test]
fn rejects_malformed_label_sets_with_positions() {
    let cases: &[(&str, &str)] = &[
        ("job=\"a\"", "expected '{'"),
        ("{job=\"a\"", "expected ',' or '}'"),
        ("{job=a}", "expected a quoted label value"),
        ("{1job=\"a\"}", "expected a label name"),
        ("{job=\"a}", "unterminated"),
        ("{job=\"a\\q\"}", "unknown escape"),
        ("{job=\"a\\xff\"}", "above 0x7f"),
        ("{job=\"a\\u12\"}", "hex"),
        ("{job=\"a\"} trailing", "unexpected text"),
        ("{job=\"a\" env=\"b\"}", "expected ',' or '}'"),
        ("", "expected '{'"),
    ];
    for (input, want) in cases {
        let e = parse(input).expect_err(input);
        assert!(e.to_string().contains(want), "{input:?}: got {e}, want {want:?}");
    }
    assert_eq!(parse("{job=a}").unwrap_err().at, 5);
}

#[test]
fn formats_sorted_and_round_trips_through_the_parser() {
    let mut p = pairs(&[("z", "last"), ("a", "q\"uo\\te\nnl\u{1}")]);
    let s = format(&mut p);
    assert_eq!(s, r#"{a="q\"uo\\te\nnl\u0001", z="last"}"#);
    assert_eq!(parse(&s).unwrap(), p);
    assert!(valid_name("_a9") && !valid_name("9a") && !valid_name("a-b") && !valid_name(""));
    assert_eq!(sanitize_name("service.name"), "service_name");
    assert_eq!(sanitize_name("1x"), "_1x");
}

#[test]
fn tenant_ids_follow_dskit_rules() {
    let valid_tenant = |id: &str| crate::tenant::validate_tenant(id).is_ok();
    assert!(valid_tenant("fake") && valid_tenant("team-a_1.(prod)*'!"));
    for bad in ["", ".", "..", "a|b", "a b", "ä", &"x".repeat(151)] {
        assert!(!valid_tenant(bad), "{bad:?}");
    }
}

// ------------------------------------------------------------------------------------------------------
// The router
// ------------------------------------------------------------------------------------------------------

struct Fixture {
    app: axum::Router,
    logs: Arc<LogsBuffer>,
    registry: Registry,
}

fn fixture_with(config: LokiReceiverConfig, limits: IngestLimits, max_bytes: u64) -> Fixture {
    let mut registry = Registry::default();
    let metrics = IngestMetrics::new(&mut registry);
    let logs = LogsBuffer::new(BufferConfig { shards: 2, batch_rows: 1024, max_bytes, ..BufferConfig::default() });
    let state = Arc::new(LokiState {
        config,
        default_tenant: "fake".into(),
        limits,
        logs: Arc::clone(&logs),
        metrics,
        wal: None,
    });
    Fixture { app: router(state), logs, registry }
}

fn fixture() -> Fixture {
    fixture_with(LokiReceiverConfig::default(), IngestLimits::default(), 64 << 20)
}

fn entry(ts: i64, line: &str, meta: &[(&str, &str)]) -> proto::EntryAdapter {
    proto::EntryAdapter {
        timestamp: Some(proto::Timestamp::from_unix_nanos(ts)),
        line: line.into(),
        structured_metadata: meta
            .iter()
            .map(|(n, v)| proto::LabelPairAdapter { name: (*n).into(), value: (*v).into() })
            .collect(),
    }
}

fn pb_body(streams: Vec<(&str, Vec<proto::EntryAdapter>)>) -> Vec<u8> {
    let req = proto::PushRequest {
        streams: streams
            .into_iter()
            .map(|(labels, entries)| proto::StreamAdapter { labels: labels.into(), entries, hash: 0 })
            .collect(),
    };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap()
}

async fn post(app: &axum::Router, content_type: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (StatusCode, String) {
    let mut req = Request::post("/loki/api/v1/push").header(header::CONTENT_TYPE, content_type);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.clone().oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Every buffered row as (tenant, labels, ts, body, severity, service, trace_id, span_id, attributes).
type Seen = (String, String, i64, String, Option<String>, Option<String>, Option<String>, Option<String>, String);

fn rows(logs: &LogsBuffer) -> Vec<Seen> {
    logs.seal_all();
    let mut out = Vec::new();
    for shard in 0..logs.shard_count() {
        for b in logs.snapshot(shard) {
            let l = &b.logs;
            let s = |c: usize, r: usize| l.column(c).as_string::<i32>().value(r).to_owned();
            let o = |c: usize, r: usize| (!l.column(c).is_null(r)).then(|| s(c, r));
            let ts = l.column(schema::TIMESTAMP).as_primitive::<TimestampNanosecondType>();
            for r in 0..l.num_rows() {
                out.push((
                    s(schema::TENANT, r),
                    s(schema::LABELS, r),
                    ts.value(r),
                    s(schema::BODY, r),
                    o(schema::SEVERITY, r),
                    o(schema::SERVICE, r),
                    o(schema::TRACE_ID, r),
                    o(schema::SPAN_ID, r),
                    s(schema::ATTRIBUTES, r),
                ));
            }
        }
    }
    out.sort_by(|a, b| (&a.1, a.2).cmp(&(&b.1, b.2)));
    out
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn protobuf_push_lands_in_the_buffer_with_derived_columns() {
    let f = fixture();
    let body = pb_body(vec![
        (
            r#"{job="varlogs", level="warn", host="h\"1"}"#,
            vec![
                entry(1_700_000_000_000_000_001, "first", &[("traceID", TRACE), ("span_id", "00f067aa0ba902b7")]),
                entry(1_700_000_000_000_000_002, "second", &[]),
            ],
        ),
        (r#"{service_name="api"}"#, vec![entry(1_700_000_000_000_000_003, "third", &[("level", "error")])]),
    ]);
    let (status, text) = post(&f.app, "application/x-protobuf", &[("X-Scope-OrgID", "team-a")], body).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let got = rows(&f.logs);
    assert_eq!(got.len(), 3);
    let (tenant, labels, ts, body, severity, service, trace, span, attrs) = &got[0];
    assert_eq!(tenant, "team-a");
    assert_eq!(labels, r#"{host="h\"1", job="varlogs", level="warn"}"#);
    assert_eq!((*ts, body.as_str()), (1_700_000_000_000_000_001, "first"));
    assert_eq!((severity.as_deref(), service.as_deref()), (Some("warn"), Some("varlogs")));
    assert_eq!((trace.as_deref(), span.as_deref()), (Some(TRACE), Some("00f067aa0ba902b7")));
    let attrs: serde_json::Value = serde_json::from_str(attrs).unwrap();
    assert_eq!(attrs, serde_json::json!({"traceID": TRACE, "span_id": "00f067aa0ba902b7"}));
    assert_eq!((got[1].3.as_str(), got[1].8.as_str()), ("second", "{}"));
    // Severity from structured metadata when no label carries it; service from service_name.
    assert_eq!(got[2].1, r#"{service_name="api"}"#);
    assert_eq!((got[2].4.as_deref(), got[2].5.as_deref()), (Some("error"), Some("api")));
}

#[tokio::test]
async fn json_push_with_gzip_metadata_and_default_tenant() {
    let f = fixture();
    let json = serde_json::json!({"streams": [{
        "stream": {"app": "web", "severity": "info"},
        "values": [["1700000000000000123", "hello"], ["1700000000000000124", "with meta", {"trace_id": TRACE}]]
    }]})
    .to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.as_bytes()).unwrap();
    let (status, text) =
        post(&f.app, "application/json; charset=utf-8", &[("Content-Encoding", "gzip")], gz.finish().unwrap()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let got = rows(&f.logs);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0, "fake");
    assert_eq!(got[0].1, r#"{app="web", severity="info"}"#);
    assert_eq!((got[0].2, got[0].3.as_str(), got[0].5.as_deref()), (1_700_000_000_000_000_123, "hello", None));
    assert_eq!((got[1].4.as_deref(), got[1].6.as_deref()), (Some("info"), Some(TRACE)));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &f.registry).unwrap();
    assert!(text.contains(r#"vigil_ingest_samples_total{protocol="loki"} 2"#), "{text}");
    assert!(text.contains(r#"vigil_ingest_requests_total{protocol="loki",code="204"} 1"#), "{text}");
}

#[tokio::test]
async fn malformed_and_invalid_pushes_get_the_right_answers_and_the_server_stays_up() {
    let secret = "SECRET-LINE-CONTENT";
    let long = "x".repeat(300 << 10);
    let json = |v: serde_json::Value| v.to_string().into_bytes();
    let pb = "application/x-protobuf";
    let js = "application/json";
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, StatusCode, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("text", "text/plain", vec![], b"x".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type"),
        ("zstd", js, vec![("Content-Encoding", "zstd")], b"{}".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "zstd"),
        ("not snappy", pb, vec![], vec![0xff; 20], StatusCode::BAD_REQUEST, "snappy"),
        (
            "snappy, not protobuf",
            pb,
            vec![],
            snap::raw::Encoder::new().compress_vec(&[0xff; 20]).unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid protobuf",
        ),
        ("bad gzip", js, vec![("Content-Encoding", "gzip")], b"nope".to_vec(), StatusCode::BAD_REQUEST, "gzip"),
        ("not json", js, vec![], b"{\"streams\":".to_vec(), StatusCode::BAD_REQUEST, "invalid JSON"),
        (
            "bad labels",
            pb,
            vec![],
            pb_body(vec![(r#"{job="a",, x="b"}"#, vec![entry(1, "l", &[])])]),
            StatusCode::BAD_REQUEST,
            "stream 0: invalid labels",
        ),
        (
            "no labels",
            pb,
            vec![],
            pb_body(vec![("{}", vec![entry(1, secret, &[])])]),
            StatusCode::BAD_REQUEST,
            "stream 0: at least one label",
        ),
        (
            "empty value only",
            js,
            vec![],
            json(serde_json::json!({"streams":[{"stream":{"a":""},"values":[["1",secret]]}]})),
            StatusCode::BAD_REQUEST,
            "at least one label",
        ),
        (
            "bad name",
            js,
            vec![],
            json(
                serde_json::json!({"streams":[{"stream":{"a":"1"},"values":[]},{"stream":{"a-b":"1"},"values":[["1",secret]]}]}),
            ),
            StatusCode::BAD_REQUEST,
            "stream 1: invalid label name \"a-b\"",
        ),
        (
            "bad ts",
            js,
            vec![],
            json(serde_json::json!({"streams":[{"stream":{"a":"1"},"values":[["yesterday",secret]]}]})),
            StatusCode::BAD_REQUEST,
            "stream 0: entry 0: the timestamp",
        ),
        (
            "short entry",
            js,
            vec![],
            json(serde_json::json!({"streams":[{"stream":{"a":"1"},"values":[["1"]]}]})),
            StatusCode::BAD_REQUEST,
            "entry 0: an entry must be",
        ),
        (
            "bad metadata",
            js,
            vec![],
            json(serde_json::json!({"streams":[{"stream":{"a":"1"},"values":[["1",secret,{"k":1}]]}]})),
            StatusCode::BAD_REQUEST,
            "metadata values must be strings",
        ),
        (
            "long line",
            pb,
            vec![],
            pb_body(vec![(r#"{a="1"}"#, vec![entry(5, &long, &[])])]),
            StatusCode::BAD_REQUEST,
            "stream 0, entry 0: line of 307200 bytes exceeds `loki.max_line_bytes` = 262144",
        ),
        (
            "zero ts",
            pb,
            vec![],
            pb_body(vec![(r#"{a="1"}"#, vec![entry(0, secret, &[])])]),
            StatusCode::BAD_REQUEST,
            "timestamp is missing",
        ),
        (
            "tenant",
            pb,
            vec![("X-Scope-OrgID", "a|b")],
            pb_body(vec![(r#"{a="1"}"#, vec![entry(5, secret, &[])])]),
            StatusCode::BAD_REQUEST,
            "X-Scope-OrgID",
        ),
        (
            "dup",
            pb,
            vec![],
            pb_body(vec![(r#"{a="1", a="2"}"#, vec![entry(5, secret, &[])])]),
            StatusCode::BAD_REQUEST,
            "duplicate label name \"a\"",
        ),
    ];
    let f = fixture();
    for (name, ct, headers, body, want_status, want_text) in cases {
        let (status, text) = post(&f.app, ct, &headers, body).await;
        assert_eq!(status, want_status, "{name}: {text}");
        assert!(text.contains(want_text), "{name}: {text:?} lacks {want_text:?}");
        assert!(!text.contains(secret), "{name}: the answer echoes line contents: {text}");
    }
    // Still up, and nothing above was buffered.
    let (status, _) = post(&f.app, pb, &[], pb_body(vec![(r#"{a="1"}"#, vec![entry(5, "ok", &[])])])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(rows(&f.logs).len(), 1);
}

#[tokio::test]
async fn valid_streams_are_kept_when_others_are_refused() {
    let f = fixture();
    let body = pb_body(vec![
        (r#"{a="1"}"#, vec![entry(5, "kept", &[]), entry(6, &"x".repeat(300 << 10), &[]), entry(7, "kept too", &[])]),
        ("{}", vec![entry(8, "dropped", &[])]),
    ]);
    let (status, text) = post(&f.app, "application/x-protobuf", &[], body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("stream 0, entry 1") && text.contains("stream 1:"), "{text}");
    let got: Vec<_> = rows(&f.logs).into_iter().map(|r| r.3).collect();
    assert_eq!(got, vec!["kept", "kept too"]);
}

#[tokio::test]
async fn size_limits_answer_413_naming_the_key() {
    let limits = IngestLimits { max_body_bytes: 1000, max_decompressed_bytes: 2000, ..IngestLimits::default() };
    let f = fixture_with(LokiReceiverConfig::default(), limits, 64 << 20);
    let big_line = "y".repeat(5000);
    let (status, text) = post(&f.app, "application/json", &[], vec![b' '; 1500]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("`limits.max_body_bytes` = 1000"), "{text}");
    // Compresses well below 1000 bytes, inflates above 2000.
    let (status, text) =
        post(&f.app, "application/x-protobuf", &[], pb_body(vec![(r#"{a="1"}"#, vec![entry(5, &big_line, &[])])]))
            .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("`limits.max_decompressed_bytes` = 2000"), "{text}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(big_line.as_bytes()).unwrap();
    let (status, text) = post(&f.app, "application/json", &[("Content-Encoding", "gzip")], gz.finish().unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(text.contains("`limits.max_decompressed_bytes`"), "{text}");
}

#[tokio::test]
async fn a_full_buffer_answers_429_with_retry_after() {
    let config = LokiReceiverConfig { retry_after_seconds: 7, ..LokiReceiverConfig::default() };
    let f = fixture_with(config, IngestLimits::default(), 1024 * 1024);
    // A lossless reader that never commits pins everything sealed: the buffer cannot evict.
    let _sub = f.logs.subscribe(0, crate::buffer::SubscriptionMode::Lossless);
    let _sub1 = f.logs.subscribe(1, crate::buffer::SubscriptionMode::Lossless);
    let line = "z".repeat(100 << 10);
    let mut last = StatusCode::OK;
    for i in 0..40 {
        let body = pb_body(vec![(r#"{a="1"}"#, vec![entry(i + 1, &line, &[])])]);
        let (status, text) = post(&f.app, "application/x-protobuf", &[], body).await;
        last = status;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(text.contains("buffer.max_bytes"), "{text}");
            break;
        }
        assert_eq!(status, StatusCode::NO_CONTENT);
        f.logs.seal_all();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let resp = f
        .app
        .clone()
        .oneshot(
            Request::post("/loki/api/v1/push")
                .header(header::CONTENT_TYPE, "application/x-protobuf")
                .body(Body::from(pb_body(vec![(r#"{a="1"}"#, vec![entry(99, &line, &[])])])))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "7");
}

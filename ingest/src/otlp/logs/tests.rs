//! OTLP logs: record → row conversion, and the HTTP and gRPC answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::sync::Arc;

use ::http::{HeaderMap, Request, StatusCode, header};
use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use axum::body::Body;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsService;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus_client::registry::Registry;
use prost::Message;
use tower::ServiceExt;

use super::convert::{base64_for_tests, severity_word};
use super::*;
use crate::buffer::logs::schema;
use crate::buffer::{BufferConfig, LogsBuffer, SubscriptionMode};
use crate::limits::IngestLimits;
use crate::telemetry::IngestMetrics;

const TRACE: [u8; 16] =
    [0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36];
const SPAN: [u8; 8] = [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7];

fn s(v: &str) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) })
}

fn kv(k: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue { key: k.into(), value: v, ..Default::default() }
}

fn record(ts: u64, sev: i32, text: &str, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: ts,
        observed_time_unix_nano: ts + 5,
        severity_number: sev,
        severity_text: text.into(),
        body: s(body),
        trace_id: TRACE.to_vec(),
        span_id: SPAN.to_vec(),
        attributes: vec![
            kv("http.method", s("GET")),
            kv("count", Some(AnyValue { value: Some(any_value::Value::IntValue(3)) })),
        ],
        ..Default::default()
    }
}

fn request(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource { attributes: resource, ..Default::default() }),
            scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
            ..Default::default()
        }],
    }
}

fn state(max_bytes: u64) -> (Arc<OtlpLogsState>, Registry) {
    let mut registry = Registry::default();
    let metrics = IngestMetrics::new(&mut registry);
    let logs = LogsBuffer::new(BufferConfig { shards: 2, batch_rows: 256, max_bytes, ..BufferConfig::default() });
    let state = OtlpLogsState {
        limits: IngestLimits::default(),
        logs,
        metrics,
        retry_after_seconds: 3,
        default_tenant: "fake".into(),
        stream_label_attributes: default_stream_label_attributes(),
        wal: None,
    };
    (Arc::new(state), registry)
}

/// (tenant, labels, ts, observed, body, severity, service, trace, span, attributes), sorted by ts.
type Row = (String, String, i64, i64, String, Option<String>, Option<String>, Option<String>, Option<String>, String);

fn rows(logs: &LogsBuffer) -> Vec<Row> {
    logs.seal_all();
    let mut out = Vec::new();
    for shard in 0..logs.shard_count() {
        for b in logs.snapshot(shard) {
            let l = &b.logs;
            let st = |c: usize, r: usize| l.column(c).as_string::<i32>().value(r).to_owned();
            let o = |c: usize, r: usize| (!l.column(c).is_null(r)).then(|| st(c, r));
            let ts = |c: usize, r: usize| l.column(c).as_primitive::<TimestampNanosecondType>().value(r);
            for r in 0..l.num_rows() {
                out.push((
                    st(schema::TENANT, r),
                    st(schema::LABELS, r),
                    ts(schema::TIMESTAMP, r),
                    ts(schema::OBSERVED_TIMESTAMP, r),
                    st(schema::BODY, r),
                    o(schema::SEVERITY, r),
                    o(schema::SERVICE, r),
                    o(schema::TRACE_ID, r),
                    o(schema::SPAN_ID, r),
                    st(schema::ATTRIBUTES, r),
                ));
            }
        }
    }
    out.sort_by_key(|r| r.2);
    out
}

async fn post(
    st: &Arc<OtlpLogsState>,
    ct: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>, HeaderMap) {
    let mut req = Request::post("/v1/logs").header(header::CONTENT_TYPE, ct);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = logs_router(Arc::clone(st)).oneshot(req.body(Body::from(body)).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status, body.collect().await.unwrap().to_bytes().to_vec(), parts.headers)
}

#[test]
fn severity_numbers_map_to_words() {
    let words: Vec<_> = [0, 1, 4, 5, 9, 12, 13, 17, 21, 24, 25].map(severity_word).to_vec();
    assert_eq!(
        words,
        vec![
            None,
            Some("trace"),
            Some("trace"),
            Some("debug"),
            Some("info"),
            Some("info"),
            Some("warn"),
            Some("error"),
            Some("fatal"),
            Some("fatal"),
            None
        ]
    );
    assert_eq!(base64_for_tests(b""), "");
    assert_eq!(base64_for_tests(b"f"), "Zg==");
    assert_eq!(base64_for_tests(b"fo"), "Zm8=");
    assert_eq!(base64_for_tests(b"foobar"), "Zm9vYmFy");
}

#[tokio::test]
async fn protobuf_records_become_rows_with_stream_labels_and_attributes() {
    let (st, registry) = state(64 << 20);
    let mut structured = record(2_000, 0, "", "");
    structured.body =
        Some(AnyValue { value: Some(any_value::Value::KvlistValue(KeyValueList { values: vec![kv("k", s("v"))] })) });
    structured.time_unix_nano = 0; // falls back to observed
    structured.observed_time_unix_nano = 1_500;
    let req = request(
        vec![kv("service.name", s("checkout")), kv("deployment.environment", s("prod")), kv("host.name", s("h1"))],
        vec![record(1_000, 17, "", "boom"), record(3_000, 9, "Information", "hello"), structured],
    );
    let (status, body, headers) =
        post(&st, "application/x-protobuf", &[("X-Scope-OrgID", "t1")], req.encode_to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), "application/x-protobuf");
    assert_eq!(ExportLogsServiceResponse::decode(body.as_slice()).unwrap().partial_success, None);
    let got = rows(&st.logs);
    assert_eq!(got.len(), 3);
    let r = &got[0];
    assert_eq!(r.0, "t1");
    assert_eq!(r.1, r#"{deployment_environment="prod", level="error", service_name="checkout"}"#);
    assert_eq!((r.2, r.3, r.4.as_str()), (1_000, 1_005, "boom"));
    assert_eq!((r.5.as_deref(), r.6.as_deref()), (Some("error"), Some("checkout")));
    assert_eq!((r.7.as_deref(), r.8.as_deref()), (Some("4bf92f3577b34da6a3ce929d0e0e4736"), Some("00f067aa0ba902b7")));
    let attrs: serde_json::Value = serde_json::from_str(&r.9).unwrap();
    assert_eq!(attrs, serde_json::json!({"host.name": "h1", "http.method": "GET", "count": 3}));
    // No severity at all: no level label; a structured body is kept as JSON.
    assert_eq!(got[1].2, 1_500);
    assert_eq!(got[1].1, r#"{deployment_environment="prod", service_name="checkout"}"#);
    assert_eq!((got[1].4.as_str(), got[1].5.as_deref()), (r#"{"k":"v"}"#, None));
    // The severity text wins in the column; the number's word is the label.
    assert_eq!((got[2].5.as_deref(), got[2].1.contains(r#"level="info""#)), (Some("Information"), true));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains(r#"vigil_ingest_samples_total{protocol="otlp_http_logs"} 3"#), "{text}");
}

#[tokio::test]
async fn json_gzip_bad_ids_are_partial_success_and_missing_service_is_unknown() {
    let (st, _) = state(64 << 20);
    let mut bad = record(2_000, 9, "", "bad trace");
    bad.trace_id = vec![1, 2, 3];
    let mut bad_span = record(2_500, 9, "", "bad span");
    bad_span.span_id = vec![1; 16];
    let mut no_ids = record(3_000, 0, "WARN", "no ids");
    no_ids.trace_id.clear();
    no_ids.span_id.clear();
    let req = request(vec![], vec![record(1_000, 13, "", "ok"), bad, bad_span, no_ids]);
    let json = serde_json::to_vec(&req).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).unwrap();
    let (status, body, _) = post(&st, "application/json", &[("Content-Encoding", "gzip")], gz.finish().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], "2", "{answer}");
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(message.contains("trace_id has 3 bytes") && message.contains("span_id has 16 bytes"), "{message}");
    let got = rows(&st.logs);
    assert_eq!(got.iter().map(|r| r.4.as_str()).collect::<Vec<_>>(), vec!["ok", "no ids"]);
    assert_eq!(got[0].0, "fake");
    assert_eq!(got[0].1, r#"{level="warn", service_name="unknown_service"}"#);
    assert_eq!(got[0].6, None);
    assert_eq!((got[1].7.as_deref(), got[1].1.as_str()), (None, r#"{level="warn", service_name="unknown_service"}"#));
}

#[tokio::test]
async fn errors_answer_like_the_metrics_endpoint() {
    let (st, _) = state(64 << 20);
    let (status, body, _) = post(&st, "text/plain", &[], b"x".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(String::from_utf8_lossy(&body).contains("unsupported media type"));
    let (status, body, _) = post(&st, "application/x-protobuf", &[], vec![0xff; 8]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let rpc = vigil_proto::google_rpc::Status::decode(body.as_slice()).unwrap();
    assert!(rpc.code == 3 && rpc.message.contains("invalid protobuf"), "{rpc:?}");
    let (status, body, _) = post(&st, "application/json", &[("X-Scope-OrgID", "a|b")], b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("X-Scope-OrgID"));
    let (status, body, _) = post(&st, "application/json", &[], b"{}".to_vec()).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"{}"[..]));
}

#[tokio::test]
async fn full_buffer_is_503_with_retry_after_over_http_and_unavailable_over_grpc() {
    let (st, _) = state(1 << 20);
    let _pins: Vec<_> = (0..2).map(|i| st.logs.subscribe(i, SubscriptionMode::Lossless)).collect();
    let big = "q".repeat(200 << 10);
    let mut full = None;
    for i in 0..20 {
        let req = request(vec![kv("service.name", s("a"))], vec![record(1 + i, 9, "", &big)]);
        let (status, _, headers) = post(&st, "application/x-protobuf", &[], req.encode_to_vec()).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            full = Some(headers);
            break;
        }
        assert_eq!(status, StatusCode::OK);
        st.logs.seal_all();
    }
    assert_eq!(full.expect("the buffer never filled").get(header::RETRY_AFTER).unwrap(), "3");
    let grpc = OtlpLogsGrpc { state: Arc::clone(&st) };
    let req = request(vec![kv("service.name", s("a"))], vec![record(99, 9, "", &big)]);
    let e = grpc.export(tonic::Request::new(req)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    let details = vigil_proto::google_rpc::Status::decode(e.details()).unwrap();
    assert_eq!(details.details[0].type_url, vigil_proto::google_rpc::RETRY_INFO_TYPE_URL);
}

#[tokio::test]
async fn grpc_takes_the_tenant_from_metadata_and_reports_partial_success() {
    let (st, _) = state(64 << 20);
    let grpc = OtlpLogsGrpc { state: Arc::clone(&st) };
    let mut bad = record(2, 9, "", "bad");
    bad.span_id = vec![1];
    let mut req = tonic::Request::new(request(vec![kv("service.name", s("a"))], vec![record(1, 9, "", "ok"), bad]));
    req.metadata_mut().insert("x-scope-orgid", "team-b".parse().unwrap());
    let answer = grpc.export(req).await.unwrap().into_inner();
    assert_eq!(answer.partial_success.unwrap().rejected_log_records, 1);
    let got = rows(&st.logs);
    assert_eq!((got.len(), got[0].0.as_str()), (1, "team-b"));
    let mut req = tonic::Request::new(request(vec![], vec![record(1, 9, "", "ok")]));
    req.metadata_mut().insert("x-scope-orgid", "a|b".parse().unwrap());
    assert_eq!(grpc.export(req).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let _ = logs_service(st);
}

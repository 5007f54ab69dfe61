//! The logs path end to end, in process: a client pushes to Vigil's Loki receiver (or OTLP logs endpoint),
//! lines go through the logs buffer and the Loki forwarder, and a test Loki receiver decodes the real wire
//! format (raw snappy → `logproto.PushRequest`) and answers what each test scripts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use prost::Message;
use vigil_forward::Destination;
use vigil_forward::loki::{self, LokiConfig};
use vigil_forward::retry::BackoffConfig;
use vigil_forward::telemetry::ForwardMetrics;
use vigil_ingest::buffer::{BufferConfig, LogsBuffer};
use vigil_ingest::limits::IngestLimits;
use vigil_ingest::loki::{LokiReceiverConfig, LokiState};
use vigil_ingest::otlp::logs::{OtlpLogsState, default_stream_label_attributes, logs_router};
use vigil_ingest::telemetry::IngestMetrics;
use vigil_ingest::wal::QueueConfig;
use vigil_proto::loki::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter, Timestamp};

mod support;

// ------------------------------------------------------------------------------------------------------
// The test Loki
// ------------------------------------------------------------------------------------------------------

#[derive(Default)]
struct FakeLoki {
    /// Status codes to answer with, in order; 204 once empty.
    script: Mutex<VecDeque<(u16, Option<&'static str>)>>,
    /// Every decoded push, refused ones included: (status answered, tenant, request).
    seen: Mutex<Vec<(u16, String, PushRequest)>>,
}

async fn receive(State(loki): State<Arc<FakeLoki>>, headers: HeaderMap, body: Bytes) -> Response {
    assert_eq!(headers.get("content-type").unwrap(), "application/x-protobuf");
    let raw = snap::raw::Decoder::new().decompress_vec(&body).expect("Loki bodies are raw snappy");
    let req = PushRequest::decode(raw.as_slice()).expect("a logproto.PushRequest");
    let tenant = headers.get("x-scope-orgid").expect("X-Scope-OrgID").to_str().unwrap().to_owned();
    let (code, retry_after) = loki.script.lock().pop_front().unwrap_or((204, None));
    loki.seen.lock().push((code, tenant, req));
    let mut r = (StatusCode::from_u16(code).unwrap(), "scripted").into_response();
    if let Some(after) = retry_after {
        r.headers_mut().insert("retry-after", after.parse().unwrap());
    }
    r
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

// ------------------------------------------------------------------------------------------------------
// Vigil in between
// ------------------------------------------------------------------------------------------------------

struct Vigil {
    url: String,
    loki: Arc<FakeLoki>,
    registry: Registry,
    _handle: loki::ForwarderHandle,
    _dir: support::TempDir,
}

async fn vigil(script: Vec<(u16, Option<&'static str>)>) -> Vigil {
    let fake = Arc::new(FakeLoki { script: Mutex::new(script.into()), ..Default::default() });
    let loki_url = serve(Router::new().route("/loki/api/v1/push", post(receive)).with_state(Arc::clone(&fake))).await;

    let mut registry = Registry::default();
    let ingest_metrics = IngestMetrics::new(&mut registry);
    let forward_metrics = ForwardMetrics::new(&mut registry);
    let logs = LogsBuffer::new(BufferConfig {
        shards: 2,
        batch_rows: 64,
        max_bytes: 64 << 20,
        seal_interval: Duration::from_millis(20),
    });
    tokio::spawn(Arc::clone(&logs).run_sealer());
    let config = LokiConfig {
        flush_interval: Duration::from_millis(30),
        backoff: BackoffConfig { initial: Duration::from_millis(10), max: Duration::from_millis(50) },
        ..LokiConfig::with_url(format!("{loki_url}/loki/api/v1/push"))
    };
    let targets = vec![config.target().unwrap()];
    let (wal, dir) = support::wal("logs", &QueueConfig::default());
    let handle = loki::spawn(&config, targets, wal.consumer("loki"), vigil_forward::http::client(), forward_metrics);

    let push = vigil_ingest::loki::router(Arc::new(LokiState {
        config: LokiReceiverConfig::default(),
        default_tenant: "fake".into(),
        limits: IngestLimits::default(),
        logs: Arc::clone(&logs),
        metrics: ingest_metrics.clone(),
        wal: Some(Arc::clone(&wal)),
    }));
    let otlp = logs_router(Arc::new(OtlpLogsState {
        limits: IngestLimits::default(),
        logs,
        metrics: ingest_metrics,
        retry_after_seconds: 1,
        default_tenant: "fake".into(),
        stream_label_attributes: default_stream_label_attributes(),
        wal: Some(wal),
    }));
    let url = serve(push.merge(otlp)).await;
    Vigil { url, loki: fake, registry, _handle: handle, _dir: dir }
}

async fn send(url: &str, path: &str, content_type: &str, tenant: Option<&str>, body: Vec<u8>) -> u16 {
    let mut req = http::Request::post(format!("{url}{path}")).header("content-type", content_type);
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = vigil_forward::http::client().request(req.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    status
}

fn metric(registry: &Registry, name: &str) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out.lines().filter(|l| l.starts_with(name)).collect::<Vec<_>>().join("\n")
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..400 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Delivered (2xx) lines as (tenant, labels, ts ns, line, sorted metadata), sorted.
type Line = (String, String, i64, String, Vec<(String, String)>);

fn delivered(loki: &FakeLoki) -> Vec<Line> {
    let mut out = Vec::new();
    for (code, tenant, req) in loki.seen.lock().iter() {
        if *code / 100 != 2 {
            continue;
        }
        for s in &req.streams {
            for e in &s.entries {
                let mut meta: Vec<_> =
                    e.structured_metadata.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
                meta.sort();
                out.push((tenant.clone(), s.labels.clone(), e.timestamp.unwrap().unix_nanos(), e.line.clone(), meta));
            }
        }
    }
    out.sort();
    out
}

fn entry(ts: i64, line: &str, meta: &[(&str, &str)]) -> EntryAdapter {
    EntryAdapter {
        timestamp: Some(Timestamp::from_unix_nanos(ts)),
        line: line.into(),
        structured_metadata: meta
            .iter()
            .map(|(n, v)| LabelPairAdapter { name: (*n).into(), value: (*v).into() })
            .collect(),
    }
}

fn promtail_body(streams: Vec<(&str, Vec<EntryAdapter>)>) -> Vec<u8> {
    let req = PushRequest {
        streams: streams
            .into_iter()
            .map(|(labels, entries)| StreamAdapter { labels: labels.into(), entries, hash: 0 })
            .collect(),
    };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap()
}

fn owned(meta: &[(&str, &str)]) -> Vec<(String, String)> {
    meta.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

const T0: i64 = 1_700_000_000_123_456_789;
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

// ------------------------------------------------------------------------------------------------------
// Tests
// ------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn promtail_protobuf_and_json_pushes_reach_loki_unchanged() {
    let v = vigil(vec![]).await;
    let body = promtail_body(vec![
        (
            r#"{filename="/var/log/app.log", job="varlogs"}"#,
            vec![entry(T0, "GET /api 200", &[("trace_id", TRACE)]), entry(T0 + 1, "GET /health 200", &[])],
        ),
        (
            r#"{job="varlogs", level="error"}"#,
            vec![entry(T0 + 2, "panic: \"boom\"", &[("pod", "p-1"), ("trace_id", TRACE)])],
        ),
    ]);
    assert_eq!(send(&v.url, "/loki/api/v1/push", "application/x-protobuf", Some("team-a"), body).await, 204);
    let json = serde_json::json!({"streams": [{
        "stream": {"app": "web", "env": "prod"},
        "values": [[(T0 + 10).to_string(), "json line"], [(T0 + 11).to_string(), "with meta", {"user": "u1"}]]
    }]});
    assert_eq!(send(&v.url, "/loki/api/v1/push", "application/json", None, json.to_string().into_bytes()).await, 204);

    wait_until("5 lines at Loki", || delivered(&v.loki).len() == 5).await;
    let got = delivered(&v.loki);
    let want: Vec<Line> = vec![
        ("fake".into(), r#"{app="web", env="prod"}"#.into(), T0 + 10, "json line".into(), vec![]),
        ("fake".into(), r#"{app="web", env="prod"}"#.into(), T0 + 11, "with meta".into(), owned(&[("user", "u1")])),
        (
            "team-a".into(),
            r#"{filename="/var/log/app.log", job="varlogs"}"#.into(),
            T0,
            "GET /api 200".into(),
            owned(&[("trace_id", TRACE)]),
        ),
        (
            "team-a".into(),
            r#"{filename="/var/log/app.log", job="varlogs"}"#.into(),
            T0 + 1,
            "GET /health 200".into(),
            vec![],
        ),
        (
            "team-a".into(),
            r#"{job="varlogs", level="error"}"#.into(),
            T0 + 2,
            "panic: \"boom\"".into(),
            owned(&[("pod", "p-1"), ("trace_id", TRACE)]),
        ),
    ];
    assert_eq!(got, want);
    // One request per tenant: no request mixes them.
    for (_, tenant, req) in v.loki.seen.lock().iter() {
        let fake = req.streams.iter().any(|s| s.labels.contains("app="));
        assert_eq!(fake, tenant == "fake", "tenant {tenant} got another tenant's stream");
    }
    // The stub records a push before the forwarder has read its answer and counted it.
    wait_until("the deliveries counted", || metric(&v.registry, "vigil_forward_samples_total").ends_with(" 5")).await;
    assert!(
        metric(&v.registry, "vigil_forward_samples_total").ends_with(" 5"),
        "{}",
        metric(&v.registry, "vigil_forward")
    );
}

#[tokio::test]
async fn otlp_logs_reach_loki_as_a_service_stream_with_trace_metadata() {
    let v = vigil(vec![]).await;
    let s = |v: &str| Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) });
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    KeyValue { key: "service.name".into(), value: s("checkout"), ..Default::default() },
                    KeyValue { key: "host.name".into(), value: s("node-1"), ..Default::default() },
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: T0 as u64,
                    severity_number: 17,
                    body: s("payment failed"),
                    trace_id: (1..=16).collect(),
                    span_id: (1..=8).collect(),
                    attributes: vec![KeyValue { key: "order.id".into(), value: s("o-7"), ..Default::default() }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    assert_eq!(send(&v.url, "/v1/logs", "application/x-protobuf", Some("team-o"), req.encode_to_vec()).await, 200);
    wait_until("the OTLP line at Loki", || delivered(&v.loki).len() == 1).await;
    let want: Line = (
        "team-o".into(),
        r#"{level="error", service_name="checkout"}"#.into(),
        T0,
        "payment failed".into(),
        owned(&[
            ("host_name", "node-1"),
            ("order_id", "o-7"),
            ("span_id", "0102030405060708"),
            ("trace_id", "0102030405060708090a0b0c0d0e0f10"),
        ]),
    );
    assert_eq!(delivered(&v.loki), vec![want]);
}

#[tokio::test]
async fn retries_503_then_delivers_the_same_push() {
    let v = vigil(vec![(503, None), (503, Some("1"))]).await;
    let started = std::time::Instant::now();
    let body = promtail_body(vec![(r#"{job="a"}"#, vec![entry(T0, "one", &[]), entry(T0 + 1, "two", &[])])]);
    assert_eq!(send(&v.url, "/loki/api/v1/push", "application/x-protobuf", None, body).await, 204);
    wait_until("delivery", || delivered(&v.loki).len() == 2).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was not honoured");
    // The stub records a push before the forwarder has read its answer and counted it.
    wait_until("the delivery counted", || metric(&v.registry, "vigil_forward_samples_total").ends_with(" 2")).await;
    let seen = v.loki.seen.lock();
    assert_eq!(seen.iter().map(|(c, _, _)| *c).collect::<Vec<_>>(), vec![503, 503, 204]);
    assert!(seen.iter().all(|(_, _, r)| *r == seen[0].2), "every attempt carries the same push");
    drop(seen);
    assert!(metric(&v.registry, "vigil_forward_requests_total").contains(r#"outcome="retry"} 2"#));
    assert!(metric(&v.registry, "vigil_forward_samples_total").ends_with(" 2"));
}

#[tokio::test]
async fn a_400_is_dropped_and_counted_and_the_next_push_goes_through() {
    let v = vigil(vec![(400, None)]).await;
    let body = promtail_body(vec![(r#"{job="a"}"#, vec![entry(T0, "too old", &[]), entry(T0 + 1, "also", &[])])]);
    assert_eq!(send(&v.url, "/loki/api/v1/push", "application/x-protobuf", None, body).await, 204);
    wait_until("the refused push", || !v.loki.seen.lock().is_empty()).await;
    let body = promtail_body(vec![(r#"{job="a"}"#, vec![entry(T0 + 5, "fine", &[])])]);
    assert_eq!(send(&v.url, "/loki/api/v1/push", "application/x-protobuf", None, body).await, 204);
    wait_until("the next push", || delivered(&v.loki).len() == 1).await;
    assert_eq!(
        v.loki.seen.lock().iter().map(|(c, _, _)| *c).collect::<Vec<_>>(),
        vec![400, 204],
        "a 400 is not retried"
    );
    assert_eq!(delivered(&v.loki)[0].3, "fine");
    assert!(metric(&v.registry, "vigil_forward_dropped_samples_total").ends_with(" 2"));
}

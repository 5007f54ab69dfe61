//! OTLP traces end to end: a client → Vigil's `/v1/traces` router → spans buffer → Tempo forwarder → an
//! in-process Tempo stand-in that decodes the real OTLP protobuf and answers what each test scripts.

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
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use prost::Message;
use vigil_forward::Destination;
use vigil_forward::retry::BackoffConfig;
use vigil_forward::telemetry::{BackendLabels, ForwardMetrics, OutcomeLabels};
use vigil_forward::tempo::{self, ForwarderHandle, TempoConfig};
use vigil_ingest::buffer::{BufferConfig, SpansBuffer};
use vigil_ingest::wal::{QueueConfig, Wal};

mod support;
use vigil_ingest::limits::IngestLimits;
use vigil_ingest::otlp::traces::{OtlpTracesState, traces_router};
use vigil_ingest::telemetry::IngestMetrics;

const TRACE_JSON: &[u8] = include_bytes!("../../ingest/src/otlp/traces/testdata/trace.json");

/// One scripted answer: status, `Retry-After`, spans to report as rejected in `partial_success`.
type Answer = (u16, Option<&'static str>, i64);

#[derive(Default)]
struct Tempo {
    script: Mutex<VecDeque<Answer>>,
    /// Every decoded request with the status it got and its tenant and content type.
    seen: Mutex<Vec<(u16, String, String, ExportTraceServiceRequest)>>,
}

async fn receive(State(tempo): State<Arc<Tempo>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = ExportTraceServiceRequest::decode(body).expect("the forwarder sends OTLP protobuf");
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (code, retry_after, rejected) = tempo.script.lock().pop_front().unwrap_or((200, None, 0));
    tempo.seen.lock().push((code, header("x-scope-orgid"), header("content-type"), request));
    let body = if code == 200 {
        let partial_success = (rejected > 0)
            .then(|| ExportTracePartialSuccess { rejected_spans: rejected, error_message: "too old".into() });
        ExportTraceServiceResponse { partial_success }.encode_to_vec()
    } else {
        vigil_proto::google_rpc::Status { code: 3, message: "scripted".into(), details: Vec::new() }.encode_to_vec()
    };
    let mut r =
        (StatusCode::from_u16(code).unwrap(), [("content-type", "application/x-protobuf")], body).into_response();
    if let Some(after) = retry_after {
        r.headers_mut().insert("retry-after", after.parse().unwrap());
    }
    r
}

async fn serve(app: Router, path: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}{path}")
}

struct Setup {
    tempo: Arc<Tempo>,
    vigil_url: String,
    wal: Arc<Wal>,
    metrics: ForwardMetrics,
    labels: BackendLabels,
    handle: ForwarderHandle,
    _dir: support::TempDir,
}

async fn setup(script: Vec<Answer>) -> Setup {
    let tempo = Arc::new(Tempo { script: Mutex::new(script.into()), ..Default::default() });
    let tempo_url =
        serve(Router::new().route("/v1/traces", post(receive)).with_state(Arc::clone(&tempo)), "/v1/traces").await;
    let buffer = SpansBuffer::new(BufferConfig {
        shards: 2,
        batch_rows: 4,
        max_bytes: 64 << 20,
        seal_interval: Duration::from_millis(30),
    });
    tokio::spawn(Arc::clone(&buffer).run_sealer());
    let (wal, dir) = support::wal("spans", &QueueConfig::default());
    let state = Arc::new(OtlpTracesState {
        limits: IngestLimits::default(),
        spans: Arc::clone(&buffer),
        metrics: IngestMetrics::new(&mut Registry::default()),
        retry_after_seconds: 1,
        default_tenant: "anonymous".into(),
        wal: Some(Arc::clone(&wal)),
    });
    let vigil_url = serve(traces_router(state), "/v1/traces").await;
    let metrics = ForwardMetrics::new(&mut Registry::default());
    let config = TempoConfig {
        flush_interval: Duration::from_millis(30),
        backoff: BackoffConfig { initial: Duration::from_millis(10), max: Duration::from_millis(50) },
        ..TempoConfig::with_url(tempo_url)
    };
    let uri = config.validate().unwrap();
    let targets = vec![config.target().unwrap()];
    let handle = tempo::spawn(&config, targets, wal.consumer("tempo"), vigil_forward::http::client(), metrics.clone());
    let labels = BackendLabels { backend: "tempo", url: vigil_forward::redact_url(&uri) };
    Setup { tempo, vigil_url, wal, metrics, labels, handle, _dir: dir }
}

/// POSTs to Vigil and returns the status and body.
async fn post_to_vigil(url: &str, content_type: &str, tenant: Option<&str>, body: Vec<u8>) -> (u16, Vec<u8>) {
    let mut request = http::Request::post(url).header("content-type", content_type);
    if let Some(t) = tenant {
        request = request.header("x-scope-orgid", t);
    }
    let response = vigil_forward::http::client().request(request.body(Full::new(body.into())).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource { attributes: vec![kv("service.name", service), kv("host.name", "h1")], ..Default::default() })
}

fn scope(name: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.into(),
        version: "1.2.3".into(),
        attributes: vec![kv("s", "x")],
        dropped_attributes_count: 1,
    })
}

const TRACE: [u8; 16] = [0xa1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const ROOT: [u8; 8] = [0xb1, 0, 0, 0, 0, 0, 0, 1];
const CHILD: [u8; 8] = [0xb1, 0, 0, 0, 0, 0, 0, 2];
const GRANDCHILD: [u8; 8] = [0xb1, 0, 0, 0, 0, 0, 0, 3];

fn span_of(id: [u8; 8], parent: &[u8], name: &str, kind: i32, start: u64) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.to_vec(),
        name: name.into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        attributes: vec![kv("http.route", "/cart")],
        ..Default::default()
    }
}

/// Root (frontend) → child → grandchild (backend); the child carries events, a link, trace state, flags,
/// dropped counts and an error status.
fn nested_trace() -> ExportTraceServiceRequest {
    let t = 1_700_000_000_000_000_000;
    let root = span_of(ROOT, &[], "GET /cart", 2, t);
    let child = Span {
        trace_state: "vendor=1".into(),
        flags: 0x301,
        dropped_attributes_count: 2,
        events: vec![span::Event {
            time_unix_nano: t + 10,
            name: "exception".into(),
            attributes: vec![kv("exception.type", "E")],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 3,
        links: vec![span::Link {
            trace_id: vec![7; 16],
            span_id: vec![8; 8],
            trace_state: "l=1".into(),
            attributes: vec![kv("why", "batch")],
            dropped_attributes_count: 0,
            flags: 0x100,
        }],
        dropped_links_count: 4,
        status: Some(Status { message: "failed".into(), code: 2 }),
        ..span_of(CHILD, &ROOT, "cart.load", 3, t + 100)
    };
    let grandchild = span_of(GRANDCHILD, &CHILD, "SELECT cart", 3, t + 200);
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: resource("frontend"),
                scope_spans: vec![ScopeSpans {
                    scope: scope("fe-lib"),
                    spans: vec![root],
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.25.0".into(),
            },
            ResourceSpans {
                resource: resource("backend"),
                scope_spans: vec![ScopeSpans {
                    scope: scope("be-lib"),
                    spans: vec![child, grandchild],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
        ],
    }
}

/// `examples/trace.json` written out by hand, independently of the JSON decoder under test.
fn trace_json_expected() -> ExportTraceServiceRequest {
    let span = Span {
        trace_id: vec![0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c],
        span_id: vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74],
        parent_span_id: vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73],
        name: "I'm a server span".into(),
        start_time_unix_nano: 1_544_712_660_000_000_000,
        end_time_unix_nano: 1_544_712_661_000_000_000,
        kind: 2,
        attributes: vec![kv("my.span.attr", "some value")],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![kv("service.name", "my.service")], ..Default::default() }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "my.library".into(),
                    version: "1.0.0".into(),
                    attributes: vec![kv("my.scope.attribute", "some scope attribute")],
                    dropped_attributes_count: 0,
                }),
                spans: vec![span],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// (tenant, resource schema, resource, scope schema, scope, span) per span, sorted by span id: how a
/// request's content compares regardless of how it was split into requests and groups.
type Flat = (String, String, Option<Resource>, String, Option<InstrumentationScope>, Span);

fn flatten(tenant: &str, request: &ExportTraceServiceRequest, out: &mut Vec<Flat>) {
    for rs in &request.resource_spans {
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                out.push((
                    tenant.into(),
                    rs.schema_url.clone(),
                    rs.resource.clone(),
                    ss.schema_url.clone(),
                    ss.scope.clone(),
                    s.clone(),
                ));
            }
        }
    }
}

fn sorted(mut v: Vec<Flat>) -> Vec<Flat> {
    v.sort_by(|a, b| a.5.span_id.cmp(&b.5.span_id));
    v
}

fn delivered_spans(tempo: &Tempo) -> usize {
    tempo
        .seen
        .lock()
        .iter()
        .filter(|s| s.0 == 200)
        .flat_map(|s| &s.3.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

#[tokio::test]
async fn traces_reach_tempo_exactly_as_sent_over_protobuf_and_json() {
    let s = setup(Vec::new()).await;
    let nested = nested_trace();
    let (status, body) =
        post_to_vigil(&s.vigil_url, "application/x-protobuf", Some("team-a"), nested.encode_to_vec()).await;
    assert_eq!((status, body.as_slice()), (200, &b""[..]));
    let (status, body) = post_to_vigil(&s.vigil_url, "application/json", None, TRACE_JSON.to_vec()).await;
    assert_eq!((status, body.as_slice()), (200, &b"{}"[..]));

    wait_until("4 spans at Tempo", || delivered_spans(&s.tempo) >= 4).await;
    let mut got = Vec::new();
    for (code, tenant, content_type, request) in s.tempo.seen.lock().iter() {
        assert_eq!((*code, content_type.as_str()), (200, "application/x-protobuf"));
        flatten(tenant, request, &mut got);
    }
    let mut want = Vec::new();
    flatten("team-a", &nested, &mut want);
    flatten("anonymous", &trace_json_expected(), &mut want);
    let got = sorted(got);
    assert_eq!(got, sorted(want));

    // Parent/child links survive: child → root, grandchild → child, all in one trace.
    let by_id = |id: &[u8]| got.iter().find(|f| f.5.span_id == id).map(|f| f.5.clone()).unwrap();
    assert!(by_id(&ROOT).parent_span_id.is_empty());
    assert_eq!(by_id(&CHILD).parent_span_id, ROOT);
    assert_eq!(by_id(&GRANDCHILD).parent_span_id, CHILD);
    assert_eq!(s.metrics.samples.get_or_create(&s.labels).get(), 4);
    assert_eq!(s.metrics.dropped_samples.get_or_create(&s.labels).get(), 0);

    // Closing the log drains and stops the worker.
    s.wal.close();
    let mut handle = s.handle;
    tokio::time::timeout(Duration::from_secs(5), handle.join()).await.unwrap();
}

#[tokio::test]
async fn a_503_is_retried_then_delivered() {
    let s = setup(vec![(503, Some("0"), 0), (503, None, 0)]).await;
    let (status, _) =
        post_to_vigil(&s.vigil_url, "application/x-protobuf", Some("t1"), nested_trace().encode_to_vec()).await;
    assert_eq!(status, 200);
    wait_until("delivery after two 503s", || delivered_spans(&s.tempo) >= 3).await;
    let seen = s.tempo.seen.lock();
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [503, 503, 200]);
    // The retries carry the same request.
    assert!(seen.iter().all(|x| x.3 == seen[0].3 && x.1 == "t1"));
    let retry = OutcomeLabels { backend: "tempo", url: s.labels.url.clone(), outcome: "retry" };
    assert_eq!(s.metrics.requests.get_or_create(&retry).get(), 2);
    assert_eq!(s.metrics.samples.get_or_create(&s.labels).get(), 3);
}

#[tokio::test]
async fn a_400_is_dropped_and_counted_and_partial_success_is_counted() {
    let s = setup(vec![(400, None, 0), (200, None, 1)]).await;
    let one = |id: [u8; 8]| ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource("svc"),
            scope_spans: vec![ScopeSpans {
                scope: scope("lib"),
                spans: vec![span_of(id, &[], "op", 1, 1)],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    let (status, _) = post_to_vigil(&s.vigil_url, "application/x-protobuf", None, one(ROOT).encode_to_vec()).await;
    assert_eq!(status, 200);
    wait_until("the 400", || s.tempo.seen.lock().len() == 1).await;
    let (status, _) = post_to_vigil(&s.vigil_url, "application/x-protobuf", None, one(CHILD).encode_to_vec()).await;
    assert_eq!(status, 200);
    wait_until("the second request", || s.tempo.seen.lock().len() == 2).await;
    // Give a wrongly retried 400 time to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = s.tempo.seen.lock();
    assert_eq!(seen.len(), 2, "a 400 must not be retried");
    assert_eq!(seen[0].3.resource_spans[0].scope_spans[0].spans[0].span_id, ROOT);
    assert_eq!(seen[1].3.resource_spans[0].scope_spans[0].spans[0].span_id, CHILD);
    let rejected = OutcomeLabels { backend: "tempo", url: s.labels.url.clone(), outcome: "rejected" };
    assert_eq!(s.metrics.requests.get_or_create(&rejected).get(), 1);
    // One span dropped by the 400, one reported rejected in partial_success.
    assert_eq!(s.metrics.dropped_samples.get_or_create(&s.labels).get(), 2);
    assert_eq!(s.metrics.samples.get_or_create(&s.labels).get(), 0);
}

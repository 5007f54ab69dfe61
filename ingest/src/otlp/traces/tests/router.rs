//! Malformed and valid requests through the real `/v1/traces` router.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prometheus_client::registry::Registry;
use prost::Message;
use tower::ServiceExt;

use super::super::{OtlpTracesState, traces_router};
use super::{SPAN, TRACE, TRACE_JSON, request, span};
use crate::buffer::spans::schema::col;
use crate::buffer::{BufferConfig, SpansBuffer};
use crate::limits::IngestLimits;
use crate::telemetry::IngestMetrics;

pub(crate) fn state(max_bytes: u64) -> Arc<OtlpTracesState> {
    let limits =
        IngestLimits { max_body_bytes: 64 << 10, max_decompressed_bytes: 256 << 10, ..IngestLimits::default() };
    let spans = SpansBuffer::new(BufferConfig {
        shards: 2,
        batch_rows: 100,
        max_bytes,
        seal_interval: Duration::from_secs(3600),
    });
    Arc::new(OtlpTracesState {
        limits,
        spans,
        metrics: IngestMetrics::new(&mut Registry::default()),
        retry_after_seconds: 7,
        default_tenant: "anonymous".into(),
        wal: None,
    })
}

fn post(content_type: &str, extra: &[(&str, &str)], body: Vec<u8>) -> Request<Body> {
    let mut r = Request::post("/v1/traces").header(header::CONTENT_TYPE, content_type);
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    r.body(Body::from(body)).unwrap()
}

async fn send(state: &Arc<OtlpTracesState>, request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let response = traces_router(Arc::clone(state)).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// (case, request, status, google.rpc.Status in the body: (is JSON, code)).
type Case = (&'static str, Request<Body>, StatusCode, Option<(bool, i32)>);

const PB: &str = "application/x-protobuf";
const JSON: &str = "application/json";

#[tokio::test]
async fn malformed_requests_get_the_otlp_answers_and_a_valid_one_still_works() {
    let s = state(64 << 20);
    let good = request(vec![span(&TRACE, &SPAN, &[])]).encode_to_vec();
    let bad_hex = TRACE_JSON.replace("5B8EFFF798038103D269B633813FC60C", "not-hex");
    let bomb = gzip(&vec![0u8; 1 << 20]);
    let table: Vec<Case> = vec![
        ("wrong content type", post("text/plain", &[], good.clone()), StatusCode::UNSUPPORTED_MEDIA_TYPE, None),
        ("broken protobuf", post(PB, &[], vec![0x0a, 0xff, 0xff]), StatusCode::BAD_REQUEST, Some((false, 3))),
        ("broken JSON", post(JSON, &[], b"{\"resourceSpans\": [".to_vec()), StatusCode::BAD_REQUEST, Some((true, 3))),
        ("malformed hex id", post(JSON, &[], bad_hex.into_bytes()), StatusCode::BAD_REQUEST, Some((true, 3))),
        ("gzip bomb", post(PB, &[("content-encoding", "gzip")], bomb), StatusCode::PAYLOAD_TOO_LARGE, Some((false, 8))),
        (
            "broken gzip",
            post(PB, &[("content-encoding", "gzip")], b"nope".to_vec()),
            StatusCode::BAD_REQUEST,
            Some((false, 3)),
        ),
        (
            "unknown encoding",
            post(PB, &[("content-encoding", "br")], good.clone()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some((false, 3)),
        ),
        ("too large", post(PB, &[], vec![0; 65 << 10]), StatusCode::PAYLOAD_TOO_LARGE, Some((false, 8))),
        ("bad tenant", post(PB, &[("x-scope-orgid", "a/b")], good.clone()), StatusCode::BAD_REQUEST, Some((false, 3))),
    ];
    for (case, req, want, rpc) in table {
        let (status, _, body) = send(&s, req).await;
        assert_eq!(status, want, "{case}");
        match rpc {
            Some((false, code)) => {
                let st = vigil_proto::google_rpc::Status::decode(body.as_slice()).unwrap();
                assert_eq!(st.code, code, "{case}");
                assert!(!st.message.is_empty(), "{case}");
            }
            Some((true, code)) => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["code"], code, "{case}");
            }
            None => {}
        }
    }
    assert_eq!(s.spans.stats().used_bytes.load(std::sync::atomic::Ordering::Relaxed), 0, "nothing was buffered");

    // A span with a bad trace id: 200, partial_success names it, the good span of the same request is kept.
    let mixed = request(vec![span(&TRACE[..15], &SPAN, &[]), span(&TRACE, &SPAN, &[])]).encode_to_vec();
    let (status, headers, body) = send(&s, post(PB, &[("x-scope-orgid", "team-a")], mixed)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], PB);
    let partial = ExportTraceServiceResponse::decode(body.as_slice()).unwrap().partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 1);
    assert_eq!(partial.error_message, "span trace_id is 15 bytes, must be 16");

    // A valid request, gzip-compressed JSON, default tenant: 200 with `{}`.
    let (status, headers, body) =
        send(&s, post(JSON, &[("content-encoding", "gzip")], gzip(TRACE_JSON.as_bytes()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], JSON);
    assert_eq!(body, b"{}");

    s.spans.seal_all();
    let mut tenants = Vec::new();
    for shard in 0..s.spans.shard_count() {
        for b in s.spans.snapshot(shard) {
            let t = b.spans.column(col::TENANT).as_string::<i32>();
            tenants.extend(t.iter().flatten().map(str::to_owned));
        }
    }
    tenants.sort();
    assert_eq!(tenants, ["anonymous", "team-a"]);
}

#[tokio::test]
async fn a_full_buffer_answers_503_with_retry_after() {
    let s = state(16);
    let (status, headers, body) =
        send(&s, post(PB, &[], request(vec![span(&TRACE, &SPAN, &[])]).encode_to_vec())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "7");
    assert_eq!(vigil_proto::google_rpc::Status::decode(body.as_slice()).unwrap().code, 14);
}

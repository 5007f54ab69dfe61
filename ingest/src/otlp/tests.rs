//! The OTLP metrics receivers through their real HTTP router and gRPC service: the per-tenant limits.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsService;
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use prometheus_client::registry::Registry;
use prost::Message;
use tower::ServiceExt;
use vigil_proto::google_rpc;

use super::{DeltaToCumulative, OtlpGrpc, OtlpHttpState, router};
use crate::buffer::{BufferConfig, MetricsBuffer};
use crate::limits::IngestLimits;
use crate::rate_limit::SampleRateLimiter;
use crate::series::{SeriesRegistry, SeriesRegistryConfig};
use crate::telemetry::{IngestMetrics, RejectLabels};
use crate::tenant;

const PB: &str = "application/x-protobuf";
const JSON: &str = "application/json";
const T_NS: u64 = 1_544_712_660_300_000_000;

fn state(limits: IngestLimits, series: SeriesRegistryConfig) -> Arc<OtlpHttpState> {
    limits.validate().unwrap();
    Arc::new(OtlpHttpState {
        series: Arc::new(SeriesRegistry::new(&series, "anonymous")),
        buffer: MetricsBuffer::new(BufferConfig {
            max_bytes: 64 << 20,
            shards: 2,
            batch_rows: 1024,
            seal_interval: Duration::from_secs(3600),
        }),
        metrics: IngestMetrics::new(&mut Registry::default()),
        retry_after_seconds: 7,
        deltas: DeltaToCumulative::new(1000),
        wal: None,
        rate_limit: Arc::new(SampleRateLimiter::new(&limits)),
        limits,
    })
}

/// One gauge `name` with `points` points, each its own series (attribute `i`): `points` samples.
fn gauge(name: &str, points: usize) -> ExportMetricsServiceRequest {
    let point = |i: usize| NumberDataPoint {
        attributes: vec![KeyValue {
            key: "i".into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(i.to_string())) }),
            ..Default::default()
        }],
        time_unix_nano: T_NS,
        value: Some(number_data_point::Value::AsDouble(i as f64)),
        ..Default::default()
    };
    let metric = Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge { data_points: (0..points).map(point).collect() })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics { metrics: vec![metric], ..Default::default() }],
            ..Default::default()
        }],
    }
}

async fn post(
    state: &Arc<OtlpHttpState>,
    content_type: &str,
    tenant: &str,
    body: Vec<u8>,
) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let request = Request::post("/v1/metrics")
        .header(header::CONTENT_TYPE, content_type)
        .header(tenant::HEADER, tenant)
        .body(Body::from(body))
        .unwrap();
    let response = router(Arc::clone(state)).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

async fn grpc(
    state: &Arc<OtlpHttpState>,
    tenant: &str,
    request: ExportMetricsServiceRequest,
) -> Result<ExportMetricsServiceResponse, tonic::Status> {
    let mut r = tonic::Request::new(request);
    r.metadata_mut().insert(tenant::HEADER, tenant.parse().unwrap());
    OtlpGrpc { state: Arc::clone(state) }.export(r).await.map(tonic::Response::into_inner)
}

fn retry_after(headers: &http::HeaderMap) -> u32 {
    headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap()
}

fn stored_samples(state: &OtlpHttpState) -> usize {
    state.buffer.seal_all();
    (0..state.buffer.shard_count()).flat_map(|s| state.buffer.snapshot(s)).map(|b| b.sample_count()).sum()
}

#[tokio::test]
async fn a_tenant_over_its_sample_rate_gets_429_over_http_and_resource_exhausted_over_grpc() {
    // A slow rate, so that the refill while the test runs (real time) cannot change an outcome.
    let limits =
        IngestLimits { max_samples_per_second_per_tenant: 1, samples_per_second_burst: 20, ..IngestLimits::default() };
    let s = state(limits, SeriesRegistryConfig::default());
    let (status, _, body) = post(&s, PB, "team-a", gauge("a", 18).encode_to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let message = "tenant \"team-a\" exceeds `limits.max_samples_per_second_per_tenant` = 1 samples/s; retry later";

    // 18 + 5 > 20: refused whole, in the request's encoding, with the wait until it fits.
    let (status, headers, body) = post(&s, PB, "team-a", gauge("b", 5).encode_to_vec()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!((2..=3).contains(&retry_after(&headers)), "about 3 s until 5 samples fit: {headers:?}");
    let rpc = google_rpc::Status::decode(body.as_slice()).unwrap();
    assert_eq!((rpc.code, rpc.message.as_str()), (8, message));
    let json = serde_json::to_vec(&gauge("b", 5)).unwrap();
    let (status, headers, body) = post(&s, JSON, "team-a", json).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::CONTENT_TYPE], JSON);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((v["code"].as_i64(), v["message"].as_str()), (Some(8), Some(message)));
    assert_eq!(s.series.len(), 18, "the refused requests registered no series");

    // gRPC spends the same budget: RESOURCE_EXHAUSTED with RetryInfo.
    let e = grpc(&s, "team-a", gauge("c", 5)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert_eq!(e.message(), message);
    let details = google_rpc::Status::decode(e.details()).unwrap();
    assert_eq!(details.details[0].type_url, google_rpc::RETRY_INFO_TYPE_URL);
    let retry = google_rpc::RetryInfo::decode(details.details[0].value.as_slice()).unwrap();
    assert!((2..=3).contains(&retry.retry_delay.unwrap().seconds), "{retry:?}");

    // Other tenants have budgets of their own, over either transport.
    let (status, _, body) = post(&s, PB, "team-b", gauge("a", 20).encode_to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let ok = grpc(&s, "team-c", gauge("a", 20)).await.unwrap();
    assert_eq!(ok.partial_success, None);

    // More than the burst never passes, and the message says why.
    let (status, headers, body) = post(&s, PB, "team-d", gauge("a", 21).encode_to_vec()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "not 429: waiting never lets it through");
    assert!(headers.get(header::RETRY_AFTER).is_none());
    let rpc = google_rpc::Status::decode(body.as_slice()).unwrap();
    assert!(rpc.message.contains("the request alone has 21 samples"), "{}", rpc.message);
    assert!(rpc.message.contains("`limits.samples_per_second_burst` = 20"), "{}", rpc.message);

    let rejected =
        |protocol| s.metrics.rejected.get_or_create(&RejectLabels { protocol, reason: "rate_limited" }).get();
    assert_eq!((rejected("otlp_http"), rejected("otlp_grpc")), (3, 1));
    assert_eq!(stored_samples(&s), 18 + 20 + 20);
}

#[tokio::test]
async fn a_tenant_at_its_series_cap_is_told_in_partial_success() {
    let s = state(IngestLimits::default(), SeriesRegistryConfig { max_series_per_tenant: 3, ..Default::default() });
    let (status, _, body) = post(&s, PB, "team-a", gauge("a", 2).encode_to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    // 2 known series and 3 new ones: 1 fits, 2 are refused; the request is otherwise accepted.
    let response = grpc(&s, "team-a", gauge("a", 5)).await.unwrap();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 2);
    assert_eq!(
        partial.error_message,
        "series limit reached: tenant \"team-a\" has 3 series, `series.max_series_per_tenant` = 3"
    );
    let (status, _, body) = post(&s, PB, "team-b", gauge("a", 3).encode_to_vec()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"", "team-b is not capped by team-a's series");
    assert_eq!(stored_samples(&s), 2 + 3 + 3);
}

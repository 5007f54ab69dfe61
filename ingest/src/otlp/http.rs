//! `POST /v1/metrics` (OTLP/HTTP).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::HeaderMap;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use super::body::{Encoding, OtlpError, decode, encoding_of, read_body, success};
use super::{metrics, sink};
use crate::buffer::MetricsBuffer;
use crate::limits::IngestLimits;
use crate::rate_limit::SampleRateLimiter;
use crate::series::SeriesRegistry;
use crate::telemetry::{IngestMetrics, ProtocolLabels, RejectLabels, RequestLabels};
use crate::tenant::{self, series_tenant};
use crate::wal::Wal;

const PROTOCOL: &str = "otlp_http";

/// Everything the OTLP/HTTP receiver needs; built once by the binary.
#[derive(Debug)]
pub struct OtlpHttpState {
    pub limits: IngestLimits,
    pub series: Arc<SeriesRegistry>,
    pub buffer: Arc<MetricsBuffer>,
    pub metrics: IngestMetrics,
    /// Seconds a client is told to wait when the buffer is full.
    pub retry_after_seconds: u32,
    /// Running totals that turn delta metrics into cumulative series (shared with OTLP/gRPC).
    pub deltas: super::DeltaToCumulative,
    /// The metrics write-ahead log (shared with remote write); without one, a request is acknowledged once
    /// it is in the buffer.
    pub wal: Option<Arc<Wal>>,
    /// Samples per second per tenant, one budget shared with remote write and OTLP/gRPC.
    pub rate_limit: Arc<SampleRateLimiter>,
}

pub fn router(state: Arc<OtlpHttpState>) -> Router {
    Router::new().route("/v1/metrics", post(export_metrics)).with_state(state)
}

async fn handle(
    state: &OtlpHttpState,
    encoding: Encoding,
    headers: &HeaderMap,
    body: Body,
) -> Result<sink::Appended, OtlpError> {
    let tenant = series_tenant(headers.get(tenant::HEADER).map(|v| v.as_bytes()), &state.series)?;
    if let Some(wal) = &state.wal {
        wal.admit().map_err(OtlpError::Wal)?;
    }
    let bytes = read_body(&state.limits, headers, body).await?;
    let request: ExportMetricsServiceRequest = decode(encoding, &bytes)?;
    // Before the delta running totals move: a refused request changes nothing, so its retry adds up right.
    state.rate_limit.check(&state.series, tenant, metrics::sample_count(&request)).map_err(OtlpError::RateLimited)?;
    let converted = metrics::convert_with_deltas(request, &state.deltas, tenant);
    let (appended, durable) =
        sink::append(converted, &state.limits, &state.series, tenant, &state.buffer, state.wal.as_deref())?;
    if let Some(durable) = durable {
        durable.durable().await.map_err(OtlpError::Wal)?;
    }
    Ok(appended)
}

async fn export_metrics(State(state): State<Arc<OtlpHttpState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let encoding = encoding_of(&headers);
    let negotiated = encoding.as_ref().ok().copied();
    let result = match encoding {
        Ok(enc) => handle(&state, enc, &headers, body).await,
        Err(e) => Err(e),
    };
    let m = &state.metrics;
    let response = match result {
        Ok(appended) => {
            let labels = ProtocolLabels { protocol: PROTOCOL };
            m.samples.get_or_create(&labels).inc_by(appended.samples);
            m.histograms.get_or_create(&labels).inc_by(appended.histograms);
            m.exemplars.get_or_create(&labels).inc_by(appended.exemplars);
            let message = appended.problems.join("; ");
            // Negotiated here: a bad content type ends in the error arm.
            success(negotiated.unwrap_or(Encoding::Protobuf), "rejectedDataPoints", appended.rejected_points, &message)
        }
        Err(e) => {
            m.rejected.get_or_create(&RejectLabels { protocol: PROTOCOL, reason: e.reason() }).inc();
            tracing::debug!(reason = e.reason(), error = %e, "OTLP request refused.");
            e.into_response(negotiated, state.retry_after_seconds)
        }
    };
    m.requests.get_or_create(&RequestLabels { protocol: PROTOCOL, code: response.status().as_u16() }).inc();
    m.duration.get_or_create(&ProtocolLabels { protocol: PROTOCOL }).observe(started.elapsed().as_secs_f64());
    response
}

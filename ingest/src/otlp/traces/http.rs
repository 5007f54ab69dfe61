//! `POST /v1/traces` (OTLP/HTTP), answering as `otlp/http.rs` does for metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::super::body::{Encoding, OtlpError, decode, encoding_of, success};
use super::{OtlpTracesState, convert, sink};
use crate::telemetry::{ProtocolLabels, RejectLabels, RequestLabels};
use crate::tenant;

const PROTOCOL: &str = "otlp_http_traces";

pub fn traces_router(state: Arc<OtlpTracesState>) -> Router {
    Router::new().route("/v1/traces", post(export_traces)).with_state(state)
}

/// Kept spans and the `partial_success` parts.
struct Accepted {
    spans: u64,
    rejected: u64,
    message: String,
}

async fn handle(
    state: &OtlpTracesState,
    encoding: Encoding,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, OtlpError> {
    let tenant = tenant::tenant_of(headers.get(tenant::HEADER).map(|v| v.as_bytes()), &state.default_tenant)
        .map_err(OtlpError::InvalidTenant)?;
    let bytes = crate::otlp::body::read_body(&state.limits, headers, body).await?;
    let request: ExportTraceServiceRequest = decode(encoding, &bytes)?;
    let mut converted = convert::convert(&request, &tenant);
    let spans = sink::append(&mut converted, &tenant, state).await?;
    Ok(Accepted { spans, rejected: converted.rejected_spans, message: converted.problems.join("; ") })
}

async fn export_traces(State(state): State<Arc<OtlpTracesState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let encoding = encoding_of(&headers);
    let negotiated = encoding.as_ref().ok().copied();
    let result = match encoding {
        Ok(enc) => handle(&state, enc, &headers, body).await,
        Err(e) => Err(e),
    };
    let m = &state.metrics;
    let labels = ProtocolLabels { protocol: PROTOCOL };
    let response = match result {
        Ok(accepted) => {
            m.samples.get_or_create(&labels).inc_by(accepted.spans);
            // Negotiated here: a bad content type ends in the error arm.
            success(negotiated.unwrap_or(Encoding::Protobuf), "rejectedSpans", accepted.rejected, &accepted.message)
        }
        Err(e) => {
            m.rejected.get_or_create(&RejectLabels { protocol: PROTOCOL, reason: e.reason() }).inc();
            tracing::debug!(reason = e.reason(), error = %e, "OTLP traces request refused.");
            e.into_response(negotiated, state.retry_after_seconds)
        }
    };
    m.requests.get_or_create(&RequestLabels { protocol: PROTOCOL, code: response.status().as_u16() }).inc();
    m.duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    response
}

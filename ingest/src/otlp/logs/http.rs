//! `POST /v1/logs` (OTLP/HTTP), answered exactly as `/v1/metrics` is.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::HeaderMap;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;

use super::convert::{Converted, convert};
use crate::buffer::LogsBuffer;
use crate::limits::IngestLimits;
use crate::otlp::body::{Encoding, OtlpError, decode, encoding_of, read_body, success};
use crate::telemetry::{IngestMetrics, ProtocolLabels, RejectLabels, RequestLabels};
use crate::tenant;
use crate::wal::{Refused, Wal, log_and_buffer, logs as logs_record};

const PROTOCOL: &str = "otlp_http_logs";

/// Everything the OTLP logs receivers (HTTP and gRPC) need; built once by the binary.
#[derive(Debug)]
pub struct OtlpLogsState {
    pub limits: IngestLimits,
    pub logs: Arc<LogsBuffer>,
    pub metrics: IngestMetrics,
    /// Seconds a client is told to wait when the buffer is full.
    pub retry_after_seconds: u32,
    /// Tenant of requests without `X-Scope-OrgID`.
    pub default_tenant: String,
    /// Resource attributes that become Loki stream labels (`.` → `_`); `level` is always added.
    pub stream_label_attributes: Vec<String>,
    /// The logs write-ahead log: a request is answered only once its records are in it.
    pub wal: Option<Arc<Wal>>,
}

/// `service.name`, `service.namespace`, `deployment.environment`: few values each, so few streams.
pub fn default_stream_label_attributes() -> Vec<String> {
    ["service.name", "service.namespace", "deployment.environment"].map(String::from).to_vec()
}

pub fn logs_router(state: Arc<OtlpLogsState>) -> Router {
    Router::new().route("/v1/logs", post(export_logs)).with_state(state)
}

/// Converts, logs and appends a decoded request: the common part of HTTP and gRPC. Returns once the
/// records are durable.
pub(super) async fn ingest(
    state: &OtlpLogsState,
    request: &ExportLogsServiceRequest,
    tenant: &str,
) -> Result<Converted, Refused> {
    if let Some(wal) = &state.wal {
        wal.admit().map_err(Refused::Wal)?;
    }
    let mut staged = state.logs.staged_rows();
    let converted = convert(request, tenant, &state.stream_label_attributes, crate::loki::now_ns(), &mut staged);
    if converted.records > 0 {
        let record = || logs_record::record(tenant, &staged);
        if let Some(durable) = log_and_buffer(state.wal.as_deref(), record, &state.logs, &staged)? {
            durable.durable().await.map_err(Refused::Wal)?;
        }
    }
    Ok(converted)
}

async fn export_logs(State(state): State<Arc<OtlpLogsState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let m = &state.metrics;
    let response = respond(&state, &headers, body).await;
    m.requests.get_or_create(&RequestLabels { protocol: PROTOCOL, code: response.status().as_u16() }).inc();
    m.duration.get_or_create(&ProtocolLabels { protocol: PROTOCOL }).observe(started.elapsed().as_secs_f64());
    response
}

async fn handle(
    state: &OtlpLogsState,
    encoding: Encoding,
    headers: &HeaderMap,
    body: Body,
) -> Result<Converted, OtlpError> {
    let tenant = tenant::tenant_of(headers.get(tenant::HEADER).map(|v| v.as_bytes()), &state.default_tenant)
        .map_err(OtlpError::InvalidTenant)?;
    let bytes = read_body(&state.limits, headers, body).await?;
    let request: ExportLogsServiceRequest = decode(encoding, &bytes)?;
    Ok(ingest(state, &request, &tenant).await?)
}

async fn respond(state: &OtlpLogsState, headers: &HeaderMap, body: Body) -> Response {
    let m = &state.metrics;
    let encoding = encoding_of(headers);
    let negotiated = encoding.as_ref().ok().copied();
    let result = match encoding {
        Ok(enc) => handle(state, enc, headers, body).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(converted) => {
            m.samples.get_or_create(&ProtocolLabels { protocol: PROTOCOL }).inc_by(converted.records);
            let message = converted.problems.join("; ");
            success(negotiated.unwrap_or(Encoding::Protobuf), "rejectedLogRecords", converted.rejected, &message)
        }
        Err(e) => {
            m.rejected.get_or_create(&RejectLabels { protocol: PROTOCOL, reason: e.reason() }).inc();
            tracing::debug!(reason = e.reason(), error = %e, "OTLP logs request refused.");
            e.into_response(negotiated, state.retry_after_seconds)
        }
    }
}

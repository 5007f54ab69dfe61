//! The HTTP face of the Loki receiver.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::config::LokiReceiverConfig;
use super::decode::{Format, decode_content_encoding, decode_json, decode_protobuf, format_of};
use super::error::LokiError;
use super::rows::stage;
use crate::buffer::LogsBuffer;
use crate::limits::IngestLimits;
use crate::request_body::{BodyError, read_limited};
use crate::telemetry::{IngestMetrics, ProtocolLabels, RejectLabels, RequestLabels};
use crate::wal::{Wal, log_and_buffer, logs as logs_record};

const PROTOCOL: &str = "loki";

/// Everything the receiver needs; built once by the binary.
#[derive(Debug)]
pub struct LokiState {
    pub config: LokiReceiverConfig,
    /// Tenant of pushes without `X-Scope-OrgID` (the binary passes `tenancy.default_tenant`: one default
    /// for every signal).
    pub default_tenant: String,
    pub limits: IngestLimits,
    pub logs: Arc<LogsBuffer>,
    pub metrics: IngestMetrics,
    /// The logs write-ahead log: a push is answered 2xx only once its lines are in it.
    pub wal: Option<Arc<Wal>>,
}

pub fn router(state: Arc<LokiState>) -> Router {
    let path = state.config.path.clone();
    Router::new().route(&path, post(push)).with_state(state)
}

async fn push(State(state): State<Arc<LokiState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let result = receive(&state, &headers, body).await;
    let m = &state.metrics;
    let response = match result {
        Ok(lines) => {
            m.samples.get_or_create(&ProtocolLabels { protocol: PROTOCOL }).inc_by(lines);
            StatusCode::NO_CONTENT.into_response()
        }
        Err((lines, e)) => {
            m.samples.get_or_create(&ProtocolLabels { protocol: PROTOCOL }).inc_by(lines);
            m.rejected.get_or_create(&RejectLabels { protocol: PROTOCOL, reason: e.reason() }).inc();
            let status = e.status();
            tracing::debug!(status = status.as_u16(), reason = e.reason(), error = %e, "Loki push refused.");
            let mut r = (status, format!("{e}\n")).into_response();
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(state.config.retry_after_seconds));
            }
            r
        }
    };
    m.requests.get_or_create(&RequestLabels { protocol: PROTOCOL, code: response.status().as_u16() }).inc();
    m.duration.get_or_create(&ProtocolLabels { protocol: PROTOCOL }).observe(started.elapsed().as_secs_f64());
    response
}

/// The lines appended, or why not; an `Invalid` refusal still reports the lines it kept.
async fn receive(state: &LokiState, headers: &HeaderMap, body: Body) -> Result<u64, (u64, LokiError)> {
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let format = format_of(header_str(header::CONTENT_TYPE)).map_err(|e| (0, e))?;
    let tenant = super::tenant_of(headers, &state.default_tenant).ok_or((0, LokiError::InvalidTenant))?;
    if let Some(wal) = &state.wal {
        wal.admit().map_err(|e| (0, LokiError::Wal(e)))?;
    }
    let raw = read_body(&state.limits, headers, body).await.map_err(|e| (0, e))?;
    let body = decode_content_encoding(header_str(header::CONTENT_ENCODING), raw, &state.limits).map_err(|e| (0, e))?;
    let streams = match format {
        Format::Protobuf => decode_protobuf(&body, &state.limits),
        Format::Json => decode_json(&body),
    }
    .map_err(|e| (0, e))?;
    let mut staged = state.logs.staged_rows();
    let converted = stage(streams, &tenant, &state.config, &state.limits, super::now_ns(), &mut staged);
    if converted.lines > 0 {
        let wal = state.wal.as_deref();
        let record = || logs_record::record(&tenant, &staged);
        let durable = log_and_buffer(wal, record, &state.logs, &staged).map_err(|r| (0, r.into()))?;
        if let Some(durable) = durable {
            durable.durable().await.map_err(|e| (0, LokiError::Wal(e)))?;
        }
    }
    let lines = converted.lines;
    if converted.problems.is_empty() {
        Ok(lines)
    } else {
        Err((lines, LokiError::Invalid { problems: converted.messages() }))
    }
}

async fn read_body(limits: &IngestLimits, headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, LokiError> {
    read_limited(headers, body, limits.max_body_bytes).await.map_err(|e| match e {
        BodyError::TooLarge { size, limit } => LokiError::BodyTooLarge { size, limit },
        BodyError::Read(m) => LokiError::BodyRead(m),
    })
}

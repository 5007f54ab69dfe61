//! The HTTP face of the receiver: `POST /api/v1/write`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::config::RemoteWriteConfig;
use super::content_type::{check_encoding, version_from_content_type};
use super::decoded::RemoteWriteVersion;
use super::error::RemoteWriteError;
use super::receive::{Destination, WriteCounts, receive_logged};
use crate::buffer::MetricsBuffer;
use crate::limits::IngestLimits;
use crate::rate_limit::SampleRateLimiter;
use crate::request_body::{BodyError, read_limited};
use crate::series::{MetadataStore, SeriesRegistry};
use crate::telemetry::{IngestMetrics, ProtocolLabels, RejectLabels, RequestLabels};
use crate::tenant::{self, series_tenant};
use crate::wal::Wal;

const PROTOCOL: &str = "remote_write";

/// Everything the receiver needs; built once by the binary.
#[derive(Debug)]
pub struct RemoteWriteState {
    pub config: RemoteWriteConfig,
    pub limits: IngestLimits,
    pub series: Arc<SeriesRegistry>,
    pub metadata: Arc<MetadataStore>,
    pub buffer: Arc<MetricsBuffer>,
    pub metrics: IngestMetrics,
    /// The metrics write-ahead log; without one, a request is acknowledged once it is in the buffer.
    pub wal: Option<Arc<Wal>>,
    /// Samples per second per tenant, one budget shared with the OTLP metrics receivers.
    pub rate_limit: Arc<SampleRateLimiter>,
}

pub fn router(state: Arc<RemoteWriteState>) -> Router {
    let path = state.config.path.clone();
    Router::new().route(&path, post(write)).with_state(state)
}

async fn write(State(state): State<Arc<RemoteWriteState>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let version = version_from_content_type(header_str(header::CONTENT_TYPE));
    let is_v2 = matches!(version, Ok(RemoteWriteVersion::V2));
    let result = match version {
        Ok(v) => match check_encoding(header_str(header::CONTENT_ENCODING)) {
            Ok(()) => read_and_receive(&state, &headers, body, v).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let response = match result {
        Ok(counts) => {
            let labels = ProtocolLabels { protocol: PROTOCOL };
            state.metrics.samples.get_or_create(&labels).inc_by(counts.samples);
            state.metrics.exemplars.get_or_create(&labels).inc_by(counts.exemplars);
            state.metrics.histograms.get_or_create(&labels).inc_by(counts.histograms);
            written_response(StatusCode::NO_CONTENT, is_v2, counts, String::new())
        }
        Err(e) => {
            let status = e.status();
            state.metrics.rejected.get_or_create(&RejectLabels { protocol: PROTOCOL, reason: e.reason() }).inc();
            // The message names the problem but never carries label values or payload bytes.
            tracing::debug!(status = status.as_u16(), reason = e.reason(), error = %e, "Remote write request refused.");
            let mut r = written_response(status, is_v2, WriteCounts::default(), format!("{e}\n"));
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
                let seconds = e.retry_after_seconds().unwrap_or(state.config.retry_after_seconds);
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            r
        }
    };
    state.metrics.requests.get_or_create(&RequestLabels { protocol: PROTOCOL, code: response.status().as_u16() }).inc();
    state
        .metrics
        .duration
        .get_or_create(&ProtocolLabels { protocol: PROTOCOL })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn read_and_receive(
    state: &RemoteWriteState,
    headers: &HeaderMap,
    body: Body,
    version: RemoteWriteVersion,
) -> Result<WriteCounts, RemoteWriteError> {
    let bytes = read_limited(headers, body, state.limits.max_body_bytes).await.map_err(|e| match e {
        BodyError::TooLarge { size, limit } => RemoteWriteError::BodyTooLarge { size, limit },
        BodyError::Read(m) => RemoteWriteError::BodyRead(m),
    })?;
    let tenant = series_tenant(headers.get(tenant::HEADER).map(|v| v.as_bytes()), &state.series)?;
    if let Some(wal) = &state.wal {
        wal.admit().map_err(RemoteWriteError::Wal)?;
    }
    let into = Destination {
        limits: &state.limits,
        series: &state.series,
        metadata: &state.metadata,
        buffer: &state.buffer,
        wal: state.wal.as_deref(),
        rate_limit: Some(&state.rate_limit),
    };
    let received = receive_logged(&bytes, version, tenant, &into)?;
    if let Some(durable) = received.durable {
        durable.durable().await.map_err(RemoteWriteError::Wal)?;
    }
    Ok(received.counts)
}

fn written_response(status: StatusCode, v2: bool, counts: WriteCounts, body: String) -> Response {
    let mut r = (status, body).into_response();
    if v2 {
        let h = r.headers_mut();
        h.insert("X-Prometheus-Remote-Write-Samples-Written", HeaderValue::from(counts.samples));
        h.insert("X-Prometheus-Remote-Write-Histograms-Written", HeaderValue::from(counts.histograms));
        h.insert("X-Prometheus-Remote-Write-Exemplars-Written", HeaderValue::from(counts.exemplars));
    }
    r
}

//! OTLP/gRPC: `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`.
//!
//! Status codes per the OTLP spec: bad data is `INVALID_ARGUMENT` (not retried); a full buffer is
//! `UNAVAILABLE` with a `google.rpc.RetryInfo` detail, which clients retry after the given delay; a tenant
//! over `limits.max_samples_per_second_per_tenant` is `RESOURCE_EXHAUSTED`, also with `RetryInfo` (the spec
//! makes it retryable only then).

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};
use vigil_proto::google_rpc;

use super::body::OtlpError;
use super::http::OtlpHttpState;
use super::{metrics, sink};
use crate::telemetry::{ProtocolLabels, RejectLabels, RequestLabels};
use crate::tenant::{self, TenantError, series_tenant};

const PROTOCOL: &str = "otlp_grpc";

/// The gRPC services, sharing the HTTP receiver's state. `max_message_bytes` caps one decoded message
/// (tonic's own default of 4 MiB is too small for collectors' batches).
pub fn metrics_service(state: Arc<OtlpHttpState>) -> MetricsServiceServer<OtlpGrpc> {
    let max = usize::try_from(state.limits.max_decompressed_bytes).unwrap_or(usize::MAX);
    MetricsServiceServer::new(OtlpGrpc { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    pub(super) state: Arc<OtlpHttpState>,
}

/// `UNAVAILABLE` with a `google.rpc.RetryInfo` detail: the answer every OTLP/gRPC service gives when its
/// buffer is full, so clients come back after `retry_after_seconds`.
pub(super) fn unavailable(message: String, retry_after_seconds: u32) -> Status {
    with_retry_info(Code::Unavailable, message, retry_after_seconds)
}

/// `RESOURCE_EXHAUSTED` with a `google.rpc.RetryInfo` detail: a tenant over its samples-per-second budget,
/// told when its request would fit.
fn rate_limited(message: String, retry_after_seconds: u32) -> Status {
    with_retry_info(Code::ResourceExhausted, message, retry_after_seconds)
}

fn with_retry_info(code: Code, message: String, retry_after_seconds: u32) -> Status {
    let retry = google_rpc::RetryInfo {
        retry_delay: Some(google_rpc::Duration { seconds: i64::from(retry_after_seconds), nanos: 0 }),
    };
    let details = google_rpc::Status {
        code: code as i32,
        message: message.clone(),
        details: vec![google_rpc::Any {
            type_url: google_rpc::RETRY_INFO_TYPE_URL.into(),
            value: retry.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, details.encode_to_vec().into())
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let state = &self.state;
        let m = &state.metrics;
        let header = request.metadata().get(tenant::HEADER).map(|v| v.as_bytes());
        let tenant = match series_tenant(header, &state.series) {
            Ok(t) => t,
            Err(e) => {
                let (reason, code, status) = match &e {
                    TenantError::Invalid(_) => ("invalid_tenant", 400, Status::invalid_argument(e.to_string())),
                    TenantError::Limit(_) => ("limit", 429, Status::resource_exhausted(e.to_string())),
                };
                m.rejected.get_or_create(&RejectLabels { protocol: PROTOCOL, reason }).inc();
                m.requests.get_or_create(&RequestLabels { protocol: PROTOCOL, code }).inc();
                return Err(status);
            }
        };
        let request = request.into_inner();
        let admitted = state.wal.as_ref().map_or(Ok(()), |wal| wal.admit()).map_err(OtlpError::Wal).and_then(|()| {
            // Before the delta running totals move: a refused request changes nothing.
            let samples = metrics::sample_count(&request);
            state.rate_limit.check(&state.series, tenant, samples).map_err(OtlpError::RateLimited)
        });
        let result = match admitted {
            Ok(()) => {
                let converted = metrics::convert_with_deltas(request, &state.deltas, tenant);
                sink::append(converted, &state.limits, &state.series, tenant, &state.buffer, state.wal.as_deref())
                    .map_err(OtlpError::from)
            }
            Err(refused) => Err(refused),
        };
        let result = match result {
            Ok((appended, Some(durable))) => durable.durable().await.map(|_| appended).map_err(OtlpError::Wal),
            Ok((appended, None)) => Ok(appended),
            Err(refused) => Err(refused),
        };
        let (code, response) = match result {
            Ok(appended) => {
                let labels = ProtocolLabels { protocol: PROTOCOL };
                m.samples.get_or_create(&labels).inc_by(appended.samples);
                m.histograms.get_or_create(&labels).inc_by(appended.histograms);
                m.exemplars.get_or_create(&labels).inc_by(appended.exemplars);
                let partial_success = (appended.rejected_points > 0 || !appended.problems.is_empty()).then(|| {
                    ExportMetricsPartialSuccess {
                        rejected_data_points: i64::try_from(appended.rejected_points).unwrap_or(i64::MAX),
                        error_message: appended.problems.join("; "),
                    }
                });
                (200, Ok(Response::new(ExportMetricsServiceResponse { partial_success })))
            }
            Err(error) => {
                m.rejected.get_or_create(&RejectLabels { protocol: PROTOCOL, reason: error.reason() }).inc();
                match error {
                    // Without `RetryInfo`, `RESOURCE_EXHAUSTED` is not retried: a request over the burst never fits.
                    OtlpError::RateLimited(r @ crate::rate_limit::RateLimited::OverBurst { .. }) => {
                        (413, Err(Status::resource_exhausted(r.to_string())))
                    }
                    OtlpError::RateLimited(r) => (429, Err(rate_limited(r.to_string(), r.retry_after_seconds()))),
                    error => (503, Err(unavailable(error.to_string(), state.retry_after_seconds))),
                }
            }
        };
        m.requests.get_or_create(&RequestLabels { protocol: PROTOCOL, code }).inc();
        response
    }
}

//! OTLP/gRPC: `opentelemetry.proto.collector.logs.v1.LogsService/Export`, with the same status codes as the
//! metrics service: `INVALID_ARGUMENT` for bad input, `UNAVAILABLE` + `RetryInfo` when the buffer is full.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::http::{OtlpLogsState, ingest};
use crate::telemetry::{ProtocolLabels, RejectLabels, RequestLabels};
use crate::tenant;

const PROTOCOL: &str = "otlp_grpc_logs";

/// The gRPC logs service. `limits.max_decompressed_bytes` caps one decoded message (tonic's default of
/// 4 MiB is too small for collectors' batches).
pub fn logs_service(state: Arc<OtlpLogsState>) -> LogsServiceServer<OtlpLogsGrpc> {
    let max = usize::try_from(state.limits.max_decompressed_bytes).unwrap_or(usize::MAX);
    LogsServiceServer::new(OtlpLogsGrpc { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

#[derive(Debug, Clone)]
pub struct OtlpLogsGrpc {
    pub(super) state: Arc<OtlpLogsState>,
}

impl OtlpLogsGrpc {
    async fn export_inner(
        &self,
        request: &Request<ExportLogsServiceRequest>,
    ) -> (u16, Result<ExportLogsServiceResponse, Status>) {
        let state = &self.state;
        let m = &state.metrics;
        let header = request.metadata().get(tenant::HEADER).map(|v| v.as_bytes());
        let tenant = match tenant::tenant_of(header, &state.default_tenant) {
            Ok(t) => t,
            Err(problem) => {
                m.rejected.get_or_create(&RejectLabels { protocol: PROTOCOL, reason: "invalid_tenant" }).inc();
                return (400, Err(Status::invalid_argument(format!("invalid x-scope-orgid: {problem}"))));
            }
        };
        match ingest(state, request.get_ref(), &tenant).await {
            Ok(converted) => {
                m.samples.get_or_create(&ProtocolLabels { protocol: PROTOCOL }).inc_by(converted.records);
                let partial_success =
                    (converted.rejected > 0 || !converted.problems.is_empty()).then(|| ExportLogsPartialSuccess {
                        rejected_log_records: i64::try_from(converted.rejected).unwrap_or(i64::MAX),
                        error_message: converted.problems.join("; "),
                    });
                (200, Ok(ExportLogsServiceResponse { partial_success }))
            }
            Err(refused) => {
                let error = crate::otlp::body::OtlpError::from(refused);
                m.rejected.get_or_create(&RejectLabels { protocol: PROTOCOL, reason: error.reason() }).inc();
                (503, Err(crate::otlp::grpc::unavailable(error.to_string(), state.retry_after_seconds)))
            }
        }
    }
}

#[tonic::async_trait]
impl LogsService for OtlpLogsGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let (code, result) = self.export_inner(&request).await;
        self.state.metrics.requests.get_or_create(&RequestLabels { protocol: PROTOCOL, code }).inc();
        result.map(Response::new)
    }
}

//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, answering as `otlp/grpc.rs`
//! does for metrics: bad data is `INVALID_ARGUMENT` (not retried); a full buffer is `UNAVAILABLE` with a
//! `google.rpc.RetryInfo` detail, which clients retry after the given delay.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::{OtlpTracesState, convert, sink};
use crate::telemetry::{ProtocolLabels, RejectLabels, RequestLabels};
use crate::tenant;

const PROTOCOL: &str = "otlp_grpc_traces";

/// The gRPC service, sharing the HTTP receiver's state. `limits.max_decompressed_bytes` caps one decoded
/// message (tonic's own default of 4 MiB is too small for collectors' batches).
pub fn traces_service(state: Arc<OtlpTracesState>) -> TraceServiceServer<OtlpTracesGrpc> {
    let max = usize::try_from(state.limits.max_decompressed_bytes).unwrap_or(usize::MAX);
    TraceServiceServer::new(OtlpTracesGrpc { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

#[derive(Debug, Clone)]
pub struct OtlpTracesGrpc {
    state: Arc<OtlpTracesState>,
}

impl OtlpTracesGrpc {
    async fn export_inner(
        &self,
        request: &Request<ExportTraceServiceRequest>,
    ) -> (u16, Result<ExportTraceServiceResponse, Status>) {
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
        let mut converted = convert::convert(request.get_ref(), &tenant);
        match sink::append(&mut converted, &tenant, state).await {
            Ok(spans) => {
                m.samples.get_or_create(&ProtocolLabels { protocol: PROTOCOL }).inc_by(spans);
                let partial_success = (converted.rejected_spans > 0 || !converted.problems.is_empty()).then(|| {
                    ExportTracePartialSuccess {
                        rejected_spans: i64::try_from(converted.rejected_spans).unwrap_or(i64::MAX),
                        error_message: converted.problems.join("; "),
                    }
                });
                (200, Ok(ExportTraceServiceResponse { partial_success }))
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
impl TraceService for OtlpTracesGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let (code, result) = self.export_inner(&request).await;
        // `code` is the HTTP equivalent, so one `requests` family covers both transports.
        self.state.metrics.requests.get_or_create(&RequestLabels { protocol: PROTOCOL, code }).inc();
        result.map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use arrow_array::cast::AsArray;

    use prost::Message;
    use tonic::Code;
    use vigil_proto::google_rpc;

    use super::*;
    use crate::buffer::spans::schema::col;
    use crate::otlp::traces::tests::router::state;
    use crate::otlp::traces::tests::{SPAN, TRACE, request, span};

    async fn call(
        state: &Arc<OtlpTracesState>,
        tenant: Option<&str>,
        spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
    ) -> Result<ExportTraceServiceResponse, Status> {
        let mut r = Request::new(request(spans));
        if let Some(t) = tenant {
            r.metadata_mut().insert(tenant::HEADER, t.parse().unwrap());
        }
        OtlpTracesGrpc { state: Arc::clone(state) }.export_inner(&r).await.1
    }

    #[tokio::test]
    async fn export_takes_the_tenant_from_metadata_and_reports_bad_spans() {
        let s = state(64 << 20);
        let response =
            call(&s, Some("team-g"), vec![span(&TRACE, &SPAN, &[]), span(&TRACE, &SPAN[..4], &[])]).await.unwrap();
        let partial = response.partial_success.unwrap();
        assert_eq!((partial.rejected_spans, partial.error_message.as_str()), (1, "span span_id is 4 bytes, must be 8"));
        assert_eq!(
            call(&s, Some("a/b"), vec![span(&TRACE, &SPAN, &[])]).await.unwrap_err().code(),
            Code::InvalidArgument
        );
        s.spans.seal_all();
        let tenants: Vec<String> = (0..s.spans.shard_count())
            .flat_map(|i| s.spans.snapshot(i))
            .flat_map(|b| {
                b.spans.column(col::TENANT).as_string::<i32>().iter().flatten().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(tenants, ["team-g"]);
    }

    #[tokio::test]
    async fn a_full_buffer_is_unavailable_with_retry_info() {
        let s = state(16);
        let e = call(&s, None, vec![span(&TRACE, &SPAN, &[])]).await.unwrap_err();
        assert_eq!(e.code(), Code::Unavailable);
        let details = google_rpc::Status::decode(e.details()).unwrap();
        let retry = google_rpc::RetryInfo::decode(details.details[0].value.as_slice()).unwrap();
        assert_eq!(retry.retry_delay.unwrap().seconds, 7);
    }
}

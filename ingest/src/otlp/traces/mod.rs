//! OTLP traces: `POST /v1/traces` (OTLP/HTTP, protobuf or JSON, optionally gzip) and
//! `opentelemetry.proto.collector.trace.v1.TraceService/Export` (OTLP/gRPC, optionally gzip).
//!
//! Each span is checked ([`convert::check_ids`]); a bad one is refused alone and reported in
//! `partial_success`, the rest enter the spans buffer ([`crate::buffer::SpansBuffer`]) under the request's
//! tenant (`X-Scope-OrgID`, else the configured default). Only a full buffer refuses a whole request, with
//! 503 / `UNAVAILABLE` so the client retries.

pub(crate) mod convert;
mod grpc;
mod http;
mod sink;

use std::sync::Arc;

pub use crate::tenant::validate_tenant;
pub use grpc::{OtlpTracesGrpc, traces_service};
pub use http::traces_router;

/// The spans of a decoded request that pass the receiver's checks, as buffer rows (start-up replay).
pub(crate) fn convert_request(
    request: &opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    tenant: &Arc<str>,
) -> Vec<crate::buffer::spans::SpanRow> {
    convert::convert(request, tenant).rows
}

use crate::buffer::SpansBuffer;
use crate::limits::IngestLimits;
use crate::telemetry::IngestMetrics;

/// Everything the traces receivers need; built once by the binary and shared by HTTP and gRPC.
#[derive(Debug)]
pub struct OtlpTracesState {
    pub limits: IngestLimits,
    pub spans: Arc<SpansBuffer>,
    pub metrics: IngestMetrics,
    /// Seconds a client is told to wait when the buffer is full.
    pub retry_after_seconds: u32,
    /// Tenant of requests without `X-Scope-OrgID` (check it with [`validate_tenant`]).
    pub default_tenant: String,
    /// The spans write-ahead log: a request is answered only once its spans are in it.
    pub wal: Option<Arc<crate::wal::Wal>>,
}

#[cfg(test)]
mod tests;

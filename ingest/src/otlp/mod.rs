//! OTLP receivers (OpenTelemetry protocol, <https://opentelemetry.io/docs/specs/otlp/>).
//!
//! So far: metrics over OTLP/HTTP (`POST /v1/metrics`, protobuf and JSON, optionally gzip) and OTLP/gRPC
//! (`MetricsService/Export`, optionally gzip). Metric points become
//! Prometheus series ([`metrics`], per the OpenTelemetry-to-Prometheus compatibility rules) and enter the
//! same buffer and forwarders as remote write.

mod any_value;
pub(crate) mod body;
mod grpc;
mod grpc_status;
mod http;
pub mod logs;
pub(crate) mod metrics;
pub(crate) mod sink;
pub mod traces;

pub use grpc::{OtlpGrpc, metrics_service};
pub use grpc_status::decode_errors_as_invalid_argument;
pub use http::{OtlpHttpState, router};
pub use metrics::DeltaToCumulative;

#[cfg(test)]
mod tests;

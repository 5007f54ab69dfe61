//! OTLP logs: `POST /v1/logs` (OTLP/HTTP, protobuf or JSON, optionally gzip) and
//! `opentelemetry.proto.collector.logs.v1.LogsService/Export` (OTLP/gRPC) into the logs buffer.
//!
//! Each log record becomes one row ([`convert`]). Its Loki stream labels are chosen here, as Loki's own OTLP
//! ingestion does: a configurable list of resource attributes (by default `service.name`,
//! `service.namespace`, `deployment.environment`) with `.` turned into `_`, plus `level` (the severity word).
//! Everything else (other resource attributes, record attributes) goes to the `attributes` JSON, which the
//! Loki forwarder sends as structured metadata. The tenant is `X-Scope-OrgID` (HTTP header or gRPC metadata),
//! else `default_tenant`.

pub(crate) mod convert;
mod grpc;
mod http;

pub use grpc::{OtlpLogsGrpc, logs_service};
pub use http::{OtlpLogsState, default_stream_label_attributes, logs_router};

#[cfg(test)]
mod tests;

//! Forwarder to Grafana Tempo over OTLP/HTTP (protobuf), or to any OTLP/HTTP traces receiver.
//!
//! Tempo's distributor takes OTLP on `/v1/traces` (port 4318) and reads the tenant from `X-Scope-OrgID`:
//! <https://grafana.com/docs/tempo/latest/configuration/#distributor> and
//! <https://grafana.com/docs/tempo/latest/operations/multitenancy/>. Answers follow the OTLP/HTTP spec
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp-response>): only 429, 502, 503 and 504 are retried
//! ([`crate::retry::classify_otlp`]).
//!
//! One worker per destination tails the spans write-ahead log from its own position. Each record already
//! is an `ExportTraceServiceRequest` (the receiver spliced the spans' bytes verbatim: see
//! `vigil_ingest::wal::spans`); the worker joins records into one request per tenant up to
//! `max_spans_per_request` or `flush_interval` ([`worker`], [`crate::wal_loop`]), sends it with the OTLP
//! headers and classification ([`client`]) and retries in place ([`crate::send`]); only then does it commit
//! its position.

mod client;
mod config;
mod worker;

pub use crate::handle::ForwarderHandle;

/// The backend kind in metric labels, logs and readiness.
pub(crate) const BACKEND: &str = "tempo";
pub use config::TempoConfig;
pub use worker::spawn;

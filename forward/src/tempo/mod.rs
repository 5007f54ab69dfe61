//! Forwarder to Grafana Tempo over OTLP/HTTP (protobuf), or to any OTLP/HTTP traces receiver.
//!
//! Tempo's distributor takes OTLP on `/v1/traces` (port 4318) and reads the tenant from `X-Scope-OrgID`:
//! <https://grafana.com/docs/tempo/latest/configuration/#distributor> and
//! <https://grafana.com/docs/tempo/latest/operations/multitenancy/>. Answers follow the OTLP/HTTP spec
//! (<https://opentelemetry.io/docs/specs/otlp/#otlphttp-response>): only 429, 502, 503 and 504 are retried
//! ([`crate::retry::classify_otlp`]).
//!
//! One worker per spans-buffer shard reads it through a lossless subscription (a trace lives in one shard,
//! so its spans leave together). It gathers sealed batches up to `max_spans_per_request` or `flush_interval`
//! ([`crate::batching`]), builds one `ExportTraceServiceRequest` per tenant from the rows' stored span and
//! resource bytes ([`encode`], [`worker`]), sends it with the OTLP headers and classification ([`client`])
//! and retries in place ([`crate::send`]); only then does it commit, releasing the batches.

mod client;
mod config;
mod encode;
mod worker;

pub use crate::handle::ForwarderHandle;
pub use config::TempoConfig;
pub use encode::{EncodedRequest, encode_export_requests};
pub use worker::spawn;

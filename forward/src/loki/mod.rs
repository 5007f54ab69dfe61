//! Forwarder to Grafana Loki's push API (`POST /loki/api/v1/push`, protobuf `logproto.PushRequest` in raw
//! snappy): <https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs>.
//!
//! One worker per logs-buffer shard reads it through a lossless subscription; a stream (tenant + labels)
//! always lives in one shard, so its lines reach Loki in order. The worker gathers sealed batches up to
//! `max_lines_per_request` or `flush_interval` ([`crate::batching`]), groups lines into streams, one request
//! per tenant with `X-Scope-OrgID` ([`encode`], [`worker`]), and retries in place until Loki answers
//! ([`crate::send`]) by the rules in [`client`]: 2xx delivered; 400 (Loki's answer to bad or too-old lines)
//! dropped and counted; 429 and 5xx retried with backoff honouring `Retry-After`. Only then does it commit,
//! releasing the batches for eviction.
//!
//! Structured metadata: every key of the row's `attributes` JSON (for Loki-pushed lines, exactly the
//! structured metadata the client sent; for OTLP lines, the resource and record attributes that did not
//! become labels, as Loki's own OTLP ingestion does), names made label-safe (`.` → `_`), non-string values
//! as JSON text; plus `trace_id` and `span_id` from their columns unless the attributes already carry them.

mod client;
mod config;
mod encode;
mod worker;

pub use crate::handle::ForwarderHandle;
pub use config::LokiConfig;
pub use encode::{TenantPush, encode_push_requests};
pub use worker::spawn;

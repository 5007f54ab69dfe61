//! Forwarder to Grafana Loki's push API (`POST /loki/api/v1/push`, protobuf `logproto.PushRequest` in raw
//! snappy): <https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs>.
//!
//! One worker per destination tails the logs write-ahead log from its own position, in log order, so every
//! stream's lines reach Loki in the order they were acknowledged. Each record already is a Loki push (built
//! by the receiver, structured metadata included: see `vigil_ingest::wal::logs`); the worker joins records
//! into one push per tenant with `X-Scope-OrgID` up to `max_lines_per_request` or `flush_interval`
//! ([`worker`], [`crate::wal_loop`]), and retries in place until Loki answers ([`crate::send`]) by the rules
//! in [`client`]: 2xx delivered; 400 (Loki's answer to bad or too-old lines) dropped and counted; 429 and
//! 5xx retried with backoff honouring `Retry-After`. Only then does it commit its position.

mod client;
mod config;
mod worker;

pub use crate::handle::ForwarderHandle;

/// The backend kind in metric labels, logs and readiness.
pub(crate) const BACKEND: &str = "loki";
pub use config::LokiConfig;
pub use worker::spawn;

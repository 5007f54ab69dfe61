//! Grafana Loki push receiver: `POST /loki/api/v1/push`.
//!
//! API: <https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs> (protobuf
//! `logproto.PushRequest` in raw snappy, or JSON). Validation and status codes follow Loki's distributor:
//! 204 on success; 400 for bad input (bad streams and lines are refused, the rest kept); 413 above the body
//! limits; 415 for other content types; 429 with `Retry-After` when the buffer is full. The tenant is
//! `X-Scope-OrgID`, else the configured default tenant (`tenancy.default_tenant`).
//!
//! Lines enter the logs buffer ([`crate::buffer::LogsBuffer`]), one row per line, sharded by stream.

mod config;
pub(crate) mod decode;
mod error;
mod handler;
pub(crate) mod labels;
pub(crate) mod rows;

pub use config::LokiReceiverConfig;
pub use handler::{LokiState, router};

/// The header Loki (and Cortex/Mimir/Tempo) read the tenant from.
pub const TENANT_HEADER: &str = "X-Scope-OrgID";

/// The request's tenant: the header if present (and valid by dskit's rule, [`crate::tenant::validate_tenant`],
/// which also refuses a push naming several tenants, `a|b`), else the default. `None` for an invalid header.
pub fn tenant_of(headers: &http::HeaderMap, default: &str) -> Option<String> {
    crate::tenant::tenant_of(headers.get(TENANT_HEADER).map(|v| v.as_bytes()), default).ok().map(|t| t.to_string())
}

/// Wall-clock now in unix nanoseconds (the observed timestamp of a line).
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;

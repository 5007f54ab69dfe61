//! Vigil's forward stage: exporters that carry what Vigil acknowledged from the write-ahead logs to the
//! backends.
//!
//! Each backend kind has its own folder with fixed roles: `config.rs`, `client.rs` (the backend's headers
//! and which classification of answers applies), `worker.rs` (the backend's deliver step: log entries to
//! requests). Records are written by the receivers (alerts: by the binary's alert log) already in the
//! backend's wire form, so there is no encoder here. Shared pieces: [`wal_loop`] (the loop over a log: read
//! from the position, gather, deliver, commit), [`tenant_requests`] (joining records into one request per
//! tenant), [`send`] (POST with timeout and retries), [`retry`] (classifications of send outcomes, backoff
//! with full jitter), [`http`] (the pooled HTTP client), [`telemetry`] (counters on `/metrics`).

pub mod alertmanager;
pub mod breaker;
pub mod handle;
pub mod http;
pub mod loki;
pub mod retry;
pub mod send;
pub mod telemetry;
pub mod tempo;
mod tenant_requests;
pub mod victoriametrics;
mod wal_loop;

/// How the URLs of one backend kind share the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardMode {
    /// Every URL gets everything, each from its own log position.
    #[default]
    Replicate,
    /// The first URL gets everything while its breaker is closed; the next ones (in order) while it is
    /// open — the primary and standby centres of the design documents.
    Failover,
}

impl ForwardMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replicate => "replicate",
            Self::Failover => "failover",
        }
    }
}

/// A destination's config as the binary wires it, whatever the backend kind.
pub trait Destination {
    fn url(&self) -> &str;
    /// The validated URL with its breaker.
    fn target(&self) -> Result<send::Target, String>;
}

/// Strips credentials and query strings from a URL before it is logged or used as a metric label.
pub fn redact_url(url: &::http::Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http");
    let host = url.host().unwrap_or("");
    match url.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}{}", url.path()),
        None => format!("{scheme}://{host}{}", url.path()),
    }
}

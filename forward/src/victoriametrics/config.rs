//! Configuration of one VictoriaMetrics destination.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::retry::BackoffConfig;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VictoriaMetricsConfig {
    /// Full remote-write endpoint, e.g. `http://victoriametrics:8428/api/v1/write`.
    pub url: String,
    /// Most samples in one request (the design documents' `max_samples_per_send`).
    pub max_samples_per_request: usize,
    /// Longest a sample waits for its request to fill up.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// A request taking longer than this is abandoned and retried.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub backoff: BackoffConfig,
}

impl Default for VictoriaMetricsConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_samples_per_request: 10_000,
            flush_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            backoff: BackoffConfig::default(),
        }
    }
}

impl VictoriaMetricsConfig {
    pub fn with_url(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Pure checks; the returned URI is what the worker uses.
    pub fn validate(&self) -> Result<http::Uri, String> {
        let uri = crate::http::parse_url("forward.victoriametrics", &self.url)?;
        if self.max_samples_per_request == 0 {
            return Err("forward.victoriametrics max_samples_per_request must be > 0".into());
        }
        if self.flush_interval.is_zero() || self.request_timeout.is_zero() {
            return Err("forward.victoriametrics flush_interval and request_timeout must be > 0".into());
        }
        self.backoff.validate("forward.victoriametrics")?;
        Ok(uri)
    }
}

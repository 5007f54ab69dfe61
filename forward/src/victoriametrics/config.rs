//! Configuration of one VictoriaMetrics destination.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::retry::BackoffConfig;
use crate::send::{TENANT_PLACEHOLDER, Target};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VictoriaMetricsConfig {
    /// Full remote-write endpoint, e.g. `http://victoriametrics:8428/api/v1/write`. `{tenant}` in it is
    /// replaced by each row's tenant (the ingest `X-Scope-OrgID`, or `tenancy.default_tenant`), giving one
    /// request per tenant: VictoriaMetrics cluster `http://vminsert:8480/insert/{tenant}/prometheus/api/v1/write`
    /// (tenants must then be `accountID[:projectID]` numbers), or single-node
    /// `http://victoriametrics:8428/api/v1/write?extra_label=tenant={tenant}`. Every request also carries
    /// `X-Scope-OrgID`, the tenant mechanism of Mimir and Cortex.
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
    /// This URL's circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for VictoriaMetricsConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_samples_per_request: 10_000,
            flush_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            backoff: BackoffConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl VictoriaMetricsConfig {
    pub fn with_url(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Pure checks; the returned URI is what the worker uses (with `{tenant}` replaced by `0`, for a
    /// templated URL).
    pub fn validate(&self) -> Result<http::Uri, String> {
        let uri = crate::http::parse_url("forward.victoriametrics", &self.url.replace(TENANT_PLACEHOLDER, "0"))?;
        if self.max_samples_per_request == 0 {
            return Err("forward.victoriametrics max_samples_per_request must be > 0".into());
        }
        if self.flush_interval.is_zero() || self.request_timeout.is_zero() {
            return Err("forward.victoriametrics flush_interval and request_timeout must be > 0".into());
        }
        self.backoff.validate("forward.victoriametrics")?;
        self.breaker.validate("forward.victoriametrics")?;
        Ok(uri)
    }
}

impl crate::Destination for VictoriaMetricsConfig {
    fn url(&self) -> &str {
        &self.url
    }

    fn target(&self) -> Result<Target, String> {
        Ok(Target::new(super::BACKEND, &self.url, self.validate()?, &self.breaker))
    }
}

//! Configuration of one Tempo destination.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::retry::BackoffConfig;
use crate::send::Target;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TempoConfig {
    /// Full OTLP/HTTP traces endpoint, e.g. `http://tempo:4318/v1/traces`.
    pub url: String,
    /// Most spans in one request. Tempo's distributor refuses requests over its gRPC/HTTP message limit
    /// (4 MiB by default), so keep this modest.
    pub max_spans_per_request: usize,
    /// Longest a span waits for its request to fill up.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// A request taking longer than this is abandoned and retried.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub backoff: BackoffConfig,
    /// This URL's circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for TempoConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_spans_per_request: 1000,
            flush_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            backoff: BackoffConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl TempoConfig {
    pub fn with_url(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Pure checks; the returned URI is what the worker uses.
    pub fn validate(&self) -> Result<http::Uri, String> {
        let uri = crate::http::parse_url("forward.tempo", &self.url)?;
        if self.max_spans_per_request == 0 {
            return Err("forward.tempo max_spans_per_request must be > 0".into());
        }
        if self.flush_interval.is_zero() || self.request_timeout.is_zero() {
            return Err("forward.tempo flush_interval and request_timeout must be > 0".into());
        }
        self.backoff.validate("forward.tempo")?;
        self.breaker.validate("forward.tempo")?;
        Ok(uri)
    }
}

impl crate::Destination for TempoConfig {
    fn url(&self) -> &str {
        &self.url
    }

    fn target(&self) -> Result<Target, String> {
        Ok(Target::new(super::BACKEND, &self.url, self.validate()?, &self.breaker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_and_defaults() {
        let c: TempoConfig = serde_yaml_ng::from_str("url: http://tempo:4318/v1/traces\nflush_interval: 2s\n").unwrap();
        assert_eq!(c.flush_interval, Duration::from_secs(2));
        assert_eq!(c.max_spans_per_request, 1000);
        assert_eq!(c.validate().map(|u| u.path().to_owned()), Ok("/v1/traces".to_owned()));
        assert!(serde_yaml_ng::from_str::<TempoConfig>("url: x\nmax_samples: 3\n").is_err(), "unknown key");
        for bad in ["tempo:4318", "https://tempo/v1/traces", "http:///v1/traces"] {
            assert!(TempoConfig::with_url(bad).validate().is_err(), "{bad}");
        }
        let zero = TempoConfig { max_spans_per_request: 0, ..TempoConfig::with_url("http://t/v1/traces") };
        assert!(zero.validate().is_err());
    }
}

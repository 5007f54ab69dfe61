//! Configuration of one Loki destination.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::retry::BackoffConfig;
use crate::send::Target;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LokiConfig {
    /// Full push endpoint, e.g. `http://loki:3100/loki/api/v1/push`.
    pub url: String,
    /// Most lines in one request.
    pub max_lines_per_request: usize,
    /// Longest a line waits for its request to fill up.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// A request taking longer than this is abandoned and retried.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub backoff: BackoffConfig,
    /// This URL's circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for LokiConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_lines_per_request: 5000,
            flush_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            backoff: BackoffConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl LokiConfig {
    pub fn with_url(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Pure checks; the returned URI is what the workers use.
    pub fn validate(&self) -> Result<http::Uri, String> {
        let uri = crate::http::parse_url("forward.loki", &self.url)?;
        if self.max_lines_per_request == 0 {
            return Err("forward.loki max_lines_per_request must be > 0".into());
        }
        if self.flush_interval.is_zero() || self.request_timeout.is_zero() {
            return Err("forward.loki flush_interval and request_timeout must be > 0".into());
        }
        self.backoff.validate("forward.loki")?;
        self.breaker.validate("forward.loki")?;
        Ok(uri)
    }
}

impl crate::Destination for LokiConfig {
    fn url(&self) -> &str {
        &self.url
    }

    fn target(&self) -> Result<Target, String> {
        Ok(Target::new(super::BACKEND, &self.url, self.validate()?, &self.breaker))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn defaults_parse_and_validation_names_the_key() {
        let c: LokiConfig = serde_yaml_ng::from_str("url: http://loki:3100/loki/api/v1/push\n").unwrap();
        assert_eq!((c.max_lines_per_request, c.flush_interval), (5000, Duration::from_secs(1)));
        assert_eq!(c.validate().unwrap().path(), "/loki/api/v1/push");
        assert!(serde_yaml_ng::from_str::<LokiConfig>("urll: x\n").is_err(), "unknown keys are refused");
        for (bad, want) in [
            (LokiConfig::with_url("https://loki/x"), "https"),
            (LokiConfig::with_url("loki:3100"), "http://"),
            (LokiConfig { max_lines_per_request: 0, ..LokiConfig::with_url("http://l/p") }, "max_lines_per_request"),
            (LokiConfig { flush_interval: Duration::ZERO, ..LokiConfig::with_url("http://l/p") }, "flush_interval"),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.contains(want) && e.contains("forward.loki"), "{e}");
        }
    }
}

//! Configuration of one Alertmanager destination.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::breaker::BreakerConfig;
use crate::retry::BackoffConfig;
use crate::send::Target;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertmanagerConfig {
    /// Full alerts endpoint, e.g. `http://alertmanager:9093/api/v2/alerts`.
    pub url: String,
    /// Most alerts in one request (Prometheus sends at most 64).
    pub max_alerts_per_request: usize,
    /// Longest an alert waits for its request to fill up. Short: an alert is worth most when it is new.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// A request taking longer than this is abandoned and retried (Prometheus' default: 10 s).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub backoff: BackoffConfig,
    /// This URL's circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_alerts_per_request: 64,
            flush_interval: Duration::from_millis(200),
            request_timeout: Duration::from_secs(10),
            backoff: BackoffConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl AlertmanagerConfig {
    pub fn with_url(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Pure checks; the returned URI is what the worker uses.
    pub fn validate(&self) -> Result<http::Uri, String> {
        let uri = crate::http::parse_url("forward.alertmanager", &self.url)?;
        if self.max_alerts_per_request == 0 {
            return Err("forward.alertmanager max_alerts_per_request must be > 0".into());
        }
        if self.flush_interval.is_zero() || self.request_timeout.is_zero() {
            return Err("forward.alertmanager flush_interval and request_timeout must be > 0".into());
        }
        self.backoff.validate("forward.alertmanager")?;
        self.breaker.validate("forward.alertmanager")?;
        Ok(uri)
    }
}

impl crate::Destination for AlertmanagerConfig {
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
        let c: AlertmanagerConfig = serde_yaml_ng::from_str("url: http://alertmanager:9093/api/v2/alerts\n").unwrap();
        assert_eq!((c.max_alerts_per_request, c.flush_interval), (64, Duration::from_millis(200)));
        assert_eq!(c.validate().unwrap().path(), "/api/v2/alerts");
        assert_eq!(serde_yaml_ng::from_str::<AlertmanagerConfig>(&serde_yaml_ng::to_string(&c).unwrap()).unwrap(), c);
        assert!(serde_yaml_ng::from_str::<AlertmanagerConfig>("urll: x\n").is_err(), "unknown keys are refused");
        let url = "http://am/api/v2/alerts";
        for (bad, want) in [
            (AlertmanagerConfig::with_url("https://am/api/v2/alerts"), "https"),
            (AlertmanagerConfig::with_url("am:9093"), "http://"),
            (
                AlertmanagerConfig { max_alerts_per_request: 0, ..AlertmanagerConfig::with_url(url) },
                "max_alerts_per_request",
            ),
            (
                AlertmanagerConfig { request_timeout: Duration::ZERO, ..AlertmanagerConfig::with_url(url) },
                "request_timeout",
            ),
        ] {
            let e = bad.validate().unwrap_err();
            assert!(e.contains(want) && e.contains("forward.alertmanager"), "{e}");
        }
    }
}

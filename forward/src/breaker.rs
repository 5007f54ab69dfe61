//! A circuit breaker per backend URL, and what readiness reports about that URL.
//!
//! Closed: requests go out; `failure_threshold` failed attempts in a row (timeouts, connection errors, 429,
//! 5xx — what [`crate::retry`] classifies as "retry") open it. Open: nothing is sent to this URL for
//! `open_for`; a failover destination uses its standby meanwhile, a single URL just waits (instead of
//! hammering a backend that is down with backoff-paced retries). Then half-open: the next request is the
//! probe — delivered (or rejected for good: the backend answered) closes the breaker, another failure
//! opens it again. One worker drives each breaker, so there is never more than one probe.
//!
//! Hand-written rather than taken from a crate: the state is four fields read by readiness, and the
//! breaker crates on crates.io (`failsafe`, `circuitbreaker-rs`) wrap calls in futures combinators that
//! fit neither the in-place retry loop of [`crate::send`] nor the report.

use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Failed attempts in a row that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker keeps requests away before it lets a probe through.
    #[serde(with = "humantime_serde")]
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, open_for: Duration::from_secs(10) }
    }
}

impl BreakerConfig {
    pub fn validate(&self, key: &str) -> Result<(), String> {
        if self.failure_threshold == 0 || self.open_for.is_zero() {
            return Err(format!("{key} breaker.failure_threshold and breaker.open_for must be > 0"));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    opened_at: Option<Instant>,
    last_error: Option<(String, SystemTime)>,
    last_success: Option<SystemTime>,
}

/// One backend URL's breaker and its recent history.
#[derive(Debug)]
pub struct TargetHealth {
    /// Redacted URL.
    pub url: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// What readiness shows of one URL.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub url: String,
    pub breaker: BreakerState,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// Unix seconds.
    pub last_error_at: Option<f64>,
    pub last_success_at: Option<f64>,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl TargetHealth {
    pub fn new(url: String, config: BreakerConfig) -> Self {
        let inner =
            Inner { state: BreakerState::Closed, failures: 0, opened_at: None, last_error: None, last_success: None };
        Self { url, config, inner: Mutex::new(inner) }
    }

    /// `None`: a request may go now (closed, or the probe of a half-open breaker). `Some(wait)`: open for
    /// `wait` more.
    pub(crate) fn wait_before_send(&self) -> Option<Duration> {
        let mut inner = self.inner.lock();
        match (inner.state, inner.opened_at) {
            (BreakerState::Open, Some(at)) => {
                let elapsed = at.elapsed();
                if elapsed < self.config.open_for {
                    return Some(self.config.open_for - elapsed);
                }
                inner.state = BreakerState::HalfOpen;
                None
            }
            _ => None,
        }
    }

    /// The backend took the request.
    pub(crate) fn delivered(&self) {
        let mut inner = self.inner.lock();
        inner.state = BreakerState::Closed;
        inner.failures = 0;
        inner.last_success = Some(SystemTime::now());
    }

    /// The backend answered but refused the data for good: it is up (the breaker closes), and the refusal
    /// is the last error.
    pub(crate) fn rejected(&self, message: String) {
        let mut inner = self.inner.lock();
        inner.state = BreakerState::Closed;
        inner.failures = 0;
        inner.last_error = Some((message, SystemTime::now()));
    }

    /// An attempt failed in a way worth retrying. True if this opened the breaker.
    pub(crate) fn failed(&self, reason: String) -> bool {
        let mut inner = self.inner.lock();
        inner.failures = inner.failures.saturating_add(1);
        inner.last_error = Some((reason, SystemTime::now()));
        let open = match inner.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => inner.failures >= self.config.failure_threshold,
            BreakerState::Open => false,
        };
        if open {
            inner.state = BreakerState::Open;
            inner.opened_at = Some(Instant::now());
        }
        open
    }

    pub fn state(&self) -> BreakerState {
        self.inner.lock().state
    }

    pub fn report(&self) -> TargetReport {
        let inner = self.inner.lock();
        TargetReport {
            url: self.url.clone(),
            breaker: inner.state,
            consecutive_failures: inner.failures,
            last_error: inner.last_error.as_ref().map(|(m, _)| m.clone()),
            last_error_at: inner.last_error.as_ref().map(|(_, t)| unix(*t)),
            last_success_at: inner.last_success.map(unix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_after_open_for_and_closes_on_success() {
        let h =
            TargetHealth::new("u".into(), BreakerConfig { failure_threshold: 3, open_for: Duration::from_millis(50) });
        assert_eq!(h.wait_before_send(), None);
        assert!(!h.failed("a".into()));
        assert!(!h.failed("b".into()));
        assert!(h.failed("c".into()), "the third failure in a row opens it");
        assert_eq!(h.state(), BreakerState::Open);
        assert!(h.wait_before_send().is_some_and(|w| w <= Duration::from_millis(50)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(h.wait_before_send(), None, "the probe may go");
        assert_eq!(h.state(), BreakerState::HalfOpen);
        assert!(h.failed("probe failed".into()), "a failed probe opens it again at once");
        assert!(h.wait_before_send().is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(h.wait_before_send(), None);
        h.delivered();
        let r = h.report();
        assert_eq!((r.breaker, r.consecutive_failures), (BreakerState::Closed, 0));
        assert_eq!(r.last_error.as_deref(), Some("probe failed"));
        assert!(r.last_success_at.is_some());
    }

    #[test]
    fn a_rejection_means_the_backend_is_up() {
        let h = TargetHealth::new("u".into(), BreakerConfig { failure_threshold: 2, ..BreakerConfig::default() });
        h.failed("timeout".into());
        h.rejected("HTTP 400: bad".into());
        assert!(!h.failed("timeout".into()), "the count started again");
        assert_eq!(h.report().last_error.as_deref(), Some("timeout"));
        assert!(BreakerConfig { failure_threshold: 0, ..BreakerConfig::default() }.validate("forward.loki").is_err());
    }
}

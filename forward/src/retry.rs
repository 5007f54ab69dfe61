//! What a backend's answer means for the data, and how long to wait before trying again.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use prost::Message;
use serde::{Deserialize, Serialize};

/// The one classification every forwarder uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// 2xx: done.
    Delivered,
    /// The backend will never take this data (400, 409, 415 for remote write): drop it, log and count.
    Rejected { status: u16, message: String },
    /// Try again later; `after` is the server's `Retry-After`, when it gave one.
    Retry { reason: String, after: Option<Duration> },
}

/// Remote-write semantics (Prometheus and vmagent): 2xx delivered; 400, 409 and 415 dropped; everything
/// else — 429, 5xx, and other 4xx that usually mean a misconfiguration an operator can fix — retried.
pub fn classify_remote_write(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> SendOutcome {
    if status.is_success() {
        return SendOutcome::Delivered;
    }
    let message = body_excerpt(body);
    match status.as_u16() {
        400 | 409 | 415 => SendOutcome::Rejected { status: status.as_u16(), message },
        _ => SendOutcome::Retry { reason: format!("HTTP {}: {message}", status.as_u16()), after: retry_after(headers) },
    }
}

/// OTLP/HTTP semantics (spec, "Retryable Response Codes"): 2xx delivered; only 429, 502, 503 and 504 are
/// retried; every other 4xx and 5xx — 500 included — MUST NOT be retried, so it is dropped. The reason is
/// the `google.rpc.Status` message when the body is one, else the body's start.
pub fn classify_otlp(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> SendOutcome {
    if status.is_success() {
        return SendOutcome::Delivered;
    }
    let is_protobuf = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-protobuf"));
    let message = match is_protobuf.then(|| vigil_proto::google_rpc::Status::decode(body)) {
        Some(Ok(s)) if !s.message.is_empty() => s.message,
        _ => body_excerpt(body),
    };
    match status.as_u16() {
        429 | 502 | 503 | 504 => {
            SendOutcome::Retry { reason: format!("HTTP {}: {message}", status.as_u16()), after: retry_after(headers) }
        }
        code => SendOutcome::Rejected { status: code, message },
    }
}

/// `Retry-After` in delta-seconds. (The HTTP-date form is rare from metrics backends and falls back to
/// plain backoff.)
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(v.min(3600)))
}

/// The start of a response body, for logs: backends put their reason there.
pub fn body_excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(256)];
    String::from_utf8_lossy(cut).trim().to_owned()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// First retry waits up to this long.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Retries never wait longer than this (unless the server's `Retry-After` says so).
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self { initial: Duration::from_millis(250), max: Duration::from_secs(30) }
    }
}

impl BackoffConfig {
    pub fn validate(&self, key: &str) -> Result<(), String> {
        if self.initial.is_zero() || self.max < self.initial {
            return Err(format!("{key}: backoff.initial must be > 0 and <= backoff.max"));
        }
        Ok(())
    }
}

/// Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff and Jitter"): the wait
/// is uniform in `[0, min(max, initial * 2^attempt)]`, so many clients retrying together spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Self { config, attempt: 0 }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The wait before the next try. A server's `Retry-After` is a floor.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let cap = self.config.initial.saturating_mul(1u32 << self.attempt.min(20)).min(self.config.max);
        self.attempt = self.attempt.saturating_add(1);
        let jittered = cap.mul_f64(fastrand::f64());
        match retry_after {
            Some(after) => after.max(jittered),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_remote_write_rules() {
        let h = HeaderMap::new();
        assert_eq!(classify_remote_write(StatusCode::NO_CONTENT, &h, b""), SendOutcome::Delivered);
        for code in [400u16, 409, 415] {
            assert!(matches!(
                classify_remote_write(StatusCode::from_u16(code).unwrap(), &h, b"bad"),
                SendOutcome::Rejected { .. }
            ));
        }
        let mut with_after = HeaderMap::new();
        with_after.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            classify_remote_write(StatusCode::TOO_MANY_REQUESTS, &with_after, b""),
            SendOutcome::Retry { reason: "HTTP 429: ".into(), after: Some(Duration::from_secs(7)) }
        );
        assert!(matches!(
            classify_remote_write(StatusCode::SERVICE_UNAVAILABLE, &h, b""),
            SendOutcome::Retry { after: None, .. }
        ));
        assert!(matches!(classify_remote_write(StatusCode::NOT_FOUND, &h, b""), SendOutcome::Retry { .. }));
    }

    #[test]
    fn otlp_classification_retries_only_429_502_503_504() {
        let h = HeaderMap::new();
        assert_eq!(classify_otlp(StatusCode::OK, &h, b""), SendOutcome::Delivered);
        for code in [429u16, 502, 503, 504] {
            assert!(
                matches!(classify_otlp(StatusCode::from_u16(code).unwrap(), &h, b""), SendOutcome::Retry { .. }),
                "{code}"
            );
        }
        for code in [400u16, 401, 403, 404, 413, 415, 500, 501] {
            assert!(
                matches!(classify_otlp(StatusCode::from_u16(code).unwrap(), &h, b"no"), SendOutcome::Rejected { status, .. } if status == code),
                "{code}"
            );
        }
        let mut after = HeaderMap::new();
        after.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(
            classify_otlp(StatusCode::SERVICE_UNAVAILABLE, &after, b"busy"),
            SendOutcome::Retry { reason: "HTTP 503: busy".into(), after: Some(Duration::from_secs(3)) }
        );
        let mut pb = HeaderMap::new();
        pb.insert(http::header::CONTENT_TYPE, "application/x-protobuf".parse().unwrap());
        let status = vigil_proto::google_rpc::Status { code: 3, message: "bad span".into(), details: Vec::new() };
        assert_eq!(
            classify_otlp(StatusCode::BAD_REQUEST, &pb, &status.encode_to_vec()),
            SendOutcome::Rejected { status: 400, message: "bad span".into() }
        );
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let mut b = Backoff::new(BackoffConfig { initial: Duration::from_millis(100), max: Duration::from_secs(1) });
        for attempt in 0..10 {
            let cap = Duration::from_millis(100 * (1 << attempt)).min(Duration::from_secs(1));
            assert!(b.next_delay(None) <= cap);
        }
        assert!(b.next_delay(Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        b.reset();
        assert_eq!(b.attempts(), 0);
    }
}

//! Query parameters as the Prometheus HTTP API reads them: times as RFC 3339 or Unix seconds (fractions
//! allowed), durations as `1h30m` (units ms, s, m, h, d, w, y) or seconds, the request's tenant, and
//! Prometheus' error shape.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};

/// A request the API refuses, answered as Prometheus does: 400 and `errorType: bad_data`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParamError {
    #[error("invalid parameter {name:?}: {problem}")]
    Invalid { name: &'static str, problem: String },
    #[error("{0}")]
    BadData(String),
}

impl ParamError {
    pub(crate) fn invalid(name: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid { name, problem: problem.into() }
    }
}

impl IntoResponse for ParamError {
    fn into_response(self) -> Response {
        error_response(StatusCode::BAD_REQUEST, "bad_data", &self.to_string())
    }
}

/// Prometheus' error answer: `{"status":"error","errorType":<kind>,"error":<message>}`.
pub(crate) fn error_response(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = serde_json::json!({"status": "error", "errorType": kind, "error": message});
    (status, Json(body)).into_response()
}

/// The first value of a parameter, as Go's `FormValue` takes it (a repeated scalar is a client bug).
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The request's tenant, by the same rule as ingest (`X-Scope-OrgID`, else `default`).
pub(crate) fn tenant(headers: &HeaderMap, default: &str) -> Result<Arc<str>, ParamError> {
    let header = headers.get(vigil_ingest::tenant::HEADER).map(|v| v.as_bytes());
    vigil_ingest::tenant::tenant_of(header, default)
        .map_err(|e| ParamError::BadData(format!("invalid X-Scope-OrgID: {e}")))
}

/// A time in milliseconds since the Unix epoch.
pub(crate) fn parse_time(name: &'static str, text: &str) -> Result<i64, ParamError> {
    let bad = || ParamError::invalid(name, format!("cannot parse {text:?} to a valid timestamp"));
    if let Ok(seconds) = text.parse::<f64>() {
        // Beyond ±292 million years milliseconds overflow; Prometheus' own bounds are far inside that.
        if !seconds.is_finite() || seconds.abs() > 9.0e15 {
            return Err(bad());
        }
        return Ok((seconds * 1000.0).round() as i64);
    }
    DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).map_err(|_| bad())
}

/// A duration in milliseconds: Prometheus' `1h30m` form, or a number of seconds.
pub(crate) fn parse_duration(name: &'static str, text: &str) -> Result<i64, ParamError> {
    let bad = || ParamError::invalid(name, format!("cannot parse {text:?} to a valid duration"));
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() || !(0.0..=9.0e15).contains(&seconds) {
            return Err(bad());
        }
        return Ok((seconds * 1000.0).round() as i64);
    }
    let mut rest = text;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let number: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_ms: i64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = number.checked_mul(unit_ms).and_then(|ms| total.checked_add(ms)).ok_or_else(bad)?;
    }
    Ok(total)
}

/// A float parameter.
pub(crate) fn parse_float(name: &'static str, text: &str) -> Result<f64, ParamError> {
    text.parse::<f64>()
        .ok()
        .filter(|v| !v.is_nan())
        .ok_or_else(|| ParamError::invalid(name, format!("cannot parse {text:?} to a valid float")))
}

/// A count between 1 and `max`.
pub(crate) fn parse_limit(name: &'static str, text: &str, max: usize) -> Result<usize, ParamError> {
    text.parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| ParamError::invalid(name, format!("must be a whole number from 1 to {max}, got {text:?}")))
}

/// Milliseconds since the epoch as RFC 3339 in UTC, with milliseconds.
pub(crate) fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn times_as_prometheus_reads_them() {
        assert_eq!(parse_time("start", "1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("start", "1700000000.123").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_time("start", "2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("start", "2023-11-14T23:13:20.5+01:00").unwrap(), 1_700_000_000_500);
        let e = parse_time("end", "yesterday").unwrap_err();
        assert_eq!(e.to_string(), r#"invalid parameter "end": cannot parse "yesterday" to a valid timestamp"#);
        assert!(parse_time("start", "NaN").is_err());
        assert!(parse_time("start", "1e300").is_err());
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn durations_as_prometheus_reads_them() {
        assert_eq!(parse_duration("horizon", "24h").unwrap(), 86_400_000);
        assert_eq!(parse_duration("horizon", "1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_duration("step", "300").unwrap(), 300_000);
        assert_eq!(parse_duration("step", "1.5").unwrap(), 1500);
        assert_eq!(parse_duration("step", "2w").unwrap(), 14 * 86_400_000);
        assert_eq!(parse_duration("step", "250ms").unwrap(), 250);
        for bad in ["", "h", "5x", "1.5h", "-5m", "-1", "99999999999999999y"] {
            let e = parse_duration("step", bad).unwrap_err().to_string();
            assert!(e.starts_with(r#"invalid parameter "step": cannot parse"#), "{bad}: {e}");
        }
    }

    #[test]
    fn floats_and_limits() {
        assert_eq!(parse_float("min_score", "1.5").unwrap(), 1.5);
        assert!(parse_float("min_score", "high").unwrap_err().to_string().contains("min_score"));
        assert_eq!(parse_limit("limit", "10", 100).unwrap(), 10);
        assert!(parse_limit("limit", "0", 100).is_err());
        assert!(parse_limit("limit", "101", 100).is_err());
    }
}

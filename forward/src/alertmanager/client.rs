//! How a request to Alertmanager looks: its headers and how its answers are read. Sending and retrying are
//! shared ([`crate::send`]); the tenant goes into `X-Scope-OrgID` there, as for every forwarder (Mimir's and
//! Cortex's Alertmanagers read it; a plain Alertmanager ignores it).
//!
//! Alertmanager (0.25, `api/v2`) answers:
//! - 200: every alert taken;
//! - 400 with a JSON *string* body, `"<error>; <error>"`: one error per invalid alert (no labels, a bad
//!   label name, `startsAt` after `endsAt`); the valid alerts of the same request *were* taken;
//! - 400 with a JSON *object* body (`{"code":400,"message":"parsing alerts body … failed"}`) and 422 (schema
//!   validation, e.g. an alert without `labels`): nothing taken;
//! - 500 when it cannot store alerts; 429 or 5xx from a proxy in front of it.

use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::retry::{SendOutcome, body_excerpt, classify_remote_write};

/// The same for every request.
pub(super) fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers
}

/// Between the number of invalid alerts and Alertmanager's message in a partial refusal's message.
const INVALID: &str = " of the alerts are invalid: ";

/// 2xx delivered; 400 and 422 refused for good (409 and 415 too, as for remote write); anything else — 429,
/// 5xx, other 4xx that usually mean a misconfigured URL — retried with backoff honouring `Retry-After`. A
/// 400 that lists per-alert errors becomes `"<n> of the alerts are invalid: <message>"`, which
/// [`invalid_alerts`] reads back.
pub(super) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> SendOutcome {
    match status.as_u16() {
        400 if body.first() == Some(&b'"') => {
            // Decoded, so Go's quoted label names (`invalid name "a; b"`) are told apart from separators; an
            // answer cut short by the read limit is counted on its raw text.
            let text = serde_json::from_slice::<String>(body).unwrap_or_else(|_| String::from_utf8_lossy(body).into());
            let message = format!("{}{INVALID}{}", count_errors(&text), body_excerpt(text.as_bytes()));
            SendOutcome::Rejected { status: 400, message }
        }
        422 => SendOutcome::Rejected { status: 422, message: body_excerpt(body) },
        _ => classify_remote_write(status, headers, body),
    }
}

/// Of a refused request, how many alerts Alertmanager refused: `Some(n)` when it took the others, `None`
/// when it took none (or the request never reached it).
pub(super) fn invalid_alerts(message: &str) -> Option<u64> {
    message.split_once(INVALID)?.0.parse().ok()
}

/// Errors in Alertmanager's `MultiError` text: joined by `"; "`, which may also appear inside a quoted label
/// name.
fn count_errors(text: &str) -> u64 {
    let (mut n, mut quoted, mut escaped) = (1, false, false);
    let bytes = text.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else if c == b'"' {
            quoted = true;
        } else if c == b';' && bytes.get(i + 1) == Some(&b' ') {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn outcome(status: u16, body: &str) -> SendOutcome {
        classify(StatusCode::from_u16(status).unwrap(), &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn alertmanager_answers_are_classified() {
        assert_eq!(outcome(200, ""), SendOutcome::Delivered);
        // Alertmanager 0.25's answer to one alert without labels and one with a bad label name.
        let two = r#""at least one label pair required; invalid label set: invalid name \"a; b\"""#;
        let SendOutcome::Rejected { status: 400, message } = outcome(400, two) else { panic!("{two}") };
        assert_eq!(invalid_alerts(&message), Some(2), "{message}");
        assert!(message.contains("at least one label pair required"), "{message}");
        let whole = r#"{"code":400,"message":"parsing alerts body from \"\" failed"}"#;
        let SendOutcome::Rejected { status: 400, message } = outcome(400, whole) else { panic!("{whole}") };
        assert_eq!(invalid_alerts(&message), None, "nothing was taken: {message}");
        let schema = r#"{"code":602,"message":"0.labels in body is required"}"#;
        assert!(
            matches!(outcome(422, schema), SendOutcome::Rejected { status: 422, message } if invalid_alerts(&message).is_none())
        );
        for retried in [404, 429, 500, 502, 503] {
            assert!(matches!(outcome(retried, "busy"), SendOutcome::Retry { .. }), "{retried}");
        }
        assert_eq!(invalid_alerts("the tenant makes no valid URL"), None);
    }
}

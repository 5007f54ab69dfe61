//! How a push to Loki looks: its headers and how its answers are read. Sending and retrying are shared
//! ([`crate::send`]); the tenant goes into `X-Scope-OrgID` there.

use http::{HeaderMap, HeaderValue, header};

use crate::retry::classify_remote_write;
use crate::send::Classify;

/// Loki's rejections (bad labels, too old, line too long) are 400, its throttling 429, its overload 5xx:
/// the remote-write classification fits.
pub(super) const CLASSIFY: Classify = classify_remote_write;

/// The same for every push. No `Content-Encoding`: a Loki protobuf body is snappy by definition (Promtail
/// sends none either).
pub(super) fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    headers
}

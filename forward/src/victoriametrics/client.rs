//! How a request to a remote-write receiver looks: its headers and how its answers are read. Sending and
//! retrying are shared ([`crate::send`]).

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::retry::classify_remote_write;
use crate::send::Classify;

/// Remote write 1.0 rules: 400, 409 and 415 dropped, everything else retried.
pub(super) const CLASSIFY: Classify = classify_remote_write;

/// The same for every request: snappy-compressed protobuf, remote write 1.0.
pub(super) fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("snappy"));
    headers.insert(HeaderName::from_static("x-prometheus-remote-write-version"), HeaderValue::from_static("0.1.0"));
    headers
}

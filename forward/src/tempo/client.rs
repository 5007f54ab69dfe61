//! How a request to an OTLP/HTTP traces receiver looks: its headers and how its answers are read. Sending
//! and retrying are shared ([`crate::send`]); the tenant goes into `X-Scope-OrgID` there.

use http::{HeaderMap, HeaderValue, header};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use crate::retry::classify_otlp;
use crate::send::Classify;

/// OTLP/HTTP rules: only 429, 502, 503 and 504 retried.
pub(super) const CLASSIFY: Classify = classify_otlp;

/// The same for every request: protobuf, uncompressed.
pub(super) fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
    headers
}

/// The `partial_success` of a delivered request's protobuf `ExportTraceServiceResponse`: rejected spans
/// and the receiver's message. An empty or foreign body (some receivers answer 200 with nothing, or JSON)
/// means full success.
pub(super) fn partial_success(answer: &[u8]) -> (u64, String) {
    let Some(p) = ExportTraceServiceResponse::decode(answer).ok().and_then(|r| r.partial_success) else {
        return (0, String::new());
    };
    (u64::try_from(p.rejected_spans).unwrap_or(0), p.error_message)
}

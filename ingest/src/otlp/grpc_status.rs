//! Malformed gRPC messages answer `INVALID_ARGUMENT`, as the OTLP spec asks.
//!
//! tonic's prost codec reports a message it cannot decode as `INTERNAL` (it follows gRPC's general status
//! table), before any service code runs. The OTLP spec names `INVALID_ARGUMENT` for bad data; clients treat
//! both as permanent, but `INTERNAL` reads as a server bug in dashboards and logs. Rewriting the answer is
//! the only hook: the codec is fixed by the services generated in `opentelemetry-proto`.

use axum::Router;
use axum::middleware::map_response;
use axum::response::Response;
use http::HeaderValue;

/// prost's `DecodeError` display, which tonic sends as the `grpc-message` (percent-encoded).
const DECODE_ERROR_PREFIX: &str = "failed%20to%20decode%20Protobuf%20message";

/// Wraps the gRPC router so that decode failures answer `INVALID_ARGUMENT` (3) instead of `INTERNAL` (13).
pub fn decode_errors_as_invalid_argument(router: Router) -> Router {
    router.layer(map_response(rewrite))
}

async fn rewrite(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let internal = headers.get("grpc-status").is_some_and(|s| s == "13");
    let decode =
        headers.get("grpc-message").and_then(|m| m.to_str().ok()).is_some_and(|m| m.starts_with(DECODE_ERROR_PREFIX));
    if internal && decode {
        headers.insert("grpc-status", HeaderValue::from_static("3"));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::buffer::{BufferConfig, SpansBuffer};
    use crate::otlp::traces::{OtlpTracesState, traces_service};

    fn grpc_request(message: &[u8]) -> Request<Body> {
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
        framed.extend_from_slice(message);
        Request::builder()
            .method("POST")
            .uri("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Body::from(framed))
            .unwrap()
    }

    #[tokio::test]
    async fn a_message_that_does_not_decode_is_invalid_argument() {
        let state = Arc::new(OtlpTracesState {
            default_tenant: "anonymous".into(),
            limits: crate::limits::IngestLimits::default(),
            spans: SpansBuffer::new(BufferConfig::default()),
            metrics: crate::telemetry::IngestMetrics::new(&mut prometheus_client::registry::Registry::default()),
            retry_after_seconds: 1,
            wal: None,
        });
        let plain = tonic::service::Routes::new(traces_service(state)).into_axum_router();
        let router = decode_errors_as_invalid_argument(plain.clone());
        // Field 1 (resource_spans) as a length-delimited field whose length runs past the end.
        let garbage = [0x0a, 0x7f, 0x01];
        let answer = plain.oneshot(grpc_request(&garbage)).await.unwrap();
        assert_eq!(answer.headers().get("grpc-status").unwrap(), "13", "tonic alone says INTERNAL");
        let answer = router.clone().oneshot(grpc_request(&garbage)).await.unwrap();
        assert_eq!(answer.headers().get("grpc-status").unwrap(), "3", "{:?}", answer.headers());
        // A valid empty request is still answered OK.
        let answer = router.oneshot(grpc_request(&[])).await.unwrap();
        let status = answer.headers().get("grpc-status").map(|s| s.to_str().unwrap().to_owned());
        assert!(status.is_none() || status.as_deref() == Some("0"), "{status:?}");
    }
}

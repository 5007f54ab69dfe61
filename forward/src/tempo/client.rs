//! Sending one encoded request to an OTLP/HTTP receiver, with retries in place until it answers for good.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use crate::http::HttpClient;
use crate::retry::{Backoff, SendOutcome, classify_otlp};

/// The final fate of a request after retries.
pub(super) enum Fate {
    /// 2xx. `rejected` and `message` come from the answer's `partial_success`, when it has one.
    Delivered {
        took: Duration,
        rejected: u64,
        message: String,
    },
    Rejected {
        status: u16,
        message: String,
    },
}

/// One attempt: POST the protobuf body for `tenant`, read at most 64 KiB of the answer, classify.
async fn post_once(
    client: &HttpClient,
    uri: &Uri,
    tenant: &HeaderValue,
    body: Bytes,
    timeout: Duration,
) -> (SendOutcome, Option<(u64, String)>) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header(header::USER_AGENT, concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .header("X-Scope-OrgID", tenant)
        .body(Full::new(body));
    let request = match request {
        Ok(r) => r,
        Err(e) => return (SendOutcome::Rejected { status: 0, message: format!("building request: {e}") }, None),
    };
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("connection: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, 64 * 1024).collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        Ok::<_, String>((parts, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok((parts, body))) => {
            let outcome = classify_otlp(parts.status, &parts.headers, &body);
            let partial = (outcome == SendOutcome::Delivered).then(|| partial_success(&body)).flatten();
            (outcome, partial)
        }
        Ok(Err(reason)) => (SendOutcome::Retry { reason, after: None }, None),
        Err(_) => (SendOutcome::Retry { reason: format!("no answer within {timeout:?}"), after: None }, None),
    }
}

/// The `partial_success` of a protobuf `ExportTraceServiceResponse`. An empty or foreign body (some
/// receivers answer 200 with nothing, or JSON) means full success.
fn partial_success(body: &[u8]) -> Option<(u64, String)> {
    let p = ExportTraceServiceResponse::decode(body).ok()?.partial_success?;
    Some((u64::try_from(p.rejected_spans).unwrap_or(0), p.error_message))
}

/// Sends until delivered or rejected for good. `on_retry` is told about each failed attempt.
pub(super) async fn send_with_retries(
    client: &HttpClient,
    uri: &Uri,
    tenant: &HeaderValue,
    body: Bytes,
    timeout: Duration,
    backoff: &mut Backoff,
    mut on_retry: impl FnMut(&str, Duration),
) -> Fate {
    backoff.reset();
    loop {
        let started = Instant::now();
        match post_once(client, uri, tenant, body.clone(), timeout).await {
            (SendOutcome::Delivered, partial) => {
                let (rejected, message) = partial.unwrap_or_default();
                return Fate::Delivered { took: started.elapsed(), rejected, message };
            }
            (SendOutcome::Rejected { status, message }, _) => return Fate::Rejected { status, message },
            (SendOutcome::Retry { reason, after }, _) => {
                let wait = backoff.next_delay(after);
                on_retry(&reason, wait);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

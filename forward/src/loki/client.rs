//! Sending one encoded push, with retries in place until Loki answers for good.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};

use crate::http::HttpClient;
use crate::retry::{Backoff, SendOutcome, classify_remote_write};

/// One attempt: POST the snappy body for `tenant`, read at most 64 KiB of the answer, classify. No
/// `Content-Encoding`: a Loki protobuf body is snappy by definition (Promtail sends none either).
async fn post_once(client: &HttpClient, uri: &Uri, tenant: &str, body: Bytes, timeout: Duration) -> SendOutcome {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header(header::USER_AGENT, concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .header("X-Scope-OrgID", tenant)
        .body(Full::new(body));
    let request = match request {
        Ok(r) => r,
        Err(e) => return SendOutcome::Rejected { status: 0, message: format!("building request: {e}") },
    };
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("connection: {e}"))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, 64 * 1024).collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        Ok::<_, String>((parts, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        // Loki's rejections (bad labels, too old, line too long) are 400, its throttling 429, its overload
        // 5xx: the remote-write classification fits.
        Ok(Ok((parts, body))) => classify_remote_write(parts.status, &parts.headers, &body),
        Ok(Err(reason)) => SendOutcome::Retry { reason, after: None },
        Err(_) => SendOutcome::Retry { reason: format!("no answer within {timeout:?}"), after: None },
    }
}

/// The final fate of a request after retries.
pub(super) enum Fate {
    Delivered { took: Duration },
    Rejected { status: u16, message: String },
}

/// Sends until delivered or rejected for good. `on_retry` is told about each failed attempt.
pub(super) async fn send_with_retries(
    client: &HttpClient,
    uri: &Uri,
    tenant: &str,
    body: Bytes,
    timeout: Duration,
    backoff: &mut Backoff,
    mut on_retry: impl FnMut(&str, Duration),
) -> Fate {
    backoff.reset();
    loop {
        let started = Instant::now();
        match post_once(client, uri, tenant, body.clone(), timeout).await {
            SendOutcome::Delivered => return Fate::Delivered { took: started.elapsed() },
            SendOutcome::Rejected { status, message } => return Fate::Rejected { status, message },
            SendOutcome::Retry { reason, after } => {
                let wait = backoff.next_delay(after);
                on_retry(&reason, wait);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

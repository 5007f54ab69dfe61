//! Sending one encoded request body to a backend, retrying in place until it answers for good.
//!
//! Every forwarder POSTs the same way: its headers plus `User-Agent` (and `X-Scope-OrgID` for a tenant),
//! a per-attempt timeout, at most [`MAX_ANSWER_BYTES`] of the answer read, the answer classified by the
//! backend's rules ([`crate::retry::classify_remote_write`] or [`crate::retry::classify_otlp`]), and
//! retries with [`Backoff`] until the answer is "delivered" or "rejected". The `requests` counter (by
//! outcome) and the request duration are kept here; what a request carried (samples, lines, spans) is
//! counted by the backend, which alone knows.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};

use crate::http::HttpClient;
use crate::redact_url;
use crate::retry::{Backoff, BackoffConfig, SendOutcome};
use crate::telemetry::{BackendLabels, ForwardMetrics, OutcomeLabels};

/// How a backend's answer is read: status, headers and the start of the body into a [`SendOutcome`].
pub(crate) type Classify = fn(StatusCode, &HeaderMap, &[u8]) -> SendOutcome;

/// The tenant header of Grafana's multi-tenant backends (Loki, Tempo, Mimir).
pub(crate) const SCOPE_ORG_ID: HeaderName = HeaderName::from_static("x-scope-orgid");

/// Most of an answer that is read: backends put their reason in the first few hundred bytes, and a bound
/// keeps a misbehaving backend from making a worker buffer an arbitrarily large body.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The final fate of a request after retries.
#[derive(Debug)]
pub(crate) enum Fate {
    /// 2xx. `answer` is the body read, for backends that report partial success in it.
    Delivered {
        answer: Bytes,
    },
    Rejected {
        status: u16,
        message: String,
    },
}

/// A way to one destination: the pooled client, the URI, the timeout and backoff state. Each worker gets
/// its own clone, so one worker's retries never delay another's.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    client: HttpClient,
    uri: Uri,
    timeout: Duration,
    classify: Classify,
    backoff: Backoff,
    metrics: ForwardMetrics,
    labels: BackendLabels,
}

impl Sender {
    /// `backend` names the backend kind in metric labels and logs.
    pub(crate) fn new(
        backend: &'static str,
        client: HttpClient,
        uri: Uri,
        timeout: Duration,
        backoff: BackoffConfig,
        classify: Classify,
        metrics: ForwardMetrics,
    ) -> Self {
        let labels = BackendLabels { backend, url: redact_url(&uri) };
        Self { client, uri, timeout, classify, backoff: Backoff::new(backoff), metrics, labels }
    }

    /// Backend kind and redacted URL, the labels of every counter of this destination.
    pub(crate) fn labels(&self) -> &BackendLabels {
        &self.labels
    }

    pub(crate) fn metrics(&self) -> &ForwardMetrics {
        &self.metrics
    }

    /// Counts rows (samples, lines, spans) the backend took.
    pub(crate) fn count_delivered(&self, rows: u64) {
        self.metrics.samples.get_or_create(&self.labels).inc_by(rows);
    }

    /// Counts rows that will never reach the backend.
    pub(crate) fn count_dropped(&self, rows: u64) {
        self.metrics.dropped_samples.get_or_create(&self.labels).inc_by(rows);
    }

    fn count_request(&self, outcome: &'static str) {
        let labels = OutcomeLabels { backend: self.labels.backend, url: self.labels.url.clone(), outcome };
        self.metrics.requests.get_or_create(&labels).inc();
    }

    /// Sends until delivered or rejected for good, counting every attempt's outcome and timing the
    /// delivering attempt. `tenant`, when given, goes into `X-Scope-OrgID`; a tenant that is not a valid
    /// header value makes the request unbuildable, which counts as rejected (retrying cannot fix it).
    pub(crate) async fn send(&mut self, headers: &HeaderMap, tenant: Option<&str>, body: Bytes) -> Fate {
        let uri = self.uri.clone();
        self.send_to(&uri, headers, tenant, body).await
    }

    /// [`Sender::send`] to another URI of the same destination (a per-tenant URL), counted as this one.
    pub(crate) async fn send_to(&mut self, uri: &Uri, headers: &HeaderMap, tenant: Option<&str>, body: Bytes) -> Fate {
        self.backoff.reset();
        loop {
            let started = Instant::now();
            match self.post_once(uri, headers, tenant, body.clone()).await {
                (SendOutcome::Delivered, answer) => {
                    self.count_request("delivered");
                    self.metrics.duration.get_or_create(&self.labels).observe(started.elapsed().as_secs_f64());
                    return Fate::Delivered { answer };
                }
                (SendOutcome::Rejected { status, message }, _) => {
                    self.count_request("rejected");
                    return Fate::Rejected { status, message };
                }
                (SendOutcome::Retry { reason, after }, _) => {
                    let wait = self.backoff.next_delay(after);
                    self.count_request("retry");
                    tracing::warn!(
                        backend = self.labels.backend,
                        url = %self.labels.url,
                        tenant,
                        reason,
                        wait_ms = wait.as_millis() as u64,
                        "Backend did not take the request; retrying."
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One attempt: POST, read at most [`MAX_ANSWER_BYTES`] of the answer, classify. The answer's body
    /// comes back with the outcome.
    async fn post_once(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        tenant: Option<&str>,
        body: Bytes,
    ) -> (SendOutcome, Bytes) {
        let mut builder = Request::builder().method(Method::POST).uri(uri.clone());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder = builder.header(header::USER_AGENT, concat!("vigil/", env!("CARGO_PKG_VERSION")));
        if let Some(tenant) = tenant {
            builder = builder.header(SCOPE_ORG_ID, tenant);
        }
        let request = match builder.body(Full::new(body)) {
            Ok(r) => r,
            Err(e) => {
                return (SendOutcome::Rejected { status: 0, message: format!("building request: {e}") }, Bytes::new());
            }
        };
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| format!("connection: {e}"))?;
            let (parts, body) = response.into_parts();
            // A body cut off or broken mid-way still has a status worth classifying; its text is only a reason.
            let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await.map(|c| c.to_bytes()).unwrap_or_default();
            Ok::<_, String>((parts, body))
        };
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok((parts, body))) => ((self.classify)(parts.status, &parts.headers, &body), body),
            Ok(Err(reason)) => (SendOutcome::Retry { reason, after: None }, Bytes::new()),
            Err(_) => {
                (SendOutcome::Retry { reason: format!("no answer within {timeout:?}"), after: None }, Bytes::new())
            }
        }
    }
}

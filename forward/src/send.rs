//! Sending one encoded request body to a backend, retrying in place until it answers for good.
//!
//! Every forwarder POSTs the same way: its headers plus `User-Agent` (and `X-Scope-OrgID` for a tenant),
//! a per-attempt timeout, at most [`MAX_ANSWER_BYTES`] of the answer read, the answer classified by the
//! backend's rules ([`crate::retry::classify_remote_write`] or [`crate::retry::classify_otlp`]), and
//! retries with [`Backoff`] until the answer is "delivered" or "rejected". The `requests` counter (by
//! outcome) and the request duration are kept here; what a request carried (samples, lines, spans) is
//! counted by the backend, which alone knows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};

use crate::breaker::{BreakerConfig, BreakerState, TargetHealth};
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

/// Replaced by the tenant in a destination URL.
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenant}";

/// One URL of a destination, with its own circuit breaker. A URL may hold `{tenant}`, replaced by each
/// request's tenant (one URL per tenant, e.g. VictoriaMetrics cluster's `/insert/{tenant}/...`).
#[derive(Debug, Clone)]
pub struct Target {
    uri: Uri,
    template: Option<String>,
    labels: BackendLabels,
    pub health: Arc<TargetHealth>,
}

impl Target {
    /// `uri` is `url` as the backend's config validated it.
    pub(crate) fn new(backend: &'static str, url: &str, uri: Uri, breaker: &BreakerConfig) -> Self {
        let labels = BackendLabels { backend, url: redact_url(&uri) };
        let health = Arc::new(TargetHealth::new(labels.url.clone(), breaker.clone()));
        Self { uri, template: url.contains(TENANT_PLACEHOLDER).then(|| url.to_owned()), labels, health }
    }
}

/// The way to one destination: its URLs in order of preference (one, or a primary and standbys), the
/// pooled client, timeout and backoff state. Each worker gets its own, so one worker's retries never delay
/// another's.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    client: HttpClient,
    targets: Vec<Target>,
    /// Per-tenant URIs of templated targets (`None`: the tenant makes no valid URL).
    uris: HashMap<(usize, String), Option<Uri>>,
    timeout: Duration,
    classify: Classify,
    backoff: Backoff,
    metrics: ForwardMetrics,
}

impl Sender {
    /// `targets` is never empty (the first is the primary).
    pub(crate) fn new(
        client: HttpClient,
        targets: Vec<Target>,
        timeout: Duration,
        backoff: BackoffConfig,
        classify: Classify,
        metrics: ForwardMetrics,
    ) -> Self {
        Self { client, targets, uris: HashMap::new(), timeout, classify, backoff: Backoff::new(backoff), metrics }
    }

    /// Backend kind and redacted URL of the primary: the labels rows (samples, lines, spans) are counted
    /// under, whichever URL took them.
    pub(crate) fn labels(&self) -> &BackendLabels {
        &self.targets[0].labels
    }

    pub(crate) fn metrics(&self) -> &ForwardMetrics {
        &self.metrics
    }

    pub(crate) fn health(&self) -> Vec<Arc<TargetHealth>> {
        self.targets.iter().map(|t| Arc::clone(&t.health)).collect()
    }

    /// Counts rows (samples, lines, spans) the backend took.
    pub(crate) fn count_delivered(&self, rows: u64) {
        self.metrics.samples.get_or_create(self.labels()).inc_by(rows);
    }

    /// Counts rows that will never reach the backend.
    pub(crate) fn count_dropped(&self, rows: u64) {
        self.metrics.dropped_samples.get_or_create(self.labels()).inc_by(rows);
    }

    /// Counts an attempt's outcome and shows the URL's breaker state after it.
    fn count_request(&self, target: usize, outcome: &'static str) {
        let t = &self.targets[target];
        let labels = OutcomeLabels { backend: t.labels.backend, url: t.labels.url.clone(), outcome };
        self.metrics.requests.get_or_create(&labels).inc();
        let state = match t.health.state() {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        };
        self.metrics.breaker_state.get_or_create(&t.labels).set(state);
    }

    /// The first URL whose breaker lets a request through, or how long until one does.
    fn pick(&self) -> Result<usize, Duration> {
        let mut soonest = Duration::MAX;
        for (i, t) in self.targets.iter().enumerate() {
            match t.health.wait_before_send() {
                None => return Ok(i),
                Some(wait) => soonest = soonest.min(wait),
            }
        }
        Err(soonest)
    }

    /// Target `i`'s URI for `tenant`.
    fn uri(&mut self, i: usize, tenant: Option<&str>) -> Option<Uri> {
        let t = &self.targets[i];
        match (&t.template, tenant) {
            (Some(template), Some(tenant)) => self
                .uris
                .entry((i, tenant.to_owned()))
                .or_insert_with(|| template.replace(TENANT_PLACEHOLDER, tenant).parse().ok())
                .clone(),
            _ => Some(t.uri.clone()),
        }
    }

    /// Sends until delivered or rejected for good, counting every attempt's outcome and timing the
    /// delivering attempt. Each attempt goes to the first URL whose breaker is not open (the primary while
    /// it is healthy); with every breaker open it waits for the first probe. `tenant`, when given, goes
    /// into `X-Scope-OrgID`; a tenant that is not a valid header value (or makes no valid URL) makes the
    /// request unbuildable, which counts as rejected (retrying cannot fix it).
    pub(crate) async fn send(&mut self, headers: &HeaderMap, tenant: Option<&str>, body: Bytes) -> Fate {
        self.backoff.reset();
        loop {
            let i = match self.pick() {
                Ok(i) => i,
                Err(wait) => {
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            let Some(uri) = self.uri(i, tenant) else {
                let message = "the tenant makes no valid URL".to_owned();
                self.targets[i].health.rejected(message.clone());
                return Fate::Rejected { status: 0, message };
            };
            let started = Instant::now();
            match self.post_once(&uri, headers, tenant, body.clone()).await {
                (SendOutcome::Delivered, answer) => {
                    self.targets[i].health.delivered();
                    self.count_request(i, "delivered");
                    let labels = &self.targets[i].labels;
                    self.metrics.duration.get_or_create(labels).observe(started.elapsed().as_secs_f64());
                    return Fate::Delivered { answer };
                }
                (SendOutcome::Rejected { status, message }, _) => {
                    self.targets[i].health.rejected(format!("HTTP {status}: {message}"));
                    self.count_request(i, "rejected");
                    return Fate::Rejected { status, message };
                }
                (SendOutcome::Retry { reason, after }, _) => {
                    let opened = self.targets[i].health.failed(reason.clone());
                    self.count_request(i, "retry");
                    let url = &self.targets[i].labels.url;
                    if opened && self.targets.len() > 1 {
                        // Failover: the next attempt goes to a standby right away.
                        tracing::warn!(url = %url, reason, "Backend breaker opened; sending to the next URL.");
                        continue;
                    }
                    let wait = self.backoff.next_delay(after);
                    tracing::warn!(
                        backend = self.targets[i].labels.backend,
                        url = %url,
                        tenant,
                        reason,
                        wait_ms = wait.as_millis() as u64,
                        breaker_open = opened,
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

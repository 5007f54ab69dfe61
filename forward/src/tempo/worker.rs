//! The per-shard loop: read sealed span batches, build one request per tenant, deliver, commit.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Uri};
use tokio::time::Instant;
use vigil_ingest::buffer::spans::{SealedSpans, SpansOpen};
use vigil_ingest::buffer::{SpansBuffer, SubscriptionMode, TableNext, TableSubscription};

use super::client::{Fate, send_with_retries};
use super::config::TempoConfig;
use super::encode::{Columns, TenantRequest};
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::redact_url;
use crate::retry::Backoff;
use crate::telemetry::{BackendLabels, ForwardMetrics, OutcomeLabels};

const BACKEND: &str = "tempo";

/// Starts one worker per spans-buffer shard. Subscriptions are taken before this returns, so every batch
/// sealed afterwards reaches this destination. The `samples` counters count spans.
pub fn spawn(
    config: &TempoConfig,
    uri: Uri,
    buffer: &Arc<SpansBuffer>,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let url = redact_url(&uri);
    let tasks = (0..buffer.shard_count())
        .map(|shard| {
            let worker = Worker {
                sub: buffer.subscribe(shard, SubscriptionMode::Lossless),
                client: client.clone(),
                uri: uri.clone(),
                config: config.clone(),
                metrics: metrics.clone(),
                labels: BackendLabels { backend: BACKEND, url: url.clone() },
                backoff: Backoff::new(config.backoff.clone()),
                pending: Vec::new(),
                pending_rows: 0,
                raw: Vec::new(),
            };
            tokio::spawn(worker.run())
        })
        .collect();
    ForwarderHandle::new(url, tasks)
}

struct Worker {
    sub: TableSubscription<SpansOpen>,
    client: HttpClient,
    uri: Uri,
    config: TempoConfig,
    metrics: ForwardMetrics,
    labels: BackendLabels,
    backoff: Backoff,
    pending: Vec<Arc<SealedSpans>>,
    pending_rows: usize,
    /// Reused for every request's protobuf.
    raw: Vec<u8>,
}

impl Worker {
    async fn run(mut self) {
        let mut deadline: Option<Instant> = None;
        loop {
            let next = match deadline {
                Some(d) => tokio::select! {
                    n = self.sub.next() => Some(n),
                    () = tokio::time::sleep_until(d) => None,
                },
                None => Some(self.sub.next().await),
            };
            match next {
                None => {
                    self.flush().await;
                    deadline = None;
                }
                Some(TableNext::Batch(batch)) => {
                    self.pending_rows += batch.spans.num_rows();
                    self.pending.push(batch);
                    if self.pending_rows >= self.config.max_spans_per_request {
                        self.flush().await;
                        deadline = None;
                    } else if deadline.is_none() {
                        deadline = Some(Instant::now() + self.config.flush_interval);
                    }
                }
                Some(TableNext::Lagged(n)) => {
                    tracing::error!(url = %self.labels.url, batches = n, "Tempo forwarder was overtaken by eviction; this is a bug.");
                }
                Some(TableNext::Closed) => {
                    self.flush().await;
                    return;
                }
            }
        }
    }

    /// Sends everything pending — per tenant, in requests of at most `max_spans_per_request` spans — then
    /// commits.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batches = std::mem::take(&mut self.pending);
        let max = self.config.max_spans_per_request;
        // Tenants in order of first appearance; a handful per shard, so a linear search is enough.
        let mut tenants: Vec<(&str, TenantRequest<'_>)> = Vec::new();
        for batch in &batches {
            let Some(cols) = Columns::of(&batch.spans) else {
                tracing::error!(url = %self.labels.url, "A spans batch has an unexpected schema; its spans are not forwarded. This is a bug.");
                self.metrics.dropped_samples.get_or_create(&self.labels).inc_by(batch.spans.num_rows() as u64);
                continue;
            };
            for row in 0..batch.spans.num_rows() {
                let tenant = cols.tenant(row);
                let i = match tenants.iter().position(|(t, _)| *t == tenant) {
                    Some(i) => i,
                    None => {
                        tenants.push((tenant, TenantRequest::default()));
                        tenants.len() - 1
                    }
                };
                tenants[i].1.push(cols.resource_scope(row), cols.span(row));
                if tenants[i].1.spans() >= max {
                    let full = std::mem::take(&mut tenants[i].1);
                    self.send(tenant, &full).await;
                }
            }
        }
        for (tenant, request) in &tenants {
            if request.spans() > 0 {
                self.send(tenant, request).await;
            }
        }
        self.pending_rows = 0;
        self.sub.commit();
    }

    /// Encodes and delivers one tenant's request, retrying until the backend answers for good.
    async fn send(&mut self, tenant: &str, request: &TenantRequest<'_>) {
        let m = &self.metrics;
        let skipped = request.encode(&mut self.raw);
        if skipped > 0 {
            tracing::error!(url = %self.labels.url, spans = skipped, "Spans with undecodable resource bytes were not forwarded; this is a bug.");
            m.dropped_samples.get_or_create(&self.labels).inc_by(skipped as u64);
        }
        let spans = (request.spans() - skipped) as u64;
        if spans == 0 {
            return;
        }
        let Ok(tenant_header) = HeaderValue::from_str(tenant) else {
            // The receivers validate tenants, so this is a bug; the spans cannot be addressed.
            tracing::error!(url = %self.labels.url, "A tenant id is not a valid header value; its spans are dropped.");
            m.dropped_samples.get_or_create(&self.labels).inc_by(spans);
            return;
        };
        let body = Bytes::copy_from_slice(&self.raw);
        let url = &self.labels.url;
        let outcome = |outcome| OutcomeLabels { backend: BACKEND, url: url.clone(), outcome };
        let timeout = self.config.request_timeout;
        let fate = send_with_retries(&self.client, &self.uri, &tenant_header, body, timeout, &mut self.backoff, |reason, wait| {
            m.requests.get_or_create(&outcome("retry")).inc();
            tracing::warn!(url = %url, tenant, reason, wait_ms = wait.as_millis() as u64, "Tempo did not take the request; retrying.");
        })
        .await;
        match fate {
            Fate::Delivered { took, rejected, message } => {
                m.requests.get_or_create(&outcome("delivered")).inc();
                let rejected = rejected.min(spans);
                m.samples.get_or_create(&self.labels).inc_by(spans - rejected);
                m.duration.get_or_create(&self.labels).observe(took.as_secs_f64());
                if rejected > 0 || !message.is_empty() {
                    m.dropped_samples.get_or_create(&self.labels).inc_by(rejected);
                    tracing::warn!(url = %url, tenant, rejected, message, "Tempo accepted a request in part.");
                }
            }
            Fate::Rejected { status, message } => {
                m.requests.get_or_create(&outcome("rejected")).inc();
                m.dropped_samples.get_or_create(&self.labels).inc_by(spans);
                tracing::warn!(url = %url, tenant, status, message, spans, "Tempo rejected a request for good; its spans are dropped.");
            }
        }
    }
}

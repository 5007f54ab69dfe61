//! The spans flush step: build one request per tenant from sealed span batches, deliver. The per-shard
//! loop around it (gathering, flush deadline, commit) is [`crate::batching`].

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Uri};
use vigil_ingest::buffer::SpansBuffer;
use vigil_ingest::buffer::spans::SealedSpans;

use super::client::{CLASSIFY, headers, partial_success};
use super::config::TempoConfig;
use super::encode::{Columns, TenantRequest, request_for};
use crate::batching::{self, Flush, Limits};
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::send::{Fate, Sender};
use crate::telemetry::ForwardMetrics;

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
    let sender = Sender::new(BACKEND, client, uri, config.request_timeout, config.backoff.clone(), CLASSIFY, metrics);
    let limits = Limits { max_rows: config.max_spans_per_request, flush_interval: config.flush_interval };
    batching::spawn(buffer, sender.labels(), limits, || Flusher {
        sender: sender.clone(),
        max_spans_per_request: config.max_spans_per_request,
        headers: headers(),
        raw: Vec::new(),
    })
}

struct Flusher {
    sender: Sender,
    max_spans_per_request: usize,
    headers: HeaderMap,
    /// Reused for every request's protobuf.
    raw: Vec<u8>,
}

impl Flush<SealedSpans> for Flusher {
    /// Sends `batches` per tenant, in requests of at most `max_spans_per_request` spans.
    async fn flush(&mut self, batches: &[Arc<SealedSpans>]) {
        let max = self.max_spans_per_request;
        let mut tenants: Vec<(&str, TenantRequest<'_>)> = Vec::new();
        for batch in batches {
            let Some(cols) = Columns::of(&batch.spans) else {
                tracing::error!(url = %self.sender.labels().url, "A spans batch has an unexpected schema; its spans are not forwarded. This is a bug.");
                self.sender.count_dropped(batch.spans.num_rows() as u64);
                continue;
            };
            for row in 0..batch.spans.num_rows() {
                let tenant = cols.tenant(row);
                let request = request_for(&mut tenants, tenant);
                request.push(cols.resource_scope(row), cols.span(row));
                if request.spans() >= max {
                    let full = std::mem::take(request);
                    self.send(tenant, &full).await;
                }
            }
        }
        for (tenant, request) in &tenants {
            if request.spans() > 0 {
                self.send(tenant, request).await;
            }
        }
    }
}

impl Flusher {
    /// Encodes and delivers one tenant's request, retrying until the backend answers for good.
    async fn send(&mut self, tenant: &str, request: &TenantRequest<'_>) {
        let url = &self.sender.labels().url;
        let skipped = request.encode(&mut self.raw);
        if skipped > 0 {
            tracing::error!(url = %url, spans = skipped, "Spans with undecodable resource bytes were not forwarded; this is a bug.");
            self.sender.count_dropped(skipped as u64);
        }
        let spans = (request.spans() - skipped) as u64;
        if spans == 0 {
            return;
        }
        if HeaderValue::from_str(tenant).is_err() {
            // The receivers validate tenants, so this is a bug; the spans cannot be addressed. Checked here
            // rather than left to the request builder so it is not counted as a rejected request.
            tracing::error!(url = %url, "A tenant id is not a valid header value; its spans are dropped.");
            self.sender.count_dropped(spans);
            return;
        }
        let body = Bytes::copy_from_slice(&self.raw);
        match self.sender.send(&self.headers, Some(tenant), body).await {
            Fate::Delivered { answer } => {
                let (rejected, message) = partial_success(&answer);
                let rejected = rejected.min(spans);
                self.sender.count_delivered(spans - rejected);
                if rejected > 0 || !message.is_empty() {
                    self.sender.count_dropped(rejected);
                    tracing::warn!(url = %self.sender.labels().url, tenant, rejected, message, "Tempo accepted a request in part.");
                }
            }
            Fate::Rejected { status, message } => {
                self.sender.count_dropped(spans);
                tracing::warn!(url = %self.sender.labels().url, tenant, status, message, spans, "Tempo rejected a request for good; its spans are dropped.");
            }
        }
    }
}

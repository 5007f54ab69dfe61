//! The per-shard loop: read sealed log batches, group them into pushes, deliver, commit.

use std::sync::Arc;

use bytes::Bytes;
use http::Uri;
use prost::Message;
use tokio::time::Instant;
use vigil_ingest::buffer::logs::{LogsBatch, LogsOpen};
use vigil_ingest::buffer::{LogsBuffer, SubscriptionMode, TableNext, TableSubscription};

use super::client::{Fate, send_with_retries};
use super::config::LokiConfig;
use super::encode::{Columns, Grouper, TenantPush};
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::redact_url;
use crate::retry::Backoff;
use crate::telemetry::{BackendLabels, ForwardMetrics, OutcomeLabels};

const BACKEND: &str = "loki";

/// Starts one worker per logs-buffer shard. Subscriptions are taken before this returns, so every batch
/// sealed afterwards reaches this destination.
pub fn spawn(
    config: &LokiConfig,
    uri: Uri,
    buffer: &Arc<LogsBuffer>,
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
                snappy: snap::raw::Encoder::new(),
            };
            tokio::spawn(worker.run())
        })
        .collect();
    ForwarderHandle::new(url, tasks)
}

struct Worker {
    sub: TableSubscription<LogsOpen>,
    client: HttpClient,
    uri: Uri,
    config: LokiConfig,
    metrics: ForwardMetrics,
    labels: BackendLabels,
    backoff: Backoff,
    pending: Vec<Arc<LogsBatch>>,
    pending_rows: usize,
    snappy: snap::raw::Encoder,
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
                    self.pending_rows += batch.logs.num_rows();
                    self.pending.push(batch);
                    if self.pending_rows >= self.config.max_lines_per_request {
                        self.flush().await;
                        deadline = None;
                    } else if deadline.is_none() {
                        deadline = Some(Instant::now() + self.config.flush_interval);
                    }
                }
                Some(TableNext::Lagged(n)) => {
                    tracing::error!(url = %self.labels.url, batches = n, "Loki forwarder was overtaken by eviction; this is a bug.");
                }
                Some(TableNext::Closed) => {
                    self.flush().await;
                    return;
                }
            }
        }
    }

    /// Sends everything pending, in requests of at most `max_lines_per_request` lines, then commits.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batches = std::mem::take(&mut self.pending);
        let mut grouper = Grouper::new(self.config.max_lines_per_request);
        for batch in &batches {
            let Some(columns) = Columns::of(&batch.logs) else {
                tracing::error!(url = %self.labels.url, "A logs batch without the logs schema was skipped; this is a bug.");
                continue;
            };
            for row in 0..batch.logs.num_rows() {
                if let Some(push) = grouper.add(&columns, row) {
                    self.send(push).await;
                }
            }
        }
        for push in grouper.drain() {
            self.send(push).await;
        }
        self.pending_rows = 0;
        self.sub.commit();
    }

    async fn send(&mut self, push: TenantPush) {
        let raw = push.request.encode_to_vec();
        let body = match self.snappy.compress_vec(&raw) {
            Ok(c) => Bytes::from(c),
            Err(e) => {
                tracing::error!(url = %self.labels.url, error = %e, "Snappy compression failed; this is a bug.");
                return;
            }
        };
        let lines = push.lines as u64;
        let (url, metrics) = (&self.labels.url, &self.metrics);
        let outcome = |outcome| OutcomeLabels { backend: BACKEND, url: url.clone(), outcome };
        let fate = send_with_retries(&self.client, &self.uri, &push.tenant, body, self.config.request_timeout, &mut self.backoff, |reason, wait| {
            metrics.requests.get_or_create(&outcome("retry")).inc();
            tracing::warn!(url = %url, reason, wait_ms = wait.as_millis() as u64, "Loki did not take the push; retrying.");
        })
        .await;
        match fate {
            Fate::Delivered { took } => {
                metrics.requests.get_or_create(&outcome("delivered")).inc();
                metrics.samples.get_or_create(&self.labels).inc_by(lines);
                metrics.duration.get_or_create(&self.labels).observe(took.as_secs_f64());
            }
            Fate::Rejected { status, message } => {
                metrics.requests.get_or_create(&outcome("rejected")).inc();
                metrics.dropped_samples.get_or_create(&self.labels).inc_by(lines);
                tracing::warn!(url = %url, tenant = %push.tenant, status, message, lines, "Loki rejected a push for good; its lines are dropped.");
            }
        }
    }
}

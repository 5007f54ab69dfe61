//! The per-shard loop: read sealed batches, batch them into requests, deliver, commit.

use std::sync::Arc;

use bytes::Bytes;
use http::Uri;
use tokio::time::Instant;
use vigil_ingest::buffer::{MetricsBuffer, Next, SealedBatch, Subscription, SubscriptionMode};
use vigil_ingest::series::SeriesRegistry;

use super::client::{Fate, send_with_retries};
use super::config::VictoriaMetricsConfig;
use super::encode::{EncodedCounts, encode_exemplars, encode_histograms, encode_samples};
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::redact_url;
use crate::retry::Backoff;
use crate::telemetry::{BackendLabels, ForwardMetrics, OutcomeLabels};

const BACKEND: &str = "victoriametrics";

/// Starts one worker per buffer shard. Subscriptions are taken before this returns, so every batch sealed
/// afterwards reaches this destination.
pub fn spawn(
    config: &VictoriaMetricsConfig,
    uri: Uri,
    buffer: &Arc<MetricsBuffer>,
    registry: Arc<SeriesRegistry>,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let url = redact_url(&uri);
    let tasks = (0..buffer.shard_count())
        .map(|shard| {
            let worker = Worker {
                sub: buffer.subscribe(shard, SubscriptionMode::Lossless),
                registry: Arc::clone(&registry),
                client: client.clone(),
                uri: uri.clone(),
                config: config.clone(),
                metrics: metrics.clone(),
                labels: BackendLabels { backend: BACKEND, url: url.clone() },
                backoff: Backoff::new(config.backoff.clone()),
                pending: Vec::new(),
                pending_rows: 0,
                raw: Vec::new(),
                compressed: Vec::new(),
                snappy: snap::raw::Encoder::new(),
            };
            tokio::spawn(worker.run())
        })
        .collect();
    ForwarderHandle::new(url, tasks)
}

struct Worker {
    sub: Subscription,
    registry: Arc<SeriesRegistry>,
    client: HttpClient,
    uri: Uri,
    config: VictoriaMetricsConfig,
    metrics: ForwardMetrics,
    labels: BackendLabels,
    backoff: Backoff,
    pending: Vec<Arc<SealedBatch>>,
    pending_rows: usize,
    /// Reused for every request's uncompressed protobuf.
    raw: Vec<u8>,
    /// Reused for every request's snappy output: a fresh zeroed buffer per request (`compress_vec`) showed
    /// up as page faults and memset in profiles.
    compressed: Vec<u8>,
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
                Some(Next::Batch(batch)) => {
                    self.pending_rows += batch.sample_count() + batch.exemplar_count() + batch.histogram_count();
                    self.pending.push(batch);
                    if self.pending_rows >= self.config.max_samples_per_request {
                        self.flush().await;
                        deadline = None;
                    } else if deadline.is_none() {
                        deadline = Some(Instant::now() + self.config.flush_interval);
                    }
                }
                Some(Next::Lagged(n)) => {
                    tracing::error!(url = %self.labels.url, batches = n, "Forwarder was overtaken by eviction; this is a bug.");
                }
                Some(Next::Closed) => {
                    self.flush().await;
                    return;
                }
            }
        }
    }

    /// Sends everything pending, in requests of at most `max_samples_per_request` rows, then commits.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let max = self.config.max_samples_per_request;
        let batches = std::mem::take(&mut self.pending);
        let mut counts = EncodedCounts::default();
        self.raw.clear();
        for batch in &batches {
            let rows = batch.samples.num_rows();
            let mut start = 0;
            while start < rows {
                let room = max.saturating_sub((counts.samples + counts.unknown_series) as usize).max(1);
                let end = (start + room).min(rows);
                encode_samples(&batch.samples, start, end, &self.registry, &mut self.raw, &mut counts);
                start = end;
                if (counts.samples + counts.unknown_series) as usize >= max {
                    self.send(&mut counts).await;
                }
            }
            if let Some(e) = &batch.exemplars {
                encode_exemplars(e, &self.registry, &mut self.raw, &mut counts);
            }
            if let Some(h) = &batch.histograms {
                encode_histograms(h, &self.registry, &mut self.raw, &mut counts);
            }
        }
        self.send(&mut counts).await;
        self.pending_rows = 0;
        self.sub.commit();
    }

    /// Compresses and delivers what `raw` holds, then clears it.
    async fn send(&mut self, counts: &mut EncodedCounts) {
        if counts.unknown_series > 0 {
            tracing::error!(url = %self.labels.url, rows = counts.unknown_series, "Rows of unknown series were not forwarded; this is a bug.");
            self.metrics.dropped_samples.get_or_create(&self.labels).inc_by(counts.unknown_series);
        }
        if self.raw.is_empty() {
            *counts = EncodedCounts::default();
            return;
        }
        let need = snap::raw::max_compress_len(self.raw.len());
        if self.compressed.len() < need {
            self.compressed.resize(need, 0);
        }
        let body = match self.snappy.compress(&self.raw, &mut self.compressed) {
            Ok(n) => Bytes::copy_from_slice(&self.compressed[..n]),
            Err(e) => {
                tracing::error!(url = %self.labels.url, error = %e, "Snappy compression failed; this is a bug.");
                Bytes::new()
            }
        };
        self.raw.clear();
        let (url, metrics) = (&self.labels.url, &self.metrics);
        let fate = send_with_retries(&self.client, &self.uri, body, self.config.request_timeout, &mut self.backoff, |reason, wait| {
            metrics.requests.get_or_create(&OutcomeLabels { backend: BACKEND, url: url.clone(), outcome: "retry" }).inc();
            tracing::warn!(url = %url, reason, wait_ms = wait.as_millis() as u64, "Backend did not take the request; retrying.");
        })
        .await;
        match fate {
            Fate::Delivered { took } => {
                let m = &self.metrics;
                m.requests
                    .get_or_create(&OutcomeLabels { backend: BACKEND, url: url.clone(), outcome: "delivered" })
                    .inc();
                m.samples.get_or_create(&self.labels).inc_by(counts.samples);
                m.exemplars.get_or_create(&self.labels).inc_by(counts.exemplars);
                m.histograms.get_or_create(&self.labels).inc_by(counts.histograms);
                m.duration.get_or_create(&self.labels).observe(took.as_secs_f64());
            }
            Fate::Rejected { status, message } => {
                let m = &self.metrics;
                m.requests
                    .get_or_create(&OutcomeLabels { backend: BACKEND, url: url.clone(), outcome: "rejected" })
                    .inc();
                m.dropped_samples.get_or_create(&self.labels).inc_by(counts.samples + counts.histograms);
                tracing::warn!(url = %url, status, message, samples = counts.samples, "Backend rejected a request for good; its samples are dropped.");
            }
        }
        *counts = EncodedCounts::default();
    }
}

//! The metrics flush step: encode sealed batches into remote-write requests, compress, deliver. The
//! per-shard loop around it (gathering, flush deadline, commit) is [`crate::batching`].

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Uri};
use vigil_ingest::buffer::{MetricsBuffer, SealedBatch};
use vigil_ingest::series::SeriesRegistry;

use super::client::{CLASSIFY, headers};
use super::config::VictoriaMetricsConfig;
use super::encode::{EncodedCounts, encode_exemplars, encode_histograms, encode_samples};
use crate::batching::{self, Flush, Limits};
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::send::{Fate, Sender};
use crate::telemetry::ForwardMetrics;

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
    let sender = Sender::new(BACKEND, client, uri, config.request_timeout, config.backoff.clone(), CLASSIFY, metrics);
    let limits = Limits { max_rows: config.max_samples_per_request, flush_interval: config.flush_interval };
    batching::spawn(buffer, sender.labels(), limits, || Flusher {
        sender: sender.clone(),
        registry: Arc::clone(&registry),
        max_samples_per_request: config.max_samples_per_request,
        headers: headers(),
        raw: Vec::new(),
        compressed: Vec::new(),
        snappy: snap::raw::Encoder::new(),
    })
}

struct Flusher {
    sender: Sender,
    registry: Arc<SeriesRegistry>,
    max_samples_per_request: usize,
    headers: HeaderMap,
    /// Reused for every request's uncompressed protobuf.
    raw: Vec<u8>,
    /// Reused for every request's snappy output: a fresh zeroed buffer per request (`compress_vec`) showed
    /// up as page faults and memset in profiles.
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Flush<SealedBatch> for Flusher {
    /// Sends `batches` in requests of at most `max_samples_per_request` rows, splitting a batch where a
    /// request fills up.
    async fn flush(&mut self, batches: &[Arc<SealedBatch>]) {
        let max = self.max_samples_per_request;
        let mut counts = EncodedCounts::default();
        self.raw.clear();
        for batch in batches {
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
    }
}

impl Flusher {
    /// Compresses and delivers what `raw` holds, then clears it.
    async fn send(&mut self, counts: &mut EncodedCounts) {
        let url = &self.sender.labels().url;
        if counts.unknown_series > 0 {
            tracing::error!(url = %url, rows = counts.unknown_series, "Rows of unknown series were not forwarded; this is a bug.");
            self.sender.count_dropped(counts.unknown_series);
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
                tracing::error!(url = %url, error = %e, "Snappy compression failed; this is a bug.");
                Bytes::new()
            }
        };
        self.raw.clear();
        match self.sender.send(&self.headers, None, body).await {
            Fate::Delivered { .. } => {
                let (m, labels) = (self.sender.metrics(), self.sender.labels());
                m.samples.get_or_create(labels).inc_by(counts.samples);
                m.exemplars.get_or_create(labels).inc_by(counts.exemplars);
                m.histograms.get_or_create(labels).inc_by(counts.histograms);
            }
            Fate::Rejected { status, message } => {
                self.sender.count_dropped(counts.samples + counts.histograms);
                tracing::warn!(url = %self.sender.labels().url, status, message, samples = counts.samples, "Backend rejected a request for good; its samples are dropped.");
            }
        }
        *counts = EncodedCounts::default();
    }
}

//! The metrics flush step: encode sealed batches into remote-write requests, compress, deliver. The
//! per-shard loop around it (gathering, flush deadline, commit) is [`crate::batching`].

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Uri};
use vigil_ingest::buffer::{MetricsBuffer, SealedBatch};
use vigil_ingest::series::SeriesRegistry;

use super::client::{CLASSIFY, headers};
use super::config::{TENANT_PLACEHOLDER, VictoriaMetricsConfig};
use super::encode::{TenantRequest, TenantRequests, encode_exemplars, encode_histograms, encode_samples};
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
    let template = config.url.contains(TENANT_PLACEHOLDER).then(|| config.url.clone());
    batching::spawn(buffer, sender.labels(), limits, || Flusher {
        sender: sender.clone(),
        registry: Arc::clone(&registry),
        max_samples_per_request: config.max_samples_per_request,
        headers: headers(),
        template: template.clone(),
        uris: HashMap::new(),
        requests: TenantRequests::default(),
        compressed: Vec::new(),
        snappy: snap::raw::Encoder::new(),
    })
}

struct Flusher {
    sender: Sender,
    registry: Arc<SeriesRegistry>,
    max_samples_per_request: usize,
    headers: HeaderMap,
    /// The URL with `{tenant}` in it, when requests go to a URL per tenant.
    template: Option<String>,
    /// Per-tenant URLs made from `template`, by tenant index (`None`: the tenant makes no valid URL).
    uris: HashMap<u32, Option<Uri>>,
    /// Per-tenant uncompressed protobuf, reused for every request.
    requests: TenantRequests,
    /// Reused for every request's snappy output: a fresh zeroed buffer per request (`compress_vec`) showed
    /// up as page faults and memset in profiles.
    compressed: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl Flush<SealedBatch> for Flusher {
    /// Sends `batches` in requests of at most `max_samples_per_request` rows and one tenant each, splitting
    /// a batch where a request fills up.
    async fn flush(&mut self, batches: &[Arc<SealedBatch>]) {
        let max = self.max_samples_per_request;
        for batch in batches {
            let rows = batch.samples.num_rows();
            let mut start = 0;
            while start < rows {
                // No tenant's request can outgrow `max` within one chunk.
                let room = max.saturating_sub(self.requests.fullest()).max(1);
                let end = (start + room).min(rows);
                encode_samples(&batch.samples, start, end, &self.registry, &mut self.requests);
                start = end;
                self.send_where(|r| r.rows() >= max).await;
            }
            if let Some(e) = &batch.exemplars {
                encode_exemplars(e, &self.registry, &mut self.requests);
            }
            if let Some(h) = &batch.histograms {
                encode_histograms(h, &self.registry, &mut self.requests);
            }
        }
        self.send_where(|_| true).await;
    }
}

impl Flusher {
    /// Sends every tenant's request that `full` picks and holds something.
    async fn send_where(&mut self, full: impl Fn(&TenantRequest) -> bool) {
        for i in 0..self.requests.open.len() {
            let r = &self.requests.open[i];
            if (r.rows() > 0 || !r.raw.is_empty()) && full(r) {
                let mut request = std::mem::take(&mut self.requests.open[i]);
                self.send(&mut request).await;
                request.raw.clear();
                request.counts = Default::default();
                self.requests.open[i] = request;
            }
        }
    }

    /// Compresses and delivers one tenant's request.
    async fn send(&mut self, request: &mut TenantRequest) {
        let counts = request.counts;
        let url = &self.sender.labels().url;
        if counts.unknown_series > 0 {
            tracing::error!(url = %url, rows = counts.unknown_series, "Rows of unknown series were not forwarded; this is a bug.");
            self.sender.count_dropped(counts.unknown_series);
        }
        let Some(tenant) = self.registry.tenant_name(request.tenant).cloned() else { return };
        if request.raw.is_empty() {
            return;
        }
        let uri = match &self.template {
            None => None,
            Some(template) => match self
                .uris
                .entry(request.tenant)
                .or_insert_with(|| template.replace(TENANT_PLACEHOLDER, &tenant).parse().ok())
            {
                Some(uri) => Some(uri.clone()),
                None => {
                    tracing::warn!(url = %url, tenant = %tenant, samples = counts.samples, "The tenant makes no valid URL; its samples are dropped.");
                    self.sender.count_dropped(counts.samples + counts.histograms);
                    return;
                }
            },
        };
        let need = snap::raw::max_compress_len(request.raw.len());
        if self.compressed.len() < need {
            self.compressed.resize(need, 0);
        }
        let body = match self.snappy.compress(&request.raw, &mut self.compressed) {
            Ok(n) => Bytes::copy_from_slice(&self.compressed[..n]),
            Err(e) => {
                tracing::error!(url = %url, error = %e, "Snappy compression failed; this is a bug.");
                Bytes::new()
            }
        };
        let fate = match &uri {
            Some(uri) => self.sender.send_to(uri, &self.headers, Some(&tenant), body).await,
            None => self.sender.send(&self.headers, Some(&tenant), body).await,
        };
        match fate {
            Fate::Delivered { .. } => {
                let (m, labels) = (self.sender.metrics(), self.sender.labels());
                m.samples.get_or_create(labels).inc_by(counts.samples);
                m.exemplars.get_or_create(labels).inc_by(counts.exemplars);
                m.histograms.get_or_create(labels).inc_by(counts.histograms);
            }
            Fate::Rejected { status, message } => {
                self.sender.count_dropped(counts.samples + counts.histograms);
                tracing::warn!(url = %self.sender.labels().url, tenant = %tenant, status, message, samples = counts.samples, "Backend rejected a request for good; its samples are dropped.");
            }
        }
    }
}

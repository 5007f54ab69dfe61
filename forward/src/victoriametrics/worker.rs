//! The metrics deliver step: log entries (snappy remote write 1.0 bodies) → one request per tenant of at
//! most `max_samples_per_request` rows, compressed, delivered. The loop around it (reading the log,
//! flush deadline, committing the position) is [`crate::wal_loop`].
//! Entries join into per-tenant requests without decoding ([`crate::tenant_requests`]).

use bytes::Bytes;
use http::HeaderMap;
use vigil_ingest::wal::Consumer;

use super::client::{CLASSIFY, headers};
use super::config::VictoriaMetricsConfig;
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::send::{Fate, Sender, Target};
use crate::telemetry::ForwardMetrics;
use crate::tenant_requests::{TenantRequest, TenantRequests};
use crate::wal_loop::{self, Deliver, Limits};

/// Starts the worker for one destination (one URL, or a primary and its standbys in `targets`), reading the metrics log from `consumer`'s position.
pub fn spawn(
    config: &VictoriaMetricsConfig,
    targets: Vec<Target>,
    consumer: Consumer,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let sender =
        Sender::new(client, targets, config.request_timeout, config.backoff.clone(), CLASSIFY, metrics.clone());
    let limits = Limits { max_rows: config.max_samples_per_request, flush_interval: config.flush_interval };
    let labels = sender.labels().clone();
    let health = sender.health();
    let deliverer = Deliverer {
        sender,
        max_samples_per_request: config.max_samples_per_request as u64,
        headers: headers(),
        requests: TenantRequests::new(true),
    };
    wal_loop::spawn(consumer, &labels, &metrics, limits, deliverer).with_targets(health)
}

/// `samples + histograms`: what `max_samples_per_request` counts.
fn rows(counts: &[u64; 3]) -> u64 {
    counts[0] + counts[2]
}

struct Deliverer {
    sender: Sender,
    max_samples_per_request: u64,
    headers: HeaderMap,
    requests: TenantRequests,
}

impl Deliver for Deliverer {
    fn rows(counts: [u64; 3]) -> u64 {
        rows(&counts)
    }

    fn max_rows(&self) -> u64 {
        self.max_samples_per_request
    }

    fn requests(&mut self) -> &mut TenantRequests {
        &mut self.requests
    }

    fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Compresses and delivers request `i`, then empties it for reuse.
    async fn send(&mut self, i: usize) {
        let request = self.requests.take(i);
        self.send_request(&request).await;
        self.requests.put_back(i, request);
    }
}

impl Deliverer {
    async fn send_request(&mut self, request: &TenantRequest) {
        let url = &self.sender.labels().url;
        let [samples, exemplars, histograms] = request.counts;
        let body = match self.requests.compress(&request.raw) {
            Ok(c) => Bytes::copy_from_slice(c),
            Err(e) => {
                tracing::error!(url = %url, error = %e, "Snappy compression failed; this is a bug.");
                self.sender.count_dropped(rows(&request.counts));
                return;
            }
        };
        let tenant = Some(request.tenant.as_str());
        match self.sender.send(&self.headers, tenant, body).await {
            Fate::Delivered { .. } => {
                let (m, labels) = (self.sender.metrics(), self.sender.labels());
                m.samples.get_or_create(labels).inc_by(samples);
                m.exemplars.get_or_create(labels).inc_by(exemplars);
                m.histograms.get_or_create(labels).inc_by(histograms);
            }
            Fate::Rejected { status, message } => {
                self.sender.count_dropped(rows(&request.counts));
                tracing::warn!(url = %self.sender.labels().url, tenant = %request.tenant, status, message, samples, "Backend rejected a request for good; its samples are dropped.");
            }
        }
    }
}

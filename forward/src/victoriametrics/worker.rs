//! The metrics deliver step: one joined remote write 1.0 request per tenant (snappy bodies from the log, at
//! most `max_samples_per_request` samples and histograms), compressed, delivered — to `{tenant}` in the URL
//! when it has one. The loop around it (reading the log, joining records per tenant without decoding,
//! flush deadline, committing the position) is [`crate::wal_loop`].

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
use crate::wal_loop::{self, Deliver, Limits, Outbox};

/// Starts the worker for one destination (one URL, or a primary and its standbys in `targets`), reading
/// the metrics log from `consumer`'s position.
pub fn spawn(
    config: &VictoriaMetricsConfig,
    targets: Vec<Target>,
    consumer: Consumer,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let sender = Sender::new(client, targets, config.request_timeout, config.backoff.clone(), CLASSIFY, metrics);
    let limits = Limits { max_rows: config.max_samples_per_request, flush_interval: config.flush_interval };
    let out = Outbox { sender, requests: TenantRequests::new(true) };
    wal_loop::spawn(consumer, limits, out, RemoteWrite { headers: headers() })
}

struct RemoteWrite {
    headers: HeaderMap,
}

impl Deliver for RemoteWrite {
    /// Samples and histograms: what `max_samples_per_request` counts.
    fn rows(counts: [u64; 3]) -> u64 {
        counts[0] + counts[2]
    }

    async fn send(&mut self, out: &mut Outbox, request: &TenantRequest) {
        let [samples, exemplars, histograms] = request.counts;
        let body = match out.requests.compress(&request.raw) {
            Ok(c) => Bytes::copy_from_slice(c),
            Err(e) => {
                tracing::error!(url = %out.sender.labels().url, error = %e, "Snappy compression failed; this is a bug.");
                out.sender.count_dropped(Self::rows(request.counts));
                return;
            }
        };
        match out.sender.send(&self.headers, Some(request.tenant.as_str()), body).await {
            Fate::Delivered { .. } => {
                let (m, labels) = (out.sender.metrics(), out.sender.labels());
                m.samples.get_or_create(labels).inc_by(samples);
                m.exemplars.get_or_create(labels).inc_by(exemplars);
                m.histograms.get_or_create(labels).inc_by(histograms);
            }
            Fate::Rejected { status, message } => {
                out.sender.count_dropped(Self::rows(request.counts));
                tracing::warn!(url = %out.sender.labels().url, tenant = %request.tenant, status, message, samples, "Backend rejected a request for good; its samples are dropped.");
            }
        }
    }
}

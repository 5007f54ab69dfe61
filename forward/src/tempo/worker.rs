//! The spans deliver step: log entries (OTLP trace requests) → one request per tenant of at most
//! `max_spans_per_request` spans, delivered. The loop around it (reading the log, flush deadline, committing
//! the position) is [`crate::wal_loop`]; entries join without decoding ([`crate::tenant_requests`]). The
//! `samples` counters count spans.

use bytes::Bytes;
use http::HeaderMap;
use vigil_ingest::wal::Consumer;

use super::client::{CLASSIFY, headers, partial_success};
use super::config::TempoConfig;
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::send::{Fate, Sender, Target};
use crate::telemetry::ForwardMetrics;
use crate::tenant_requests::TenantRequests;
use crate::wal_loop::{self, Deliver, Limits};

/// Starts the worker for one destination (one URL, or a primary and its standbys in `targets`), reading the spans log from `consumer`'s position.
pub fn spawn(
    config: &TempoConfig,
    targets: Vec<Target>,
    consumer: Consumer,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let sender =
        Sender::new(client, targets, config.request_timeout, config.backoff.clone(), CLASSIFY, metrics.clone());
    let limits = Limits { max_rows: config.max_spans_per_request, flush_interval: config.flush_interval };
    let labels = sender.labels().clone();
    let health = sender.health();
    let deliverer = Deliverer {
        sender,
        max_spans_per_request: config.max_spans_per_request as u64,
        headers: headers(),
        requests: TenantRequests::new(false),
    };
    wal_loop::spawn(consumer, &labels, &metrics, limits, deliverer).with_targets(health)
}

struct Deliverer {
    sender: Sender,
    max_spans_per_request: u64,
    headers: HeaderMap,
    requests: TenantRequests,
}

impl Deliver for Deliverer {
    fn rows(counts: [u64; 3]) -> u64 {
        counts[0]
    }

    fn max_rows(&self) -> u64 {
        self.max_spans_per_request
    }

    fn requests(&mut self) -> &mut TenantRequests {
        &mut self.requests
    }

    fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Delivers request `i`, retrying until the backend answers for good, then empties it for reuse.
    async fn send(&mut self, i: usize) {
        self.send_request(i).await;
    }
}

impl Deliverer {
    async fn send_request(&mut self, i: usize) {
        let request = self.requests.take(i);
        let spans = request.counts[0];
        let body = Bytes::copy_from_slice(&request.raw);
        match self.sender.send(&self.headers, Some(&request.tenant), body).await {
            Fate::Delivered { answer } => {
                let (rejected, message) = partial_success(&answer);
                let rejected = rejected.min(spans);
                self.sender.count_delivered(spans - rejected);
                if rejected > 0 || !message.is_empty() {
                    self.sender.count_dropped(rejected);
                    tracing::warn!(url = %self.sender.labels().url, tenant = %request.tenant, rejected, message, "Tempo accepted a request in part.");
                }
            }
            Fate::Rejected { status, message } => {
                self.sender.count_dropped(spans);
                tracing::warn!(url = %self.sender.labels().url, tenant = %request.tenant, status, message, spans, "Tempo rejected a request for good; its spans are dropped.");
            }
        }
        self.requests.put_back(i, request);
    }
}

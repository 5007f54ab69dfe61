//! The logs deliver step: log entries (snappy Loki pushes) → one push per tenant of at most
//! `max_lines_per_request` lines, compressed, delivered. The loop around it (reading the log, flush deadline,
//! committing the position) is [`crate::wal_loop`]; entries join without decoding
//! ([`crate::tenant_requests`]).

use bytes::Bytes;
use http::HeaderMap;
use vigil_ingest::wal::Consumer;

use super::client::{CLASSIFY, headers};
use super::config::LokiConfig;
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::send::{Fate, Sender, Target};
use crate::telemetry::ForwardMetrics;
use crate::tenant_requests::TenantRequests;
use crate::wal_loop::{self, Deliver, Limits};

/// Starts the worker for one destination (one URL, or a primary and its standbys in `targets`), reading the logs log from `consumer`'s position.
pub fn spawn(
    config: &LokiConfig,
    targets: Vec<Target>,
    consumer: Consumer,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let sender =
        Sender::new(client, targets, config.request_timeout, config.backoff.clone(), CLASSIFY, metrics.clone());
    let limits = Limits { max_rows: config.max_lines_per_request, flush_interval: config.flush_interval };
    let labels = sender.labels().clone();
    let health = sender.health();
    let deliverer = Deliverer {
        sender,
        max_lines_per_request: config.max_lines_per_request as u64,
        headers: headers(),
        requests: TenantRequests::new(true),
    };
    wal_loop::spawn(consumer, &labels, &metrics, limits, deliverer).with_targets(health)
}

struct Deliverer {
    sender: Sender,
    max_lines_per_request: u64,
    headers: HeaderMap,
    requests: TenantRequests,
}

impl Deliver for Deliverer {
    fn rows(counts: [u64; 3]) -> u64 {
        counts[0]
    }

    fn max_rows(&self) -> u64 {
        self.max_lines_per_request
    }

    fn requests(&mut self) -> &mut TenantRequests {
        &mut self.requests
    }

    fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Compresses and delivers push `i`, then empties it for reuse.
    async fn send(&mut self, i: usize) {
        self.send_request(i).await;
    }
}

impl Deliverer {
    async fn send_request(&mut self, i: usize) {
        let request = self.requests.take(i);
        let lines = request.counts[0];
        match self.requests.compress(&request.raw) {
            Ok(c) => {
                let body = Bytes::copy_from_slice(c);
                match self.sender.send(&self.headers, Some(&request.tenant), body).await {
                    Fate::Delivered { .. } => self.sender.count_delivered(lines),
                    Fate::Rejected { status, message } => {
                        self.sender.count_dropped(lines);
                        tracing::warn!(url = %self.sender.labels().url, tenant = %request.tenant, status, message, lines, "Loki rejected a push for good; its lines are dropped.");
                    }
                }
            }
            Err(e) => {
                tracing::error!(url = %self.sender.labels().url, error = %e, "Snappy compression failed; this is a bug.");
                self.sender.count_dropped(lines);
            }
        }
        self.requests.put_back(i, request);
    }
}

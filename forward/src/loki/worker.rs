//! The logs deliver step: one joined push per tenant (snappy Loki pushes from the log, at most
//! `max_lines_per_request` lines), compressed, delivered. The loop around it (reading the log, joining
//! records per tenant, flush deadline, committing the position) is [`crate::wal_loop`].

use bytes::Bytes;
use http::HeaderMap;
use vigil_ingest::wal::Consumer;

use super::client::{CLASSIFY, headers};
use super::config::LokiConfig;
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::send::{Fate, Sender, Target};
use crate::telemetry::ForwardMetrics;
use crate::tenant_requests::{TenantRequest, TenantRequests};
use crate::wal_loop::{self, Deliver, Limits, Outbox};

/// Starts the worker for one destination (one URL, or a primary and its standbys in `targets`), reading
/// the logs log from `consumer`'s position.
pub fn spawn(
    config: &LokiConfig,
    targets: Vec<Target>,
    consumer: Consumer,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let sender = Sender::new(client, targets, config.request_timeout, config.backoff.clone(), CLASSIFY, metrics);
    let limits = Limits { max_rows: config.max_lines_per_request, flush_interval: config.flush_interval };
    let out = Outbox { sender, requests: TenantRequests::new(true) };
    wal_loop::spawn(consumer, limits, out, LokiPush { headers: headers() })
}

struct LokiPush {
    headers: HeaderMap,
}

impl Deliver for LokiPush {
    fn rows(counts: [u64; 3]) -> u64 {
        counts[0]
    }

    async fn send(&mut self, out: &mut Outbox, request: &TenantRequest) {
        let lines = request.counts[0];
        let body = match out.requests.compress(&request.raw) {
            Ok(c) => Bytes::copy_from_slice(c),
            Err(e) => {
                tracing::error!(url = %out.sender.labels().url, error = %e, "Snappy compression failed; this is a bug.");
                out.sender.count_dropped(lines);
                return;
            }
        };
        match out.sender.send(&self.headers, Some(&request.tenant), body).await {
            Fate::Delivered { .. } => out.sender.count_delivered(lines),
            Fate::Rejected { status, message } => {
                out.sender.count_dropped(lines);
                tracing::warn!(url = %out.sender.labels().url, tenant = %request.tenant, status, message, lines, "Loki rejected a push for good; its lines are dropped.");
            }
        }
    }
}

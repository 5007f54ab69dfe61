//! The spans deliver step: one joined `ExportTraceServiceRequest` per tenant (at most
//! `max_spans_per_request` spans), delivered. The loop around it (reading the log, joining records per
//! tenant, flush deadline, committing the position) is [`crate::wal_loop`]. The `samples` counters count
//! spans.

use bytes::Bytes;
use http::HeaderMap;
use vigil_ingest::wal::Consumer;

use super::client::{CLASSIFY, headers, partial_success};
use super::config::TempoConfig;
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::send::{Fate, Sender, Target};
use crate::telemetry::ForwardMetrics;
use crate::tenant_requests::{TenantRequest, TenantRequests};
use crate::wal_loop::{self, Deliver, Limits, Outbox};

/// Starts the worker for one destination (one URL, or a primary and its standbys in `targets`), reading
/// the spans log from `consumer`'s position.
pub fn spawn(
    config: &TempoConfig,
    targets: Vec<Target>,
    consumer: Consumer,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let sender = Sender::new(client, targets, config.request_timeout, config.backoff.clone(), CLASSIFY, metrics);
    let limits = Limits { max_rows: config.max_spans_per_request, flush_interval: config.flush_interval };
    let out = Outbox { sender, requests: TenantRequests::new(false) };
    wal_loop::spawn(consumer, limits, out, OtlpTraces { headers: headers() })
}

struct OtlpTraces {
    headers: HeaderMap,
}

impl Deliver for OtlpTraces {
    fn rows(counts: [u64; 3]) -> u64 {
        counts[0]
    }

    async fn send(&mut self, out: &mut Outbox, request: &TenantRequest) {
        let spans = request.counts[0];
        let body = Bytes::copy_from_slice(&request.raw);
        match out.sender.send(&self.headers, Some(&request.tenant), body).await {
            Fate::Delivered { answer } => {
                let (rejected, message) = partial_success(&answer);
                let rejected = rejected.min(spans);
                out.sender.count_delivered(spans - rejected);
                if rejected > 0 || !message.is_empty() {
                    out.sender.count_dropped(rejected);
                    tracing::warn!(url = %out.sender.labels().url, tenant = %request.tenant, rejected, message, "Tempo accepted a request in part.");
                }
            }
            Fate::Rejected { status, message } => {
                out.sender.count_dropped(spans);
                tracing::warn!(url = %out.sender.labels().url, tenant = %request.tenant, status, message, spans, "Tempo rejected a request for good; its spans are dropped.");
            }
        }
    }
}

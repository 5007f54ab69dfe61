//! The alerts deliver step: one JSON array per tenant (at most `max_alerts_per_request` alerts), delivered.
//! The loop around it (reading the log, joining records per tenant, flush deadline, committing the
//! position) is [`crate::wal_loop`]. The `samples` counters count alerts.

use bytes::Bytes;
use http::HeaderMap;
use vigil_ingest::wal::Consumer;

use super::client::{classify, headers, invalid_alerts};
use super::config::AlertmanagerConfig;
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::send::{Fate, Sender, Target};
use crate::telemetry::ForwardMetrics;
use crate::tenant_requests::{TenantRequest, TenantRequests};
use crate::wal_loop::{self, Deliver, Limits, Outbox};

/// Starts the worker for one destination (one URL, or a primary and its standbys in `targets`), reading
/// the alerts log from `consumer`'s position.
pub fn spawn(
    config: &AlertmanagerConfig,
    targets: Vec<Target>,
    consumer: Consumer,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let sender = Sender::new(client, targets, config.request_timeout, config.backoff.clone(), classify, metrics);
    let limits = Limits { max_rows: config.max_alerts_per_request, flush_interval: config.flush_interval };
    let out = Outbox { sender, requests: TenantRequests::new(false) };
    wal_loop::spawn(consumer, limits, out, PostAlerts { headers: headers() })
}

struct PostAlerts {
    headers: HeaderMap,
}

impl Deliver for PostAlerts {
    fn rows(counts: [u64; 3]) -> u64 {
        counts[0]
    }

    async fn send(&mut self, out: &mut Outbox, request: &TenantRequest) {
        let alerts = request.counts[0];
        match out.sender.send(&self.headers, Some(&request.tenant), json_array(&request.raw)).await {
            Fate::Delivered { .. } => out.sender.count_delivered(alerts),
            Fate::Rejected { status, message } => {
                let invalid = invalid_alerts(&message).map_or(alerts, |n| n.min(alerts));
                out.sender.count_delivered(alerts - invalid);
                out.sender.count_dropped(invalid);
                tracing::warn!(url = %out.sender.labels().url, tenant = %request.tenant, status, message, alerts, invalid, "Alertmanager refused alerts for good; they are dropped.");
            }
        }
    }
}

/// Joined records, `{…},{…},`, as the array Alertmanager takes: `[{…},{…}]`.
fn json_array(joined: &[u8]) -> Bytes {
    let items = joined.strip_suffix(b",").unwrap_or(joined);
    let mut body = Vec::with_capacity(items.len() + 2);
    body.push(b'[');
    body.extend_from_slice(items);
    body.push(b']');
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_records_become_one_array() {
        assert_eq!(&json_array(br#"{"a":1},{"b":2},"#)[..], br#"[{"a":1},{"b":2}]"#);
        assert_eq!(&json_array(b"")[..], b"[]");
    }
}

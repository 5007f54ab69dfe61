//! The logs flush step: group sealed log batches into per-tenant pushes, compress, deliver. The per-shard
//! loop around it (gathering, flush deadline, commit) is [`crate::batching`].

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Uri};
use prost::Message;
use vigil_ingest::buffer::LogsBuffer;
use vigil_ingest::buffer::logs::LogsBatch;

use super::client::{CLASSIFY, headers};
use super::config::LokiConfig;
use super::encode::{Columns, Grouper, TenantPush};
use crate::batching::{self, Flush, Limits};
use crate::handle::ForwarderHandle;
use crate::http::HttpClient;
use crate::send::{Fate, Sender};
use crate::telemetry::ForwardMetrics;

const BACKEND: &str = "loki";

/// Starts one worker per logs-buffer shard. Subscriptions are taken before this returns, so every batch
/// sealed afterwards reaches this destination.
pub fn spawn(
    config: &LokiConfig,
    uri: Uri,
    buffer: &Arc<LogsBuffer>,
    client: HttpClient,
    metrics: ForwardMetrics,
) -> ForwarderHandle {
    let sender = Sender::new(BACKEND, client, uri, config.request_timeout, config.backoff.clone(), CLASSIFY, metrics);
    let limits = Limits { max_rows: config.max_lines_per_request, flush_interval: config.flush_interval };
    batching::spawn(buffer, sender.labels(), limits, || Flusher {
        sender: sender.clone(),
        max_lines_per_request: config.max_lines_per_request,
        headers: headers(),
        snappy: snap::raw::Encoder::new(),
    })
}

struct Flusher {
    sender: Sender,
    max_lines_per_request: usize,
    headers: HeaderMap,
    snappy: snap::raw::Encoder,
}

impl Flush<LogsBatch> for Flusher {
    /// Sends `batches` in pushes of at most `max_lines_per_request` lines, one tenant per push.
    async fn flush(&mut self, batches: &[Arc<LogsBatch>]) {
        let mut grouper = Grouper::new(self.max_lines_per_request);
        for batch in batches {
            let Some(columns) = Columns::of(&batch.logs) else {
                tracing::error!(url = %self.sender.labels().url, "A logs batch without the logs schema was skipped; this is a bug.");
                continue;
            };
            for row in 0..batch.logs.num_rows() {
                if let Some(push) = grouper.add(&columns, row) {
                    self.send(push).await;
                }
            }
        }
        for push in grouper.drain() {
            self.send(push).await;
        }
    }
}

impl Flusher {
    async fn send(&mut self, push: TenantPush) {
        let raw = push.request.encode_to_vec();
        let body = match self.snappy.compress_vec(&raw) {
            Ok(c) => Bytes::from(c),
            Err(e) => {
                tracing::error!(url = %self.sender.labels().url, error = %e, "Snappy compression failed; this is a bug.");
                return;
            }
        };
        let lines = push.lines as u64;
        match self.sender.send(&self.headers, Some(&push.tenant), body).await {
            Fate::Delivered { .. } => self.sender.count_delivered(lines),
            Fate::Rejected { status, message } => {
                self.sender.count_dropped(lines);
                tracing::warn!(url = %self.sender.labels().url, tenant = %push.tenant, status, message, lines, "Loki rejected a push for good; its lines are dropped.");
            }
        }
    }
}

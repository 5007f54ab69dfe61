//! The loop every forwarder runs over its write-ahead log: read records from its position, gather them until
//! enough rows or the flush interval, hand them to the backend's [`Deliver`] step, then commit the position.
//!
//! One reader per destination, in log order, so everything of one series, stream or trace leaves in the
//! order it was acknowledged. The position is committed only after the deliver step returns, that is after
//! the backend took or rejected for good every record: a crash before that means the records are sent again
//! after the restart (at-least-once), never lost. A backend that stays down lets the queue grow until
//! `queue.max_bytes`, where `wal.full_policy` applies at ingest.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use vigil_ingest::wal::{Consumer, Entry, WalRecord};

use crate::handle::ForwarderHandle;
use crate::telemetry::{BackendLabels, ForwardMetrics};

/// Most record bytes read from the log at once.
const READ_BYTES: usize = 8 << 20;

/// A backend's step from log entries to delivered requests.
pub(crate) trait Deliver: Send + 'static {
    /// Rows of an entry that count towards a request's size (samples, lines, spans).
    fn rows(entry: &Entry) -> usize;

    /// Encodes and delivers `entries` (never empty), retrying until the backend answers for good. The
    /// caller commits the position once this returns.
    fn deliver(&mut self, entries: &[Entry]) -> impl Future<Output = ()> + Send;
}

/// When gathered entries are delivered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Deliver as soon as this many rows are gathered (the deliver step splits them into requests).
    pub(crate) max_rows: usize,
    /// Longest the first gathered entry waits for more.
    pub(crate) flush_interval: Duration,
}

pub(crate) fn spawn<D: Deliver>(
    consumer: Consumer,
    labels: &BackendLabels,
    metrics: &ForwardMetrics,
    limits: Limits,
    deliver: D,
) -> ForwarderHandle {
    let queue_bytes = metrics.queue_bytes.get_or_create(labels).clone();
    let worker =
        Worker { consumer, queue_bytes, limits, labels: labels.clone(), pending: Vec::new(), pending_rows: 0, deliver };
    ForwarderHandle::new(labels.url.clone(), vec![tokio::spawn(worker.run())])
}

struct Worker<D> {
    consumer: Consumer,
    queue_bytes: prometheus_client::metrics::gauge::Gauge,
    limits: Limits,
    labels: BackendLabels,
    pending: Vec<Entry>,
    pending_rows: usize,
    deliver: D,
}

impl<D: Deliver> Worker<D> {
    async fn run(mut self) {
        let mut reader = self.consumer.reader();
        let mut records: Vec<WalRecord> = Vec::new();
        let mut deadline: Option<Instant> = None;
        loop {
            self.queue_bytes.set(i64::try_from(self.consumer.lag_bytes()).unwrap_or(i64::MAX));
            records.clear();
            if let Err(e) = reader.read(&mut records, READ_BYTES) {
                tracing::error!(backend = self.labels.backend, url = %self.labels.url, error = %e, "Reading the log failed; retrying in a second.");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            for r in &records {
                match Entry::decode(&r.body) {
                    Ok(entry) => {
                        self.pending_rows += D::rows(&entry);
                        self.pending.push(entry);
                    }
                    Err(e) => {
                        tracing::error!(backend = self.labels.backend, url = %self.labels.url, position = r.start, error = %e, "A log record could not be read and is skipped.");
                    }
                }
            }
            if !self.pending.is_empty() && deadline.is_none() {
                deadline = Some(Instant::now() + self.limits.flush_interval);
            }
            let due = deadline.is_some_and(|d| Instant::now() >= d);
            if self.pending_rows >= self.limits.max_rows || due {
                self.flush(reader.position()).await;
                deadline = None;
                continue;
            }
            if !records.is_empty() {
                continue;
            }
            let wake = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            if !reader.wait(wake.into_std()).await {
                // The log is closed and read to its end: deliver what is left and stop.
                self.flush(reader.position()).await;
                return;
            }
        }
    }

    /// Delivers everything pending, then moves the position to `position`. With nothing pending the
    /// position still moves (past skipped records).
    async fn flush(&mut self, position: u64) {
        if !self.pending.is_empty() {
            self.deliver.deliver(&self.pending).await;
        }
        self.pending.clear();
        self.pending_rows = 0;
        self.consumer.commit(position);
    }
}

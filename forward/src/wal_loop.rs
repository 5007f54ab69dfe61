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
use crate::send::Sender;
use crate::telemetry::BackendLabels;
use crate::tenant_requests::{TenantRequest, TenantRequests};

/// Most record bytes read from the log at once.
const READ_BYTES: usize = 8 << 20;

/// A backend's step from a joined request to the backend. The loop joins entries into one request per tenant
/// ([`TenantRequests`]) and hands each to [`Deliver::send`] once it holds [`Limits::max_rows`] rows (an entry
/// is never split), and the rest at the flush.
pub(crate) trait Deliver: Send + 'static {
    /// Of an entry's or a request's counts, the rows that make up its size (samples, lines, spans).
    fn rows(counts: [u64; 3]) -> u64;

    /// Delivers one tenant's `request` through `out.sender`, retrying until the backend answers for good
    /// (`out.requests` lends its reused snappy buffer).
    fn send(&mut self, out: &mut Outbox, request: &TenantRequest) -> impl Future<Output = ()> + Send;
}

/// What every backend sends with: its URLs and retry state, and the requests being joined.
#[derive(Debug)]
pub(crate) struct Outbox {
    pub(crate) sender: Sender,
    pub(crate) requests: TenantRequests,
}

fn entry_rows<D: Deliver>(entry: &Entry) -> u64 {
    D::rows(entry.counts.map(u64::from))
}

/// When gathered entries are delivered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Deliver as soon as this many rows are gathered, in requests of about this many rows.
    pub(crate) max_rows: usize,
    /// Longest the first gathered entry waits for more.
    pub(crate) flush_interval: Duration,
}

/// Starts the worker of one destination: `out` sends, `deliver` shapes each request for its backend.
pub(crate) fn spawn<D: Deliver>(consumer: Consumer, limits: Limits, out: Outbox, deliver: D) -> ForwarderHandle {
    let labels = out.sender.labels().clone();
    let health = out.sender.health();
    let queue_bytes = out.sender.metrics().queue_bytes.get_or_create(&labels).clone();
    let url = labels.url.clone();
    let worker = Worker { consumer, queue_bytes, limits, labels, pending: Vec::new(), pending_rows: 0, out, deliver };
    ForwarderHandle::new(url, vec![tokio::spawn(worker.run())]).with_targets(health)
}

struct Worker<D> {
    consumer: Consumer,
    queue_bytes: prometheus_client::metrics::gauge::Gauge,
    limits: Limits,
    labels: BackendLabels,
    pending: Vec<Entry>,
    pending_rows: usize,
    out: Outbox,
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
            // File reads (up to READ_BYTES; from disk when the backend is far behind) leave the async
            // workers free: ingest and the other forwarders run on them.
            let read = tokio::task::spawn_blocking(move || {
                let result = reader.read(&mut records, READ_BYTES);
                (reader, records, result)
            })
            .await;
            let result;
            (reader, records, result) = match read {
                Ok(done) => done,
                Err(e) => {
                    // The closure does not panic (bad bytes are skipped, not unwrapped); if it ever did, the
                    // worker stops and its position stays where delivery ended.
                    tracing::error!(backend = self.labels.backend, url = %self.labels.url, error = %e, "Reading the log failed for good; this forwarder stops.");
                    return;
                }
            };
            if let Err(e) = result {
                tracing::error!(backend = self.labels.backend, url = %self.labels.url, error = %e, "Reading the log failed; retrying in a second.");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            for r in &records {
                match Entry::decode(&r.body) {
                    Ok(entry) => {
                        self.pending_rows += entry_rows::<D>(&entry) as usize;
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
        let max_rows = self.limits.max_rows as u64;
        // Taken out while requests go out (sending borrows the worker), put back empty for its capacity.
        let mut pending = std::mem::take(&mut self.pending);
        for entry in &pending {
            match self.out.requests.add(entry) {
                Ok(i) if D::rows(self.out.requests.get(i).counts) >= max_rows => self.send(i).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(backend = self.labels.backend, url = %self.labels.url, error = %e, "A logged request did not decompress; its rows are dropped.");
                    self.out.sender.count_dropped(entry_rows::<D>(entry));
                }
            }
        }
        for i in self.out.requests.filled() {
            self.send(i).await;
        }
        pending.clear();
        self.pending = pending;
        self.pending_rows = 0;
        self.consumer.commit(position);
    }

    /// Sends joined request `i`, then empties it for reuse.
    async fn send(&mut self, i: usize) {
        let request = self.out.requests.take(i);
        self.deliver.send(&mut self.out, &request).await;
        self.out.requests.put_back(i, request);
    }
}

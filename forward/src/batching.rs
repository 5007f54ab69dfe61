//! The per-shard loop every forwarder runs: read sealed batches, gather them until enough rows or the flush
//! interval, hand them to the backend's [`Flush`] step, then commit.
//!
//! One worker per buffer shard reads it through a lossless subscription, so everything of one series,
//! stream or trace (which always lives in one shard) leaves in order. The subscription is committed only
//! after the flush step returns, that is after the backend took or rejected for good every row: until
//! then the batches stay pinned and cannot be evicted. A backend that stays down therefore fills the
//! buffer, and receivers answer 429.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use vigil_ingest::buffer::table::{OpenTable, SealedTable};
use vigil_ingest::buffer::{ColumnarBuffer, SubscriptionMode, TableNext, TableSubscription};

use crate::handle::ForwarderHandle;
use crate::telemetry::BackendLabels;

/// A backend's step from sealed batches to delivered requests.
pub(crate) trait Flush<S>: Send + 'static {
    /// Encodes and delivers `batches` (never empty), retrying until the backend answers for good. The
    /// caller commits the subscription once this returns.
    fn flush(&mut self, batches: &[Arc<S>]) -> impl Future<Output = ()> + Send;
}

/// When gathered batches are flushed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Flush as soon as this many rows ([`SealedTable::rows`]) are gathered. The flush step splits them
    /// into requests of its own size.
    pub(crate) max_rows: usize,
    /// Longest the first gathered batch waits for more.
    pub(crate) flush_interval: Duration,
}

/// Starts one worker per shard of `buffer`, each with its own flush step from `flusher`. Subscriptions
/// are taken before this returns, so every batch sealed afterwards reaches this destination.
pub(crate) fn spawn<O, F>(
    buffer: &Arc<ColumnarBuffer<O>>,
    labels: &BackendLabels,
    limits: Limits,
    mut flusher: impl FnMut() -> F,
) -> ForwarderHandle
where
    O: OpenTable,
    F: Flush<O::Sealed>,
{
    let tasks = (0..buffer.shard_count())
        .map(|shard| {
            let worker = Worker {
                sub: buffer.subscribe(shard, SubscriptionMode::Lossless),
                limits,
                labels: labels.clone(),
                pending: Vec::new(),
                pending_rows: 0,
                flusher: flusher(),
            };
            tokio::spawn(worker.run())
        })
        .collect();
    ForwarderHandle::new(labels.url.clone(), tasks)
}

struct Worker<O: OpenTable, F> {
    sub: TableSubscription<O>,
    limits: Limits,
    /// For logs only.
    labels: BackendLabels,
    pending: Vec<Arc<O::Sealed>>,
    pending_rows: usize,
    flusher: F,
}

impl<O: OpenTable, F: Flush<O::Sealed>> Worker<O, F> {
    async fn run(mut self) {
        let mut deadline: Option<Instant> = None;
        loop {
            // `None`: the flush deadline passed before another batch arrived.
            let next = match deadline {
                Some(d) => tokio::select! {
                    n = self.sub.next() => Some(n),
                    () = tokio::time::sleep_until(d) => None,
                },
                None => Some(self.sub.next().await),
            };
            match next {
                None => {
                    self.flush().await;
                    deadline = None;
                }
                Some(TableNext::Batch(batch)) => {
                    self.pending_rows += batch.rows();
                    self.pending.push(batch);
                    if self.pending_rows >= self.limits.max_rows {
                        self.flush().await;
                        deadline = None;
                    } else if deadline.is_none() {
                        deadline = Some(Instant::now() + self.limits.flush_interval);
                    }
                }
                Some(TableNext::Lagged(n)) => {
                    // A lossless subscription pins what it has not committed, so eviction cannot pass it.
                    tracing::error!(backend = self.labels.backend, url = %self.labels.url, batches = n, "Forwarder was overtaken by eviction; this is a bug.");
                }
                Some(TableNext::Closed) => {
                    self.flush().await;
                    return;
                }
            }
        }
    }

    /// Delivers everything pending, then commits: only now may the buffer evict these batches.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        self.flusher.flush(&self.pending).await;
        // Cleared, not replaced: the vector's capacity serves the next round.
        self.pending.clear();
        self.pending_rows = 0;
        self.sub.commit();
    }
}

//! The columnar buffers: the recent window of every signal, as Arrow batches.
//!
//! [`ColumnarBuffer`] is generic over a table ([`table::OpenTable`]): the metrics table lives in [`metrics`]
//! ([`MetricsBuffer`]). Receivers stage rows per shard ([`Staged`]) and [`ColumnarBuffer::append`] them. Each
//! shard grows a set of Arrow builders that are sealed into immutable batches when full or when
//! `seal_interval` passes. Sealed batches sit in a per-shard log, in arrival order, until memory runs short;
//! then the oldest are evicted.
//!
//! Consumers read the log through a [`Subscription`]. A *lossless* subscription (a forwarder) pins what it has
//! not committed: pinned batches are never evicted, so when a lossless consumer falls behind the buffer
//! fills and appends fail with [`BufferFull`], which receivers answer with 429/503 and `Retry-After`.
//! A *lossy* subscription (a detector) is told how many batches it missed instead.

mod log;
pub mod logs;
pub mod metrics;
pub mod spans;
mod staged;
mod subscription;
pub mod table;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use metrics::{ExemplarRow, HistogramRow, MetricsOpen, MetricsShardRows, SampleRow, SealedBatch, schema};
pub use staged::Staged;
pub use subscription::{SubscriptionMode, TableNext, TableSubscription};

use log::ShardLog;
use table::{OpenTable, SealedTable, ShardRows};

/// The spans buffer: one row per span, sharded by trace id.
pub type SpansBuffer = ColumnarBuffer<spans::SpansOpen>;
/// The metrics buffer: series samples, exemplars and native histograms.
pub type MetricsBuffer = ColumnarBuffer<MetricsOpen>;
pub type LogsBuffer = ColumnarBuffer<logs::LogsOpen>;
/// Staged metric rows for [`MetricsBuffer::append`].
pub type StagedRows = Staged<MetricsShardRows>;
/// A subscription to the metrics buffer.
pub type Subscription = TableSubscription<MetricsOpen>;
/// What a metrics subscription hands out.
pub type Next = TableNext<SealedBatch>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Memory for the recent window (open builders plus sealed batches), in bytes.
    pub max_bytes: u64,
    /// Number of shards; 0 picks twice the number of cores.
    pub shards: usize,
    /// Rows per sealed batch.
    pub batch_rows: usize,
    /// Longest time a row waits in an open batch before it is sealed and visible to consumers.
    #[serde(with = "humantime_serde")]
    pub seal_interval: Duration,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self { max_bytes: 256 << 20, shards: 0, batch_rows: 8192, seal_interval: Duration::from_millis(200) }
    }
}

impl BufferConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_rows == 0 {
            return Err("buffer.batch_rows must be > 0".into());
        }
        if self.seal_interval.is_zero() {
            return Err("buffer.seal_interval must be > 0".into());
        }
        let floor = self.min_max_bytes();
        if self.max_bytes < floor {
            return Err(format!(
                "buffer.max_bytes = {} is too small for {} shards of {} rows: it must be at least {} bytes",
                self.max_bytes,
                self.effective_shards(),
                self.batch_rows,
                floor
            ));
        }
        Ok(())
    }

    /// The smallest `max_bytes` that works: every shard's pre-sized open batch, four times over.
    pub fn min_max_bytes(&self) -> u64 {
        self.effective_shards() as u64 * self.batch_rows as u64 * metrics::SAMPLE_ROW_BYTES as u64 * 4
    }

    pub fn effective_shards(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get() * 2).clamp(2, 64)
        }
    }
}

/// The buffer refused rows because memory is full of data a lossless consumer has not yet taken.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
#[error("buffer is full (`buffer.max_bytes` = {limit} bytes); retry later")]
pub struct BufferFull {
    pub limit: u64,
}

#[derive(Debug)]
struct Shard<O: OpenTable> {
    open: Mutex<O>,
    log: Mutex<ShardLog<O::Sealed>>,
    notify: Notify,
}

/// Counters the buffer keeps about itself; read by `/metrics`.
#[derive(Debug, Default)]
pub struct BufferStats {
    pub used_bytes: AtomicU64,
    pub sealed_batches: AtomicU64,
    pub evicted_batches: AtomicU64,
    pub evicted_rows: AtomicU64,
    pub rejected_appends: AtomicU64,
}

/// Shards of open builders and sealed-batch logs for one kind of table, bounded by `max_bytes`.
#[derive(Debug)]
pub struct ColumnarBuffer<O: OpenTable> {
    config: BufferConfig,
    shards: Box<[Shard<O>]>,
    stats: BufferStats,
    /// Serialises eviction so concurrent appends do not evict twice for the same shortage.
    evicting: Mutex<()>,
}

impl<O: OpenTable> ColumnarBuffer<O> {
    pub fn new(config: BufferConfig) -> Arc<Self> {
        let n = config.effective_shards();
        let shards = (0..n)
            .map(|_| Shard {
                open: Mutex::new(O::new(config.batch_rows)),
                log: Mutex::new(ShardLog::default()),
                notify: Notify::new(),
            })
            .collect::<Box<[Shard<O>]>>();
        let stats = BufferStats::default();
        stats.used_bytes.store(shards.iter().map(|s| s.open.lock().bytes()).sum(), Ordering::Relaxed);
        Arc::new(Self { config, shards, stats, evicting: Mutex::new(()) })
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn config(&self) -> &BufferConfig {
        &self.config
    }

    pub fn stats(&self) -> &BufferStats {
        &self.stats
    }

    pub fn used_bytes(&self) -> u64 {
        self.stats.used_bytes.load(Ordering::Relaxed)
    }

    /// A staging area shaped for this buffer.
    pub fn staged_rows(&self) -> Staged<O::Rows> {
        let mut s = Staged::default();
        s.reset(self.shard_count());
        s
    }

    /// Adds every staged row, or none: when memory cannot be found for all of them, nothing is appended.
    pub fn append(&self, rows: &Staged<O::Rows>) -> Result<(), BufferFull> {
        let need = rows.estimated_bytes();
        if !self.reserve(need) {
            self.stats.rejected_appends.fetch_add(1, Ordering::Relaxed);
            return Err(BufferFull { limit: self.config.max_bytes });
        }
        let mut surplus = need;
        for (i, staged) in rows.shards.iter().enumerate() {
            if staged.is_empty() {
                continue;
            }
            let Some(shard) = self.shards.get(i) else { continue };
            let mut open = shard.open.lock();
            let added = open.append(staged);
            surplus = surplus.saturating_sub(added);
            if open.rows() >= self.config.batch_rows {
                self.seal_locked(i, &mut open);
            }
        }
        // Sample rows land in pre-sized columns that are already accounted for; give the estimate back.
        self.stats.used_bytes.fetch_sub(surplus.min(self.used_bytes()), Ordering::Relaxed);
        Ok(())
    }

    /// Accounts `need` bytes, evicting unpinned old batches if that is what it takes.
    fn reserve(&self, need: u64) -> bool {
        let max = self.config.max_bytes;
        if self.stats.used_bytes.fetch_add(need, Ordering::Relaxed) + need <= max {
            return true;
        }
        let _guard = self.evicting.lock();
        while self.used_bytes() > max {
            if !self.evict_oldest() {
                self.stats.used_bytes.fetch_sub(need, Ordering::Relaxed);
                return false;
            }
        }
        true
    }

    /// Evicts the oldest unpinned sealed batch of any shard. False when nothing can be evicted.
    fn evict_oldest(&self) -> bool {
        let mut oldest: Option<(usize, std::time::SystemTime)> = None;
        for (i, shard) in self.shards.iter().enumerate() {
            if let Some(at) = shard.log.lock().evictable_front_time()
                && oldest.is_none_or(|(_, t)| at < t)
            {
                oldest = Some((i, at));
            }
        }
        let Some((i, _)) = oldest else { return false };
        let Some(batch) = self.shards[i].log.lock().pop_front_unpinned() else { return false };
        self.stats.used_bytes.fetch_sub(batch.bytes().min(self.used_bytes()), Ordering::Relaxed);
        self.stats.evicted_batches.fetch_add(1, Ordering::Relaxed);
        self.stats.evicted_rows.fetch_add(batch.rows() as u64, Ordering::Relaxed);
        true
    }

    fn seal_locked(&self, index: usize, open: &mut O) {
        let shard = &self.shards[index];
        let fresh = O::new(self.config.batch_rows);
        let full = std::mem::replace(open, fresh);
        let open_bytes = full.bytes();
        let mut log = shard.log.lock();
        let seq = log.next_seq();
        match full.seal(index, seq) {
            Ok(batch) => {
                // The open batch's accounted bytes are replaced by the sealed batch's real size, and the
                // fresh builders' pre-sized columns are accounted anew.
                let fresh_bytes = open.bytes();
                let used = &self.stats.used_bytes;
                used.fetch_add(batch.bytes() + fresh_bytes, Ordering::Relaxed);
                used.fetch_sub(open_bytes.min(used.load(Ordering::Relaxed)), Ordering::Relaxed);
                log.push(Arc::new(batch));
                self.stats.sealed_batches.fetch_add(1, Ordering::Relaxed);
                drop(log);
                shard.notify.notify_waiters();
            }
            Err(e) => {
                tracing::error!(shard = index, error = %e, "Sealing a batch failed; its rows are lost. This is a bug.")
            }
        }
    }

    /// Seals every shard whose open batch has waited `seal_interval` or longer.
    pub fn seal_due(&self) {
        for (i, shard) in self.shards.iter().enumerate() {
            let mut open = shard.open.lock();
            if open.rows() > 0 && open.opened_at().is_some_and(|t| t.elapsed() >= self.config.seal_interval) {
                self.seal_locked(i, &mut open);
            }
        }
    }

    /// Seals every non-empty open batch now (shutdown, tests).
    pub fn seal_all(&self) {
        for (i, shard) in self.shards.iter().enumerate() {
            let mut open = shard.open.lock();
            if open.rows() > 0 {
                self.seal_locked(i, &mut open);
            }
        }
    }

    /// Runs the periodic sealer until the task is dropped.
    pub async fn run_sealer(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.seal_interval / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.seal_due();
        }
    }

    /// Reads one shard's sealed batches from the oldest still held (lossy) or from now on (lossless).
    pub fn subscribe(self: &Arc<Self>, shard: usize, mode: SubscriptionMode) -> TableSubscription<O> {
        TableSubscription::new(Arc::clone(self), shard, mode)
    }

    /// Wakes every subscriber and makes them return [`Next::Closed`] once they have read everything.
    pub fn close(&self) {
        for shard in self.shards.iter() {
            shard.log.lock().close();
            shard.notify.notify_waiters();
        }
    }

    /// Sealed batches currently held by one shard, oldest first (for queries and tests).
    pub fn snapshot(&self, shard: usize) -> Vec<Arc<O::Sealed>> {
        self.shards.get(shard).map(|s| s.log.lock().snapshot()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;

//! The online engine: every float sample of the metrics buffer scored as it is sealed, the scores written
//! back and the anomalies kept as events.
//!
//! One thread per buffer shard reads that shard through a *lossy* subscription (detection must never hold
//! back ingest: when it falls behind, the buffer evicts and the engine counts the batches it missed). The
//! scores of each batch are encoded per tenant as remote-write bodies and handed to a bounded channel;
//! `vigil/src/topology.rs` feeds them to the remote-write receiver, so they go through the metrics
//! write-ahead log to the forwarders like any other series. The engine never talks to a forwarder.

mod handle;
mod online;
mod shard;
pub(crate) mod writeback;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use vigil_ingest::buffer::{MetricsBuffer, SubscriptionMode};
use vigil_ingest::series::{SeriesRegistry, decode_label_key};

use crate::config::DetectConfig;
use crate::events::{EventLog, EventTracker};
use crate::rules::RuleSet;
use crate::series::SeriesDetector;
use crate::telemetry::DetectMetrics;

pub use handle::{DetectHandle, ForecastQuery, SeriesForecast};

use shard::{ShardState, Tracked};

/// One tenant's scores, as a snappy-compressed remote-write 1.0 body.
#[derive(Debug, Clone)]
pub struct WriteBack {
    pub tenant: Arc<str>,
    pub body: Bytes,
    /// Scored samples in the body (four series each), for counting what is dropped.
    pub samples: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid detect configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    #[error("the detection engine must be started inside a tokio runtime")]
    NoRuntime,
    #[error("starting a detection thread: {0}")]
    Spawn(std::io::Error),
}

/// What the engine reads from and writes to.
#[derive(Debug)]
pub struct EngineInputs {
    pub buffer: Arc<MetricsBuffer>,
    pub registry: Arc<SeriesRegistry>,
    pub metrics: DetectMetrics,
    /// Where scores go; `None` (or `detect.write_back: false`): scores are not written back.
    pub write_back: Option<mpsc::Sender<WriteBack>>,
    /// Start-up replay is about to refill the buffer: score it (warming the detectors up and rebuilding the
    /// events) but write nothing back until [`DetectHandle::replay_done`], since those scores were written
    /// before the restart.
    pub replaying: bool,
}

/// State every shard worker and every query share.
#[derive(Debug)]
pub(crate) struct Shared {
    rules: RuleSet,
    registry: Arc<SeriesRegistry>,
    metrics: DetectMetrics,
    /// Closed events, all shards.
    events: EventLog,
    /// Per shard: the state of its series, held by its worker for a whole batch.
    shards: Box<[Mutex<ShardState>]>,
    /// Per shard: its open events, apart from [`Shared::shards`] so a reader of events never waits for a
    /// batch to be scored; the worker holds it while it feeds a chunk's verdicts to the events and adds the
    /// ones that closed to [`Shared::events`] (so an event is always in one of the two).
    open: Box<[Mutex<EventTracker>]>,
    /// Series with detector state, all shards, against `max_series`.
    tracked: AtomicU64,
    max_series: u64,
    /// `detect.forget_after`, in ms of sample time.
    forget_after_ms: i64,
    cap_warned: AtomicBool,
    /// Write-back is on (not held for replay).
    live: AtomicBool,
    /// Group isolation forests and peer comparison.
    online: online::Online,
}

impl Shared {
    /// The state of a series seen for the first time, or `None` when it is not to be scored (excluded by a
    /// rule, Vigil's own output, or over `detect.max_series`).
    fn admit(&self, slot: u32) -> Option<Tracked> {
        let (key, tenant) = self.registry.series_by_slot(slot)?;
        let labels: Vec<(&str, &str)> = decode_label_key(key).map(|p| (p.name, p.value)).collect();
        let rule = self.rules.resolve(&labels)?;
        let max = self.max_series;
        if self.tracked.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1)).is_err() {
            self.metrics.series_dropped.inc();
            if !self.cap_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    max_series = max,
                    "Series limit of the detection engine reached (`detect.max_series`): further series are not \
                     scored; see vigil_detect_series_dropped_total."
                );
            }
            return None;
        }
        self.metrics.series.inc();
        let detector = SeriesDetector::new(self.rules.settings(rule));
        let online = self.online.admit(tenant, &labels, &self.metrics);
        Some(Tracked { detector, history: crate::forecast::History::default(), online, last_ms: i64::MIN, slot, rule })
    }
}

/// The running engine: its threads, and a handle for queries.
#[derive(Debug)]
pub struct Engine {
    handle: DetectHandle,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The thread that refits the group forests and compares siblings (`online.rs`), stopped after the
    /// shard threads.
    background: std::thread::JoinHandle<()>,
}

impl Engine {
    /// Validates `config` and starts one worker thread per buffer shard. Must be called inside a tokio
    /// runtime (the workers wait on the buffer's notifications through it).
    pub fn start(config: &DetectConfig, inputs: EngineInputs) -> Result<Self, EngineError> {
        let rules = config.validate().map_err(EngineError::Config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| EngineError::NoRuntime)?;
        let EngineInputs { buffer, registry, metrics, write_back, replaying } = inputs;
        let write_back = write_back.filter(|_| config.write_back);
        let close_after = u8::try_from(config.events.close_after).unwrap_or(u8::MAX);
        let shards = (0..buffer.shard_count()).map(|_| Mutex::new(ShardState::new())).collect();
        let open = (0..buffer.shard_count()).map(|_| Mutex::new(EventTracker::new(close_after))).collect();
        let shared = Arc::new(Shared {
            rules,
            registry,
            metrics,
            events: EventLog::new(&config.events),
            shards,
            open,
            tracked: AtomicU64::new(0),
            max_series: config.max_series,
            forget_after_ms: i64::try_from(config.forget_after.as_millis()).unwrap_or(i64::MAX),
            cap_warned: AtomicBool::new(false),
            live: AtomicBool::new(!replaying),
            online: online::Online::new(config),
        });
        let mut threads = Vec::with_capacity(buffer.shard_count());
        for index in 0..buffer.shard_count() {
            let subscription = buffer.subscribe(index, SubscriptionMode::Lossy);
            let (shared, runtime, tx) = (Arc::clone(&shared), runtime.clone(), write_back.clone());
            let thread = std::thread::Builder::new()
                .name(format!("vigil-detect-{index}"))
                .spawn(move || shard::run(&shared, index, subscription, &runtime, tx.as_ref()))
                .map_err(EngineError::Spawn)?;
            threads.push(thread);
        }
        let background = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("vigil-detect-models".into())
                .spawn(move || online::run(&shared))
                .map_err(EngineError::Spawn)?
        };
        Ok(Self { handle: DetectHandle::new(shared), threads, background })
    }

    pub fn handle(&self) -> DetectHandle {
        self.handle.clone()
    }

    /// Waits for every worker to finish: they do once the buffer is closed and read to its end. Dropping
    /// the engine's write-back senders with them lets the write-back consumer end.
    pub async fn join(self) {
        let Self { handle, threads, background } = self;
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                if t.join().is_err() {
                    tracing::error!("A detection thread panicked. This is a bug.");
                }
            }
            handle.shared.online.stop();
            if background.join().is_err() {
                tracing::error!("The detection background thread panicked. This is a bug.");
            }
        });
        if joined.await.is_err() {
            tracing::error!("Waiting for the detection threads failed.");
        }
    }
}

#[cfg(test)]
mod tests;

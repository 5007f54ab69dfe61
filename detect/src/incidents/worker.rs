//! The correlation worker: one thread reads every shard of the spans and logs buffers and the exemplars of
//! the metrics buffer (lossy subscriptions: correlation never holds ingest back; batches evicted before it
//! reads them are counted), and every 250 ms writes complete RED windows, reads new anomaly events from
//! the engine, and moves incidents along.
//!
//! Its derived series go out as remote-write bodies on a bounded channel that `vigil/src/topology.rs`
//! feeds into the metrics path (full: dropped and counted), like the engine's scores: so they are logged,
//! forwarded, and scored by the engine like any series.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use vigil_ingest::buffer::logs::LogsBatch;
use vigil_ingest::buffer::spans::SealedSpans;
use vigil_ingest::buffer::table::OpenTable;
use vigil_ingest::buffer::{SealedBatch, SubscriptionMode, TableNext, TableSubscription};

use super::config::CorrelateConfig;
use super::correlate::{Ctx, Incidents};
use super::feed::Feed;
use super::handle::{CorrelateHandle, IncidentStore, Shared};
use super::publish;
use super::table::IncidentLog;
use super::{CorrelateMetrics, Status};
use crate::engine::{DetectHandle, WriteBack};
use crate::events::now_ms;
use crate::traces::{Bodies, LogSignal, Sources, SpanSignal, TraceStore, Tracer, millis};

/// How often windows are written, anomalies read and incidents moved along.
const TICK: Duration = Duration::from_millis(250);
/// How often index references into evicted batches are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(5);
/// Batches waiting for the worker; beyond it the subscription tasks wait (and the buffer may evict, counted).
const INPUT_QUEUE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum CorrelateError {
    #[error("invalid correlate configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    #[error("correlation must be started inside a tokio runtime")]
    NoRuntime,
    #[error("starting the correlation thread: {0}")]
    Spawn(std::io::Error),
}

/// What correlation reads and writes.
#[derive(Debug)]
pub struct CorrelateInputs {
    pub sources: Sources,
    /// The anomaly engine, whose events open incidents; `None` (detection off): no incidents.
    pub detect: Option<DetectHandle>,
    pub metrics: CorrelateMetrics,
    /// Where RED and service-graph samples go; `None`: nowhere.
    pub write_back: Option<mpsc::Sender<WriteBack>>,
    /// Start-up replay is about to refill the buffers: derive from it, but write nothing until
    /// [`CorrelateHandle::replay_done`] (those series were written before the restart).
    pub replaying: bool,
}

#[derive(Debug)]
enum Input {
    Spans(Arc<SealedSpans>),
    Logs(Arc<LogsBatch>),
    Exemplars(Arc<SealedBatch>),
}

/// Hands one shard's sealed batches to the worker, waiting while its queue is full (the lossy subscription
/// then falls behind, and eviction overtaking it is counted).
async fn forward<O: OpenTable>(
    mut sub: TableSubscription<O>,
    tx: mpsc::Sender<Input>,
    lagged: Counter,
    wrap: impl Fn(Arc<O::Sealed>) -> Option<Input>,
) {
    loop {
        match sub.next().await {
            TableNext::Batch(b) => {
                if let Some(input) = wrap(b)
                    && tx.send(input).await.is_err()
                {
                    return;
                }
            }
            TableNext::Lagged(n) => {
                lagged.inc_by(n);
            }
            TableNext::Closed => return,
        }
    }
}

/// The running correlation: its thread, its subscription tasks, a handle for queries.
#[derive(Debug)]
pub struct Correlator {
    handle: CorrelateHandle,
    thread: std::thread::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Correlator {
    /// Validates `config`, subscribes to every buffer shard and starts the worker thread.
    pub fn start(config: &CorrelateConfig, inputs: CorrelateInputs) -> Result<Self, CorrelateError> {
        config.validate().map_err(CorrelateError::Config)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| CorrelateError::NoRuntime)?;
        let CorrelateInputs { sources, detect, metrics, write_back, replaying } = inputs;
        let max_age_ms = millis(config.incidents.max_age);
        let shared = Arc::new(Shared {
            store: TraceStore::new(&config.index, &config.graph, &config.red, sources.clone()),
            incidents: Mutex::new(IncidentStore::new(IncidentLog::new(config.incidents.max_incidents, max_age_ms))),
            metrics: metrics.clone(),
            live: AtomicBool::new(!replaying),
        });
        let (tx, rx) = mpsc::channel::<Input>(INPUT_QUEUE);
        let mut tasks = Vec::new();
        let lagged = |signal| CorrelateMetrics::signal(&metrics.lagged_batches, signal);
        for shard in 0..sources.spans.shard_count() {
            let sub = sources.spans.subscribe(shard, SubscriptionMode::Lossy);
            tasks.push(runtime.spawn(forward(sub, tx.clone(), lagged("spans"), |b| Some(Input::Spans(b)))));
        }
        for shard in 0..sources.logs.shard_count() {
            let sub = sources.logs.subscribe(shard, SubscriptionMode::Lossy);
            tasks.push(runtime.spawn(forward(sub, tx.clone(), lagged("logs"), |b| Some(Input::Logs(b)))));
        }
        for shard in 0..sources.metrics.shard_count() {
            let sub = sources.metrics.subscribe(shard, SubscriptionMode::Lossy);
            // Only batches with exemplars concern correlation.
            let wrap = |b: Arc<SealedBatch>| (b.exemplar_count() > 0).then(|| Input::Exemplars(b));
            tasks.push(runtime.spawn(forward(sub, tx.clone(), lagged("exemplars"), wrap)));
        }
        drop(tx);
        // A window's spans reach the worker through every shard, sealed up to a seal interval apart.
        let hold = sources.spans.config().seal_interval * 2 + TICK;
        let mut worker = Worker::new(config, Arc::clone(&shared), detect, write_back, hold);
        let thread = std::thread::Builder::new()
            .name("vigil-correlate".into())
            .spawn(move || worker.run(rx, &runtime))
            .map_err(CorrelateError::Spawn)?;
        Ok(Self { handle: CorrelateHandle::new(shared), thread, tasks })
    }

    pub fn handle(&self) -> CorrelateHandle {
        self.handle.clone()
    }

    /// Stops reading (the worker writes what is complete and ends) and waits for the thread.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        let thread = self.thread;
        if tokio::task::spawn_blocking(move || thread.join()).await.map_or(true, |r| r.is_err()) {
            tracing::error!("The correlation thread panicked. This is a bug.");
        }
    }
}

/// Counts already added to the shared counters, to add only what is new.
#[derive(Debug, Default)]
struct Reported {
    late: u64,
    future: u64,
    over_cap: u64,
    skipped_rows: u64,
    unmatched: u64,
    dropped_calls: u64,
    evicted_space: u64,
    evicted_retention: u64,
    opened: u64,
    merged: u64,
    resolved: u64,
    incidents_over_cap: u64,
    anomalies: u64,
    unconfirmed: u64,
}

fn add(counter: &Counter, now: u64, before: &mut u64) {
    if now > *before {
        counter.inc_by(now - *before);
        *before = now;
    }
}

struct Worker {
    shared: Arc<Shared>,
    detect: Option<DetectHandle>,
    write_back: Option<mpsc::Sender<WriteBack>>,
    write_red: bool,
    write_graph: bool,
    tracer: Tracer,
    incidents: Incidents,
    feed: Feed,
    bodies: Bodies,
    spans: Vec<SpanSignal>,
    logs: Vec<LogSignal>,
    forget_events: Duration,
    reported: Reported,
}

impl Worker {
    fn new(
        config: &CorrelateConfig,
        shared: Arc<Shared>,
        detect: Option<DetectHandle>,
        write_back: Option<mpsc::Sender<WriteBack>>,
        hold: Duration,
    ) -> Self {
        Self {
            shared,
            detect,
            write_back,
            write_red: config.red.write,
            write_graph: config.graph.write_series,
            tracer: Tracer::new(&config.red, &config.graph, &config.slow, hold),
            incidents: Incidents::new(&config.incidents, config.red.step),
            feed: Feed::default(),
            bodies: Bodies::default(),
            spans: Vec::new(),
            logs: Vec::new(),
            forget_events: config.incidents.window.max(config.incidents.resolve_after) * 4,
            reported: Reported::default(),
        }
    }

    fn run(&mut self, mut rx: mpsc::Receiver<Input>, runtime: &tokio::runtime::Handle) {
        let mut last_tick = Instant::now();
        let mut last_prune = Instant::now();
        loop {
            let next = runtime.block_on(async { tokio::time::timeout(TICK, rx.recv()).await });
            match next {
                Ok(Some(input)) => self.read(input),
                Ok(None) => {
                    self.tick();
                    return;
                }
                Err(_) => {}
            }
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.tick();
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = Instant::now();
                self.shared.store.prune_index();
            }
        }
    }

    fn read(&mut self, input: Input) {
        let store = &self.shared.store;
        let m = &self.shared.metrics;
        let (signal, rows) = match input {
            Input::Spans(b) => {
                ("spans", self.tracer.ingest_spans(store, &b, now_ms(), Instant::now(), &mut self.spans))
            }
            Input::Logs(b) => ("logs", self.tracer.ingest_logs(store, &b, &mut self.logs)),
            Input::Exemplars(b) => ("exemplars", self.tracer.ingest_exemplars(store, &b)),
        };
        CorrelateMetrics::signal(&m.rows, signal).inc_by(rows as u64);
    }

    fn tick(&mut self) {
        let (now, wall) = (Instant::now(), now_ms());
        let shared = Arc::clone(&self.shared);
        let store = &shared.store;
        self.tracer.flush(store, self.write_graph, wall, now, &mut self.bodies);
        self.send_bodies();
        self.tracer.expire(store, now);
        let rows = match &self.detect {
            Some(d) => {
                let (closed, open) = d.event_changes();
                self.feed.poll(&closed, &open, now, self.forget_events)
            }
            None => Vec::new(),
        };
        let published = {
            let mut symbols = store.symbols.lock();
            let index = store.index.lock();
            let graph = store.graph.lock();
            let mut ctx =
                Ctx { symbols: &mut symbols, index: &index, graph: &graph, exemplars: &self.tracer.exemplars };
            for row in rows {
                self.incidents.anomaly(row, &mut ctx, now, wall);
            }
            for s in self.spans.drain(..) {
                self.incidents.span(s, &ctx, now);
            }
            for l in self.logs.drain(..) {
                self.incidents.log(l, &ctx, now);
            }
            let resolved = self.incidents.tick(&mut ctx, now, wall);
            let closed: Vec<_> =
                resolved.iter().map(|inc| publish::incident(inc, Status::Resolved, Some(wall), ctx.symbols)).collect();
            let changed = !closed.is_empty() || self.incidents.open.iter().any(|i| i.dirty);
            let open = changed.then(|| {
                let shown = self.incidents.open.iter().filter(|inc| inc.confirmed);
                shown.map(|inc| publish::incident(inc, Status::Open, None, ctx.symbols)).collect()
            });
            for inc in &mut self.incidents.open {
                inc.dirty = false;
            }
            (closed, open)
        };
        let (closed, open) = published;
        let merged = std::mem::take(&mut self.incidents.merged_ids);
        if !closed.is_empty() || open.is_some() || !merged.is_empty() {
            let mut s = self.shared.incidents.lock();
            for inc in closed {
                s.log.push(inc);
            }
            s.log.retain(wall);
            if let Some(open) = open {
                s.open = open;
            }
            for (gone, into) in merged {
                s.alias(gone, into);
            }
        }
        self.report();
    }

    /// Hands the derived series to the metrics path without waiting: a full channel drops them (counted).
    fn send_bodies(&mut self) {
        let live = self.shared.live.load(Ordering::Relaxed);
        let Some(tx) = self.write_back.as_ref().filter(|_| live && self.write_red) else {
            self.bodies.clear();
            return;
        };
        let (bodies, failed) = self.bodies.drain();
        let m = &self.shared.metrics;
        if failed > 0 {
            m.derived_dropped("refused", failed);
        }
        for wb in bodies {
            let samples = wb.samples;
            match tx.try_send(wb) {
                Ok(()) => {
                    m.derived_samples.inc_by(samples);
                }
                Err(TrySendError::Full(_)) => m.derived_dropped("queue_full", samples),
                Err(TrySendError::Closed(_)) => m.derived_dropped("closed", samples),
            }
        }
    }

    fn report(&mut self) {
        let m = &self.shared.metrics;
        let r = &mut self.reported;
        let red = self.tracer.red.counts;
        let reason = |why| CorrelateMetrics::reason(&m.skipped, why);
        add(&reason("late"), red.late, &mut r.late);
        add(&reason("future"), red.future, &mut r.future);
        add(&reason("operations_cap"), red.over_cap, &mut r.over_cap);
        add(&reason("names_cap_or_malformed"), self.tracer.skipped_rows, &mut r.skipped_rows);
        add(&m.graph_unmatched, self.tracer.pending.expired, &mut r.unmatched);
        let c = self.incidents.counts;
        add(&m.incidents_opened, c.opened, &mut r.opened);
        add(&m.incidents_merged, c.merged, &mut r.merged);
        add(&m.incidents_resolved, c.resolved, &mut r.resolved);
        add(&m.incidents_over_cap, c.over_cap, &mut r.incidents_over_cap);
        add(&m.anomalies_correlated, c.anomalies, &mut r.anomalies);
        add(&m.incidents_unconfirmed, c.unconfirmed, &mut r.unconfirmed);
        let shown = self.incidents.open.iter().filter(|i| i.confirmed).count();
        m.incidents_open.set(i64::try_from(shown).unwrap_or(i64::MAX));
        m.red_operations.set(i64::try_from(self.tracer.red.operations()).unwrap_or(i64::MAX));
        m.graph_pending.set(i64::try_from(self.tracer.pending.len()).unwrap_or(i64::MAX));
        let store = &self.shared.store;
        {
            let graph = store.graph.lock();
            m.graph_edges.set(i64::try_from(graph.len()).unwrap_or(i64::MAX));
            add(&m.graph_dropped_calls, graph.dropped_calls, &mut r.dropped_calls);
        }
        let index = store.index.lock();
        m.index_traces.set(i64::try_from(index.len()).unwrap_or(i64::MAX));
        m.index_refs.set(i64::try_from(index.refs()).unwrap_or(i64::MAX));
        add(&CorrelateMetrics::reason(&m.index_evicted, "space"), index.evicted_for_space, &mut r.evicted_space);
        add(
            &CorrelateMetrics::reason(&m.index_evicted, "retention"),
            index.evicted_for_retention,
            &mut r.evicted_retention,
        );
    }
}

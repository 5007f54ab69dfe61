//! What Vigil learns from traces: the trace-id index ([`index`]), span-derived RED series ([`red`]), the
//! service graph ([`graph`]), and the spans and log lines that signal trouble (failed spans, latency
//! outliers, error log lines), which the incident correlation ([`crate::incidents`]) groups.
//!
//! [`TraceStore`] is what the query API shares with the correlation worker: the index, the graph and the
//! buffers the index points into, each behind its own lock (the worker takes them once per batch; a query
//! briefly). [`Tracer`] is the worker's own state: RED windows, spans waiting for their parent or children,
//! and the recent exemplars of each series.

pub mod config;
mod encode;
mod exemplars;
pub mod graph;
mod ids;
pub(crate) mod index;
mod logs;
pub(crate) mod red;
mod sketch;
mod spans;
pub(crate) mod symbols;
mod view;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use vigil_ingest::buffer::{LogsBuffer, MetricsBuffer, SpansBuffer};
use vigil_ingest::series::SeriesRegistry;

pub use config::{GraphConfig, IndexConfig, RedConfig, SlowConfig, SpanKind};
pub use graph::{EdgeView, GraphView, NodeView};
pub use ids::{TraceId, TraceIdError, parse_trace_id, trace_hex};
pub use view::{LogView, SeriesView, SpanView, TraceView};

pub(crate) use encode::Bodies;
pub(crate) use exemplars::ExemplarLinks;
pub(crate) use ids::span_hex;
pub(crate) use logs::LogSignal;
pub(crate) use spans::SpanSignal;

use graph::{Pending, ServiceGraph};
use index::{Signal, TraceIndex};
use red::Red;
use symbols::Symbols;

/// Tenant and service names held at most (each a few dozen bytes).
const MAX_SYMBOLS: usize = 100_000;

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What the worker and the query API share.
#[derive(Debug)]
pub(crate) struct TraceStore {
    pub(crate) symbols: Mutex<Symbols>,
    pub(crate) index: Mutex<TraceIndex>,
    pub(crate) graph: Mutex<ServiceGraph>,
    pub(crate) spans: Arc<SpansBuffer>,
    pub(crate) logs: Arc<LogsBuffer>,
    pub(crate) metrics: Arc<MetricsBuffer>,
    pub(crate) registry: Arc<SeriesRegistry>,
}

/// The buffers the index points into, and the registry that names the series.
#[derive(Debug, Clone)]
pub struct Sources {
    pub spans: Arc<SpansBuffer>,
    pub logs: Arc<LogsBuffer>,
    pub metrics: Arc<MetricsBuffer>,
    pub registry: Arc<SeriesRegistry>,
}

impl TraceStore {
    pub(crate) fn new(index: &IndexConfig, graph: &GraphConfig, red: &RedConfig, sources: Sources) -> Self {
        Self {
            symbols: Mutex::new(Symbols::new(MAX_SYMBOLS)),
            index: Mutex::new(TraceIndex::new(index)),
            graph: Mutex::new(ServiceGraph::new(graph, red.step)),
            spans: sources.spans,
            logs: sources.logs,
            metrics: sources.metrics,
            registry: sources.registry,
        }
    }

    /// Drops index references into batches the buffers have evicted.
    pub(crate) fn prune_index(&self) {
        let first = |shards: Vec<Option<u64>>| shards.into_iter().map(|s| s.unwrap_or(u64::MAX)).collect::<Vec<_>>();
        let spans =
            first((0..self.spans.shard_count()).map(|i| self.spans.snapshot(i).first().map(|b| b.seq)).collect());
        let logs = first((0..self.logs.shard_count()).map(|i| self.logs.snapshot(i).first().map(|b| b.seq)).collect());
        let metrics =
            first((0..self.metrics.shard_count()).map(|i| self.metrics.snapshot(i).first().map(|b| b.seq)).collect());
        // An empty shard holds nothing older than its next batch: `u64::MAX` forgets every reference into it,
        // which is right, since every batch it ever had is gone.
        self.index.lock().prune(|signal, shard| {
            let seqs = match signal {
                Signal::Spans => &spans,
                Signal::Logs => &logs,
                Signal::Metrics => &metrics,
            };
            seqs.get(usize::from(shard)).copied().unwrap_or(u64::MAX)
        });
    }

    /// The tenant's service graph.
    pub(crate) fn graph_view(&self, tenant: &str) -> GraphView {
        let symbols = self.symbols.lock();
        let Some(t) = symbols.get(tenant) else { return GraphView::default() };
        self.graph.lock().view(t, &symbols)
    }
}

/// The worker's own trace state.
#[derive(Debug)]
pub(crate) struct Tracer {
    pub(crate) red: Red,
    pub(crate) pending: Pending,
    pub(crate) exemplars: ExemplarLinks,
    /// Rows skipped: no room for their tenant or service name, or malformed ids (a bug upstream).
    pub(crate) skipped_rows: u64,
}

impl Tracer {
    /// `hold`: see [`Red::new`].
    pub(crate) fn new(red: &RedConfig, graph: &GraphConfig, slow: &SlowConfig, hold: Duration) -> Self {
        Self {
            red: Red::new(red, slow, hold),
            pending: Pending::new(graph),
            exemplars: ExemplarLinks::default(),
            skipped_rows: 0,
        }
    }

    /// Writes the complete RED windows, and the service graph's series at each window's end (its counters
    /// counting the calls up to that end).
    pub(crate) fn flush(
        &mut self,
        store: &TraceStore,
        write_graph: bool,
        wall_ms: i64,
        now: Instant,
        bodies: &mut Bodies,
    ) {
        let written = self.red.flush(wall_ms, now, bodies);
        if written.is_empty() {
            return;
        }
        let symbols = store.symbols.lock();
        let mut graph = store.graph.lock();
        for (tenant, end) in written {
            graph.absorb_until(tenant, end);
            if write_graph {
                self.red.counts.samples += graph.write_series(tenant, end, &symbols, bodies);
            }
        }
    }

    /// Forgets what waited too long (pending spans, stale edges).
    pub(crate) fn expire(&mut self, store: &TraceStore, now: Instant) {
        self.pending.expire(now);
        store.graph.lock().expire(now);
    }
}

#[cfg(test)]
mod tests;

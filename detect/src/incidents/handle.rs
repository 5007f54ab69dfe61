//! What the query API may ask correlation: incidents, one trace, the service graph.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow_array::RecordBatch;
use parking_lot::Mutex;

use super::table::{self, IncidentLog};
use super::{CorrelateMetrics, Incident, Status};
use crate::traces::{GraphView, TraceId, TraceStore, TraceView};

/// Merged-away ids remembered (each points at the incident that absorbed it).
const MAX_ALIASES: usize = 10_000;

#[derive(Debug)]
pub(crate) struct IncidentStore {
    pub(crate) log: IncidentLog,
    pub(crate) open: Vec<Incident>,
    aliases: HashMap<String, String>,
}

impl IncidentStore {
    pub(crate) fn new(log: IncidentLog) -> Self {
        Self { log, open: Vec::new(), aliases: HashMap::new() }
    }

    pub(crate) fn alias(&mut self, gone: String, into: String) {
        if self.aliases.len() >= MAX_ALIASES {
            self.aliases.clear();
        }
        // Earlier aliases that pointed at `gone` now point at `into`.
        for target in self.aliases.values_mut().filter(|t| **t == gone) {
            target.clone_from(&into);
        }
        self.aliases.insert(gone, into);
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: TraceStore,
    pub(crate) incidents: Mutex<IncidentStore>,
    pub(crate) metrics: CorrelateMetrics,
    /// Derived series are written (not held for start-up replay).
    pub(crate) live: AtomicBool,
}

/// A cheap, cloneable view of correlation for readers.
#[derive(Debug, Clone)]
pub struct CorrelateHandle {
    shared: Arc<Shared>,
}

/// Which incidents to list.
#[derive(Debug, Clone)]
pub struct IncidentQuery<'a> {
    pub tenant: &'a str,
    /// Incidents whose life (first signal or opening, to resolution or now) overlaps `[start_ms, end_ms]`.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub status: Option<Status>,
    /// At most this many, the most recently opened.
    pub limit: usize,
}

impl CorrelateHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Start-up replay is over: derived series are written from now on.
    pub fn replay_done(&self) {
        self.shared.live.store(true, Ordering::Relaxed);
    }

    /// The incidents table, all tenants: resolved incidents oldest first, then the open ones.
    pub fn incidents_table(&self) -> Vec<RecordBatch> {
        let store = self.shared.incidents.lock();
        store.log.snapshot(&store.open)
    }

    /// The incidents `q` selects, oldest opening first, and how many matched before `q.limit`.
    pub fn incidents(&self, q: &IncidentQuery<'_>) -> (Vec<Incident>, usize) {
        let mut out = table::read(&self.incidents_table(), |h| {
            let from = h.started_at_ms.min(h.opened_at_ms);
            let to = h.resolved_at_ms.map_or(i64::MAX, |r| r.max(h.last_signal_ms));
            h.tenant == q.tenant
                && q.start_ms.is_none_or(|s| to >= s)
                && q.end_ms.is_none_or(|e| from <= e)
                && q.status.is_none_or(|s| h.status == s)
        });
        out.sort_by(|a, b| (a.opened_at_ms, &a.id).cmp(&(b.opened_at_ms, &b.id)));
        let matched = out.len();
        if matched > q.limit {
            out.drain(..matched - q.limit);
        }
        (out, matched)
    }

    /// One incident of the tenant by id; an id merged into another answers with that one.
    pub fn incident(&self, tenant: &str, id: &str) -> Option<Incident> {
        let id = self.shared.incidents.lock().aliases.get(id).cloned().unwrap_or_else(|| id.to_owned());
        table::read(&self.incidents_table(), |h| h.tenant == tenant && h.id == id).into_iter().next()
    }

    /// The spans, log lines and exemplar samples Vigil holds for the tenant's trace.
    pub fn trace(&self, tenant: &str, trace: &TraceId) -> Option<TraceView> {
        self.shared.store.trace(tenant, trace)
    }

    pub fn service_graph(&self, tenant: &str) -> GraphView {
        self.shared.store.graph_view(tenant)
    }
}

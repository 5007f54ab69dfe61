//! Ingested series recorded into the own-series store: which ones ([`KeepSet`]) and the feeder's side of it
//! ([`KeptSamples`]).
//!
//! The keep set is `own_series.keep` plus every vector selector inside the loaded threshold rules' `expr`
//! (replaced on each rule reload; a rule's `tenants`, when it has them, limit its selectors to those
//! tenants). Rule selectors of Vigil's own names (`anomaly_*`, `vigil_*`) are left out: those series are in
//! the store already, and a rule on them means them. Readers hold a `tokio::sync::watch` receiver of
//! [`KeepSnapshot`]s, which also wakes them when the set changes.
//!
//! The binary's feeder hands the columns of each sealed metrics batch to [`KeptSamples::feed`]. A series is
//! matched once, at its first sample, by its registry slot (dense, never reused), and the decision is kept
//! until the keep set changes: per sample, a series not kept costs one array read. The samples of kept
//! series wait in per-series vectors until [`KeptSamples::flush`] appends them, tenant by tenant, under the
//! store's bounds (retention, `max_series`, `max_samples`, counted as for any own series). The engine's
//! `anomaly_*` write-back is never taken from the buffer: it reaches the store through its own tee.

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use promql_parser::label::{MatchOp, Matchers};
use promql_parser::parser::{Expr, VectorSelector};
use tokio::sync::watch;
use vigil_ingest::series::{SeriesRegistry, decode_label_key};

use super::{Labels, METRIC_NAME, OwnSeriesStore, SeriesKey};
use crate::promql::selects;

/// Prometheus' staleness marker, a NaN with these bits: "the series ended here", not a value.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// The engine's write-back (`anomaly_score`, …): in the store through the write-back tee already.
const ENGINE_OUTPUT: &str = "anomaly_";
/// Names of series Vigil writes into the store itself; a rule reading them is not asking for ingested ones.
const OWN_PREFIXES: [&str; 2] = [ENGINE_OUTPUT, "vigil_"];

/// `decided` values besides an index into `kept`.
const UNDECIDED: u32 = u32::MAX;
const NOT_KEPT: u32 = u32::MAX - 1;

/// `text` as a plain series selector (`up`, `up{job="api"}`, `{__name__=~"node_.*"}`): no expression, no
/// range, offset or `@`.
pub(crate) fn parse_selector(text: &str) -> Result<VectorSelector, String> {
    match promql_parser::parser::parse(text)? {
        Expr::VectorSelector(vs) if vs.offset.is_none() && vs.at.is_none() => Ok(vs),
        Expr::VectorSelector(_) => Err(format!("{text:?} must be a plain series selector, without offset or @")),
        _ => Err(format!("{text:?} is not a series selector like 'up{{job=\"api\"}}'")),
    }
}

/// One selector of the keep set.
#[derive(Debug, Clone)]
pub(crate) struct KeepSelector {
    /// As PromQL prints it, without offset or `@`: two selectors are the same when this and `tenants` are.
    text: String,
    name: Option<String>,
    matchers: Matchers,
    /// Only these tenants' series (a rule's `tenants`); every tenant if absent.
    tenants: Option<Vec<String>>,
}

impl PartialEq for KeepSelector {
    fn eq(&self, other: &Self) -> bool {
        (&self.text, &self.tenants) == (&other.text, &other.tenants)
    }
}

impl KeepSelector {
    fn new(vs: &VectorSelector, tenants: Option<&[String]>) -> Self {
        let plain = VectorSelector::new(vs.name.clone(), vs.matchers.clone());
        Self {
            text: plain.to_string(),
            name: plain.name,
            matchers: plain.matchers,
            tenants: tenants.map(|t| {
                let mut t = t.to_vec();
                t.sort();
                t.dedup();
                t
            }),
        }
    }

    fn applies_to(&self, tenant: &str) -> bool {
        self.tenants.as_ref().is_none_or(|t| t.iter().any(|x| x == tenant))
    }

    /// The metric name the selector asks for by equality, if any.
    fn metric_name(&self) -> Option<&str> {
        self.name.as_deref().or_else(|| {
            self.matchers
                .matchers
                .iter()
                .find(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
                .map(|m| m.value.as_str())
        })
    }

    fn describe(&self) -> String {
        match &self.tenants {
            Some(t) => format!("{} (tenants {})", self.text, t.join(", ")),
            None => self.text.clone(),
        }
    }
}

/// The vector selectors inside a threshold rule's `expr` (already validated), as keep selectors limited to
/// the rule's `tenants`; Vigil's own names left out.
pub(crate) fn rule_selectors(expr: &str, tenants: Option<&[String]>) -> Vec<KeepSelector> {
    let Ok(expr) = promql_parser::parser::parse(expr) else { return Vec::new() };
    vector_selectors(&expr)
        .into_iter()
        .map(|vs| KeepSelector::new(vs, tenants))
        .filter(|s| s.metric_name().is_none_or(|n| !OWN_PREFIXES.iter().any(|p| n.starts_with(p))))
        .collect()
}

/// Every vector selector of `expr`, those of range selectors included; without recursion.
fn vector_selectors(expr: &Expr) -> Vec<&VectorSelector> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::VectorSelector(vs) => out.push(vs),
            Expr::MatrixSelector(ms) => out.push(&ms.vs),
            Expr::Aggregate(a) => {
                stack.push(&a.expr);
                if let Some(p) = &a.param {
                    stack.push(p);
                }
            }
            Expr::Unary(u) => stack.push(&u.expr),
            Expr::Binary(b) => stack.extend([&*b.lhs, &*b.rhs]),
            Expr::Paren(p) => stack.push(&p.expr),
            Expr::Subquery(q) => stack.push(&q.expr),
            Expr::Call(c) => stack.extend(c.args.args.iter().map(|a| &**a)),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
    out
}

/// The keep set at one time.
#[derive(Debug, Default)]
pub struct KeepSnapshot {
    selectors: Vec<KeepSelector>,
}

impl KeepSnapshot {
    /// Nothing is kept: the feeder reads nothing.
    pub fn is_empty(&self) -> bool {
        self.selectors.is_empty()
    }

    /// The selectors, as text (with their tenants when limited).
    pub fn selectors(&self) -> Vec<String> {
        self.selectors.iter().map(KeepSelector::describe).collect()
    }

    /// The labels the store keeps for the series `pairs` of `tenant`, if a selector keeps it.
    fn keeps(&self, tenant: &str, pairs: &[(&str, &str)]) -> Option<Labels> {
        let name = pairs.iter().find(|(n, _)| *n == METRIC_NAME).map_or("", |&(_, v)| v);
        if name.starts_with(ENGINE_OUTPUT) {
            return None;
        }
        let mut labels: Option<Labels> = None;
        for s in &self.selectors {
            if s.name.as_deref().is_some_and(|n| n != name) || !s.applies_to(tenant) {
                continue;
            }
            let l = labels.get_or_insert_with(|| {
                pairs.iter().filter(|(_, v)| !v.is_empty()).map(|&(n, v)| (n.to_owned(), v.to_owned())).collect()
            });
            if selects(s.name.as_deref(), &s.matchers, l) {
                return labels;
            }
        }
        None
    }
}

/// Which ingested series the store records: `own_series.keep` and the threshold rules' selectors. Alerting
/// replaces the rules' part on every rule (re)load; the feeder watches it.
#[derive(Debug)]
pub struct KeepSet {
    configured: Vec<KeepSelector>,
    current: watch::Sender<Arc<KeepSnapshot>>,
    /// `vigil_own_series_keep_selectors`.
    gauge: Gauge,
}

impl KeepSet {
    /// The set of `configured` selectors (`own_series.keep`, validated; one that does not parse is left out).
    pub(super) fn new(configured: &[String], gauge: Gauge) -> Self {
        let mut selectors = Vec::with_capacity(configured.len());
        for (i, text) in configured.iter().enumerate() {
            match parse_selector(text) {
                Ok(vs) => selectors.push(KeepSelector::new(&vs, None)),
                Err(e) => tracing::error!(error = %e, "own_series.keep[{i}] is left out"),
            }
        }
        let selectors = normalized(selectors);
        gauge.set(i64::try_from(selectors.len()).unwrap_or(i64::MAX));
        let (current, _) = watch::channel(Arc::new(KeepSnapshot { selectors: selectors.clone() }));
        Self { configured: selectors, current, gauge }
    }

    /// The set now, and a receiver told of every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<KeepSnapshot>> {
        self.current.subscribe()
    }

    pub fn snapshot(&self) -> Arc<KeepSnapshot> {
        Arc::clone(&self.current.borrow())
    }

    /// Replaces the rules' selectors; `true` if the set changed (readers are woken only then).
    pub(crate) fn set_rule_selectors(&self, from_rules: Vec<KeepSelector>) -> bool {
        let selectors = normalized(self.configured.iter().cloned().chain(from_rules).collect());
        let n = selectors.len();
        let changed = self.current.send_if_modified(|now| {
            if now.selectors == selectors {
                return false;
            }
            *now = Arc::new(KeepSnapshot { selectors });
            true
        });
        if changed {
            self.gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
            tracing::info!(
                selectors = ?self.snapshot().selectors(),
                "Ingested series kept in the own-series store (own_series.keep and the threshold rules')."
            );
        }
        changed
    }
}

/// Sorted, without repeats.
fn normalized(mut selectors: Vec<KeepSelector>) -> Vec<KeepSelector> {
    selectors.sort_by(|a, b| (&a.text, &a.tenants).cmp(&(&b.text, &b.tenants)));
    selectors.dedup();
    selectors
}

/// The samples columns of one sealed metrics batch (`vigil_ingest::buffer` schema), row by row.
#[derive(Debug, Clone, Copy)]
pub struct SampleRows<'a> {
    /// The series' registry slots.
    pub slots: &'a [u32],
    /// Milliseconds since the Unix epoch.
    pub times: &'a [i64],
    pub values: &'a [f64],
}

/// A series the keep set keeps, and its samples waiting for the store.
#[derive(Debug)]
struct Kept {
    tenant_index: u32,
    tenant: Arc<str>,
    /// Its labels, hashed once.
    key: SeriesKey,
    samples: Vec<(i64, f64)>,
}

/// The feeder's state: every series' decision under the current keep set, and the kept samples gathered
/// for the store. One per feeder thread.
#[derive(Debug)]
pub struct KeptSamples {
    store: Arc<OwnSeriesStore>,
    keep: watch::Receiver<Arc<KeepSnapshot>>,
    snapshot: Arc<KeepSnapshot>,
    /// Per registry slot: [`UNDECIDED`], [`NOT_KEPT`], or the series' index in `kept`. 4 bytes a series.
    decided: Vec<u32>,
    kept: Vec<Kept>,
    /// Indexes in `kept` with samples waiting.
    waiting: Vec<u32>,
    samples_waiting: usize,
}

impl KeptSamples {
    pub fn new(store: Arc<OwnSeriesStore>) -> Self {
        let mut keep = store.keep().subscribe();
        let snapshot = Arc::clone(&keep.borrow_and_update());
        Self { store, keep, snapshot, decided: Vec::new(), kept: Vec::new(), waiting: Vec::new(), samples_waiting: 0 }
    }

    /// Samples gathered and not yet appended.
    pub fn waiting(&self) -> usize {
        self.samples_waiting
    }

    /// Series matched so far under the current keep set: kept, and looked at.
    pub fn series(&self) -> (usize, usize) {
        (self.kept.len(), self.decided.iter().filter(|&&d| d != UNDECIDED).count())
    }

    /// Takes a changed keep set: what was gathered goes to the store, every decision is forgotten.
    fn refresh(&mut self) {
        if !self.keep.has_changed().unwrap_or(false) {
            return;
        }
        self.flush();
        self.snapshot = Arc::clone(&self.keep.borrow_and_update());
        self.decided.clear();
        self.kept.clear();
        if self.snapshot.is_empty() {
            self.decided.shrink_to_fit();
            self.kept.shrink_to_fit();
            self.waiting.shrink_to_fit();
        }
    }

    /// Gathers the samples of kept series among `rows` (series resolved in `registry`). Staleness markers
    /// are skipped: the series then lasts the 5-minute lookback after its last sample.
    pub fn feed(&mut self, registry: &SeriesRegistry, rows: SampleRows<'_>) {
        self.refresh();
        if self.snapshot.is_empty() {
            return;
        }
        for ((&slot, &ts), &value) in rows.slots.iter().zip(rows.times).zip(rows.values) {
            let at = match self.decided.get(slot as usize) {
                Some(&d) if d != UNDECIDED => d,
                _ => self.decide(registry, slot),
            };
            if at == NOT_KEPT || value.to_bits() == STALE_NAN_BITS {
                continue;
            }
            let Some(kept) = self.kept.get_mut(at as usize) else { continue };
            if kept.samples.is_empty() {
                self.waiting.push(at);
            }
            kept.samples.push((ts, value));
            self.samples_waiting += 1;
        }
    }

    /// Matches the series of `slot` against the keep set, once.
    #[cold]
    fn decide(&mut self, registry: &SeriesRegistry, slot: u32) -> u32 {
        let i = slot as usize;
        if self.decided.len() <= i {
            self.decided.resize(i + 1, UNDECIDED);
        }
        let found = registry
            .series_by_slot(slot)
            .and_then(|(key, tenant_index)| Some((key, tenant_index, registry.tenant_name(tenant_index)?)));
        let decision = match found {
            Some((key, tenant_index, tenant)) => {
                let pairs: Vec<(&str, &str)> = decode_label_key(key).map(|p| (p.name, p.value)).collect();
                match self.snapshot.keeps(tenant, &pairs) {
                    Some(labels) => {
                        let at = u32::try_from(self.kept.len()).unwrap_or(NOT_KEPT).min(NOT_KEPT);
                        if at != NOT_KEPT {
                            let (tenant, key) = (Arc::clone(tenant), self.store.key(Arc::new(labels)));
                            self.kept.push(Kept { tenant_index, tenant, key, samples: Vec::new() });
                        }
                        at
                    }
                    None => NOT_KEPT,
                }
            }
            None => NOT_KEPT,
        };
        self.decided[i] = decision;
        decision
    }

    /// Appends every sample waiting to the store, one tenant at a time.
    pub fn flush(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let kept = &self.kept;
        let tenant_of = |at: u32| kept.get(at as usize).map_or(u32::MAX, |k| k.tenant_index);
        self.waiting.sort_unstable_by_key(|&at| tenant_of(at));
        for run in self.waiting.chunk_by(|&a, &b| tenant_of(a) == tenant_of(b)) {
            let Some(first) = run.first().and_then(|&at| kept.get(at as usize)) else { continue };
            let series = run.iter().filter_map(|&at| kept.get(at as usize)).map(|k| (&k.key, k.samples.as_slice()));
            self.store.append_kept(&first.tenant, series);
        }
        for &at in &self.waiting {
            if let Some(k) = self.kept.get_mut(at as usize) {
                k.samples.clear();
            }
        }
        self.waiting.clear();
        self.samples_waiting = 0;
    }

    /// `batches` of the metrics buffer were evicted before the feeder read them.
    pub fn lagged(&self, batches: u64) {
        self.store.metrics.keep_lagged.inc_by(batches);
    }
}

impl OwnSeriesStore {
    /// Samples of kept ingested series of `tenant`, under the store's bounds.
    fn append_kept<'a>(&self, tenant: &str, series: impl Iterator<Item = (&'a SeriesKey, &'a [(i64, f64)])>) {
        let now = self.now_ms();
        self.maybe_sweep(now);
        let cutoff = now.saturating_sub(self.retention_ms());
        self.with_tenant(tenant, |t| {
            for (key, samples) in series {
                self.append_labelled(t, key, samples, cutoff);
            }
        });
        self.update_gauges();
    }
}

#[cfg(test)]
mod tests;

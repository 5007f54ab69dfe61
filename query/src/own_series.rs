//! The store behind Vigil's Prometheus API: the series Vigil computes itself (anomaly scores, span RED
//! metrics, incident counts), per tenant, in memory.
//!
//! Bounded three ways (`own_series:`): samples older than `retention` (from now) are not taken and are swept
//! away once a minute; at most `max_series` series, all tenants together (samples of further new series are
//! dropped and counted); at most `max_samples` samples, all series together (16 bytes each: when reached, a
//! series' new sample takes the place of its own oldest one, so every series keeps what it has and rolls
//! over, and a series with nothing yet gets nothing). Every drop is counted in
//! `vigil_own_series_dropped_samples_total{reason}`.
//!
//! Producers reach it through [`vigil_ingest::own_series::OwnSeriesSink`]; the PromQL evaluator reads it
//! with [`OwnSeriesStore::select`], which copies what a query needs so no lock is held while it evaluates.
//!
//! Ingested series join them when the store's [`KeepSet`] selects them (`own_series.keep`, plus every
//! selector the threshold rules read): the binary's feeder reads the metrics buffer through [`KeptSamples`]
//! ([`keep`]), under the same bounds.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use vigil_ingest::own_series::{OwnSeries, OwnSeriesSink};
use vigil_ingest::series::IdHasher;

mod keep;

pub(crate) use keep::{KeepSelector, rule_selectors};
pub use keep::{KeepSet, KeepSnapshot, KeptSamples, SampleRows};

/// A series' labels, sorted by name (the order Prometheus compares and prints them in); no empty values.
pub(crate) type Labels = BTreeMap<String, String>;

pub(crate) const METRIC_NAME: &str = "__name__";

/// How often expired samples are swept away (a query never sees them either way).
const SWEEP_EVERY_MS: i64 = 60_000;

/// `own_series:` — bounds of the store behind the Prometheus API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OwnSeriesConfig {
    /// How long samples are kept, counted back from now.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Series kept at most, all tenants together.
    pub max_series: usize,
    /// Samples kept at most, all series together (16 bytes each in memory).
    pub max_samples: usize,
    /// How often Vigil's own metrics (`vigil_*`, as `/metrics` shows them) are recorded into the store, under
    /// `tenancy.default_tenant`; `0s`: never.
    #[serde(with = "humantime_serde")]
    pub self_metrics_interval: Duration,
    /// PromQL series selectors (`up`, `node_cpu_seconds_total{mode="idle"}`, `{job="api"}`): ingested
    /// series (remote write, OTLP) matching any of them are recorded into the store too, under their tenant.
    /// The selectors of the loaded threshold rules are added to these.
    pub keep: Vec<String>,
}

impl Default for OwnSeriesConfig {
    fn default() -> Self {
        // 10 M samples are 160 MiB: a day of four anomaly_* series for ~430 series scored every 15 s.
        Self {
            retention: Duration::from_secs(24 * 3600),
            max_series: 50_000,
            max_samples: 10_000_000,
            self_metrics_interval: Duration::from_secs(15),
            keep: Vec::new(),
        }
    }
}

impl OwnSeriesConfig {
    /// Every problem, each naming its key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.retention < Duration::from_secs(1) {
            problems.push("own_series.retention must be at least 1s".to_owned());
        }
        if self.max_series == 0 {
            problems.push("own_series.max_series must be > 0".to_owned());
        }
        if self.max_samples == 0 {
            problems.push("own_series.max_samples must be > 0".to_owned());
        }
        for (i, text) in self.keep.iter().enumerate() {
            if let Err(e) = keep::parse_selector(text) {
                problems.push(format!("own_series.keep[{i}]: {e}"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// `vigil_own_series_*`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct OwnSeriesMetrics {
    appended: Counter,
    /// `too_old` (before the retention), `series_limit` (`own_series.max_series`), `samples_limit`
    /// (`own_series.max_samples`: a series' oldest sample rolled over, or a new series' sample refused),
    /// `no_name` (no `__name__`).
    dropped: Family<ReasonLabels, Counter>,
    series: Gauge,
    samples: Gauge,
    keep_selectors: Gauge,
    keep_lagged: Counter,
    /// `dropped{reason="samples_limit"}`, looked up once: a full store counts one for every sample.
    samples_limit: Counter,
}

impl Default for OwnSeriesMetrics {
    fn default() -> Self {
        let dropped = Family::<ReasonLabels, Counter>::default();
        let samples_limit = dropped.get_or_create(&ReasonLabels { reason: "samples_limit" }).clone();
        Self {
            appended: Counter::default(),
            dropped,
            series: Gauge::default(),
            samples: Gauge::default(),
            keep_selectors: Gauge::default(),
            keep_lagged: Counter::default(),
            samples_limit,
        }
    }
}

impl OwnSeriesMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("vigil_own_series");
        r.register("appended_samples", "Samples added to the own-series store", m.appended.clone());
        r.register("dropped_samples", "Own-series samples dropped or rolled over, by reason", m.dropped.clone());
        r.register("series", "Series in the own-series store", m.series.clone());
        r.register("samples", "Samples in the own-series store", m.samples.clone());
        r.register(
            "keep_selectors",
            "Selectors of ingested series recorded into the store (own_series.keep and the threshold rules')",
            m.keep_selectors.clone(),
        );
        r.register(
            "keep_lagged_batches",
            "Metrics buffer batches evicted before the keep feeder read them (their kept samples are missing)",
            m.keep_lagged.clone(),
        );
        m
    }

    fn drop(&self, reason: &'static str, n: usize) {
        if n > 0 {
            self.dropped.get_or_create(&ReasonLabels { reason }).inc_by(n as u64);
        }
    }
}

type Samples = VecDeque<(i64, f64)>;

/// A series in its tenant's map: its labels and their hash, computed once with the store's keyed hasher,
/// so appending to a known series (the keep feeder's, at every flush) hashes no label.
#[derive(Debug, Clone)]
struct SeriesKey {
    hash: u64,
    labels: Arc<Labels>,
}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        // `Arc`'s equality checks the pointer first: the same series' key compares no label.
        self.hash == other.hash && self.labels == other.labels
    }
}

impl Eq for SeriesKey {}

#[derive(Debug, Default)]
struct TenantSeries {
    // `IdHasher` passes the key's precomputed hash through.
    series: HashMap<SeriesKey, Samples, BuildHasherDefault<IdHasher>>,
}

/// One series as a query sees it: its labels and its samples within the asked window, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Selected {
    pub(crate) labels: Arc<Labels>,
    pub(crate) samples: Vec<(i64, f64)>,
}

/// What one query may still copy out of the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) series: usize,
    pub(crate) samples: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BudgetError {
    #[error("query processing would load too many samples into memory in query execution (more than {0})")]
    Samples(usize),
    #[error("query selects too many series (more than {0})")]
    Series(usize),
}

/// Vigil's own series, per tenant.
pub struct OwnSeriesStore {
    config: OwnSeriesConfig,
    tenants: RwLock<HashMap<Arc<str>, Arc<RwLock<TenantSeries>>>>,
    series: AtomicUsize,
    samples: AtomicUsize,
    next_sweep_ms: AtomicI64,
    metrics: OwnSeriesMetrics,
    /// Which ingested series are recorded here too.
    keep: Arc<KeepSet>,
    /// Keyed (per process) label-set hashing: series labels come from clients.
    label_hasher: RandomState,
    /// Milliseconds since the Unix epoch; a parameter so tests can pin "now".
    clock: fn() -> i64,
}

impl std::fmt::Debug for OwnSeriesStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnSeriesStore")
            .field("config", &self.config)
            .field("series", &self.series.load(Ordering::Relaxed))
            .field("samples", &self.samples.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl OwnSeriesStore {
    pub fn new(config: OwnSeriesConfig, metrics: OwnSeriesMetrics) -> Self {
        Self::with_clock(config, metrics, wall_clock_ms)
    }

    /// A store whose "now" is `clock` (tests).
    pub fn with_clock(config: OwnSeriesConfig, metrics: OwnSeriesMetrics, clock: fn() -> i64) -> Self {
        let keep = Arc::new(KeepSet::new(&config.keep, metrics.keep_selectors.clone()));
        Self {
            keep,
            label_hasher: RandomState::new(),
            config,
            tenants: RwLock::default(),
            series: AtomicUsize::new(0),
            samples: AtomicUsize::new(0),
            next_sweep_ms: AtomicI64::new(i64::MIN),
            metrics,
            clock,
        }
    }

    /// The ingested series recorded here too: `own_series.keep` and the threshold rules' selectors.
    pub fn keep(&self) -> &Arc<KeepSet> {
        &self.keep
    }

    pub(crate) fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    fn retention_ms(&self) -> i64 {
        i64::try_from(self.config.retention.as_millis()).unwrap_or(i64::MAX)
    }

    /// The oldest timestamp kept now.
    fn cutoff_ms(&self) -> i64 {
        self.now_ms().saturating_sub(self.retention_ms())
    }

    /// Series and samples held, all tenants together.
    pub fn len(&self) -> (usize, usize) {
        (self.series.load(Ordering::Relaxed), self.samples.load(Ordering::Relaxed))
    }

    pub fn is_empty(&self) -> bool {
        self.len().0 == 0
    }

    /// The tenants holding series now.
    pub(crate) fn tenants(&self) -> Vec<Arc<str>> {
        self.tenants.read().keys().cloned().collect()
    }

    fn tenant(&self, tenant: &str) -> Option<Arc<RwLock<TenantSeries>>> {
        self.tenants.read().get(tenant).cloned()
    }

    /// Reserves room for one more sample; at `max_samples` it takes the place of the series' oldest one (if
    /// it has one). `false`: no room.
    fn make_room(&self, samples: &mut Samples) -> bool {
        let reserved = self.samples.fetch_add(1, Ordering::Relaxed);
        if reserved < self.config.max_samples {
            return true;
        }
        self.samples.fetch_sub(1, Ordering::Relaxed);
        self.metrics.samples_limit.inc();
        samples.pop_front().is_some()
    }

    fn insert(&self, samples: &mut Samples, ts: i64, value: f64) {
        match samples.back() {
            Some(&(last, _)) if last == ts => {
                if let Some(back) = samples.back_mut() {
                    back.1 = value;
                }
            }
            Some(&(last, _)) if last > ts => {
                // Out of order (several producers of one series, or a late batch): kept in its place.
                let at = samples.partition_point(|&(t, _)| t < ts);
                if samples.get(at).is_some_and(|&(t, _)| t == ts) {
                    samples[at].1 = value;
                } else if self.make_room(samples) {
                    let at = samples.partition_point(|&(t, _)| t < ts);
                    samples.insert(at, (ts, value));
                    self.metrics.appended.inc();
                }
            }
            _ => {
                if self.make_room(samples) {
                    samples.push_back((ts, value));
                    self.metrics.appended.inc();
                }
            }
        }
    }

    /// The map key of the series `labels` (no empty values).
    fn key(&self, labels: Arc<Labels>) -> SeriesKey {
        SeriesKey { hash: self.label_hasher.hash_one(&*labels), labels }
    }

    fn append_one(&self, t: &mut TenantSeries, series: OwnSeries, cutoff: i64) {
        let labels: Labels = series.labels.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        self.append_labelled(t, &self.key(Arc::new(labels)), &series.samples, cutoff);
    }

    /// `samples` of the series `key`, taken within the bounds.
    fn append_labelled(&self, t: &mut TenantSeries, key: &SeriesKey, samples: &[(i64, f64)], cutoff: i64) {
        let kept = samples.iter().filter(|&&(ts, _)| ts >= cutoff).count();
        self.metrics.drop("too_old", samples.len() - kept);
        if kept == 0 {
            return;
        }
        if !key.labels.contains_key(METRIC_NAME) {
            self.metrics.drop("no_name", kept);
            return;
        }
        let stored = match t.series.entry(key.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                if self.series.fetch_add(1, Ordering::Relaxed) >= self.config.max_series {
                    self.series.fetch_sub(1, Ordering::Relaxed);
                    self.metrics.drop("series_limit", kept);
                    return;
                }
                e.insert(VecDeque::new())
            }
        };
        for &(ts, value) in samples.iter().filter(|&&(ts, _)| ts >= cutoff) {
            self.insert(stored, ts, value);
        }
    }

    /// Drops every sample older than the retention, and series and tenants left empty.
    fn sweep(&self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.retention_ms());
        let tenants: Vec<(Arc<str>, Arc<RwLock<TenantSeries>>)> =
            self.tenants.read().iter().map(|(k, v)| (Arc::clone(k), Arc::clone(v))).collect();
        let mut emptied = Vec::new();
        for (name, tenant) in tenants {
            let mut t = tenant.write();
            let mut removed_samples = 0;
            let before = t.series.len();
            t.series.retain(|_, samples| {
                while samples.front().is_some_and(|&(ts, _)| ts < cutoff) {
                    samples.pop_front();
                    removed_samples += 1;
                }
                !samples.is_empty()
            });
            self.series.fetch_sub(before - t.series.len(), Ordering::Relaxed);
            self.samples.fetch_sub(removed_samples, Ordering::Relaxed);
            if t.series.is_empty() {
                emptied.push(name);
            }
        }
        if !emptied.is_empty() {
            let mut tenants = self.tenants.write();
            for name in emptied {
                // Only if still empty: an append may have come in since.
                if tenants.get(&name).is_some_and(|t| t.read().series.is_empty()) {
                    tenants.remove(&name);
                }
            }
        }
    }

    fn maybe_sweep(&self, now_ms: i64) {
        let due = self.next_sweep_ms.load(Ordering::Relaxed);
        if now_ms >= due
            && self
                .next_sweep_ms
                .compare_exchange(due, now_ms.saturating_add(SWEEP_EVERY_MS), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.sweep(now_ms);
        }
    }

    fn update_gauges(&self) {
        let (series, samples) = self.len();
        self.metrics.series.set(i64::try_from(series).unwrap_or(i64::MAX));
        self.metrics.samples.set(i64::try_from(samples).unwrap_or(i64::MAX));
    }

    /// Every series of `tenant` that `matches` and has a sample in `[from_ms, to_ms]`, with those samples;
    /// charged to `budget`.
    pub(crate) fn select(
        &self,
        tenant: &str,
        matches: &dyn Fn(&Labels) -> bool,
        (from_ms, to_ms): (i64, i64),
        budget: &mut Budget,
    ) -> Result<Vec<Selected>, BudgetError> {
        let from_ms = from_ms.max(self.cutoff_ms());
        let Some(t) = self.tenant(tenant) else { return Ok(Vec::new()) };
        let t = t.read();
        let mut out = Vec::new();
        for (key, samples) in &t.series {
            if !matches(&key.labels) {
                continue;
            }
            let lo = samples.partition_point(|&(ts, _)| ts < from_ms);
            let hi = samples.partition_point(|&(ts, _)| ts <= to_ms);
            if lo >= hi {
                continue;
            }
            budget.series = budget.series.checked_sub(1).ok_or(BudgetError::Series(budget.series))?;
            let n = hi - lo;
            if n > budget.samples {
                return Err(BudgetError::Samples(budget.samples));
            }
            budget.samples -= n;
            out.push(Selected { labels: Arc::clone(&key.labels), samples: samples.range(lo..hi).copied().collect() });
        }
        Ok(out)
    }

    /// The newest sample in `(from_ms, to_ms]` of every series of `tenant` that `matches`: what an instant
    /// selector reads, without copying the window (alert rules read every series each evaluation).
    pub(crate) fn latest(
        &self,
        tenant: &str,
        matches: &dyn Fn(&Labels) -> bool,
        (from_ms, to_ms): (i64, i64),
    ) -> Vec<(Arc<Labels>, f64)> {
        let from_ms = from_ms.max(self.cutoff_ms().saturating_sub(1));
        let Some(t) = self.tenant(tenant) else { return Vec::new() };
        let t = t.read();
        t.series
            .iter()
            .filter(|(key, _)| matches(&key.labels))
            .filter_map(|(key, samples)| {
                let hi = samples.partition_point(|&(ts, _)| ts <= to_ms);
                let &(ts, value) = samples.get(hi.checked_sub(1)?)?;
                (ts > from_ms).then(|| (Arc::clone(&key.labels), value))
            })
            .collect()
    }

    /// The label sets of every series of `tenant` that `matches` and has a sample in `[from_ms, to_ms]`.
    pub(crate) fn series(
        &self,
        tenant: &str,
        matches: &dyn Fn(&Labels) -> bool,
        (from_ms, to_ms): (i64, i64),
    ) -> Vec<Arc<Labels>> {
        let from_ms = from_ms.max(self.cutoff_ms());
        let Some(t) = self.tenant(tenant) else { return Vec::new() };
        let t = t.read();
        t.series
            .iter()
            .filter(|(key, samples)| {
                matches(&key.labels) && {
                    let lo = samples.partition_point(|&(ts, _)| ts < from_ms);
                    samples.get(lo).is_some_and(|&(ts, _)| ts <= to_ms)
                }
            })
            .map(|(key, _)| Arc::clone(&key.labels))
            .collect()
    }
}

impl OwnSeriesStore {
    fn append_all(&self, tenant: &str, series: Vec<OwnSeries>, now: i64) {
        let cutoff = now.saturating_sub(self.retention_ms());
        self.with_tenant(tenant, |t| {
            for s in series {
                self.append_one(t, s, cutoff);
            }
        });
    }

    /// Runs `f` on `tenant`'s series (created if new), write-locked.
    fn with_tenant(&self, tenant: &str, f: impl FnOnce(&mut TenantSeries)) {
        // The map stays read-locked while appending: the sweep removes an empty tenant under its write lock,
        // so it cannot take one away between finding it here and writing into it.
        let tenants = loop {
            let tenants = self.tenants.read();
            if tenants.contains_key(tenant) {
                break tenants;
            }
            drop(tenants);
            self.tenants.write().entry(Arc::from(tenant)).or_default();
        };
        let Some(t) = tenants.get(tenant) else { return };
        f(&mut t.write());
    }
}

impl OwnSeriesSink for OwnSeriesStore {
    fn append(&self, tenant: &str, series: Vec<OwnSeries>) {
        let now = self.now_ms();
        self.maybe_sweep(now);
        if !series.is_empty() {
            self.append_all(tenant, series, now);
        }
        self.update_gauges();
    }
}

#[cfg(test)]
mod tests;

//! Span-derived RED series: per tenant, service, operation (span name) and span kind, one window per
//! `red.step` of span *end* time, written when the window is complete as
//!
//! - `traces_spanmetrics_requests_per_second` — spans ending in the window per second,
//! - `traces_spanmetrics_error_ratio` — the share of them with status `ERROR`,
//! - `traces_spanmetrics_latency_seconds{quantile="…"}` — duration quantiles (exact up to 512 spans per
//!   window, then from a [`Sketch`]),
//!
//! each with `service`, `span_name` and `span_kind` labels, at the window's end. Gauges per window rather than
//! Tempo's cumulative counters: the anomaly engine scores a level it can see move (an error ratio that leaves
//! zero is anomalous at once; a new `…_calls_total{status_code="STATUS_CODE_ERROR"}` series would still be
//! warming up).
//!
//! Windows are in span time, not arrival time: SDKs export every few seconds, so arrival-time windows would
//! alternate between one and two exports' worth of spans. A window is complete once a span ending
//! `red.lateness` past its end has arrived (the tenant's watermark), or, when the tenant sends nothing for
//! `red.lateness`, by the wall clock. Later spans are counted as late and left out. An operation that
//! falls silent gets zero-rate samples for `red.idle_after`; a jump of the clock over a long silence
//! (say, after a backfill) writes nothing for the empty windows in between.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{RedConfig, SlowConfig, SpanKind};
use super::encode::Bodies;
use super::millis;
use super::sketch::Sketch;

pub(crate) const REQUESTS: &str = "traces_spanmetrics_requests_per_second";
pub(crate) const ERROR_RATIO: &str = "traces_spanmetrics_error_ratio";
pub(crate) const LATENCY: &str = "traces_spanmetrics_latency_seconds";

/// Spans ending further than this past the wall clock are skew, not data: they would flush every window.
const MAX_FUTURE_MS: i64 = 5 * 60_000;

/// One span, as the RED windows see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanSample<'a> {
    pub(crate) tenant: u32,
    pub(crate) tenant_name: &'a Arc<str>,
    pub(crate) service: u32,
    pub(crate) service_name: &'a Arc<str>,
    pub(crate) name: &'a str,
    pub(crate) kind: SpanKind,
    pub(crate) root: bool,
    pub(crate) end_ms: i64,
    pub(crate) duration_ns: i64,
    pub(crate) error: bool,
}

#[derive(Debug)]
struct OpInfo {
    tenant: Arc<str>,
    service: Arc<str>,
    name: Arc<str>,
    kind: SpanKind,
    /// Start of the newest window that had spans of this operation.
    last_bucket: Option<i64>,
    /// The usual median duration (ns), learnt from the windows; what a slow span is measured against.
    baseline_ns: f64,
    windows: u32,
}

/// Durations a window keeps exactly; past it, quantiles come from the sketch.
const EXACT: usize = 512;

#[derive(Debug, Default)]
struct Window {
    count: u64,
    errors: u64,
    /// Every duration once there are more than [`EXACT`] (empty until then).
    sketch: Sketch,
    /// The first [`EXACT`] durations: a quantile of a few spans read from the sketch's buckets would jump
    /// between bucket levels, and a series of few levels looks flat to a detector until it jumps.
    exact: Vec<i64>,
}

impl Window {
    fn add(&mut self, duration_ns: i64) {
        self.count += 1;
        if self.exact.len() < EXACT {
            self.exact.push(duration_ns);
            return;
        }
        if self.count == EXACT as u64 + 1 {
            // Past what is kept exactly: the sketch takes over, from the first span on.
            for d in &self.exact {
                self.sketch.add(*d);
            }
        }
        self.sketch.add(duration_ns);
    }

    /// Nearest-rank quantiles (ns), exact while the window holds every duration.
    fn quantiles(&mut self, qs: impl Iterator<Item = f64>) -> Vec<Option<f64>> {
        let exact = self.exact.len() as u64 == self.count;
        if exact {
            self.exact.sort_unstable();
        }
        qs.map(|q| {
            if !exact {
                return self.sketch.quantile(q);
            }
            let rank = ((q.clamp(0.0, 1.0) * self.exact.len() as f64).ceil() as usize).max(1);
            self.exact.get(rank - 1).map(|d| *d as f64)
        })
        .collect()
    }
}

#[derive(Debug)]
struct TenantWindows {
    buckets: BTreeMap<i64, HashMap<u32, Window>>,
    /// When each window was first found complete by the watermark: it is written `hold` later.
    ready: HashMap<i64, Instant>,
    /// End of the newest window written: spans ending before it are late. `None` until one is written.
    next: Option<i64>,
    max_seen: i64,
    last_arrival: Instant,
    ops: Vec<u32>,
}

/// Counts for Vigil's own metrics, taken by the worker.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RedCounts {
    pub(crate) late: u64,
    pub(crate) future: u64,
    pub(crate) over_cap: u64,
    pub(crate) samples: u64,
}

#[derive(Debug)]
pub(crate) struct Red {
    step_ms: i64,
    lateness: Duration,
    hold: Duration,
    lateness_ms: i64,
    idle_ms: i64,
    quantiles: Vec<(f64, String)>,
    kinds: Vec<SpanKind>,
    max_ops: usize,
    slow: SlowConfig,
    /// (tenant, service, kind, hash of the name) → operation; the name is compared on every hit.
    ops: HashMap<(u32, u32, SpanKind, u64), u32>,
    infos: Vec<OpInfo>,
    tenants: HashMap<u32, TenantWindows>,
    pub(crate) counts: RedCounts,
}

impl Red {
    /// `hold`: how long a complete window waits before it is written. The spans of one window reach
    /// correlation through every buffer shard, whose sealed batches arrive up to a seal interval apart (in a
    /// backfill that is many windows of span time): the watermark alone would write windows whose spans are
    /// still in another shard's open batch.
    pub(crate) fn new(config: &RedConfig, slow: &SlowConfig, hold: Duration) -> Self {
        Self {
            step_ms: millis(config.step).max(1),
            lateness: config.lateness,
            hold,
            lateness_ms: millis(config.lateness),
            idle_ms: millis(config.idle_after),
            quantiles: config.quantiles.iter().map(|q| (*q, q.to_string())).collect(),
            kinds: config.span_kinds.clone(),
            max_ops: config.max_operations,
            slow: slow.clone(),
            ops: HashMap::new(),
            infos: Vec::new(),
            tenants: HashMap::new(),
            counts: RedCounts::default(),
        }
    }

    pub(crate) fn operations(&self) -> usize {
        self.infos.len()
    }

    /// Adds a span to its window. Returns its operation (for [`Red::is_slow`]) when it is a request.
    pub(crate) fn add(&mut self, s: &SpanSample<'_>, wall_ms: i64, now: Instant) -> Option<u32> {
        if !(s.root || self.kinds.contains(&s.kind)) {
            return None;
        }
        let op = self.op(s)?;
        if s.end_ms > wall_ms.saturating_add(MAX_FUTURE_MS) {
            self.counts.future += 1;
            return Some(op);
        }
        let bucket = s.end_ms.div_euclid(self.step_ms) * self.step_ms;
        let t = self.tenants.entry(s.tenant).or_insert_with(|| TenantWindows {
            buckets: BTreeMap::new(),
            ready: HashMap::new(),
            next: None,
            max_seen: i64::MIN,
            last_arrival: now,
            ops: Vec::new(),
        });
        if !t.ops.contains(&op) {
            t.ops.push(op);
        }
        if t.next.is_some_and(|next| bucket < next) {
            self.counts.late += 1;
            return Some(op);
        }
        let w = t.buckets.entry(bucket).or_default().entry(op).or_default();
        w.add(s.duration_ns);
        w.errors += u64::from(s.error);
        t.max_seen = t.max_seen.max(s.end_ms);
        t.last_arrival = now;
        Some(op)
    }

    fn op(&mut self, s: &SpanSample<'_>) -> Option<u32> {
        let mut h = DefaultHasher::new();
        s.name.hash(&mut h);
        let key = (s.tenant, s.service, s.kind, h.finish());
        if let Some(&op) = self.ops.get(&key) {
            // A hash collision between two names of one service: the second is not tracked.
            return (*self.infos[op as usize].name == *s.name).then_some(op);
        }
        if self.infos.len() >= self.max_ops {
            self.counts.over_cap += 1;
            return None;
        }
        let op = u32::try_from(self.infos.len()).ok()?;
        self.infos.push(OpInfo {
            tenant: Arc::clone(s.tenant_name),
            service: Arc::clone(s.service_name),
            name: Arc::from(s.name),
            kind: s.kind,
            last_bucket: None,
            baseline_ns: 0.0,
            windows: 0,
        });
        self.ops.insert(key, op);
        Some(op)
    }

    /// A latency outlier: more than `slow.factor` times the operation's usual median, and at least
    /// `slow.min_duration`, once the operation has `slow.min_windows` windows behind it.
    pub(crate) fn is_slow(&self, op: u32, duration_ns: i64) -> bool {
        let Some(info) = self.infos.get(op as usize) else { return false };
        let d = duration_ns as f64;
        info.windows >= self.slow.min_windows
            && d > self.slow.factor * info.baseline_ns
            && d >= self.slow.min_duration.as_nanos() as f64
    }

    /// Writes every complete window into `bodies`; returns (tenant, window end) of each window written, for
    /// the service graph's series at the same times.
    pub(crate) fn flush(&mut self, wall_ms: i64, now: Instant, bodies: &mut Bodies) -> Vec<(u32, i64)> {
        let mut written = Vec::new();
        let step = self.step_ms;
        let tenants: Vec<u32> = self.tenants.keys().copied().collect();
        for tenant in tenants {
            let Some(t) = self.tenants.get_mut(&tenant) else { continue };
            if t.buckets.is_empty() {
                continue;
            }
            let mut next = t.next;
            // Quiet for `lateness` (at least a second: a lateness of 0 means "do not wait for late spans",
            // not "every tenant is always idle").
            let idle = now.saturating_duration_since(t.last_arrival) >= self.lateness.max(Duration::from_secs(1));
            let target = if idle {
                // Nothing more is coming soon: everything received is complete, and the wall clock moves on.
                let seen = if t.max_seen == i64::MIN { i64::MIN } else { t.max_seen.div_euclid(step) * step + step };
                seen.max(wall_ms.saturating_sub(self.lateness_ms))
            } else {
                t.max_seen.saturating_sub(self.lateness_ms)
            };
            // Windows with spans, complete by now and for `hold`, in order. A window without any span of the
            // tenant is not written: when everything falls silent at once, the pipeline stopped, not every
            // service.
            let mut due = Vec::new();
            while let Some(start) = t.buckets.keys().next().copied().filter(|b| b.saturating_add(step) <= target) {
                let since = *t.ready.entry(start).or_insert(now);
                if now.saturating_duration_since(since) < self.hold {
                    break;
                }
                t.ready.remove(&start);
                due.push((start, t.buckets.remove(&start).unwrap_or_default()));
                next = Some(next.map_or(start + step, |n| n.max(start + step)));
            }
            // The windows behind it become ready too, so they wait their hold concurrently, not in turn.
            for start in t.buckets.keys().copied().take_while(|b| b.saturating_add(step) <= target) {
                t.ready.entry(start).or_insert(now);
            }
            t.next = next;
            let ops = t.ops.clone();
            for (start, windows) in due {
                self.write_window(&ops, start, windows, bodies);
                written.push((tenant, start + step));
            }
        }
        written
    }

    fn write_window(&mut self, ops: &[u32], start: i64, mut windows: HashMap<u32, Window>, bodies: &mut Bodies) {
        let end = start + self.step_ms;
        let seconds = self.step_ms as f64 / 1000.0;
        for &op in ops {
            let Some(info) = self.infos.get_mut(op as usize) else { continue };
            let labels = [("service", &*info.service), ("span_name", &*info.name), ("span_kind", info.kind.label())];
            match windows.get_mut(&op) {
                Some(w) if w.count > 0 => {
                    bodies.push(&info.tenant, REQUESTS, &labels, end, w.count as f64 / seconds);
                    bodies.push(&info.tenant, ERROR_RATIO, &labels, end, w.errors as f64 / w.count as f64);
                    self.counts.samples += 2;
                    let values = w.quantiles(self.quantiles.iter().map(|(q, _)| *q).chain([0.5]));
                    for ((_, text), ns) in self.quantiles.iter().zip(&values) {
                        if let Some(ns) = ns {
                            let with_q = [labels[0], labels[1], labels[2], ("quantile", text.as_str())];
                            bodies.push(&info.tenant, LATENCY, &with_q, end, ns / 1e9);
                            self.counts.samples += 1;
                        }
                    }
                    if let Some(Some(p50)) = values.last() {
                        learn_baseline(info, *p50, self.slow.factor, self.slow.min_windows);
                    }
                    info.last_bucket = Some(start);
                }
                _ => {
                    // Silent for a while now: its request rate is zero (a service that stops answering).
                    if info.last_bucket.is_some_and(|b| start - b <= self.idle_ms) {
                        bodies.push(&info.tenant, REQUESTS, &labels, end, 0.0);
                        self.counts.samples += 1;
                    }
                }
            }
        }
    }
}

/// The operation's usual median: the mean of its first windows, then a slow moving average that skips
/// windows already far above it (a fault must not teach the baseline that slowness is normal).
fn learn_baseline(info: &mut OpInfo, p50: f64, factor: f64, min_windows: u32) {
    if info.windows < min_windows {
        info.baseline_ns = (info.baseline_ns * f64::from(info.windows) + p50) / f64::from(info.windows + 1);
    } else if p50 <= factor * info.baseline_ns {
        info.baseline_ns = 0.9 * info.baseline_ns + 0.1 * p50;
    } else {
        return;
    }
    info.windows = info.windows.saturating_add(1);
}

#[cfg(test)]
mod tests;

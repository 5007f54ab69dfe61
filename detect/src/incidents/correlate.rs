//! Grouping signals into incidents (see the module documentation of [`crate::incidents`]): anomalies open
//! and join, failed and slow spans and error log lines join or wait, incidents merge, resolve, and get
//! their root cause ranked.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::IncidentsConfig;
use super::feed::{AnomalyRow, EventKey};
use super::rfc3339;
use super::rootcause::{self, Candidate, Ranked};
use crate::events::Severity;
use crate::traces::graph::ServiceGraph;
use crate::traces::index::{ERROR, SLOW, TraceIndex};
use crate::traces::symbols::Symbols;
use crate::traces::{ExemplarLinks, LogSignal, SpanSignal, TraceId, millis};

/// What the correlation reads of the trace side, locked by the worker for one step.
pub(crate) struct Ctx<'a> {
    pub(crate) symbols: &'a mut Symbols,
    pub(crate) index: &'a TraceIndex,
    pub(crate) graph: &'a ServiceGraph,
    pub(crate) exemplars: &'a ExemplarLinks,
}

/// Signals of one tenant waiting for an incident to join.
const MAX_WAITING: usize = 10_000;
/// Timeline entries per incident; past it, signals are counted and not listed.
const MAX_TIMELINE: usize = 200;

#[derive(Debug, Clone)]
pub(crate) struct Anom {
    pub(crate) row: AnomalyRow,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) service: Option<u32>,
    pub(crate) traces: Vec<TraceId>,
    pub(crate) updated: Instant,
}

impl Anom {
    pub(crate) fn metric(&self) -> &str {
        self.labels.get("__name__").map_or("", String::as_str)
    }
}

/// Per service of an incident.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub(crate) first_anomaly_ms: Option<i64>,
    pub(crate) anomalies: usize,
    pub(crate) error_spans: u64,
    pub(crate) slow_spans: u64,
    pub(crate) error_logs: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimelineItem {
    pub(crate) at_ms: i64,
    pub(crate) kind: &'static str,
    pub(crate) service: Option<String>,
    pub(crate) detail: String,
}

/// The root cause as last ranked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Root {
    pub(crate) ranked: Ranked,
    pub(crate) reason: String,
}

#[derive(Debug)]
pub(crate) struct Open {
    pub(crate) id: String,
    pub(crate) tenant: u32,
    pub(crate) tenant_name: Arc<str>,
    /// When it was confirmed (published); until then, when it was made.
    pub(crate) opened_at_ms: i64,
    /// Published: see [`Incidents::confirm`]. A tentative incident gathers signals unseen.
    pub(crate) confirmed: bool,
    pub(crate) started_ms: i64,
    pub(crate) last_ms: i64,
    pub(crate) last_change: Instant,
    pub(crate) anomalies: Vec<Anom>,
    pub(crate) services: BTreeMap<u32, Facts>,
    pub(crate) traces: Vec<TraceId>,
    trace_set: HashSet<TraceId>,
    pub(crate) spans: Vec<SpanSignal>,
    pub(crate) logs: Vec<LogSignal>,
    pub(crate) timeline: Vec<TimelineItem>,
    pub(crate) timeline_dropped: u64,
    pub(crate) root: Option<Root>,
    pub(crate) severity: Severity,
    /// Changed since last published.
    pub(crate) dirty: bool,
    /// Gained services or traces: waiting signals may match now.
    grew: bool,
}

impl Open {
    fn near(&self, from_ms: i64, to_ms: i64, window_ms: i64) -> bool {
        to_ms >= self.started_ms.saturating_sub(window_ms) && from_ms <= self.last_ms.saturating_add(window_ms)
    }

    fn extend_time(&mut self, from_ms: i64, to_ms: i64) {
        self.started_ms = self.started_ms.min(from_ms);
        self.last_ms = self.last_ms.max(to_ms);
    }

    fn add_trace(&mut self, trace: TraceId, max: usize) {
        if self.traces.len() < max && self.trace_set.insert(trace) {
            self.traces.push(trace);
            self.grew = true;
        }
    }

    fn facts(&mut self, service: u32) -> &mut Facts {
        if !self.services.contains_key(&service) {
            self.grew = true;
        }
        self.services.entry(service).or_default()
    }

    fn note(&mut self, item: TimelineItem) {
        if self.timeline.len() < MAX_TIMELINE {
            self.timeline.push(item);
        } else {
            self.timeline_dropped += 1;
        }
    }

    fn touched(&mut self, now: Instant) {
        self.last_change = now;
        self.dirty = true;
    }

    /// Every anomaly is over (closed, or silent for `stale`: a series that stops sending leaves its event
    /// open).
    fn quiet(&self, now: Instant, stale: Duration) -> bool {
        self.anomalies.iter().all(|a| !a.row.open || now.saturating_duration_since(a.updated) >= stale)
    }
}

/// Keeps at most `max` items, favouring services with few: a new item of a service with fewer than
/// three displaces an item of the service with the most.
fn push_diverse<T>(items: &mut Vec<T>, item: T, max: usize, service: impl Fn(&T) -> Option<u32>) {
    if items.len() < max {
        items.push(item);
        return;
    }
    let mine = service(&item);
    let count = |s: Option<u32>| items.iter().filter(|i| service(i) == s).count();
    if count(mine) >= 3 {
        return;
    }
    let mut per: HashMap<Option<u32>, usize> = HashMap::new();
    for i in items.iter() {
        *per.entry(service(i)).or_default() += 1;
    }
    let Some((&most, _)) = per.iter().max_by_key(|(_, n)| **n) else { return };
    if let Some(pos) = items.iter().position(|i| service(i) == most) {
        items.remove(pos);
        items.push(item);
    }
}

/// A failed or slow span or an error log line: joins an incident, or waits for one.
#[derive(Debug, Clone)]
enum Signal {
    Span(SpanSignal),
    Log(LogSignal),
}

impl Signal {
    fn tenant(&self) -> u32 {
        match self {
            Signal::Span(s) => s.tenant,
            Signal::Log(l) => l.tenant,
        }
    }

    /// Its time, trace and service: what decides which incident it joins.
    fn place(&self) -> (i64, Option<&TraceId>, Option<u32>) {
        match self {
            Signal::Span(s) => (s.end_ms, Some(&s.trace), Some(s.service)),
            Signal::Log(l) => (l.timestamp_ms, l.trace.as_ref(), l.service),
        }
    }
}

/// Counts for Vigil's own metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) opened: u64,
    pub(crate) merged: u64,
    pub(crate) resolved: u64,
    pub(crate) over_cap: u64,
    pub(crate) anomalies: u64,
    /// Tentative incidents that resolved without being confirmed.
    pub(crate) unconfirmed: u64,
}

#[derive(Debug)]
pub(crate) struct Incidents {
    cfg: IncidentsConfig,
    window_ms: i64,
    /// Signals this close count as simultaneous in the causal rule (one RED window).
    tolerance_ms: i64,
    pub(crate) open: Vec<Open>,
    waiting: HashMap<u32, VecDeque<(Instant, Signal)>>,
    by_event: HashMap<EventKey, String>,
    /// Ids merged away since the last publish: (gone, into).
    pub(crate) merged_ids: Vec<(String, String)>,
    pub(crate) counts: Counts,
}

/// A new incident id: the opening time (ms, hex) and a random suffix, so ids sort by opening.
fn new_id(wall_ms: i64) -> String {
    format!("{:012x}{:04x}", wall_ms.max(0) & 0xffff_ffff_ffff, fastrand::u16(..))
}

impl Incidents {
    pub(crate) fn new(cfg: &IncidentsConfig, tolerance: Duration) -> Self {
        Self {
            window_ms: millis(cfg.window),
            tolerance_ms: millis(tolerance),
            cfg: cfg.clone(),
            open: Vec::new(),
            waiting: HashMap::new(),
            by_event: HashMap::new(),
            merged_ids: Vec::new(),
            counts: Counts::default(),
        }
    }

    fn max_traces(&self) -> usize {
        self.cfg.max_evidence.saturating_mul(4)
    }

    /// The service an anomalous series is about: by label, or else by the spans its exemplars point at.
    fn service_of(&self, a: &Anom, tenant: u32, ctx: &mut Ctx<'_>) -> Option<u32> {
        let name = a.metric();
        if name.starts_with("traces_service_graph_")
            && let Some(server) = a.labels.get("server")
        {
            return ctx.symbols.intern(server);
        }
        for label in &self.cfg.service_labels {
            let Some(value) = a.labels.get(label).filter(|v| !v.is_empty()) else { continue };
            // OpenTelemetry's `job` is `namespace/name`; the spans' service is `name`.
            let short = value.rsplit('/').next().unwrap_or(value);
            if short != value && ctx.symbols.get(value).is_none() && ctx.symbols.get(short).is_some() {
                return ctx.symbols.intern(short);
            }
            return ctx.symbols.intern(value);
        }
        let mut votes: HashMap<u32, usize> = HashMap::new();
        for (trace, span) in ctx.exemplars.traces(a.row.series_id, a.row.start_ms, a.row.end_ms) {
            if let Some(s) = ctx.index.get(tenant, &trace).and_then(|e| e.span(span)) {
                *votes.entry(s.service).or_default() += 1;
            }
        }
        votes.into_iter().max_by_key(|(s, n)| (*n, std::cmp::Reverse(*s))).map(|(s, _)| s)
    }

    /// An anomaly event, new or changed.
    pub(crate) fn anomaly(&mut self, row: AnomalyRow, ctx: &mut Ctx<'_>, now: Instant, wall_ms: i64) {
        let key = row.key();
        if let Some(id) = self.by_event.get(&key).cloned() {
            let max_traces = self.max_traces();
            if let Some(inc) = self.open.iter_mut().find(|i| i.id == id)
                && let Some(a) = inc.anomalies.iter_mut().find(|a| a.row.key() == key)
            {
                let closed_now = a.row.open && !row.open;
                let (start, end) = (row.start_ms, row.end_ms);
                // The exemplars of the samples that extended it.
                let more: Vec<TraceId> = if end > a.row.end_ms {
                    ctx.exemplars.traces(row.series_id, a.row.end_ms + 1, end).into_iter().map(|(t, _)| t).collect()
                } else {
                    Vec::new()
                };
                a.row = row;
                a.updated = now;
                for t in &more {
                    if !a.traces.contains(t) {
                        a.traces.push(*t);
                    }
                }
                let (service, metric) = (a.service, a.metric().to_owned());
                for t in more {
                    inc.add_trace(t, max_traces);
                }
                inc.extend_time(start, end);
                if closed_now {
                    let service = service.map(|s| ctx.symbols.name_or_empty(s).to_string());
                    inc.note(TimelineItem { at_ms: end, kind: "anomaly_ended", service, detail: metric });
                }
                inc.touched(now);
            }
            return;
        }
        if row.score < self.cfg.min_score {
            return;
        }
        let Some(tenant) = ctx.symbols.intern(&row.tenant) else { return };
        let labels: BTreeMap<String, String> = serde_json::from_str(&row.labels).unwrap_or_default();
        // The traces of the anomalous samples' own exemplars (not of the samples before: those were fine).
        let traces: Vec<TraceId> =
            ctx.exemplars.traces(row.series_id, row.start_ms, row.end_ms).into_iter().map(|(t, _)| t).collect();
        let mut a = Anom { row, labels, service: None, traces, updated: now };
        a.service = self.service_of(&a, tenant, ctx);
        let (from, to) = (a.row.start_ms, a.row.end_ms);
        let w = self.window_ms;
        // Its service and every service connected to it.
        let linked = a.service.map(|s| ctx.graph.connected_to(tenant, [s])).unwrap_or_default();
        let matching: Vec<usize> = (0..self.open.len())
            .filter(|&i| {
                let inc = &self.open[i];
                inc.tenant == tenant
                    && inc.near(from, to, w)
                    && (a.traces.iter().any(|t| inc.trace_set.contains(t))
                        || inc.services.keys().any(|o| linked.contains(o)))
            })
            .collect();
        let at = match matching.iter().copied().min_by_key(|&i| (!self.open[i].confirmed, self.open[i].opened_at_ms, i))
        {
            Some(keep) => {
                // Highest index first: removing one leaves the smaller indices still to merge as they are.
                let mut keep_at = keep;
                for &other in matching.iter().rev().filter(|&&i| i != keep) {
                    self.merge(keep_at, other, now, wall_ms);
                    if other < keep_at {
                        keep_at -= 1;
                    }
                }
                keep_at
            }
            None => {
                if self.open.len() >= self.cfg.max_open {
                    self.counts.over_cap += 1;
                    return;
                }
                let id = new_id(wall_ms);
                let inc = Open {
                    id,
                    tenant,
                    tenant_name: ctx.symbols.name_or_empty(tenant),
                    opened_at_ms: wall_ms,
                    confirmed: false,
                    started_ms: from,
                    last_ms: to,
                    last_change: now,
                    anomalies: Vec::new(),
                    services: BTreeMap::new(),
                    traces: Vec::new(),
                    trace_set: HashSet::new(),
                    spans: Vec::new(),
                    logs: Vec::new(),
                    timeline: Vec::new(),
                    timeline_dropped: 0,
                    root: None,
                    severity: Severity::P3,
                    dirty: true,
                    grew: true,
                };
                self.open.push(inc);
                self.open.len() - 1
            }
        };
        self.counts.anomalies += 1;
        let max_traces = self.max_traces();
        let service_name = a.service.map(|s| ctx.symbols.name_or_empty(s).to_string());
        let inc = &mut self.open[at];
        inc.extend_time(from, to);
        for t in &a.traces {
            inc.add_trace(*t, max_traces);
        }
        if let Some(s) = a.service {
            let f = inc.facts(s);
            f.anomalies += 1;
            f.first_anomaly_ms = Some(f.first_anomaly_ms.map_or(from, |m| m.min(from)));
        }
        let detail =
            format!("{} score {:.2} (value {}, expected {:.4})", a.metric(), a.row.score, a.row.value, a.row.expected);
        inc.note(TimelineItem { at_ms: from, kind: "anomaly", service: service_name, detail });
        self.by_event.insert(a.row.key(), inc.id.clone());
        inc.anomalies.push(a);
        inc.touched(now);
    }

    /// `signal` belongs to `inc`: same tenant, within the window, and its trace is one of the incident's, or
    /// it or a span of its trace sits on one of the incident's services.
    fn fits(&self, inc: &Open, signal: &Signal, index: &TraceIndex) -> bool {
        let tenant = signal.tenant();
        let (at_ms, trace, service) = signal.place();
        inc.tenant == tenant
            && inc.near(at_ms, at_ms, self.window_ms)
            && (trace.is_some_and(|t| inc.trace_set.contains(t))
                || service.is_some_and(|s| inc.services.contains_key(&s))
                || trace
                    .and_then(|t| index.get(tenant, t))
                    .is_some_and(|e| e.spans.iter().any(|r| inc.services.contains_key(&r.service))))
    }

    /// A failed or slow span: joins the first incident it fits, or waits.
    pub(crate) fn span(&mut self, s: SpanSignal, ctx: &Ctx<'_>, now: Instant) {
        self.signal(Signal::Span(s), ctx, now);
    }

    /// An error log line: joins the first incident it fits, or waits.
    pub(crate) fn log(&mut self, l: LogSignal, ctx: &Ctx<'_>, now: Instant) {
        self.signal(Signal::Log(l), ctx, now);
    }

    fn signal(&mut self, signal: Signal, ctx: &Ctx<'_>, now: Instant) {
        match (0..self.open.len()).find(|&i| self.fits(&self.open[i], &signal, ctx.index)) {
            Some(i) => self.join(i, signal, ctx, now),
            None => self.wait(signal, now),
        }
    }

    fn wait(&mut self, signal: Signal, now: Instant) {
        let q = self.waiting.entry(signal.tenant()).or_default();
        q.push_back((now, signal));
        if q.len() > MAX_WAITING {
            q.pop_front();
        }
    }

    fn join(&mut self, i: usize, signal: Signal, ctx: &Ctx<'_>, now: Instant) {
        match signal {
            Signal::Span(s) => self.join_span(i, s, ctx, now),
            Signal::Log(l) => self.join_log(i, l, ctx, now),
        }
    }

    fn join_span(&mut self, i: usize, s: SpanSignal, ctx: &Ctx<'_>, now: Instant) {
        let (max_traces, max_evidence) = (self.max_traces(), self.cfg.max_evidence);
        let inc = &mut self.open[i];
        inc.add_trace(s.trace, max_traces);
        inc.extend_time(s.end_ms, s.end_ms);
        let f = inc.facts(s.service);
        let first = f.error_spans + f.slow_spans == 0;
        f.error_spans += u64::from(s.error);
        f.slow_spans += u64::from(s.slow);
        if first {
            let kind = if s.error { "failed_span" } else { "slow_span" };
            let service = Some(ctx.symbols.name_or_empty(s.service).to_string());
            let detail = format!("{} ({:.1} ms)", s.name, s.duration_ns as f64 / 1e6);
            inc.note(TimelineItem { at_ms: s.end_ms, kind, service, detail });
        }
        push_diverse(&mut inc.spans, s, max_evidence, |x| Some(x.service));
        inc.touched(now);
    }

    fn join_log(&mut self, i: usize, l: LogSignal, ctx: &Ctx<'_>, now: Instant) {
        let (max_traces, max_evidence) = (self.max_traces(), self.cfg.max_evidence);
        let inc = &mut self.open[i];
        if let Some(t) = l.trace {
            inc.add_trace(t, max_traces);
        }
        inc.extend_time(l.timestamp_ms, l.timestamp_ms);
        let first = match l.service {
            Some(s) => {
                let f = inc.facts(s);
                f.error_logs += 1;
                f.error_logs == 1
            }
            None => inc.logs.is_empty(),
        };
        if first {
            let service = l.service.map(|s| ctx.symbols.name_or_empty(s).to_string());
            let detail: String = l.body.chars().take(200).collect();
            inc.note(TimelineItem { at_ms: l.timestamp_ms, kind: "error_log", service, detail });
        }
        push_diverse(&mut inc.logs, l, max_evidence, |x| x.service);
        inc.touched(now);
    }

    /// Moves incident `from` into `into` (and drops `from`).
    fn merge(&mut self, into: usize, from: usize, now: Instant, wall_ms: i64) {
        if into == from || from >= self.open.len() {
            return;
        }
        let gone = self.open.remove(from);
        let into = if from < into { into - 1 } else { into };
        self.counts.merged += 1;
        let (max_traces, max_evidence) = (self.max_traces(), self.cfg.max_evidence);
        let inc = &mut self.open[into];
        if gone.confirmed && !inc.confirmed {
            inc.confirmed = true;
            inc.opened_at_ms = gone.opened_at_ms;
        }
        inc.extend_time(gone.started_ms, gone.last_ms);
        for t in gone.traces {
            inc.add_trace(t, max_traces);
        }
        for (s, f) in gone.services {
            let mine = inc.facts(s);
            mine.anomalies += f.anomalies;
            mine.first_anomaly_ms = match (mine.first_anomaly_ms, f.first_anomaly_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            mine.error_spans += f.error_spans;
            mine.slow_spans += f.slow_spans;
            mine.error_logs += f.error_logs;
        }
        for s in gone.spans {
            push_diverse(&mut inc.spans, s, max_evidence, |x| Some(x.service));
        }
        for l in gone.logs {
            push_diverse(&mut inc.logs, l, max_evidence, |x| x.service);
        }
        for a in &gone.anomalies {
            self.by_event.insert(a.row.key(), inc.id.clone());
        }
        inc.anomalies.extend(gone.anomalies);
        for item in gone.timeline {
            inc.note(item);
        }
        let detail = format!("merged incident {} (connected services or shared traces)", gone.id);
        inc.note(TimelineItem { at_ms: wall_ms, kind: "merged", service: None, detail });
        inc.touched(now);
        self.merged_ids.push((gone.id, inc.id.clone()));
    }

    /// Periodic work: pull waiting signals into incidents that grew, merge incidents that now belong
    /// together, rank root causes of changed incidents, and take out the resolved ones.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>, now: Instant, wall_ms: i64) -> Vec<Open> {
        let keep = self.cfg.window;
        for q in self.waiting.values_mut() {
            while q.front().is_some_and(|(at, _)| now.saturating_duration_since(*at) >= keep) {
                q.pop_front();
            }
        }
        self.waiting.retain(|_, q| !q.is_empty());
        for _ in 0..3 {
            let grown: Vec<usize> = (0..self.open.len()).filter(|&i| self.open[i].grew).collect();
            if grown.is_empty() {
                break;
            }
            for i in grown {
                self.open[i].grew = false;
                self.pull_waiting(i, ctx, now);
            }
        }
        self.merge_connected(ctx, now, wall_ms);
        for i in 0..self.open.len() {
            if self.open[i].dirty {
                self.confirm(i, wall_ms);
                self.rank(i, ctx, wall_ms);
            }
        }
        let (resolve_after, stale) = (self.cfg.resolve_after, self.cfg.window);
        let mut resolved = Vec::new();
        let mut i = 0;
        while i < self.open.len() {
            let inc = &self.open[i];
            if inc.quiet(now, stale) && now.saturating_duration_since(inc.last_change) >= resolve_after {
                let mut inc = self.open.remove(i);
                for a in &inc.anomalies {
                    self.by_event.remove(&a.row.key());
                }
                if inc.confirmed {
                    inc.note(TimelineItem { at_ms: wall_ms, kind: "resolved", service: None, detail: String::new() });
                    self.counts.resolved += 1;
                    resolved.push(inc);
                } else {
                    // One weak anomaly that nothing bore out: a false alarm, never shown.
                    self.counts.unconfirmed += 1;
                }
            } else {
                i += 1;
            }
        }
        resolved
    }

    fn pull_waiting(&mut self, i: usize, ctx: &Ctx<'_>, now: Instant) {
        let tenant = self.open[i].tenant;
        let Some(mut q) = self.waiting.remove(&tenant) else { return };
        let mut rest = VecDeque::with_capacity(q.len());
        while let Some((at, signal)) = q.pop_front() {
            if self.fits(&self.open[i], &signal, ctx.index) {
                self.join(i, signal, ctx, now);
            } else {
                rest.push_back((at, signal));
            }
        }
        if !rest.is_empty() {
            self.waiting.insert(tenant, rest);
        }
    }

    fn merge_connected(&mut self, ctx: &Ctx<'_>, now: Instant, wall_ms: i64) {
        loop {
            let mut pair = None;
            'search: for a in 0..self.open.len() {
                // The services `a`'s are connected to, read from the graph once and only when needed.
                let mut reach: Option<HashSet<u32>> = None;
                for b in a + 1..self.open.len() {
                    let (x, y) = (&self.open[a], &self.open[b]);
                    if x.tenant != y.tenant || !x.near(y.started_ms, y.last_ms, self.window_ms) {
                        continue;
                    }
                    let joined = y.traces.iter().any(|t| x.trace_set.contains(t)) || {
                        let reach =
                            reach.get_or_insert_with(|| ctx.graph.connected_to(x.tenant, x.services.keys().copied()));
                        y.services.keys().any(|o| reach.contains(o))
                    };
                    if joined {
                        pair = Some((a, b));
                        break 'search;
                    }
                }
            }
            let Some((a, b)) = pair else { return };
            // A published one stays (its id is known), else the older.
            let key = |i: usize| (!self.open[i].confirmed, self.open[i].opened_at_ms);
            let (into, from) = if key(a) <= key(b) { (a, b) } else { (b, a) };
            self.merge(into, from, now, wall_ms);
        }
    }

    /// Publishes a tentative incident once something bears it out: an anomaly of severity P2 or worse (or
    /// scoring at least `incidents.confirm_score`), anomalies on two services, or failed or slow spans or
    /// error log lines. One mild anomaly alone (a P3 wiggle of one series) stays unseen.
    fn confirm(&mut self, i: usize, wall_ms: i64) {
        let confirm_score = self.cfg.confirm_score;
        let inc = &mut self.open[i];
        if inc.confirmed {
            return;
        }
        let strong = inc.anomalies.iter().find(|a| {
            a.row.score >= confirm_score || Severity::parse(&a.row.severity).is_some_and(|s| s <= Severity::P2)
        });
        let anomalous_services = inc.services.values().filter(|f| f.anomalies > 0).count();
        let why = if let Some(a) = strong {
            format!("an anomaly of {} (score {:.2}, {})", a.metric(), a.row.score, a.row.severity)
        } else if anomalous_services >= 2 {
            format!("anomalies on {anomalous_services} services")
        } else if !inc.spans.is_empty() || !inc.logs.is_empty() {
            "an anomaly borne out by failed or slow spans or error log lines".to_owned()
        } else {
            return;
        };
        inc.confirmed = true;
        inc.opened_at_ms = wall_ms;
        inc.note(TimelineItem { at_ms: wall_ms, kind: "opened", service: None, detail: format!("opened: {why}") });
        self.counts.opened += 1;
    }

    /// Ranks incident `i`'s root cause, and sets its severity.
    fn rank(&mut self, i: usize, ctx: &Ctx<'_>, wall_ms: i64) {
        let tolerance = self.tolerance_ms;
        let inc = &mut self.open[i];
        // Where each failed or slow trace starts, once per service per trace.
        let mut origins: HashMap<u32, (usize, i64)> = HashMap::new();
        let mut total: usize = 0;
        for t in &inc.traces {
            let Some(e) = ctx.index.get(inc.tenant, t) else { continue };
            let mut here: HashMap<u32, i64> = HashMap::new();
            for s in e.origins(ERROR).into_iter().chain(e.origins(SLOW)) {
                let at = here.entry(s.service).or_insert(s.end_ms);
                *at = (*at).min(s.end_ms);
            }
            if !here.is_empty() {
                total += 1;
            }
            for (s, at) in here {
                let o = origins.entry(s).or_insert((0, at));
                o.0 += 1;
                o.1 = o.1.min(at);
            }
        }
        let significant = 2.max(total.div_ceil(5));
        let mut candidates: Vec<Candidate> = Vec::new();
        for (&service, f) in &inc.services {
            let (n, origin_at) = origins.get(&service).copied().unwrap_or((0, i64::MAX));
            let first = match f.first_anomaly_ms {
                Some(a) => a,
                None if n >= significant => origin_at,
                None => continue,
            };
            candidates.push(Candidate { service, first_ms: first, anomalies: f.anomalies, origin_traces: n });
        }
        let tenant = inc.tenant;
        let ranked = rootcause::rank(&candidates, total, tolerance, |s| ctx.graph.callers_of(tenant, s));
        let root = ranked.map(|r| {
            let first = candidates.iter().find(|c| c.service == r.service).map_or(0, |c| c.first_ms);
            let what = inc
                .anomalies
                .iter()
                .filter(|a| a.service == Some(r.service))
                .min_by_key(|a| a.row.start_ms)
                .map_or_else(|| "failed or slow spans".to_owned(), |a| a.metric().to_owned());
            let overruled = r.overruled.map(|s| ctx.symbols.name_or_empty(s).to_string()).unwrap_or_default();
            let reason = rootcause::reason(&r, &format!("{what} at {}", rfc3339(first)), &overruled);
            Root { ranked: r, reason }
        });
        let changed = root.as_ref().map(|r| r.ranked.service) != inc.root.as_ref().map(|r| r.ranked.service);
        if changed && let Some(r) = &root {
            let service = Some(ctx.symbols.name_or_empty(r.ranked.service).to_string());
            let detail = format!("confidence {:.2}: {}", r.ranked.confidence, r.reason);
            inc.note(TimelineItem { at_ms: wall_ms, kind: "root_cause", service, detail });
        }
        inc.root = root;
        let worst = inc.anomalies.iter().filter_map(|a| Severity::parse(&a.row.severity)).min().unwrap_or(Severity::P3);
        // A fault reaching three or more services is one level more urgent than its worst anomaly.
        inc.severity = if candidates.len() >= 3 { escalate(worst) } else { worst };
    }
}

fn escalate(s: Severity) -> Severity {
    match s {
        Severity::P3 => Severity::P2,
        Severity::P2 => Severity::P1,
        Severity::P1 | Severity::P0 => Severity::P0,
    }
}

#[cfg(test)]
mod tests;

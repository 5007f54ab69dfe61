//! The service graph: a span whose parent is in another service is a call between them (parent's service
//! → span's service: client → server), with the child's duration as the server latency and its status as
//! success or failure.
//!
//! The two spans of a call usually come from two processes that export on their own schedules, so either
//! may arrive first: [`Pending`] keeps recent spans (service by span id) and children whose parent has not
//! arrived, each for `graph.wait`, bounded by `graph.max_pending` (the oldest give up first, counted).
//! [`ServiceGraph`] keeps per tenant and edge the cumulative counts Tempo's metrics-generator writes
//! (`traces_service_graph_request_total`, `…_failed_total`, `…_server_seconds_{bucket,sum,count}`) and a
//! short history of windows for rates and latency quantiles; an edge not seen for `graph.edge_ttl` goes.
//! It answers the correlation's questions: which services a failure in one could reach (its callers,
//! transitively) and whether two services are connected at all.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::config::GraphConfig;
use super::encode::Bodies;
use super::ids::TraceId;
use super::sketch::Sketch;
use super::symbols::Symbols;

pub(crate) const REQUEST_TOTAL: &str = "traces_service_graph_request_total";
pub(crate) const REQUEST_FAILED_TOTAL: &str = "traces_service_graph_request_failed_total";
pub(crate) const SERVER_SECONDS: &str = "traces_service_graph_request_server_seconds";

/// Windows of history per edge, for rates and quantiles in the JSON view.
const HISTORY: usize = 30;
/// Windows of calls an edge holds until they are written; past it the oldest join the totals anyway.
const MAX_PENDING_WINDOWS: usize = 64;

/// A written window into an edge's totals and history.
fn absorb(e: &mut EdgeStats, start: i64, w: EdgeWindow) {
    let t = &mut e.total;
    t.requests += w.requests;
    t.failed += w.failed;
    t.seconds_sum += w.seconds_sum;
    for (a, b) in t.buckets.iter_mut().zip(&w.buckets) {
        *a += b;
    }
    match e.history.iter_mut().find(|h| h.0 == start) {
        Some(h) => {
            h.1 += w.requests;
            h.2 += w.failed;
            h.3.merge(&w.latencies);
        }
        None => {
            let at = e.history.iter().position(|h| h.0 > start).unwrap_or(e.history.len());
            e.history.insert(at, (start, w.requests, w.failed, w.latencies));
        }
    }
    while e.history.len() > HISTORY {
        e.history.pop_front();
    }
}

/// One call between two services.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Call {
    pub(crate) client: u32,
    pub(crate) server: u32,
    pub(crate) duration_ns: i64,
    pub(crate) failed: bool,
    pub(crate) end_ms: i64,
}

/// What the pending store needs of a span.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanLink {
    pub(crate) tenant: u32,
    pub(crate) trace: TraceId,
    pub(crate) span: u64,
    /// 0 for a root span.
    pub(crate) parent: u64,
    pub(crate) service: u32,
    pub(crate) duration_ns: i64,
    pub(crate) failed: bool,
    pub(crate) end_ms: i64,
}

type SpanKey = (u32, TraceId, u64);

#[derive(Debug, Clone, Copy)]
struct Child {
    service: u32,
    duration_ns: i64,
    failed: bool,
    end_ms: i64,
}

/// Spans waiting for the other side of their calls.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Recent spans' services, by span id: a child arriving later finds its parent here.
    seen: HashMap<SpanKey, u32>,
    /// Children whose parent has not arrived, by the parent's span id.
    waiting: HashMap<SpanKey, Vec<Child>>,
    /// Arrival order of both, for expiry: (key, in `waiting`?, when).
    order: VecDeque<(SpanKey, bool, Instant)>,
    wait: Duration,
    max: usize,
    held: usize,
    /// Entries given up (expired or pushed out) before their match arrived.
    pub(crate) expired: u64,
}

impl Pending {
    pub(crate) fn new(config: &GraphConfig) -> Self {
        Self {
            seen: HashMap::new(),
            waiting: HashMap::new(),
            order: VecDeque::new(),
            wait: config.wait,
            max: config.max_pending.max(1),
            held: 0,
            expired: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.held
    }

    /// Records a span; returns the calls it completes (with its parent, and with children that came first).
    pub(crate) fn observe(&mut self, s: &SpanLink, now: Instant, calls: &mut Vec<Call>) {
        if s.parent != 0 {
            let parent = (s.tenant, s.trace, s.parent);
            match self.seen.get(&parent) {
                Some(&client) => {
                    if client != s.service {
                        calls.push(Call {
                            client,
                            server: s.service,
                            duration_ns: s.duration_ns,
                            failed: s.failed,
                            end_ms: s.end_ms,
                        });
                    }
                }
                None => {
                    let child =
                        Child { service: s.service, duration_ns: s.duration_ns, failed: s.failed, end_ms: s.end_ms };
                    self.waiting.entry(parent).or_default().push(child);
                    self.push_order(parent, true, now);
                }
            }
        }
        let key = (s.tenant, s.trace, s.span);
        if let Some(children) = self.waiting.remove(&key) {
            self.held -= children.len();
            for c in children {
                if c.service != s.service {
                    calls.push(Call {
                        client: s.service,
                        server: c.service,
                        duration_ns: c.duration_ns,
                        failed: c.failed,
                        end_ms: c.end_ms,
                    });
                }
            }
        }
        if self.seen.insert(key, s.service).is_none() {
            self.push_order(key, false, now);
        }
    }

    fn push_order(&mut self, key: SpanKey, waiting: bool, now: Instant) {
        self.order.push_back((key, waiting, now));
        self.held += 1;
        while self.held > self.max && self.pop_oldest() {}
    }

    /// Gives up entries older than `graph.wait`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(_, _, at)| now.saturating_duration_since(*at) >= self.wait) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) -> bool {
        let Some((key, waiting, _)) = self.order.pop_front() else { return false };
        if waiting {
            // One queue entry per child: drop the oldest child of that parent (it may have been matched).
            if let Some(children) = self.waiting.get_mut(&key) {
                children.remove(0);
                self.held -= 1;
                self.expired += 1;
                if children.is_empty() {
                    self.waiting.remove(&key);
                }
            }
        } else if self.seen.remove(&key).is_some() {
            self.held -= 1;
        }
        true
    }
}

/// Calls of one edge in one window of span time.
#[derive(Debug, Clone, Default)]
struct EdgeWindow {
    requests: u64,
    failed: u64,
    seconds_sum: f64,
    /// Per bucket of `graph.buckets` (+Inf last), not cumulative.
    buckets: Vec<u64>,
    latencies: Sketch,
}

#[derive(Debug, Clone)]
struct EdgeStats {
    /// Totals of the windows written so far: what the `traces_service_graph_*` counters say.
    total: EdgeWindow,
    /// Windows not written yet, by start: their calls join the totals when the RED window of the same
    /// span time is written, so a counter's value at a window's end counts the calls up to that end.
    pending: BTreeMap<i64, EdgeWindow>,
    /// Recent written windows: (window start, requests, failed, latencies), for rates and quantiles.
    history: VecDeque<(i64, u64, u64, Sketch)>,
    last_seen: Instant,
    last_end_ms: i64,
}

/// One edge, as the query API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeView {
    pub client: String,
    pub server: String,
    pub requests_total: u64,
    pub failed_total: u64,
    /// Over the recent windows held (up to 30 of `correlate.red.step`, written or still open).
    pub requests_per_second: f64,
    pub error_ratio: f64,
    pub latency_p50_seconds: Option<f64>,
    pub latency_p95_seconds: Option<f64>,
    /// Newest call's end (span time, ms since the epoch).
    pub last_call_ms: i64,
}

/// One service, as the query API shows it: what its callers see of it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub service: String,
    pub requests_per_second: f64,
    pub error_ratio: f64,
    pub callers: usize,
    pub callees: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphView {
    pub nodes: Vec<NodeView>,
    pub edges: Vec<EdgeView>,
}

#[derive(Debug)]
pub(crate) struct ServiceGraph {
    edges: HashMap<(u32, u32, u32), EdgeStats>,
    bounds: Vec<f64>,
    bound_labels: Vec<String>,
    ttl: Duration,
    max_edges: usize,
    step_ms: i64,
    pub(crate) dropped_calls: u64,
}

impl ServiceGraph {
    pub(crate) fn new(config: &GraphConfig, step: Duration) -> Self {
        let mut bound_labels: Vec<String> = config.buckets.iter().map(f64::to_string).collect();
        bound_labels.push("+Inf".into());
        Self {
            edges: HashMap::new(),
            bounds: config.buckets.clone(),
            bound_labels,
            ttl: config.edge_ttl,
            max_edges: config.max_edges.max(1),
            step_ms: super::millis(step).max(1),
            dropped_calls: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.edges.len()
    }

    /// A call: the edge exists from now on (for correlation); its counts join the totals when its window
    /// is written ([`ServiceGraph::absorb_until`]).
    pub(crate) fn record(&mut self, tenant: u32, call: &Call, now: Instant) {
        let key = (tenant, call.client, call.server);
        if !self.edges.contains_key(&key) && self.edges.len() >= self.max_edges {
            self.dropped_calls += 1;
            return;
        }
        let n = self.bounds.len() + 1;
        let e = self.edges.entry(key).or_insert_with(|| EdgeStats {
            total: EdgeWindow { buckets: vec![0; n], ..EdgeWindow::default() },
            pending: BTreeMap::new(),
            history: VecDeque::new(),
            last_seen: now,
            last_end_ms: i64::MIN,
        });
        e.last_seen = now;
        e.last_end_ms = e.last_end_ms.max(call.end_ms);
        let window = call.end_ms.div_euclid(self.step_ms) * self.step_ms;
        let w = e.pending.entry(window).or_insert_with(|| EdgeWindow { buckets: vec![0; n], ..EdgeWindow::default() });
        let seconds = call.duration_ns.max(0) as f64 / 1e9;
        w.requests += 1;
        w.failed += u64::from(call.failed);
        w.seconds_sum += seconds;
        let b = self.bounds.iter().position(|le| seconds <= *le).unwrap_or(n - 1);
        w.buckets[b] += 1;
        w.latencies.add(call.duration_ns);
        // Windows that never get written (a tenant whose spans are no requests): fold the oldest in.
        while e.pending.len() > MAX_PENDING_WINDOWS {
            if let Some((start, w)) = e.pending.pop_first() {
                absorb(e, start, w);
            }
        }
    }

    /// Adds the tenant's windows ending at or before `end_ms` (and any older, late ones) to the totals.
    pub(crate) fn absorb_until(&mut self, tenant: u32, end_ms: i64) {
        let step = self.step_ms;
        for ((t, ..), e) in self.edges.iter_mut() {
            if *t != tenant {
                continue;
            }
            while let Some(entry) = e.pending.first_entry() {
                if entry.key().saturating_add(step) > end_ms {
                    break;
                }
                let (start, w) = entry.remove_entry();
                absorb(e, start, w);
            }
        }
    }

    /// Forgets edges not seen for `graph.edge_ttl`.
    pub(crate) fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.edges.retain(|_, e| now.saturating_duration_since(e.last_seen) < ttl);
    }

    /// Services that `service`'s failure can reach: those that call it, directly or through others.
    pub(crate) fn callers_of(&self, tenant: u32, service: u32) -> HashSet<u32> {
        reach(&self.adjacency(tenant, |&(_, client, server)| (server, client)), service)
    }

    /// Services `service` calls, directly or through others.
    #[cfg(test)]
    pub(crate) fn callees_of(&self, tenant: u32, service: u32) -> HashSet<u32> {
        reach(&self.adjacency(tenant, |&(_, client, server)| (client, server)), service)
    }

    /// The tenant's edges as a map from each service to its neighbours in direction `dir`.
    fn adjacency(&self, tenant: u32, dir: impl Fn(&(u32, u32, u32)) -> (u32, u32)) -> HashMap<u32, Vec<u32>> {
        let mut next: HashMap<u32, Vec<u32>> = HashMap::new();
        for key in self.edges.keys().filter(|k| k.0 == tenant) {
            let (a, b) = dir(key);
            next.entry(a).or_default().push(b);
        }
        next
    }

    /// What any of `services` is connected to ([`ServiceGraph::connected`]): each of them, the services that
    /// call it and those it calls, directly or through others. The tenant's edges are read once for all.
    pub(crate) fn connected_to(&self, tenant: u32, services: impl IntoIterator<Item = u32>) -> HashSet<u32> {
        let up = self.adjacency(tenant, |&(_, client, server)| (server, client));
        let down = self.adjacency(tenant, |&(_, client, server)| (client, server));
        let mut out = HashSet::new();
        for s in services {
            out.insert(s);
            out.extend(reach(&up, s));
            out.extend(reach(&down, s));
        }
        out
    }

    /// One calls the other, directly or through others (a failure could travel between them).
    #[cfg(test)]
    pub(crate) fn connected(&self, tenant: u32, a: u32, b: u32) -> bool {
        self.connected_to(tenant, [a]).contains(&b)
    }

    /// The tenant's edges as Tempo's metrics-generator series, at `ts_ms`.
    pub(crate) fn write_series(&self, tenant: u32, ts_ms: i64, symbols: &Symbols, bodies: &mut Bodies) -> u64 {
        let Some(tenant_name) = symbols.name(tenant) else { return 0 };
        let mut samples = 0;
        for ((_, client, server), e) in self.edges.iter().filter(|(k, _)| k.0 == tenant) {
            let (client, server) = (symbols.name_or_empty(*client), symbols.name_or_empty(*server));
            let labels = [("client", &*client), ("server", &*server)];
            let t = &e.total;
            bodies.push(tenant_name, REQUEST_TOTAL, &labels, ts_ms, t.requests as f64);
            bodies.push(tenant_name, REQUEST_FAILED_TOTAL, &labels, ts_ms, t.failed as f64);
            let mut cumulative = 0;
            for (count, le) in t.buckets.iter().zip(&self.bound_labels) {
                cumulative += count;
                let with_le = [labels[0], labels[1], ("le", le.as_str())];
                bodies.push(tenant_name, &format!("{SERVER_SECONDS}_bucket"), &with_le, ts_ms, cumulative as f64);
            }
            bodies.push(tenant_name, &format!("{SERVER_SECONDS}_sum"), &labels, ts_ms, t.seconds_sum);
            bodies.push(tenant_name, &format!("{SERVER_SECONDS}_count"), &labels, ts_ms, t.requests as f64);
            samples += 5 + t.buckets.len() as u64;
        }
        samples
    }

    /// The tenant's graph, edges and nodes sorted by name.
    pub(crate) fn view(&self, tenant: u32, symbols: &Symbols) -> GraphView {
        let mut edges: Vec<EdgeView> = Vec::new();
        for ((_, client, server), e) in self.edges.iter().filter(|(k, _)| k.0 == tenant) {
            // Written windows and those still open: the view is current, the series are complete.
            let mut sketch = Sketch::default();
            let (mut requests, mut failed) = (0, 0);
            let (mut first, mut last) = (i64::MAX, i64::MIN);
            let pending = e.pending.iter().map(|(start, w)| (*start, w.requests, w.failed, &w.latencies));
            for (start, r, f, s) in e.history.iter().map(|(a, b, c, d)| (*a, *b, *c, d)).chain(pending) {
                requests += r;
                failed += f;
                sketch.merge(s);
                first = first.min(start);
                last = last.max(start);
            }
            let span_ms = if requests > 0 { last - first + self.step_ms } else { self.step_ms };
            let (total, total_failed) =
                e.pending.values().fold((e.total.requests, e.total.failed), |(r, f), w| (r + w.requests, f + w.failed));
            edges.push(EdgeView {
                client: symbols.name_or_empty(*client).to_string(),
                server: symbols.name_or_empty(*server).to_string(),
                requests_total: total,
                failed_total: total_failed,
                requests_per_second: requests as f64 / (span_ms as f64 / 1000.0),
                error_ratio: if requests > 0 { failed as f64 / requests as f64 } else { 0.0 },
                latency_p50_seconds: sketch.quantile(0.5).map(|ns| ns / 1e9),
                latency_p95_seconds: sketch.quantile(0.95).map(|ns| ns / 1e9),
                last_call_ms: e.last_end_ms,
            });
        }
        edges.sort_by(|a, b| (&a.client, &a.server).cmp(&(&b.client, &b.server)));
        let mut nodes: HashMap<&str, NodeView> = HashMap::new();
        let blank = |s: &str| NodeView {
            service: s.to_owned(),
            requests_per_second: 0.0,
            error_ratio: 0.0,
            callers: 0,
            callees: 0,
        };
        for e in &edges {
            nodes.entry(&e.client).or_insert_with(|| blank(&e.client)).callees += 1;
            let n = nodes.entry(&e.server).or_insert_with(|| blank(&e.server));
            n.callers += 1;
            // Summed over callers; the ratio is weighted by each caller's rate.
            let failed = n.error_ratio * n.requests_per_second + e.error_ratio * e.requests_per_second;
            n.requests_per_second += e.requests_per_second;
            n.error_ratio = if n.requests_per_second > 0.0 { failed / n.requests_per_second } else { 0.0 };
        }
        let mut nodes: Vec<NodeView> = nodes.into_values().collect();
        nodes.sort_by(|a, b| a.service.cmp(&b.service));
        GraphView { nodes, edges }
    }

    /// Every edge's services, by name.
    #[cfg(test)]
    pub(crate) fn edge_names(&self, tenant: u32, symbols: &Symbols) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .edges
            .keys()
            .filter(|k| k.0 == tenant)
            .map(|(_, c, s)| (symbols.name_or_empty(*c).to_string(), symbols.name_or_empty(*s).to_string()))
            .collect();
        v.sort();
        v
    }
}

/// Every service reachable from `from` along `next`, never `from` itself (even through a cycle).
fn reach(next: &HashMap<u32, Vec<u32>>, from: u32) -> HashSet<u32> {
    let mut seen = HashSet::new();
    let mut queue = vec![from];
    while let Some(s) = queue.pop() {
        for &n in next.get(&s).map(Vec::as_slice).unwrap_or(&[]) {
            if n != from && seen.insert(n) {
                queue.push(n);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests;

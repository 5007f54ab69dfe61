#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::traces::config::{GraphConfig, IndexConfig};
use crate::traces::graph::Call;
use crate::traces::index::{RowRef, SpanRef};

struct World {
    symbols: Symbols,
    index: TraceIndex,
    graph: ServiceGraph,
    exemplars: ExemplarLinks,
}

impl World {
    /// Tenant "t" (symbol 0) with frontend → api → db, and billing on its own.
    fn new() -> Self {
        let mut symbols = Symbols::new(100);
        for name in ["t", "frontend", "api", "db", "billing", "u"] {
            symbols.intern(name);
        }
        let mut w = Self {
            symbols,
            index: TraceIndex::new(&IndexConfig::default()),
            graph: ServiceGraph::new(&GraphConfig::default(), Duration::from_secs(10)),
            exemplars: ExemplarLinks::default(),
        };
        w.call("frontend", "api");
        w.call("api", "db");
        w
    }

    fn sym(&self, name: &str) -> u32 {
        self.symbols.get(name).unwrap()
    }

    fn call(&mut self, client: &str, server: &str) {
        let (client, server) = (self.sym(client), self.sym(server));
        self.graph.record(0, &Call { client, server, duration_ns: 1, failed: false, end_ms: 0 }, Instant::now());
    }

    /// A failed trace frontend → api → db whose failure starts in db.
    fn failed_trace(&mut self, trace: u8, at_ms: i64) -> Vec<SpanSignal> {
        let mut out = Vec::new();
        for (span, parent, service) in [(1, 0, "frontend"), (2, 1, "api"), (3, 2, "db")] {
            let service = self.sym(service);
            let r =
                SpanRef { at: RowRef { seq: 0, row: 0, shard: 0 }, span, parent, service, flags: ERROR, end_ms: at_ms };
            self.index.add_span(0, [trace; 16], r);
            out.push(SpanSignal {
                tenant: 0,
                trace: [trace; 16],
                span,
                service,
                name: "op".into(),
                end_ms: at_ms,
                duration_ns: 1_000_000,
                error: true,
                slow: false,
            });
        }
        out
    }

    fn ctx(&mut self) -> Ctx<'_> {
        Ctx { symbols: &mut self.symbols, index: &self.index, graph: &self.graph, exemplars: &self.exemplars }
    }
}

fn weak(tenant: &str, series: u64, labels: &str, start_ms: i64) -> AnomalyRow {
    AnomalyRow { score: 1.2, severity: "P3".into(), ..row(tenant, series, labels, start_ms, 1.2, true) }
}

fn row(tenant: &str, series: u64, labels: &str, start_ms: i64, score: f64, open: bool) -> AnomalyRow {
    AnomalyRow {
        tenant: Arc::from(tenant),
        series_id: series,
        labels: labels.into(),
        start_ms,
        end_ms: start_ms,
        peak_ms: start_ms,
        score,
        value: 5.0,
        expected: 1.0,
        severity: "P2".into(),
        open,
    }
}

fn red(service: &str, metric: &str) -> String {
    format!(r#"{{"__name__":"{metric}","service":"{service}","span_kind":"SPAN_KIND_SERVER","span_name":"op"}}"#)
}

fn config() -> IncidentsConfig {
    IncidentsConfig { resolve_after: Duration::from_secs(60), ..IncidentsConfig::default() }
}

const T: i64 = 1_700_000_000_000;

#[test]
fn a_cascade_is_one_incident_rooted_where_it_starts() {
    let mut w = World::new();
    let mut inc = Incidents::new(&config(), Duration::from_secs(10));
    let now = Instant::now();
    // Failed spans arrive first and wait; then the symptoms' anomalies, then the db's.
    let spans: Vec<SpanSignal> = (1..=4).flat_map(|t| w.failed_trace(t, T + 500)).collect();
    for s in spans {
        inc.span(s, &w.ctx(), now);
    }
    assert!(inc.open.is_empty(), "failed spans alone open nothing");
    inc.anomaly(row("t", 1, &red("frontend", "traces_spanmetrics_error_ratio"), T, 9.0, true), &mut w.ctx(), now, T);
    inc.anomaly(row("t", 2, &red("api", "traces_spanmetrics_error_ratio"), T, 9.0, true), &mut w.ctx(), now, T);
    inc.anomaly(row("t", 3, &red("db", "traces_spanmetrics_error_ratio"), T, 9.0, true), &mut w.ctx(), now, T);
    let resolved = inc.tick(&mut w.ctx(), now, T);
    assert!(resolved.is_empty());
    assert_eq!(inc.open.len(), 1, "one fault, one incident");
    let i = &inc.open[0];
    assert_eq!(i.anomalies.len(), 3);
    assert_eq!(i.traces.len(), 4, "the four failed traces joined");
    assert_eq!(i.spans.len(), 12);
    let root = i.root.as_ref().unwrap();
    assert_eq!(root.ranked.service, w.sym("db"));
    assert!((root.ranked.confidence - 0.99).abs() < 1e-9, "{root:?}");
    assert!(root.reason.contains("4 of 4 failed or slow traces start here"), "{}", root.reason);
    assert_eq!(i.severity, Severity::P1, "P2 anomalies over three services: one level up");
    assert!(i.timeline.iter().any(|t| t.kind == "root_cause" && t.service.as_deref() == Some("db")));
    assert_eq!(inc.counts.opened, 1);
}

#[test]
fn unconnected_services_and_other_tenants_get_their_own_incidents() {
    let mut w = World::new();
    let mut inc = Incidents::new(&config(), Duration::from_secs(10));
    let now = Instant::now();
    inc.anomaly(row("t", 1, &red("db", "traces_spanmetrics_latency_seconds"), T, 5.0, true), &mut w.ctx(), now, T);
    inc.anomaly(row("t", 2, &red("billing", "traces_spanmetrics_latency_seconds"), T, 5.0, true), &mut w.ctx(), now, T);
    inc.anomaly(row("u", 3, &red("db", "traces_spanmetrics_latency_seconds"), T, 5.0, true), &mut w.ctx(), now, T);
    // Much later, the same db again: beyond the window, a new incident.
    let later = T + 3_600_000;
    inc.anomaly(row("t", 4, &red("db", "traces_spanmetrics_latency_seconds"), later, 5.0, true), &mut w.ctx(), now, T);
    inc.tick(&mut w.ctx(), now, T);
    assert_eq!(inc.open.len(), 4);
    // Below min_score: nothing.
    inc.anomaly(row("t", 5, &red("api", "m"), T, 0.5, true), &mut w.ctx(), now, T);
    assert_eq!(inc.counts.anomalies, 4);
}

#[test]
fn incidents_merge_once_the_graph_connects_them_and_resolve_when_quiet() {
    let mut w = World::new();
    let mut cfg = config();
    cfg.resolve_after = Duration::from_secs(30);
    let mut inc = Incidents::new(&cfg, Duration::from_secs(10));
    let now = Instant::now();
    let checkout = w.symbols.intern("checkout").unwrap();
    inc.anomaly(row("t", 1, &red("db", "m"), T, 5.0, true), &mut w.ctx(), now, T);
    inc.anomaly(row("t", 2, &red("checkout", "m"), T + 1000, 5.0, true), &mut w.ctx(), now, T + 50);
    inc.tick(&mut w.ctx(), now, T);
    assert_eq!(inc.open.len(), 2, "checkout is not known to call anything yet");
    let (first, second) = (inc.open[0].id.clone(), inc.open[1].id.clone());
    // Its spans now show checkout → db.
    w.graph.record(0, &Call { client: checkout, server: w.sym("db"), duration_ns: 1, failed: false, end_ms: 0 }, now);
    inc.tick(&mut w.ctx(), now, T);
    assert_eq!(inc.open.len(), 1);
    assert_eq!(inc.open[0].id, first, "the older one stays");
    assert_eq!(inc.merged_ids, [(second, first)]);
    assert_eq!(inc.open[0].root.as_ref().map(|r| r.ranked.service), Some(w.sym("db")));
    // The anomalies close; the incident resolves once nothing happened for resolve_after.
    let mut closed = row("t", 1, &red("db", "m"), T, 5.0, false);
    closed.end_ms = T + 5000;
    inc.anomaly(closed, &mut w.ctx(), now, T);
    assert!(inc.tick(&mut w.ctx(), now + Duration::from_secs(60), T).is_empty(), "checkout's anomaly is still open");
    let mut closed = row("t", 2, &red("checkout", "m"), T + 1000, 5.0, false);
    closed.end_ms = T + 6000;
    inc.anomaly(closed, &mut w.ctx(), now + Duration::from_secs(60), T);
    assert!(inc.tick(&mut w.ctx(), now + Duration::from_secs(70), T).is_empty(), "not quiet for long enough yet");
    let resolved = inc.tick(&mut w.ctx(), now + Duration::from_secs(91), T);
    assert_eq!(resolved.len(), 1);
    assert!(inc.open.is_empty());
    assert_eq!(resolved[0].last_ms, T + 6000);
    assert_eq!(resolved[0].timeline.last().map(|t| t.kind), Some("resolved"));
}

#[test]
fn services_come_from_labels_or_from_exemplars_and_logs_join_by_trace() {
    let mut w = World::new();
    let mut inc = Incidents::new(&config(), Duration::from_secs(10));
    let now = Instant::now();
    // OpenTelemetry's job is namespace/name; the spans know the service as "api".
    inc.anomaly(
        row("t", 1, r#"{"__name__":"http_server_duration","job":"shop/api"}"#, T, 5.0, true),
        &mut w.ctx(),
        now,
        T,
    );
    assert_eq!(inc.open[0].services.keys().copied().collect::<Vec<_>>(), [w.sym("api")]);
    // A series without a service label whose exemplar points at db's span of trace 7.
    let spans = w.failed_trace(7, T);
    w.exemplars = {
        let mut l = ExemplarLinks::default();
        l.add_for_tests(2, T, [7; 16], 3);
        l
    };
    inc.anomaly(row("t", 2, r#"{"__name__":"queue_depth"}"#, T, 5.0, true), &mut w.ctx(), now, T);
    assert_eq!(inc.open.len(), 1, "db is connected to api");
    let i = &inc.open[0];
    assert!(i.services.contains_key(&w.sym("db")));
    assert_eq!(i.traces, [[7; 16]]);
    // A log line of trace 7, from a service the incident does not have yet, joins by its trace.
    let log = LogSignal {
        tenant: 0,
        timestamp_ms: T + 10,
        service: w.symbols.intern("worker"),
        severity: "ERROR".into(),
        body: "payment declined".into(),
        trace: Some([7; 16]),
        span: 9,
    };
    inc.log(log, &w.ctx(), now);
    assert_eq!(inc.open[0].logs.len(), 1);
    // Another tenant's line with the same trace id does not.
    let other = LogSignal {
        tenant: 5,
        timestamp_ms: T,
        service: None,
        severity: "error".into(),
        body: "x".into(),
        trace: Some([7; 16]),
        span: 0,
    };
    inc.log(other, &w.ctx(), now);
    assert_eq!(inc.open[0].logs.len(), 1);
    drop(spans);
}

#[test]
fn evidence_stays_bounded_and_diverse() {
    let mut items: Vec<u32> = Vec::new();
    for _ in 0..10 {
        push_diverse(&mut items, 1, 5, |x| Some(*x));
    }
    assert_eq!(items, [1, 1, 1, 1, 1]);
    push_diverse(&mut items, 2, 5, |x| Some(*x));
    push_diverse(&mut items, 3, 5, |x| Some(*x));
    assert_eq!(items.len(), 5);
    assert!(items.contains(&2) && items.contains(&3), "{items:?}");
}

#[test]
fn one_mild_anomaly_is_tentative_until_something_bears_it_out() {
    let mut w = World::new();
    let mut cfg = config();
    cfg.resolve_after = Duration::from_secs(30);
    let mut inc = Incidents::new(&cfg, Duration::from_secs(10));
    let now = Instant::now();
    // A P3 wiggle of db's latency: held, not shown, and dropped when it would resolve.
    inc.anomaly(weak("t", 1, &red("db", "traces_spanmetrics_latency_seconds"), T), &mut w.ctx(), now, T);
    inc.tick(&mut w.ctx(), now, T);
    assert_eq!(inc.open.len(), 1);
    assert!(!inc.open[0].confirmed);
    let mut closed = weak("t", 1, &red("db", "traces_spanmetrics_latency_seconds"), T);
    closed.open = false;
    inc.anomaly(closed, &mut w.ctx(), now, T);
    assert!(inc.tick(&mut w.ctx(), now + Duration::from_secs(31), T).is_empty(), "never shown, so never resolved");
    assert!(inc.open.is_empty());
    assert_eq!((inc.counts.opened, inc.counts.unconfirmed), (0, 1));
    // The same wiggle, then failed spans through db: confirmed at that moment, the wiggle included.
    inc.anomaly(weak("t", 2, &red("db", "traces_spanmetrics_latency_seconds"), T + 100), &mut w.ctx(), now, T + 100);
    inc.tick(&mut w.ctx(), now, T + 100);
    assert!(!inc.open[0].confirmed);
    for s in w.failed_trace(9, T + 200) {
        inc.span(s, &w.ctx(), now);
    }
    inc.tick(&mut w.ctx(), now, T + 5000);
    let i = &inc.open[0];
    assert!(i.confirmed);
    assert_eq!(i.opened_at_ms, T + 5000, "opened when confirmed");
    assert!(i.timeline.iter().any(|t| t.kind == "opened" && t.detail.contains("borne out")), "{:?}", i.timeline);
    assert_eq!(inc.counts.opened, 1);
    // Mild anomalies on two services confirm each other.
    let mut inc = Incidents::new(&cfg, Duration::from_secs(10));
    inc.anomaly(weak("t", 3, &red("api", "m"), T), &mut w.ctx(), now, T);
    inc.anomaly(weak("t", 4, &red("db", "m"), T), &mut w.ctx(), now, T);
    inc.tick(&mut w.ctx(), now, T);
    assert!(inc.open.len() == 1 && inc.open[0].confirmed);
}

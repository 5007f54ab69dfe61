#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use prost::Message;
use vigil_proto::prometheus::WriteRequest;

use super::*;

fn link(trace: u8, span: u64, parent: u64, service: u32, ms: i64, failed: bool) -> SpanLink {
    SpanLink {
        tenant: 0,
        trace: [trace; 16],
        span,
        parent,
        service,
        duration_ns: ms * 1_000_000,
        failed,
        end_ms: 1_000_000 + ms,
    }
}

fn config() -> GraphConfig {
    GraphConfig { wait: Duration::from_secs(10), max_pending: 100, ..GraphConfig::default() }
}

#[test]
fn a_call_is_found_whichever_side_arrives_first() {
    let mut p = Pending::new(&config());
    let now = Instant::now();
    let mut calls = Vec::new();
    // Parent first: frontend(1) span 1, then its child in api(2).
    p.observe(&link(1, 1, 0, 1, 100, false), now, &mut calls);
    p.observe(&link(1, 2, 1, 2, 40, true), now, &mut calls);
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].client, calls[0].server, calls[0].failed), (1, 2, true));
    assert_eq!(calls[0].duration_ns, 40_000_000, "the server side's duration");
    // Child first: db(3) under api span 2's sibling 4, which arrives later.
    calls.clear();
    p.observe(&link(1, 5, 4, 3, 5, false), now, &mut calls);
    assert!(calls.is_empty());
    p.observe(&link(1, 4, 1, 2, 30, false), now, &mut calls);
    assert_eq!(calls.iter().map(|c| (c.client, c.server)).collect::<Vec<_>>(), [(1, 2), (2, 3)]);
    // Same service: no call. Another trace with the same span ids: no match across traces.
    calls.clear();
    p.observe(&link(1, 6, 4, 2, 1, false), now, &mut calls);
    p.observe(&link(2, 7, 1, 9, 1, false), now, &mut calls);
    assert!(calls.is_empty(), "{calls:?}");
}

#[test]
fn waiting_spans_give_up_after_the_wait_and_past_the_cap() {
    let mut p = Pending::new(&config());
    let now = Instant::now();
    let mut calls = Vec::new();
    p.observe(&link(1, 2, 1, 2, 10, false), now, &mut calls);
    assert_eq!(p.len(), 2, "the child waits, and is remembered as a possible parent");
    p.expire(now + Duration::from_secs(11));
    assert_eq!((p.len(), p.expired), (0, 1));
    p.observe(&link(1, 1, 0, 1, 10, false), now + Duration::from_secs(11), &mut calls);
    assert!(calls.is_empty(), "the child gave up");
    let mut small = Pending::new(&GraphConfig { max_pending: 4, ..config() });
    for span in 1..=10 {
        small.observe(&link(3, span + 100, span, 5, 1, false), now, &mut calls);
    }
    assert!(small.len() <= 4, "{}", small.len());
    assert!(small.expired >= 3);
}

fn call(client: u32, server: u32, ms: i64, failed: bool, end_ms: i64) -> Call {
    Call { client, server, duration_ns: ms * 1_000_000, failed, end_ms }
}

fn symbols() -> Symbols {
    let mut s = Symbols::new(100);
    for name in ["tenant", "frontend", "api", "db", "cache"] {
        s.intern(name);
    }
    s
}

#[test]
fn reachability_follows_calls() {
    let mut g = ServiceGraph::new(&GraphConfig::default(), Duration::from_secs(10));
    let now = Instant::now();
    // frontend(1) → api(2) → db(3); api → cache(4). Another tenant: db → frontend.
    for (c, s) in [(1, 2), (2, 3), (2, 4)] {
        g.record(0, &call(c, s, 10, false, 0), now);
    }
    g.record(9, &call(3, 1, 10, false, 0), now);
    assert_eq!(g.callers_of(0, 3), HashSet::from([1, 2]));
    assert_eq!(g.callees_of(0, 1), HashSet::from([2, 3, 4]));
    assert!(g.connected(0, 1, 3) && g.connected(0, 3, 1));
    assert!(!g.connected(0, 3, 4), "siblings under api are not connected");
    assert!(g.callers_of(0, 1).is_empty(), "tenant 9's edge is not tenant 0's");
    g.expire(now + Duration::from_secs(16 * 60));
    assert_eq!(g.len(), 0, "edges unseen for edge_ttl go");
}

#[test]
fn edges_are_written_as_tempo_names_them_and_viewed_with_rates() {
    let cfg = GraphConfig { buckets: vec![0.1, 1.0], ..GraphConfig::default() };
    let mut g = ServiceGraph::new(&cfg, Duration::from_secs(10));
    let now = Instant::now();
    let syms = symbols();
    // api → db: 0.05 s, 0.5 s (failed), 2 s, in two windows of 10 s.
    g.record(0, &call(2, 3, 50, false, 1_000), now);
    g.record(0, &call(2, 3, 500, true, 2_000), now);
    g.record(0, &call(2, 3, 2000, false, 15_000), now);
    g.record(0, &call(1, 2, 20, false, 15_000), now);
    let mut bodies = Bodies::default();
    // Only written windows count in the series: nothing yet, then the first window, then both.
    g.write_series(0, 10_000, &syms, &mut bodies);
    let (out, _) = bodies.drain();
    let raw = snap::raw::Decoder::new().decompress_vec(&out[0].body).unwrap();
    let zero = WriteRequest::decode(raw.as_slice()).unwrap();
    assert!(
        zero.timeseries
            .iter()
            .filter(|t| t.labels.iter().any(|l| l.value == REQUEST_TOTAL))
            .all(|t| t.samples[0].value == 0.0)
    );
    g.absorb_until(0, 10_000);
    let view = g.view(0, &syms);
    assert_eq!(view.edges[0].requests_total, 3, "the view counts open windows too");
    g.absorb_until(0, 20_000);
    assert_eq!(g.write_series(0, 20_000, &syms, &mut bodies), 2 * (5 + 3));
    let (out, _) = bodies.drain();
    let raw = snap::raw::Decoder::new().decompress_vec(&out[0].body).unwrap();
    let mut got: BTreeMap<String, f64> = BTreeMap::new();
    for ts in WriteRequest::decode(raw.as_slice()).unwrap().timeseries {
        let l: BTreeMap<_, _> = ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        if l["client"] != "api" {
            continue;
        }
        assert_eq!(l["server"], "db");
        assert_eq!(ts.samples[0].timestamp, 20_000);
        let key = format!("{}{}", l["__name__"], l.get("le").map(|le| format!("{{le={le}}}")).unwrap_or_default());
        got.insert(key, ts.samples[0].value);
    }
    let want: BTreeMap<String, f64> = [
        ("traces_service_graph_request_total", 3.0),
        ("traces_service_graph_request_failed_total", 1.0),
        ("traces_service_graph_request_server_seconds_bucket{le=0.1}", 1.0),
        ("traces_service_graph_request_server_seconds_bucket{le=1}", 2.0),
        ("traces_service_graph_request_server_seconds_bucket{le=+Inf}", 3.0),
        ("traces_service_graph_request_server_seconds_sum", 2.55),
        ("traces_service_graph_request_server_seconds_count", 3.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (k, v) in &want {
        assert!((got[k] - v).abs() < 1e-9, "{k}: {} vs {v}", got[k]);
    }
    let view = g.view(0, &syms);
    assert_eq!(view.edges.len(), 2);
    let e = &view.edges[0];
    assert_eq!((e.client.as_str(), e.server.as_str()), ("api", "db"));
    assert_eq!((e.requests_total, e.failed_total, e.last_call_ms), (3, 1, 15_000));
    assert!((e.requests_per_second - 3.0 / 20.0).abs() < 1e-9, "3 calls over two 10 s windows");
    assert!((e.error_ratio - 1.0 / 3.0).abs() < 1e-9);
    assert!((e.latency_p50_seconds.unwrap() - 0.5).abs() < 0.02, "{e:?}");
    let names: Vec<_> = view.nodes.iter().map(|n| (n.service.as_str(), n.callers, n.callees)).collect();
    assert_eq!(names, [("api", 1, 1), ("db", 1, 0), ("frontend", 0, 1)]);
    assert!((view.nodes[1].error_ratio - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(g.edge_names(0, &syms), [("api".into(), "db".into()), ("frontend".into(), "api".into())]);
}

#[test]
fn the_edge_cap_drops_calls_of_new_edges() {
    let mut g = ServiceGraph::new(&GraphConfig { max_edges: 1, ..GraphConfig::default() }, Duration::from_secs(10));
    let now = Instant::now();
    g.record(0, &call(1, 2, 1, false, 0), now);
    g.record(0, &call(1, 3, 1, false, 0), now);
    g.record(0, &call(1, 2, 1, false, 0), now);
    assert_eq!((g.len(), g.dropped_calls), (1, 1));
}

//! The trace side over real buffers: a call chain's spans, a log line and an exemplar go in as sealed
//! batches; the index, the trace view, the graph, the RED series and the failure signals come out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use prost::Message;
use vigil_ingest::buffer::logs::LogRow;
use vigil_ingest::buffer::spans::SpanRow;
use vigil_ingest::buffer::{BufferConfig, ExemplarRow, LogsBuffer, MetricsBuffer, SampleRow, SpansBuffer};
use vigil_ingest::series::{SeriesRegistry, SeriesRegistryConfig};

use super::*;

const T0: i64 = 1_700_000_000_000;

fn buffers() -> Sources {
    let cfg =
        BufferConfig { shards: 2, batch_rows: 1000, max_bytes: 64 << 20, seal_interval: Duration::from_secs(3600) };
    Sources {
        spans: SpansBuffer::new(cfg.clone()),
        logs: LogsBuffer::new(cfg.clone()),
        metrics: MetricsBuffer::new(cfg),
        registry: Arc::new(SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous")),
    }
}

fn store(sources: &Sources) -> TraceStore {
    TraceStore::new(&IndexConfig::default(), &GraphConfig::default(), &RedConfig::default(), sources.clone())
}

/// One span: ids as small numbers, times in ms after T0.
#[allow(clippy::too_many_arguments)]
fn span_row(
    tenant: &str,
    trace: u8,
    span: u64,
    parent: u64,
    service: &str,
    kind: i32,
    start: i64,
    ms: i64,
    error: bool,
) -> SpanRow {
    SpanRow {
        tenant: Arc::from(tenant),
        trace_id: format!("{:032x}", u128::from(trace)),
        span_id: format!("{span:016x}"),
        parent_span_id: (parent != 0).then(|| format!("{parent:016x}")),
        service: Some(Arc::from(service)),
        name: format!("{service} op"),
        kind,
        start_unix_nano: (T0 + start) * 1_000_000,
        duration_ns: ms * 1_000_000,
        status_code: if error { 2 } else { 0 },
        status_message: error.then(|| "boom".to_owned()),
        attributes: "{}".into(),
        span: vec![1, 2, 3],
        resource_scope: Arc::from(&b"r"[..]),
    }
}

/// frontend (server, root) → frontend client → api server → api client → db server; db fails when `error`.
fn chain(tenant: &str, trace: u8, error: bool) -> Vec<SpanRow> {
    vec![
        span_row(tenant, trace, 1, 0, "frontend", 2, 0, 50, error),
        span_row(tenant, trace, 2, 1, "frontend", 3, 1, 45, error),
        span_row(tenant, trace, 3, 2, "api", 2, 2, 40, error),
        span_row(tenant, trace, 4, 3, "api", 3, 3, 30, error),
        span_row(tenant, trace, 5, 4, "db", 2, 4, 25, error),
    ]
}

fn ingest_all(store: &TraceStore, tracer: &mut Tracer, sources: &Sources) -> (Vec<SpanSignal>, Vec<LogSignal>) {
    sources.spans.seal_all();
    sources.logs.seal_all();
    sources.metrics.seal_all();
    let (mut spans, mut logs) = (Vec::new(), Vec::new());
    let now = Instant::now();
    for shard in 0..2 {
        for b in sources.spans.snapshot(shard) {
            tracer.ingest_spans(store, &b, T0, now, &mut spans);
        }
        for b in sources.logs.snapshot(shard) {
            tracer.ingest_logs(store, &b, &mut logs);
        }
        for b in sources.metrics.snapshot(shard) {
            tracer.ingest_exemplars(store, &b);
        }
    }
    (spans, logs)
}

#[test]
fn a_failing_call_chain_is_indexed_graphed_and_signalled() {
    let sources = buffers();
    let store = store(&sources);
    let mut tracer =
        Tracer::new(&RedConfig::default(), &GraphConfig::default(), &SlowConfig::default(), Duration::ZERO);
    let mut staged = sources.spans.staged_rows();
    // The db's span arrives before its parents (another process exported first).
    let mut rows = chain("t1", 1, true);
    rows.rotate_right(1);
    for r in rows.into_iter().chain(chain("t1", 2, false)).chain(chain("t2", 1, false)) {
        staged.push(r);
    }
    sources.spans.append(&staged).unwrap();
    let mut logs = sources.logs.staged_rows();
    logs.push(LogRow {
        timestamp_ns: (T0 + 10) * 1_000_000,
        tenant: "t1".into(),
        service: Some("api".into()),
        severity: Some("ERROR".into()),
        body: "query failed: connection refused".into(),
        trace_id: Some(format!("{:032x}", 1)),
        span_id: Some(format!("{:016x}", 3)),
        labels: r#"{service_name="api"}"#.into(),
        ..LogRow::default()
    });
    logs.push(LogRow { tenant: "t1".into(), severity: Some("info".into()), body: "fine".into(), ..LogRow::default() });
    sources.logs.append(&logs).unwrap();
    // An exemplar of t1's latency series pointing at trace 1's api span.
    let tenant = sources.registry.tenant("t1").unwrap();
    let key = vigil_proto::prometheus::TimeSeries {
        labels: vec![vigil_proto::prometheus::Label { name: "__name__".into(), value: "latency".into() }],
        ..Default::default()
    }
    .encode_to_vec();
    let series = sources.registry.resolve(tenant, &key).unwrap();
    let mut m = sources.metrics.staged_rows();
    m.push_sample(SampleRow { series: series.id, slot: series.slot, timestamp_ms: T0, value: 0.04 });
    m.push_exemplar(ExemplarRow {
        series: series.id,
        timestamp_ms: T0,
        value: 0.04,
        trace_id: Some(format!("{:032x}", 1)),
        span_id: Some(format!("{:016x}", 3)),
        labels: Vec::new(),
    });
    sources.metrics.append(&m).unwrap();

    let (signals, log_signals) = ingest_all(&store, &mut tracer, &sources);

    // Failure signals: the five failed spans of trace 1, and the error line (the info line is not one).
    assert_eq!(signals.len(), 5);
    let trace = parse_trace_id(&format!("{:032x}", 1)).unwrap();
    assert!(signals.iter().all(|s| s.error && !s.slow && s.trace == trace));
    assert_eq!(log_signals.len(), 1);
    assert_eq!((log_signals[0].body.as_str(), log_signals[0].span), ("query failed: connection refused", 3));

    // The trace view: spans in start order with their flags, the log line, the exemplar's series.
    let v = store.trace("t1", &trace).unwrap();
    assert_eq!(
        v.spans.iter().map(|s| s.span_id.as_str()).collect::<Vec<_>>(),
        (1..=5).map(|i| format!("{i:016x}")).collect::<Vec<_>>()
    );
    assert!(v.spans.iter().all(|s| s.error && s.status == "STATUS_CODE_ERROR"));
    assert_eq!(v.spans[4].kind, "SPAN_KIND_SERVER");
    assert_eq!(v.spans[4].parent_span_id.as_deref(), Some("0000000000000004"));
    assert_eq!(v.error_origins, ["db"], "the failure starts at the db: nothing under it failed");
    let mut services = v.services.clone();
    services.sort();
    assert_eq!(services, ["api", "db", "frontend"]);
    assert_eq!(v.logs.len(), 1);
    assert_eq!(v.logs[0].severity.as_deref(), Some("ERROR"));
    assert_eq!(v.series.len(), 1);
    assert_eq!(v.series[0].labels.get("__name__").map(String::as_str), Some("latency"));
    assert_eq!(v.series[0].span_id.as_deref(), Some("0000000000000003"));
    assert!(store.trace("t3", &trace).is_none(), "unknown tenant");
    assert!(store.trace("t1", &[9; 16]).is_none(), "unknown trace");
    // Tenant t2 has a trace with the same id: its own, without t1's log line or exemplar.
    let other = store.trace("t2", &trace).unwrap();
    assert!(other.logs.is_empty() && other.series.is_empty() && other.spans.iter().all(|s| !s.error));

    // The graph: frontend → api → db, one of two calls failed on each edge.
    let g = store.graph_view("t1");
    let edges: Vec<_> =
        g.edges.iter().map(|e| (e.client.as_str(), e.server.as_str(), e.requests_total, e.failed_total)).collect();
    assert_eq!(edges, [("api", "db", 2, 1), ("frontend", "api", 2, 1)]);
    assert_eq!(store.graph_view("t2").edges.len(), 2);
    assert!(store.graph_view("nobody").edges.is_empty());
}

#[test]
fn red_series_and_graph_series_are_written_when_windows_complete() {
    let sources = buffers();
    let store = store(&sources);
    let red = RedConfig { step: Duration::from_secs(10), lateness: Duration::from_secs(0), ..RedConfig::default() };
    let mut tracer = Tracer::new(&red, &GraphConfig::default(), &SlowConfig::default(), Duration::ZERO);
    let mut staged = sources.spans.staged_rows();
    for r in chain("t1", 1, true).into_iter().chain(chain("t1", 2, false)) {
        staged.push(r);
    }
    // A later span moves the watermark past the first window.
    staged.push(span_row("t1", 3, 1, 0, "frontend", 2, 20_000, 1, false));
    sources.spans.append(&staged).unwrap();
    ingest_all(&store, &mut tracer, &sources);
    let mut bodies = Bodies::default();
    tracer.flush(&store, true, T0, Instant::now(), &mut bodies);
    let (out, _) = bodies.drain();
    let mut names = std::collections::BTreeSet::new();
    let mut db_errors = None;
    for wb in &out {
        assert_eq!(&*wb.tenant, "t1");
        let raw = snap::raw::Decoder::new().decompress_vec(&wb.body).unwrap();
        for ts in vigil_proto::prometheus::WriteRequest::decode(raw.as_slice()).unwrap().timeseries {
            let get = |n: &str| ts.labels.iter().find(|l| l.name == n).map(|l| l.value.clone());
            let name = get("__name__").unwrap();
            if name == red::ERROR_RATIO && get("service").as_deref() == Some("db") {
                db_errors = Some(ts.samples[0].value);
                assert_eq!(ts.samples[0].timestamp, T0 + 10_000, "at the window's end");
            }
            names.insert(name);
        }
    }
    assert_eq!(db_errors, Some(0.5), "one of db's two requests failed");
    for want in [red::REQUESTS, red::ERROR_RATIO, red::LATENCY, graph::REQUEST_TOTAL, graph::REQUEST_FAILED_TOTAL] {
        assert!(names.contains(want), "{want} missing from {names:?}");
    }
    assert!(names.contains("traces_service_graph_request_server_seconds_bucket"));
}

#[test]
fn the_index_forgets_what_the_buffers_evict() {
    let cfg = BufferConfig { shards: 1, batch_rows: 5, max_bytes: 20_000, seal_interval: Duration::from_secs(3600) };
    let sources = Sources { spans: SpansBuffer::new(cfg), ..buffers() };
    let store = store(&sources);
    let mut tracer =
        Tracer::new(&RedConfig::default(), &GraphConfig::default(), &SlowConfig::default(), Duration::ZERO);
    let mut now_trace = 0;
    // Chains of five spans (one batch each) until the first batch is evicted.
    for trace in 1..=200u8 {
        let mut staged = sources.spans.staged_rows();
        for r in chain("t1", trace, false) {
            staged.push(r);
        }
        sources.spans.append(&staged).unwrap();
        let mut out = Vec::new();
        for b in sources.spans.snapshot(0).iter().filter(|b| b.seq + 1 == u64::from(trace)) {
            tracer.ingest_spans(&store, b, T0, Instant::now(), &mut out);
        }
        now_trace = trace;
        if sources.spans.snapshot(0).first().is_some_and(|b| b.seq > 0) {
            break;
        }
    }
    assert!(now_trace > 1 && now_trace < 200, "the buffer never evicted");
    let id = |t: u8| parse_trace_id(&format!("{:032x}", t)).unwrap();
    assert!(store.trace("t1", &id(1)).is_some_and(|v| v.spans.is_empty()), "indexed, but its rows are gone");
    store.prune_index();
    assert!(store.trace("t1", &id(1)).is_none(), "forgotten once its batch is evicted");
    assert_eq!(store.trace("t1", &id(now_trace)).map(|v| v.spans.len()), Some(5));
}

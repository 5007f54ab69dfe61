//! Synthetic microservice traffic with one injected fault, as real clients would send it to Vigil: OTLP
//! spans (one `ResourceSpans` per service, over HTTP protobuf), OTLP error log lines carrying trace and span
//! ids, and a per-service latency gauge by remote write with exemplars pointing at traces.
//!
//! A [`Topology`] is a tree of calls from an entry service; every request walks it (each service a server
//! span, each call a client span in the caller). A [`Fault`] makes one service fail a share of its requests
//! (its callers then fail too, and log that their call failed) and/or respond slower, during the last
//! windows of the scenario. Everything is deterministic for a seed. Used by `e2e_incidents.rs` (one
//! scenario, every check) and `e2e_incidents_scenarios.rs` (many, for root-cause accuracy).

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use prost::Message;
use vigil_proto::prometheus as rw;

/// Calls from service to service; service 0 is the entry point.
#[derive(Debug, Clone)]
pub struct Topology {
    pub name: &'static str,
    pub services: Vec<String>,
    /// (caller, callee), each callee called by one caller (a tree).
    pub calls: Vec<(usize, usize)>,
}

impl Topology {
    fn build(name: &'static str, services: &[&str], calls: &[(usize, usize)]) -> Self {
        Self { name, services: services.iter().map(|s| (*s).to_owned()).collect(), calls: calls.to_vec() }
    }

    /// frontend → checkout → {payments, inventory}.
    pub fn shop() -> Self {
        Self::build("shop", &["frontend", "checkout", "payments", "inventory"], &[(0, 1), (1, 2), (1, 3)])
    }

    /// gateway → auth → users → db, a straight line.
    pub fn chain() -> Self {
        Self::build("chain", &["gateway", "auth", "users", "userdb"], &[(0, 1), (1, 2), (2, 3)])
    }

    /// edge → {search, cart, reviews}; search → index; cart → pricing.
    pub fn fan_out() -> Self {
        Self::build(
            "fan-out",
            &["edge", "search", "cart", "reviews", "index", "pricing"],
            &[(0, 1), (0, 2), (0, 3), (1, 4), (2, 5)],
        )
    }

    /// api → orders → {stock, billing}; billing → ledger → ledgerdb.
    pub fn deep() -> Self {
        Self::build(
            "deep",
            &["api", "orders", "stock", "billing", "ledger", "ledgerdb"],
            &[(0, 1), (1, 2), (1, 3), (3, 4), (4, 5)],
        )
    }

    pub fn children(&self, s: usize) -> Vec<usize> {
        self.calls.iter().filter(|(c, _)| *c == s).map(|(_, d)| *d).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// A share of requests fail.
    Errors { ratio: f64 },
    /// Every request takes this much longer.
    Latency { extra_ms: f64 },
    /// Both: failing slowly (timeouts).
    Both { ratio: f64, extra_ms: f64 },
}

#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub service: usize,
    pub kind: FaultKind,
}

impl Fault {
    fn error_ratio(&self) -> f64 {
        match self.kind {
            FaultKind::Errors { ratio } | FaultKind::Both { ratio, .. } => ratio,
            FaultKind::Latency { .. } => 0.0,
        }
    }

    fn extra_ns(&self) -> i64 {
        match self.kind {
            FaultKind::Latency { extra_ms } | FaultKind::Both { extra_ms, .. } => (extra_ms * 1e6) as i64,
            FaultKind::Errors { .. } => 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub tenant: String,
    pub topology: Topology,
    pub fault: Fault,
    /// Must equal Vigil's `correlate.red.step`.
    pub step_ms: i64,
    /// Healthy windows before the fault (the detectors' warm-up needs 30).
    pub history: usize,
    pub fault_windows: usize,
    pub requests_per_window: usize,
    pub seed: u64,
}

/// One window's worth of requests, ready to send.
#[derive(Debug, Clone)]
pub struct Window {
    pub start_ms: i64,
    pub faulty: bool,
    pub spans: ExportTraceServiceRequest,
    pub logs: Option<ExportLogsServiceRequest>,
    pub metrics: rw::WriteRequest,
}

#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// Traces in which some span failed.
    pub failed_traces: BTreeSet<String>,
    /// Every trace of the fault windows.
    pub fault_traces: BTreeSet<String>,
    /// Error log lines sent: (trace id, body).
    pub error_logs: Vec<(String, String)>,
    /// (caller, callee) by name.
    pub edges: BTreeSet<(String, String)>,
}

pub const LATENCY_METRIC: &str = "app_request_duration_seconds";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource { attributes: vec![kv("service.name", service)], ..Default::default() })
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one request produced, per service.
#[derive(Default)]
struct Request {
    spans: BTreeMap<usize, Vec<Span>>,
    logs: BTreeMap<usize, Vec<LogRecord>>,
    /// The server span (id, duration) of each service.
    server: BTreeMap<usize, (Vec<u8>, i64)>,
    failed: bool,
}

impl Scenario {
    /// Base latency of a service's own work, in ns.
    fn base_ns(&self, s: usize) -> i64 {
        (3 + (s as i64 * 7 + self.seed as i64) % 9) * 1_000_000
    }

    /// Every window, oldest first, ending at `end_ms`; and what a correct answer must contain.
    pub fn generate(&self, end_ms: i64) -> (Vec<Window>, Truth) {
        let mut rng = Rng(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let total = self.history + self.fault_windows;
        let first = (end_ms - total as i64 * self.step_ms).div_euclid(self.step_ms) * self.step_ms;
        let mut truth = Truth::default();
        for (c, d) in &self.topology.calls {
            truth.edges.insert((self.topology.services[*c].clone(), self.topology.services[*d].clone()));
        }
        let mut windows = Vec::with_capacity(total);
        let mut next_id: u64 = self.seed << 32 | 1;
        for w in 0..total {
            let start_ms = first + w as i64 * self.step_ms;
            let faulty = w >= self.history;
            let mut spans: BTreeMap<usize, Vec<Span>> = BTreeMap::new();
            let mut logs: BTreeMap<usize, Vec<LogRecord>> = BTreeMap::new();
            let mut durations: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
            let mut exemplar: BTreeMap<usize, (Vec<u8>, Vec<u8>, bool)> = BTreeMap::new();
            // Requests spread over the window's first 60 %, so every span ends inside it.
            let spread = self.step_ms * 6 / 10;
            for r in 0..self.requests_per_window {
                next_id += 1;
                let trace: Vec<u8> = [next_id.to_be_bytes(), (next_id ^ 0x5555).to_be_bytes()].concat();
                let at_ns = (start_ms + spread * r as i64 / self.requests_per_window as i64) * 1_000_000;
                let mut req = Request::default();
                self.visit(0, None, at_ns, &trace, faulty, &mut rng, &mut next_id, &mut req);
                let id = hex(&trace);
                if faulty {
                    truth.fault_traces.insert(id.clone());
                }
                if req.failed {
                    truth.failed_traces.insert(id.clone());
                }
                for (s, list) in req.spans {
                    spans.entry(s).or_default().extend(list);
                }
                for (s, list) in req.logs {
                    for l in &list {
                        if let Some(any_value::Value::StringValue(body)) = l.body.as_ref().and_then(|b| b.value.clone())
                        {
                            truth.error_logs.push((id.clone(), body));
                        }
                    }
                    logs.entry(s).or_default().extend(list);
                }
                for (s, (span_id, d)) in req.server {
                    durations.entry(s).or_default().push(d);
                    let better = exemplar.get(&s).is_none_or(|(_, _, failed)| !failed && req.failed);
                    if better {
                        exemplar.insert(s, (trace.clone(), span_id, req.failed));
                    }
                }
            }
            let spans = ExportTraceServiceRequest {
                resource_spans: spans
                    .into_iter()
                    .map(|(s, list)| ResourceSpans {
                        resource: resource(&self.topology.services[s]),
                        scope_spans: vec![ScopeSpans { spans: list, ..Default::default() }],
                        ..Default::default()
                    })
                    .collect(),
            };
            let logs = (!logs.is_empty()).then(|| ExportLogsServiceRequest {
                resource_logs: logs
                    .into_iter()
                    .map(|(s, list)| ResourceLogs {
                        resource: resource(&self.topology.services[s]),
                        scope_logs: vec![ScopeLogs { log_records: list, ..Default::default() }],
                        ..Default::default()
                    })
                    .collect(),
            });
            let at = start_ms + self.step_ms - 1;
            let timeseries = durations
                .into_iter()
                .map(|(s, d)| {
                    let name = &self.topology.services[s];
                    let mean = d.iter().sum::<i64>() as f64 / d.len() as f64 / 1e9;
                    let (trace, span, _) = exemplar.remove(&s).unwrap_or_default();
                    let label = |n: &str, v: &str| rw::Label { name: n.into(), value: v.into() };
                    rw::TimeSeries {
                        labels: vec![
                            label("__name__", LATENCY_METRIC),
                            label("instance", &format!("{name}:8080")),
                            label("job", name),
                        ],
                        samples: vec![rw::Sample { value: mean, timestamp: at }],
                        exemplars: vec![rw::Exemplar {
                            labels: vec![label("span_id", &hex(&span)), label("trace_id", &hex(&trace))],
                            value: mean,
                            timestamp: at,
                        }],
                        ..Default::default()
                    }
                })
                .collect();
            windows.push(Window {
                start_ms,
                faulty,
                spans,
                logs,
                metrics: rw::WriteRequest { timeseries, metadata: vec![] },
            });
        }
        (windows, truth)
    }

    /// One service's part of a request: its server span, its calls, and returns its (duration, failed).
    #[allow(clippy::too_many_arguments)]
    fn visit(
        &self,
        s: usize,
        parent: Option<Vec<u8>>,
        start_ns: i64,
        trace: &[u8],
        faulty: bool,
        rng: &mut Rng,
        ids: &mut u64,
        req: &mut Request,
    ) -> (i64, bool) {
        *ids += 1;
        let server_id = ids.to_be_bytes().to_vec();
        let name = &self.topology.services[s];
        let own = (self.base_ns(s) as f64 * (0.9 + 0.2 * rng.unit())) as i64;
        let here = faulty && self.fault.service == s;
        let mut own = own + if here { self.fault.extra_ns() } else { 0 };
        let mut failed = here && rng.unit() < self.fault.error_ratio();
        let mut cursor = start_ns + own / 2;
        let mut children_failed = Vec::new();
        for child in self.topology.children(s) {
            *ids += 1;
            let client_id = ids.to_be_bytes().to_vec();
            let (d, child_failed) =
                self.visit(child, Some(client_id.clone()), cursor + 200_000, trace, faulty, rng, ids, req);
            let client_ns = d + 400_000;
            req.spans.entry(s).or_default().push(span(
                trace,
                &client_id,
                Some(&server_id),
                &format!("call {}", self.topology.services[child]),
                span::SpanKind::Client,
                cursor,
                client_ns,
                child_failed,
            ));
            cursor += client_ns;
            own += client_ns;
            if child_failed {
                failed = true;
                children_failed.push(child);
            }
        }
        let server_ns = own;
        req.spans.entry(s).or_default().push(span(
            trace,
            &server_id,
            parent.as_deref(),
            &format!("{name} handle"),
            span::SpanKind::Server,
            start_ns,
            server_ns,
            failed,
        ));
        req.server.insert(s, (server_id.clone(), server_ns));
        if failed {
            req.failed = true;
            let body = if here && children_failed.is_empty() {
                format!("{name}: request failed: upstream provider timed out")
            } else {
                let callee = children_failed.first().map_or("?", |c| self.topology.services[*c].as_str());
                format!("{name}: call to {callee} failed with status 500")
            };
            req.logs.entry(s).or_default().push(LogRecord {
                time_unix_nano: (start_ns + server_ns) as u64,
                severity_number: 17,
                severity_text: "ERROR".into(),
                body: Some(AnyValue { value: Some(any_value::Value::StringValue(body)) }),
                trace_id: trace.to_vec(),
                span_id: server_id,
                ..Default::default()
            });
        }
        (server_ns, failed)
    }
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: &[u8],
    id: &[u8],
    parent: Option<&[u8]>,
    name: &str,
    kind: span::SpanKind,
    start_ns: i64,
    duration_ns: i64,
    failed: bool,
) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: id.to_vec(),
        parent_span_id: parent.map(<[u8]>::to_vec).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start_ns as u64,
        end_time_unix_nano: (start_ns + duration_ns) as u64,
        status: Some(Status {
            code: if failed { status::StatusCode::Error as i32 } else { status::StatusCode::Unset as i32 },
            message: if failed { "internal error".into() } else { String::new() },
        }),
        ..Default::default()
    }
}

/// One window's spans, logs and metrics to the Vigil at `base` (`http://host:port`), as the SDKs and
/// Prometheus would send them.
pub async fn send_window(base: &str, tenant: &str, w: &Window) {
    let otlp = [("Content-Type", "application/x-protobuf"), ("X-Scope-OrgID", tenant)];
    let r = crate::support::request("POST", &format!("{base}/v1/traces"), &otlp, protobuf(&w.spans)).await.unwrap();
    assert_eq!(r.status, 200, "traces: {}", r.text());
    if let Some(logs) = &w.logs {
        let r = crate::support::request("POST", &format!("{base}/v1/logs"), &otlp, protobuf(logs)).await.unwrap();
        assert_eq!(r.status, 200, "logs: {}", r.text());
    }
    let mut headers = crate::support::load::HEADERS.to_vec();
    headers.push(("X-Scope-OrgID", tenant));
    let r =
        crate::support::request("POST", &format!("{base}/api/v1/write"), &headers, snappy(&w.metrics)).await.unwrap();
    assert_eq!(r.status, 204, "remote write: {}", r.text());
}

pub fn protobuf<M: Message>(m: &M) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

pub fn snappy<M: Message>(m: &M) -> Bytes {
    Bytes::from(snap::raw::Encoder::new().compress_vec(&m.encode_to_vec()).unwrap_or_default())
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as the API writes it (`…T22:13:20.123Z`), computed
/// here so the tests do not share the API's formatter.
pub fn rfc3339_ms(text: &str) -> i64 {
    let (date, time) = text.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let ms: i64 = format!("{frac:0<3}")[..3].parse().unwrap();
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms
}

/// Vigil's config for a scenario run: short RED windows, and the rule `ServiceAnomaly` (an anomaly alert
/// per service after 2 s, written to `dir/rules.yaml`) sent to the Alertmanager at `alerts_url`.
pub fn vigil_config(dir: &std::path::Path, alerts_url: &str) -> std::path::PathBuf {
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        "rules:\n- alert: ServiceAnomaly\n  anomaly: {match: '{__name__=~\".+\"}', min_score: 1, for: 2s}\n",
    )
    .expect("write rules");
    let config = dir.join("vigil.yaml");
    std::fs::write(
        &config,
        format!(
            "correlate:\n  red:\n    step: 2s\n    lateness: 1s\n\
             alerting:\n  rules_file: {}\n  evaluation_interval: 300ms\n\
             forward:\n  alertmanager:\n    - url: {alerts_url}\n      flush_interval: 50ms\n",
            rules.display()
        ),
    )
    .expect("write config");
    config
}

//! `otlp_loadgen`: an OTLP traces/logs load generator for loopback benchmarks.
//!
//! It sends `ExportTraceServiceRequest`s (`--batch` spans each) or `ExportLogsServiceRequest`s (`--batch`
//! log records each) as fast as the target answers, over OTLP/HTTP protobuf (`POST /v1/traces`,
//! `/v1/logs`, keep-alive HTTP/1.1) or OTLP/gRPC (unary `Export` over HTTP/2 prior knowledge, framed by
//! hand), with `--concurrency` requests in flight, for `--duration` seconds. Bodies come from a pool of
//! pre-encoded requests so the generator's own CPU stays small. It only ever sends to a loopback address.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http::{HeaderMap, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};
use prost::Message;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a refusal (429/503/`UNAVAILABLE`) or a transport error, so a refusing target is not
/// hammered in a busy loop.
const REFUSED_PAUSE: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Signal {
    Traces,
    Logs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Transport {
    Http,
    Grpc,
}

#[derive(Parser, Debug)]
#[command(about = "OTLP traces/logs load generator over OTLP/HTTP protobuf or OTLP/gRPC (loopback targets only)")]
struct Args {
    /// What to send.
    #[arg(long, value_enum, default_value_t = Signal::Traces)]
    signal: Signal,
    /// OTLP/HTTP protobuf or OTLP/gRPC.
    #[arg(long, value_enum, default_value_t = Transport::Http)]
    transport: Transport,
    /// http: base URL (posts to /v1/traces or /v1/logs), default http://127.0.0.1:4318; grpc: host:port,
    /// default 127.0.0.1:4317. The host must be 127.0.0.1, localhost or [::1].
    #[arg(long)]
    endpoint: Option<String>,
    /// Spans or log records per request; default 512 for traces, 1000 for logs.
    #[arg(long)]
    batch: Option<usize>,
    /// Requests in flight at once (http: one keep-alive connection each; grpc: streams on one HTTP/2
    /// connection, as an OpenTelemetry exporter does).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Distinct pre-encoded requests, sent round robin.
    #[arg(long, default_value_t = 64)]
    pool: usize,
    /// Runtime worker threads. One leaves the CPU to the target.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("otlp_loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, BoxError> {
    if args.concurrency == 0 || args.threads == 0 || args.pool == 0 || args.batch == Some(0) {
        return Err("--batch, --concurrency, --pool and --threads must be > 0".into());
    }
    if !args.duration.is_finite() || args.duration <= 0.0 {
        return Err("--duration must be > 0".into());
    }
    let batch = args.batch.unwrap_or(match args.signal {
        Signal::Traces => 512,
        Signal::Logs => 1000,
    });
    let uri = target_uri(args)?;
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
    let started = Instant::now();
    let bodies: Vec<Bytes> = (0..args.pool)
        .map(|i| {
            let body = match args.signal {
                Signal::Traces => traces_request(i, batch, now_ns).encode_to_vec(),
                Signal::Logs => logs_request(i, batch, now_ns).encode_to_vec(),
            };
            match args.transport {
                Transport::Http => Ok(Bytes::from(body)),
                Transport::Grpc => grpc_frame(&body),
            }
        })
        .collect::<Result<_, BoxError>>()?;
    let avg_body = bodies.iter().map(Bytes::len).sum::<usize>() / bodies.len();
    if !args.json {
        eprintln!(
            "otlp_loadgen: encoded {} requests of {batch} items (avg {avg_body} bytes) in {:.2} s",
            bodies.len(),
            started.elapsed().as_secs_f64()
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?;
    let mut report = runtime.block_on(drive(args, uri, bodies, batch as u64))?;
    report.avg_body_bytes = avg_body;
    report.print(args, batch);
    Ok(if report.stats.requests_ok == 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The request URI, refusing anything but plain HTTP to a loopback host: load only ever goes to a server
/// on this machine.
fn target_uri(args: &Args) -> Result<Uri, BoxError> {
    let (default, path) = match (args.transport, args.signal) {
        (Transport::Http, Signal::Traces) => ("http://127.0.0.1:4318", "/v1/traces"),
        (Transport::Http, Signal::Logs) => ("http://127.0.0.1:4318", "/v1/logs"),
        (Transport::Grpc, Signal::Traces) => {
            ("127.0.0.1:4317", "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        }
        (Transport::Grpc, Signal::Logs) => {
            ("127.0.0.1:4317", "/opentelemetry.proto.collector.logs.v1.LogsService/Export")
        }
    };
    let endpoint = args.endpoint.as_deref().unwrap_or(default);
    let base = loopback_base(endpoint)?;
    let base = base.trim_end_matches('/');
    Ok(format!("{base}{path}").parse()?)
}

/// `endpoint` as `http://host:port` (a bare `host:port` is taken as http), if its host is loopback.
fn loopback_base(endpoint: &str) -> Result<String, BoxError> {
    let full = if endpoint.contains("://") { endpoint.to_owned() } else { format!("http://{endpoint}") };
    let uri: Uri = full.parse().map_err(|e| format!("--endpoint {endpoint:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--endpoint {endpoint:?}: only plain http is supported").into());
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty()) {
        return Err(format!("--endpoint {endpoint:?}: give the base address only, without a path").into());
    }
    match uri.host() {
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1") => Ok(full),
        other => Err(format!(
            "--endpoint {endpoint:?}: host {:?} is not loopback; otlp_loadgen only sends to 127.0.0.1, localhost or [::1]",
            other.unwrap_or("")
        )
        .into()),
    }
}

/// The 5-byte gRPC message prefix (uncompressed, big-endian length) followed by the message.
fn grpc_frame(message: &[u8]) -> Result<Bytes, BoxError> {
    let len = u32::try_from(message.len()).map_err(|_| "message too large for one gRPC frame")?;
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(Bytes::from(out))
}

// ---------------------------------------------------------------------------------------------------------
// Payloads

/// A small deterministic generator (splitmix64), so pool entry `i` is the same in every run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Never all zeros (OTLP forbids all-zero ids).
    fn id<const N: usize>(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(N);
        while out.len() < N {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(N);
        out[0] |= 1;
        out
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

fn s(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

/// The services a request's items come from: (service.name, service.version, operations).
const SERVICES: [(&str, &str, [&str; 4]); 5] = [
    ("checkout", "2.14.0", ["POST /api/checkout", "PlaceOrder", "ChargeCard", "SELECT orders"]),
    ("cart", "1.8.3", ["GET /api/cart", "GetCart", "AddItem", "redis GET"]),
    ("frontend", "5.0.1", ["GET /", "GET /product/{id}", "render product", "GET /api/recommendations"]),
    ("payment", "0.9.12", ["Charge", "validate card", "POST /v1/charges", "INSERT payments"]),
    ("inventory", "3.2.0", ["ReserveStock", "SELECT stock", "UPDATE stock", "kafka publish"]),
];

/// Items per resource group: a request carries a few services, like an agent's or collector's batch.
const SERVICES_PER_REQUEST: usize = 3;

fn resource(service: usize, pool_index: usize) -> Resource {
    let (name, version, _) = SERVICES[service % SERVICES.len()];
    Resource {
        attributes: vec![
            s("service.name", name),
            s("service.version", version),
            s("service.namespace", "shop"),
            s("deployment.environment", "production"),
            s("host.name", format!("node-{:02}", (service * 7 + pool_index) % 12)),
            s("k8s.namespace.name", "shop"),
            s("k8s.pod.name", format!("{name}-7d9f8b{:04x}-x{}", pool_index % 5, service)),
            s("telemetry.sdk.language", "go"),
            s("telemetry.sdk.name", "opentelemetry"),
            s("telemetry.sdk.version", "1.28.0"),
        ],
        dropped_attributes_count: 0,
        entity_refs: Vec::new(),
    }
}

fn scope(name: &str) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: name.to_owned(),
        version: "0.53.0".to_owned(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    })
}

/// Splits `total` items into `groups` nearly equal parts.
fn split(total: usize, groups: usize) -> impl Iterator<Item = usize> {
    (0..groups).map(move |g| total / groups + usize::from(g < total % groups))
}

/// Pool entry `pool_index` of a traces request: `batch` spans from three services, in small trees (a root
/// and 1–7 children, some of them grandchildren), every span with its own id and every tree its own trace
/// id, 5–10 attributes and a status.
fn traces_request(pool_index: usize, batch: usize, now_ns: u64) -> ExportTraceServiceRequest {
    let mut rng = Rng::new(pool_index as u64);
    let resource_spans = split(batch, SERVICES_PER_REQUEST)
        .enumerate()
        .map(|(g, count)| {
            let service = (pool_index + g) % SERVICES.len();
            let ops = SERVICES[service].2;
            let mut spans = Vec::with_capacity(count);
            while spans.len() < count {
                let trace_id = rng.id::<16>();
                let tree = (2 + rng.below(7)).min(count - spans.len());
                let start = now_ns - 5_000_000_000 + rng.below(4_000_000_000) as u64;
                let mut ids: Vec<Vec<u8>> = Vec::with_capacity(tree);
                for node in 0..tree {
                    let span_id = rng.id::<8>();
                    let parent = if node == 0 { Vec::new() } else { ids[rng.below(node)].clone() };
                    ids.push(span_id.clone());
                    let begin = start + (node as u64) * 150_000 + rng.below(100_000) as u64;
                    let length = 20_000 + rng.below(if node == 0 { 80_000_000 } else { 20_000_000 }) as u64;
                    let op = ops[if node == 0 { 0 } else { 1 + rng.below(3) }];
                    let kind = match (node, op.split(' ').next()) {
                        (0, _) => span::SpanKind::Server,
                        (_, Some("SELECT" | "INSERT" | "UPDATE" | "redis" | "POST" | "GET")) => span::SpanKind::Client,
                        (_, Some("kafka")) => span::SpanKind::Producer,
                        _ => span::SpanKind::Internal,
                    };
                    let error = rng.below(50) == 0;
                    let mut attributes = vec![
                        s("http.request.method", if op.starts_with("GET") { "GET" } else { "POST" }),
                        s("url.path", format!("/api/{}/{}", SERVICES[service].0, rng.below(1000))),
                        int("http.response.status_code", if error { 500 } else { 200 }),
                        s("server.address", format!("{}.shop.svc.cluster.local", SERVICES[service].0)),
                        int("server.port", 8080),
                    ];
                    let extra = rng.below(6);
                    let optional = [
                        s("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"),
                        s("db.system", "postgresql"),
                        int("app.items", rng.below(20) as i64),
                        s("app.customer.tier", ["free", "pro", "enterprise"][rng.below(3)]),
                        kv("app.cache.hit", any_value::Value::BoolValue(rng.below(2) == 0)),
                    ];
                    attributes.extend(optional.into_iter().take(extra));
                    spans.push(Span {
                        trace_id: trace_id.clone(),
                        span_id,
                        trace_state: String::new(),
                        parent_span_id: parent,
                        flags: 0x100 | 1,
                        name: op.to_owned(),
                        kind: kind as i32,
                        start_time_unix_nano: begin,
                        end_time_unix_nano: begin + length,
                        attributes,
                        dropped_attributes_count: 0,
                        events: Vec::new(),
                        dropped_events_count: 0,
                        links: Vec::new(),
                        dropped_links_count: 0,
                        status: Some(Status {
                            message: if error { "internal error".to_owned() } else { String::new() },
                            code: if error { status::StatusCode::Error } else { status::StatusCode::Unset } as i32,
                        }),
                    });
                }
            }
            ResourceSpans {
                resource: Some(resource(service, pool_index)),
                scope_spans: vec![ScopeSpans {
                    scope: scope("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
            }
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

const LOG_WORDS: [&str; 24] = [
    "request",
    "completed",
    "user",
    "order",
    "payment",
    "timeout",
    "retrying",
    "cache",
    "miss",
    "upstream",
    "connection",
    "reset",
    "latency",
    "exceeded",
    "threshold",
    "item",
    "reserved",
    "inventory",
    "updated",
    "session",
    "expired",
    "token",
    "refreshed",
    "queue",
];

/// Pool entry `pool_index` of a logs request: `batch` records from three services, each with a timestamp,
/// severity number and text, a 60–200 byte body, trace and span ids on half of them, 3–6 attributes.
fn logs_request(pool_index: usize, batch: usize, now_ns: u64) -> ExportLogsServiceRequest {
    let mut rng = Rng::new(0x1000_0000 + pool_index as u64);
    let resource_logs = split(batch, SERVICES_PER_REQUEST)
        .enumerate()
        .map(|(g, count)| {
            let service = (pool_index + g) % SERVICES.len();
            let log_records = (0..count)
                .map(|n| {
                    let time = now_ns - 5_000_000_000 + rng.below(4_000_000_000) as u64;
                    let (severity, text) = match rng.below(20) {
                        0 => (17, "ERROR"),
                        1 | 2 => (13, "WARN"),
                        3..=5 => (5, "DEBUG"),
                        _ => (9, "INFO"),
                    };
                    let target = 60 + rng.below(141);
                    let mut body = format!("{} id={} ", SERVICES[service].2[rng.below(4)], rng.next() % 1_000_000);
                    while body.len() < target {
                        body.push_str(LOG_WORDS[rng.below(LOG_WORDS.len())]);
                        body.push(' ');
                    }
                    body.truncate(target);
                    let traced = n % 2 == 0;
                    let mut attributes = vec![
                        s("code.function", format!("handle{}", rng.below(40))),
                        s("thread.name", format!("worker-{}", rng.below(16))),
                        int("app.request.size", rng.below(100_000) as i64),
                    ];
                    let extra = rng.below(4);
                    let optional = [
                        s("http.route", format!("/api/{}", SERVICES[service].0)),
                        s("user.id", format!("u{}", rng.below(100_000))),
                        kv("app.retry", any_value::Value::BoolValue(rng.below(2) == 0)),
                    ];
                    attributes.extend(optional.into_iter().take(extra));
                    LogRecord {
                        time_unix_nano: time,
                        observed_time_unix_nano: time + 1_000_000,
                        severity_number: severity,
                        severity_text: text.to_owned(),
                        body: Some(AnyValue { value: Some(any_value::Value::StringValue(body)) }),
                        attributes,
                        dropped_attributes_count: 0,
                        flags: u32::from(traced),
                        trace_id: if traced { rng.id::<16>() } else { Vec::new() },
                        span_id: if traced { rng.id::<8>() } else { Vec::new() },
                        event_name: String::new(),
                    }
                })
                .collect();
            ResourceLogs {
                resource: Some(resource(service, pool_index)),
                scope_logs: vec![ScopeLogs {
                    scope: scope("go.opentelemetry.io/contrib/bridges/otelslog"),
                    log_records,
                    schema_url: String::new(),
                }],
                schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
            }
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

// ---------------------------------------------------------------------------------------------------------
// Sending

/// What one worker saw; the workers' stats are added up at the end.
#[derive(Debug, Default)]
struct Stats {
    requests_ok: u64,
    items_sent: u64,
    items_accepted: u64,
    /// Items the target answered as rejected in `partial_success`.
    items_rejected: u64,
    /// Requests that were not accepted: refused (non-2xx / non-OK), transport failures, timeouts.
    errors: u64,
    /// Round-trip time of every request that got an answer, in microseconds.
    latencies_us: Vec<u64>,
    last_error: Option<String>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.requests_ok += other.requests_ok;
        self.items_sent += other.items_sent;
        self.items_accepted += other.items_accepted;
        self.items_rejected += other.items_rejected;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
        if other.last_error.is_some() {
            self.last_error = other.last_error;
        }
    }
}

#[derive(Debug)]
struct Report {
    stats: Stats,
    elapsed: Duration,
    avg_body_bytes: usize,
}

struct Plan {
    uri: Uri,
    signal: Signal,
    transport: Transport,
    client: HttpClient,
    bodies: Vec<Bytes>,
    batch: u64,
    deadline: Instant,
    next: AtomicU64,
}

async fn drive(args: &Args, uri: Uri, bodies: Vec<Bytes>, batch: u64) -> Result<Report, BoxError> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_max_idle_per_host(args.concurrency).pool_idle_timeout(Duration::from_secs(90));
    if args.transport == Transport::Grpc {
        builder.http2_only(true);
    }
    let client = builder.build(connector);
    let start = Instant::now();
    let deadline = start.checked_add(Duration::try_from_secs_f64(args.duration)?).ok_or("--duration is too large")?;
    let plan = Arc::new(Plan {
        uri,
        signal: args.signal,
        transport: args.transport,
        client,
        bodies,
        batch,
        deadline,
        next: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..args.concurrency).map(|_| tokio::spawn(worker(Arc::clone(&plan)))).collect();
    let mut stats = Stats::default();
    for w in workers {
        stats.merge(w.await?);
    }
    Ok(Report { stats, elapsed: start.elapsed(), avg_body_bytes: 0 })
}

async fn worker(plan: Arc<Plan>) -> Stats {
    let mut stats = Stats::default();
    while Instant::now() < plan.deadline {
        let k = plan.next.fetch_add(1, Ordering::Relaxed) as usize;
        let body = plan.bodies[k % plan.bodies.len()].clone();
        stats.items_sent += plan.batch;
        let started = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, attempt(&plan, body)).await {
            Ok(Ok(rejected)) => {
                stats.latencies_us.push(started.elapsed().as_micros() as u64);
                stats.requests_ok += 1;
                let rejected = rejected.min(plan.batch);
                stats.items_rejected += rejected;
                stats.items_accepted += plan.batch - rejected;
            }
            Ok(Err(Failure { answered, message })) => {
                if answered {
                    stats.latencies_us.push(started.elapsed().as_micros() as u64);
                }
                stats.errors += 1;
                stats.last_error = Some(message);
                let pause = REFUSED_PAUSE.min(plan.deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
            }
            Err(_) => {
                stats.errors += 1;
                stats.last_error = Some(format!("timed out after {REQUEST_TIMEOUT:?}"));
            }
        }
    }
    stats
}

/// A request that was not accepted; `answered` when the target did answer (so its latency counts).
struct Failure {
    answered: bool,
    message: String,
}

impl Failure {
    fn transport(message: String) -> Self {
        Failure { answered: false, message }
    }
    fn refused(message: String) -> Self {
        Failure { answered: true, message }
    }
}

/// One export; on success, the number of items the target reported rejected in `partial_success`.
async fn attempt(plan: &Plan, body: Bytes) -> Result<u64, Failure> {
    let mut request = Request::post(plan.uri.clone()).header(header::USER_AGENT, "vigil-otlp-loadgen");
    request = match plan.transport {
        Transport::Http => request.header(header::CONTENT_TYPE, "application/x-protobuf"),
        Transport::Grpc => request.header(header::CONTENT_TYPE, "application/grpc").header(header::TE, "trailers"),
    };
    let request = request.body(Full::new(body)).map_err(|e| Failure::transport(format!("building request: {e}")))?;
    let response = plan.client.request(request).await.map_err(|e| Failure::transport(format!("request: {e:?}")))?;
    let status = response.status();
    let headers = response.headers().clone();
    // Reading the body to the end returns the connection (HTTP/1.1) or the stream (HTTP/2) for reuse.
    let collected =
        response.into_body().collect().await.map_err(|e| Failure::transport(format!("reading response: {e}")))?;
    let trailers = collected.trailers().cloned();
    let bytes = collected.to_bytes();
    match plan.transport {
        Transport::Http => {
            if !status.is_success() {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                return Err(Failure::refused(format!("HTTP {status}: {}", text.trim())));
            }
            rejected_items(plan.signal, &bytes).map_err(Failure::refused)
        }
        Transport::Grpc => {
            if status != StatusCode::OK {
                return Err(Failure::refused(format!("HTTP {status} from a gRPC endpoint")));
            }
            // A trailers-only answer (errors, usually) carries grpc-status in the headers.
            let code = grpc_field(trailers.as_ref(), &headers, "grpc-status");
            if code.as_deref() != Some("0") {
                let message = grpc_field(trailers.as_ref(), &headers, "grpc-message").unwrap_or_default();
                return Err(Failure::refused(format!(
                    "grpc-status {}: {message}",
                    code.as_deref().unwrap_or("missing")
                )));
            }
            let message = grpc_message(&bytes).map_err(Failure::refused)?;
            rejected_items(plan.signal, message).map_err(Failure::refused)
        }
    }
}

fn grpc_field(trailers: Option<&HeaderMap>, headers: &HeaderMap, name: &str) -> Option<String> {
    trailers
        .and_then(|t| t.get(name))
        .or_else(|| headers.get(name))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The message of a unary gRPC response body (one uncompressed length-prefixed frame).
fn grpc_message(body: &[u8]) -> Result<&[u8], String> {
    let (prefix, rest) = body.split_at_checked(5).ok_or("gRPC response shorter than its 5-byte prefix")?;
    if prefix[0] != 0 {
        return Err("compressed gRPC response (not requested)".to_owned());
    }
    let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    rest.get(..len).ok_or_else(|| format!("gRPC frame says {len} bytes, body has {}", rest.len()))
}

/// `partial_success.rejected_spans` / `rejected_log_records` of an export response (0 if absent).
fn rejected_items(signal: Signal, message: &[u8]) -> Result<u64, String> {
    let rejected = match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(message)
            .map_err(|e| format!("decoding ExportTraceServiceResponse: {e}"))?
            .partial_success
            .map_or(0, |p| p.rejected_spans),
        Signal::Logs => ExportLogsServiceResponse::decode(message)
            .map_err(|e| format!("decoding ExportLogsServiceResponse: {e}"))?
            .partial_success
            .map_or(0, |p| p.rejected_log_records),
    };
    Ok(u64::try_from(rejected).unwrap_or(0))
}

impl Report {
    fn print(&mut self, args: &Args, batch: usize) {
        let s = &mut self.stats;
        s.latencies_us.sort_unstable();
        let secs = self.elapsed.as_secs_f64().max(f64::EPSILON);
        let rate = s.items_accepted as f64 / secs;
        let (p50, p99) =
            (vigil_benches::percentile_ms(&s.latencies_us, 50.0), vigil_benches::percentile_ms(&s.latencies_us, 99.0));
        let max = vigil_benches::percentile_ms(&s.latencies_us, 100.0);
        let signal = match args.signal {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        };
        let transport = match args.transport {
            Transport::Http => "http",
            Transport::Grpc => "grpc",
        };
        let requests = s.requests_ok + s.errors;
        if args.json {
            let report = serde_json::json!({
                "signal": signal,
                "transport": transport,
                "endpoint": args.endpoint,
                "batch": batch,
                "concurrency": args.concurrency,
                "pool": args.pool,
                "duration_s": args.duration,
                "elapsed_s": secs,
                "avg_body_bytes": self.avg_body_bytes,
                "requests": requests,
                "requests_ok": s.requests_ok,
                "items_sent": s.items_sent,
                "items_accepted": s.items_accepted,
                "items_rejected": s.items_rejected,
                "errors": s.errors,
                "items_per_s": rate,
                "latency_p50_ms": p50,
                "latency_p99_ms": p99,
                "latency_max_ms": max,
                "last_error": s.last_error,
            });
            println!("{report}");
            return;
        }
        let unit = if args.signal == Signal::Traces { "spans" } else { "log records" };
        println!("target             {transport} {signal}, {}", args.endpoint.as_deref().unwrap_or("(default)"));
        println!(
            "load               {batch} {unit} per request (avg {} bytes), concurrency {}, duration {} s",
            self.avg_body_bytes, args.concurrency, args.duration
        );
        println!("elapsed            {secs:.2} s");
        println!("requests           {requests} ({} ok)", s.requests_ok);
        println!("{:<19}{} sent, {} accepted, {} rejected", unit, s.items_sent, s.items_accepted, s.items_rejected);
        println!("errors             {}", s.errors);
        println!("accepted {unit}/s {rate:.0}");
        println!("latency p50        {p50:.2} ms");
        println!("latency p99        {p99:.2} ms");
        println!("latency max        {max:.2} ms");
        if let Some(e) = &s.last_error {
            println!("last error         {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use super::*;

    #[test]
    fn only_loopback_endpoints_are_accepted() {
        for ok in ["http://127.0.0.1:4318", "127.0.0.1:4317", "localhost:4317", "http://[::1]:9/", "[::1]:4317"] {
            assert!(loopback_base(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:4318",
            "example.com:4317",
            "http://127.0.0.2:4318",
            "https://127.0.0.1:4318",
            "http://localhost.example.com/",
            "http://127.0.0.1:4318/v1/traces",
        ] {
            assert!(loopback_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn traces_have_unique_valid_ids_and_small_trees() {
        let mut ids = HashSet::new();
        let mut traces = HashSet::new();
        for i in 0..4 {
            let r = traces_request(i, 512, 1_700_000_000_000_000_000);
            let spans: Vec<&Span> =
                r.resource_spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans).collect();
            assert_eq!(spans.len(), 512);
            assert_eq!(r.resource_spans.len(), SERVICES_PER_REQUEST);
            let own: HashSet<&[u8]> = spans.iter().map(|s| s.span_id.as_slice()).collect();
            for s in &spans {
                assert_eq!((s.trace_id.len(), s.span_id.len()), (16, 8));
                assert!((5..=10).contains(&s.attributes.len()));
                assert!(s.parent_span_id.is_empty() || own.contains(s.parent_span_id.as_slice()));
                assert!(s.end_time_unix_nano > s.start_time_unix_nano);
                assert!(ids.insert(s.span_id.clone()), "span ids are unique across pool entries");
                traces.insert(s.trace_id.clone());
            }
        }
        assert!(traces.len() > 4 * 512 / 9, "{} traces", traces.len());
    }

    #[test]
    fn logs_have_bodies_of_60_to_200_bytes_and_ids_on_half() {
        let r = logs_request(3, 1000, 1_700_000_000_000_000_000);
        let records: Vec<&LogRecord> =
            r.resource_logs.iter().flat_map(|rl| &rl.scope_logs).flat_map(|sl| &sl.log_records).collect();
        assert_eq!(records.len(), 1000);
        let traced = records.iter().filter(|l| l.trace_id.len() == 16 && l.span_id.len() == 8).count();
        assert!((499..=501).contains(&traced), "{traced}");
        for l in records {
            let Some(any_value::Value::StringValue(body)) = l.body.as_ref().and_then(|b| b.value.as_ref()) else {
                panic!("body is a string")
            };
            assert!((60..=200).contains(&body.len()), "{}", body.len());
            assert!((3..=6).contains(&l.attributes.len()));
            assert!(!l.severity_text.is_empty() && l.severity_number > 0);
        }
    }

    #[test]
    fn grpc_frames_round_trip() {
        let framed = grpc_frame(b"hello").unwrap();
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 5]);
        assert_eq!(grpc_message(&framed).unwrap(), b"hello");
        assert!(grpc_message(&framed[..7]).is_err());
    }
}

//! `loadgen`: a Prometheus remote write 1.0 load generator for loopback benchmarks.
//!
//! It behaves like a Prometheus server with `--series` active series: once per `--interval` it sends one
//! sample of every series, split into requests of `--series-per-request`, spread evenly over the interval
//! and sent over `--concurrency` keep-alive connections. Requests answered 429 or 5xx are retried as
//! Prometheus does (after `Retry-After`, else with exponential backoff). It stops by itself after
//! `--duration` seconds or `--max-requests` requests, and only ever sends to a loopback address.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use vigil_benches::{EncodedSeries, compress, encode_request, series};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Longest a single HTTP attempt may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Prometheus' default `max_backoff` is 5 s; longer waits would hide throughput problems in a short run.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(about = "Prometheus remote write 1.0 load generator (loopback targets only)")]
struct Args {
    /// Remote write endpoint. Its host must be 127.0.0.1, localhost or [::1].
    #[arg(long, default_value = "http://127.0.0.1:4318/api/v1/write")]
    url: String,
    /// Active series; each gets one sample per interval.
    #[arg(long, default_value_t = 100_000)]
    series: usize,
    /// Series (hence samples) per request.
    #[arg(long, default_value_t = 2000)]
    series_per_request: usize,
    /// Requests in flight at once (one keep-alive connection each).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long to send, in seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Seconds between two samples of one series (the scrape interval). 0 sends as fast as the target
    /// accepts, to find its ceiling.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Stop after this many requests, even if the duration has not passed.
    #[arg(long)]
    max_requests: Option<u64>,
    /// Runtime worker threads. One is plenty at 100k samples/s and leaves the CPU to the target.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Write the snappy-compressed body of the first request (at a fixed timestamp, so the file is
    /// reproducible) to FILE and exit without sending anything.
    #[arg(long, value_name = "FILE")]
    dump_payload: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<ExitCode, BoxError> {
    if args.series == 0 || args.series_per_request == 0 || args.concurrency == 0 || args.threads == 0 {
        return Err("--series, --series-per-request, --concurrency and --threads must be > 0".into());
    }
    if !args.duration.is_finite() || args.duration <= 0.0 || !args.interval.is_finite() || args.interval < 0.0 {
        return Err("--duration must be > 0 and --interval >= 0".into());
    }
    let per_request = args.series_per_request.min(args.series);
    let labels = series::generate(args.series);
    let encoded: Arc<[EncodedSeries]> = labels.into_iter().map(EncodedSeries::new).collect();

    if let Some(path) = &args.dump_payload {
        return dump_payload(path, &encoded[..per_request]).map(|()| ExitCode::SUCCESS);
    }

    let uri = loopback_uri(&args.url)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()?;
    let mut report = runtime.block_on(drive(&args, uri, encoded, per_request))?;
    report.print(&args, per_request);
    // A run in which nothing was accepted is a failed run, whatever the reason; scripts must notice.
    Ok(if report.stats.requests_ok == 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Parses the URL and refuses anything but plain HTTP to a loopback host: this tool is a load generator,
/// and load is only ever sent to a server on this machine.
fn loopback_uri(url: &str) -> Result<Uri, BoxError> {
    let uri: Uri = url.parse().map_err(|e| format!("--url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--url {url:?}: only http:// is supported").into());
    }
    match uri.host() {
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1") => Ok(uri),
        other => Err(format!(
            "--url {url:?}: host {:?} is not loopback; loadgen only sends to 127.0.0.1, localhost or [::1]",
            other.unwrap_or("")
        )
        .into()),
    }
}

fn dump_payload(path: &PathBuf, series: &[EncodedSeries]) -> Result<(), BoxError> {
    // Fixed timestamp (2023-11-14T22:13:20Z): regenerating the file gives identical bytes.
    const TIMESTAMP_MS: i64 = 1_700_000_000_000;
    let mut body = Vec::new();
    encode_request(&mut body, series, TIMESTAMP_MS, |i| series::sample_value(i, 0));
    let compressed = compress(&mut snap::raw::Encoder::new(), &body)?;
    std::fs::write(path, &compressed).map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!(
        "loadgen: wrote {} ({} series, {} bytes uncompressed, {} bytes snappy)",
        path.display(),
        series.len(),
        body.len(),
        compressed.len()
    );
    Ok(())
}

/// What one worker saw; the workers' stats are added up at the end.
#[derive(Debug, Default)]
struct Stats {
    requests_ok: u64,
    samples_accepted: u64,
    retries: u64,
    /// Requests that ended without a 2xx: refused (4xx), transport failures, timeouts, and retries cut
    /// short by the end of the run.
    errors: u64,
    /// Of `errors`, requests still being retried when the run ended.
    abandoned: u64,
    /// Round-trip time of every HTTP attempt that got a response, in microseconds.
    latencies_us: Vec<u64>,
    last_error: Option<String>,
    /// How far behind its schedule the worker's last request went out (0 when it kept up).
    lag: Duration,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.requests_ok += other.requests_ok;
        self.samples_accepted += other.samples_accepted;
        self.retries += other.retries;
        self.errors += other.errors;
        self.abandoned += other.abandoned;
        self.latencies_us.extend(other.latencies_us);
        if other.last_error.is_some() {
            self.last_error = other.last_error;
        }
        self.lag = self.lag.max(other.lag);
    }
}

#[derive(Debug)]
struct Report {
    stats: Stats,
    elapsed: Duration,
}

/// Everything the workers share.
struct Plan {
    uri: Uri,
    client: HttpClient,
    series: Arc<[EncodedSeries]>,
    per_request: usize,
    /// Requests per pass over all series.
    batches: u64,
    /// Time between two consecutive requests' scheduled starts; zero when unpaced.
    spacing: Duration,
    start: Instant,
    deadline: Instant,
    max_requests: u64,
    next: AtomicU64,
}

async fn drive(args: &Args, uri: Uri, series: Arc<[EncodedSeries]>, per_request: usize) -> Result<Report, BoxError> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.concurrency)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector);
    let batches = series.len().div_ceil(per_request) as u64;
    let spacing = Duration::try_from_secs_f64(args.interval / batches as f64)?;
    let duration = Duration::try_from_secs_f64(args.duration)?;
    let start = Instant::now();
    let deadline = start.checked_add(duration).ok_or("--duration is too large")?;
    let plan = Arc::new(Plan {
        uri,
        client,
        series,
        per_request,
        batches,
        spacing,
        start,
        deadline,
        max_requests: args.max_requests.unwrap_or(u64::MAX),
        next: AtomicU64::new(0),
    });
    let workers: Vec<_> = (0..args.concurrency).map(|_| tokio::spawn(worker(Arc::clone(&plan)))).collect();
    let mut stats = Stats::default();
    for w in workers {
        stats.merge(w.await?);
    }
    Ok(Report { stats, elapsed: start.elapsed() })
}

async fn worker(plan: Arc<Plan>) -> Stats {
    let mut stats = Stats::default();
    let mut encoder = snap::raw::Encoder::new();
    let mut body = Vec::new();
    loop {
        let k = plan.next.fetch_add(1, Ordering::Relaxed);
        if k >= plan.max_requests {
            break;
        }
        // Request k goes out at its slot in the schedule, like scrapes spread over the interval; a worker
        // that has fallen behind sends at once.
        let due = plan.start + plan.spacing.saturating_mul(u32::try_from(k).unwrap_or(u32::MAX));
        if due >= plan.deadline {
            // Idle out the rest of the run, so a paced run's rate is taken over the whole --duration.
            tokio::time::sleep_until(plan.deadline.into()).await;
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let now = Instant::now();
        if now >= plan.deadline {
            break;
        }
        stats.lag = now.saturating_duration_since(due);

        let (batch, round) = (k % plan.batches, k / plan.batches);
        let first = batch as usize * plan.per_request;
        let slice = &plan.series[first..(first + plan.per_request).min(plan.series.len())];
        body.clear();
        encode_request(&mut body, slice, now_ms(), |i| series::sample_value(first + i, round));
        let compressed = match compress(&mut encoder, &body) {
            Ok(c) => Bytes::from(c),
            Err(e) => {
                stats.errors += 1;
                stats.last_error = Some(format!("snappy: {e}"));
                continue;
            }
        };
        send(&plan, compressed, slice.len() as u64, &mut stats).await;
    }
    stats
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Sends one request, retrying it on 429/5xx until it is accepted, refused, or the run ends.
async fn send(plan: &Plan, body: Bytes, samples: u64, stats: &mut Stats) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let started = Instant::now();
        let wait = match attempt(plan, body.clone()).await {
            Ok((status, retry_after, text)) => {
                stats.latencies_us.push(started.elapsed().as_micros() as u64);
                if status.is_success() {
                    stats.requests_ok += 1;
                    stats.samples_accepted += samples;
                    return;
                }
                if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
                    // Prometheus drops a batch refused with any other status; so do we.
                    stats.errors += 1;
                    stats.last_error = Some(format!("HTTP {status}: {}", text.trim()));
                    return;
                }
                stats.last_error = Some(format!("HTTP {status} (retried): {}", text.trim()));
                retry_after.unwrap_or(backoff)
            }
            Err(e) => {
                // Transport failures are not retried (the target is likely gone), but a short pause keeps
                // a dead target from turning this into a busy loop.
                stats.errors += 1;
                stats.last_error = Some(e);
                let pause = backoff.min(plan.deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(pause).await;
                return;
            }
        };
        if Instant::now() + wait >= plan.deadline {
            stats.errors += 1;
            stats.abandoned += 1;
            return;
        }
        stats.retries += 1;
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One HTTP round trip: status, `Retry-After` (seconds form) and the start of the response body.
async fn attempt(plan: &Plan, body: Bytes) -> Result<(StatusCode, Option<Duration>, String), String> {
    let request = Request::post(plan.uri.clone())
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header(header::CONTENT_ENCODING, "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header(header::USER_AGENT, "vigil-loadgen")
        .body(Full::new(body))
        .map_err(|e| format!("building request: {e}"))?;
    let round_trip = async {
        let response = plan.client.request(request).await.map_err(|e| format!("request: {e:?}"))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_BACKOFF * 6));
        // Reading the body to the end lets the connection go back to the pool for the next request.
        let bytes = response.into_body().collect().await.map_err(|e| format!("reading response: {e}"))?.to_bytes();
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        Ok((status, retry_after, text))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, round_trip)
        .await
        .map_err(|_| format!("timed out after {REQUEST_TIMEOUT:?}"))?
}

impl Report {
    fn print(&mut self, args: &Args, per_request: usize) {
        let s = &mut self.stats;
        s.latencies_us.sort_unstable();
        let secs = self.elapsed.as_secs_f64().max(f64::EPSILON);
        let rate = s.samples_accepted as f64 / secs;
        let offered = if args.interval > 0.0 { args.series as f64 / args.interval } else { f64::INFINITY };
        let (p50, p99) =
            (vigil_benches::percentile_ms(&s.latencies_us, 50.0), vigil_benches::percentile_ms(&s.latencies_us, 99.0));
        let max = vigil_benches::percentile_ms(&s.latencies_us, 100.0);
        if args.json {
            let report = serde_json::json!({
                "url": args.url,
                "series": args.series,
                "series_per_request": per_request,
                "concurrency": args.concurrency,
                "interval_s": args.interval,
                "duration_s": args.duration,
                "elapsed_s": secs,
                "requests_ok": s.requests_ok,
                "samples_accepted": s.samples_accepted,
                "retries": s.retries,
                "errors": s.errors,
                "abandoned": s.abandoned,
                "accepted_samples_per_s": rate,
                // JSON has no infinity; null means unpaced.
                "offered_samples_per_s": offered.is_finite().then_some(offered),
                "latency_p50_ms": p50,
                "latency_p99_ms": p99,
                "latency_max_ms": max,
                "schedule_lag_s": s.lag.as_secs_f64(),
                "last_error": s.last_error,
            });
            println!("{report}");
            return;
        }
        println!("target             {}", args.url);
        println!(
            "load               {} series, {} per request, concurrency {}, interval {} s, duration {} s",
            args.series, per_request, args.concurrency, args.interval, args.duration
        );
        println!("elapsed            {secs:.2} s");
        println!("requests ok        {}", s.requests_ok);
        println!("samples accepted   {}", s.samples_accepted);
        println!("retries            {}", s.retries);
        println!("errors             {} ({} abandoned at the end of the run)", s.errors, s.abandoned);
        if offered.is_finite() {
            println!("accepted samples/s {rate:.0} (offered {offered:.0})");
        } else {
            println!("accepted samples/s {rate:.0} (unpaced)");
        }
        println!("latency p50        {p50:.2} ms");
        println!("latency p99        {p99:.2} ms");
        println!("latency max        {max:.2} ms");
        println!("schedule lag       {:.3} s", s.lag.as_secs_f64());
        if let Some(e) = &s.last_error {
            println!("last error         {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        for ok in ["http://127.0.0.1:4318/api/v1/write", "http://localhost/api/v1/write", "http://[::1]:9/x"] {
            assert!(loopback_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:4318/api/v1/write",
            "http://example.com/api/v1/write",
            "http://127.0.0.2/api/v1/write",
            "https://127.0.0.1/api/v1/write",
            "http://localhost.example.com/",
            "/api/v1/write",
        ] {
            assert!(loopback_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(vigil_benches::percentile_ms(&v, 50.0), 50.0);
        assert_eq!(vigil_benches::percentile_ms(&v, 99.0), 99.0);
        assert_eq!(vigil_benches::percentile_ms(&v, 100.0), 100.0);
        assert_eq!(vigil_benches::percentile_ms(&[], 99.0), 0.0);
    }
}

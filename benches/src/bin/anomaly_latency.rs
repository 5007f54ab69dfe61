//! `anomaly_latency`: how soon after a sample arrives is its anomaly listed by `GET /api/v1/anomalies`?
//!
//! For each repetition it remote-writes the history of a fresh series (`--history` samples of noise,
//! `--step-ms` apart, ending one step before now), waits until Vigil has scored that history
//! (`vigil_detect_samples_scored_total` on `/metrics`), then sends one spike sample (timestamp now) and polls
//! `GET /api/v1/anomalies?match[]=<that series>` every `--poll-ms` until an anomaly at the spike's timestamp
//! is listed (anomalies the detector found in the noise before it are told apart by their timestamps).
//! Per repetition it records the time from sending the spike to its 2xx answer (the write is durable
//! then), and from that answer to the first response that lists the spike (taken when that response has
//! been read: an upper bound). Reports p50/p95/max over the repetitions; one JSON object with `--json`.
//! Only loopback targets.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use vigil_benches::percentile_ms;
use vigil_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

const METRIC: &str = "vigil_bench_latency_seconds";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(about = "Delay from a spike's remote-write acknowledgement to its listing by /api/v1/anomalies")]
struct Args {
    /// Vigil's HTTP address. Its host must be 127.0.0.1, localhost or [::1].
    #[arg(long, default_value = "http://127.0.0.1:4318")]
    url: String,
    /// Spikes to time, each on a fresh series.
    #[arg(long, default_value_t = 20)]
    repetitions: usize,
    /// Samples of history before each spike (the series must be past `detect.defaults.min_history`).
    #[arg(long, default_value_t = 300)]
    history: usize,
    /// Interval between two samples of a series.
    #[arg(long, default_value_t = 15_000)]
    step_ms: i64,
    /// `detect.defaults.min_history` of the server: history samples scored = history − min_history.
    #[arg(long, default_value_t = 30)]
    min_history: usize,
    /// Pause between two polls of the anomaly API.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Longest wait, per repetition, for the history to be scored and for the spike to be listed.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// `X-Scope-OrgID` of every request (default: none, Vigil's default tenant).
    #[arg(long)]
    tenant: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let run = || -> Result<(), BoxError> {
        let base = loopback_base(&args.url)?;
        if args.repetitions == 0 || args.history <= args.min_history || args.step_ms <= 0 {
            return Err("--repetitions must be > 0, --history > --min-history and --step-ms > 0".into());
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(drive(&args, &base))
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("anomaly_latency: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `http://host:port` with a loopback host, without a trailing slash.
fn loopback_base(url: &str) -> Result<String, BoxError> {
    let uri: Uri = url.parse().map_err(|e| format!("--url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--url {url:?}: only http:// is supported").into());
    }
    match uri.host() {
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1") => Ok(url.trim_end_matches('/').to_owned()),
        other => Err(format!("--url {url:?}: host {:?} is not loopback", other.unwrap_or("")).into()),
    }
}

struct Vigil<'a> {
    client: HttpClient,
    base: &'a str,
    tenant: Option<&'a str>,
}

impl Vigil<'_> {
    async fn call(&self, request: http::request::Builder, body: Bytes) -> Result<(StatusCode, Bytes), BoxError> {
        let request = match self.tenant {
            Some(t) => request.header("X-Scope-OrgID", t),
            None => request,
        };
        let request = request.body(Full::new(body))?;
        let round_trip = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>((status, bytes))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, round_trip).await.map_err(|_| "request timed out")?
    }

    async fn write(&self, series: &[(&str, &str)], samples: &[(i64, f64)]) -> Result<(), BoxError> {
        let labels = series.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect();
        let samples = samples.iter().map(|&(timestamp, value)| Sample { value, timestamp }).collect();
        let request = WriteRequest {
            timeseries: vec![TimeSeries { labels, samples, ..Default::default() }],
            metadata: Vec::new(),
        };
        let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec())?;
        let request = Request::post(format!("{}/api/v1/write", self.base))
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .header(header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0");
        let (status, answer) = self.call(request, Bytes::from(body)).await?;
        if !status.is_success() {
            return Err(format!("remote write answered {status}: {}", String::from_utf8_lossy(&answer)).into());
        }
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Bytes, BoxError> {
        let (status, body) = self.call(Request::get(format!("{}{path}", self.base)), Bytes::new()).await?;
        if status != StatusCode::OK {
            return Err(format!("GET {path} answered {status}: {}", String::from_utf8_lossy(&body)).into());
        }
        Ok(body)
    }

    /// `vigil_detect_samples_scored_total` (0 before anything was scored).
    async fn scored(&self) -> Result<u64, BoxError> {
        let text = self.get("/metrics").await?;
        let text = String::from_utf8_lossy(&text);
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("vigil_detect_samples_scored_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64))
    }

    /// The listed anomalies of `selector`: (timestamp, score) of each.
    async fn anomalies(&self, selector: &str) -> Result<Vec<(String, f64)>, BoxError> {
        let body = self.get(&format!("/api/v1/anomalies?match[]={}", urlencode(selector))).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let data = v["data"].as_array().ok_or_else(|| format!("no data array in {v}"))?;
        Ok(data
            .iter()
            .map(|a| (a["timestamp"].as_str().unwrap_or_default().to_owned(), a["score"].as_f64().unwrap_or(0.0)))
            .collect())
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The `.mmm` and `Z` ending of the RFC 3339 timestamp the API gives `ms` (the date part is not checked).
fn rfc3339_tail(ms: i64) -> String {
    let rest = ms.rem_euclid(86_400_000);
    format!("{:02}:{:02}:{:02}.{:03}Z", rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000)
}

struct Timing {
    ack_us: u64,
    listed_us: u64,
    polls: u32,
    /// Round trip of the query that listed the spike: the spike became listed at most this long before
    /// `listed_us`.
    last_query_us: u64,
    score: f64,
}

async fn drive(args: &Args, base: &str) -> Result<(), BoxError> {
    let vigil = Vigil {
        client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        base,
        tenant: args.tenant.as_deref(),
    };
    let run = now_ms();
    let mut timings = Vec::with_capacity(args.repetitions);
    // Round trip of every anomaly query after a spike.
    let mut queries_us = Vec::new();
    for rep in 0..args.repetitions {
        let rep_label = format!("{run}-{rep}");
        let series = [("__name__", METRIC), ("job", "anomaly_latency"), ("rep", rep_label.as_str())];
        let selector = format!("{METRIC}{{rep=\"{rep_label}\"}}");
        let deadline = || Instant::now() + Duration::from_secs(args.timeout_secs);

        // History: noise around 0.1, ending one step before now; the spike will be at now.
        let spike_ms = now_ms() / 1000 * 1000;
        let first = spike_ms - args.history as i64 * args.step_ms;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ rep as u64;
        let history: Vec<(i64, f64)> = (0..args.history as i64)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (first + i * args.step_ms, 0.1 + (x % 1000) as f64 / 100_000.0)
            })
            .collect();
        let scored_before = vigil.scored().await?;
        for chunk in history.chunks(1000) {
            vigil.write(&series, chunk).await?;
        }
        let want = scored_before + (args.history - args.min_history) as u64;
        let until = deadline();
        while vigil.scored().await? < want {
            if Instant::now() > until {
                return Err(format!(
                    "repetition {rep}: the history was not scored within {} s (vigil_detect_samples_scored_total \
                     below {want}; is --min-history right?)",
                    args.timeout_secs
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tail = rfc3339_tail(spike_ms);
        let listed = vigil.anomalies(&selector).await?;
        if listed.iter().any(|(t, _)| t.ends_with(&tail)) {
            return Err(format!("repetition {rep}: the spike is listed before it was sent: {listed:?}").into());
        }
        if !listed.is_empty() && !args.json {
            // The detector's false positives on the noise; the spike is told apart by its timestamp.
            eprintln!("repetition {rep}: {} anomalies in the history before the spike: {listed:?}", listed.len());
        }

        let sent = Instant::now();
        vigil.write(&series, &[(spike_ms, 5.0)]).await?;
        let acked = Instant::now();
        let until = deadline();
        let mut polls = 0;
        let (listed_at, last_query, score) = loop {
            polls += 1;
            let asked = Instant::now();
            let listed = vigil.anomalies(&selector).await?;
            let answered = Instant::now();
            queries_us.push((answered - asked).as_micros() as u64);
            if let Some((_, score)) = listed.iter().find(|(t, _)| t.ends_with(&tail)) {
                break (answered, answered - asked, *score);
            }
            if Instant::now() > until {
                return Err(format!(
                    "repetition {rep}: the spike was not listed within {} s (listed: {listed:?})",
                    args.timeout_secs
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
        };
        let t = Timing {
            ack_us: (acked - sent).as_micros() as u64,
            listed_us: (listed_at - acked).as_micros() as u64,
            polls,
            last_query_us: last_query.as_micros() as u64,
            score,
        };
        if !args.json {
            eprintln!(
                "repetition {rep}: ack {:.1} ms, listed {:.1} ms after the ack ({} polls, the last one {:.1} ms), \
                 score {:.1}",
                t.ack_us as f64 / 1000.0,
                t.listed_us as f64 / 1000.0,
                t.polls,
                t.last_query_us as f64 / 1000.0,
                t.score
            );
        }
        timings.push(t);
    }
    queries_us.sort_unstable();
    report(args, &timings, &queries_us);
    Ok(())
}

fn report(args: &Args, timings: &[Timing], queries: &[u64]) {
    let sorted = |f: fn(&Timing) -> u64| {
        let mut v: Vec<u64> = timings.iter().map(f).collect();
        v.sort_unstable();
        v
    };
    let ack = sorted(|t| t.ack_us);
    let listed = sorted(|t| t.listed_us);
    let total = sorted(|t| t.ack_us + t.listed_us);
    let max = |v: &[u64]| v.last().copied().unwrap_or(0) as f64 / 1000.0;
    let min_score = timings.iter().map(|t| t.score).fold(f64::INFINITY, f64::min);
    if args.json {
        let report = serde_json::json!({
            "repetitions": timings.len(),
            "listed_after_ack_p50_ms": percentile_ms(&listed, 50.0),
            "listed_after_ack_p95_ms": percentile_ms(&listed, 95.0),
            "listed_after_ack_max_ms": max(&listed),
            "ack_p50_ms": percentile_ms(&ack, 50.0),
            "ack_p95_ms": percentile_ms(&ack, 95.0),
            "ack_max_ms": max(&ack),
            "listed_after_send_p50_ms": percentile_ms(&total, 50.0),
            "listed_after_send_p95_ms": percentile_ms(&total, 95.0),
            "listed_after_send_max_ms": max(&total),
            "query_p50_ms": percentile_ms(queries, 50.0),
            "query_p95_ms": percentile_ms(queries, 95.0),
            "query_max_ms": max(queries),
            "queries": queries.len(),
            "min_score": min_score,
            "history": args.history,
            "step_ms": args.step_ms,
            "poll_ms": args.poll_ms,
        });
        println!("{report}");
    } else {
        let line = |name: &str, v: &[u64]| {
            println!(
                "{name:<28} p50 {:>8.1} ms   p95 {:>8.1} ms   max {:>8.1} ms",
                percentile_ms(v, 50.0),
                percentile_ms(v, 95.0),
                max(v)
            );
        };
        println!("{} spikes, each on a fresh series after {} samples of history:", timings.len(), args.history);
        line("2xx ack after send", &ack);
        line("listed after the 2xx ack", &listed);
        line("listed after send", &total);
        line("anomaly query round trip", queries);
        println!("({} anomaly queries after the spikes; a spike is listed at most one round trip", queries.len());
        println!("before the answer that lists it is read, which is when \"listed\" is taken)");
        println!("lowest listed score: {min_score:.2}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(loopback_base("http://127.0.0.1:4318/").is_ok());
        assert!(loopback_base("http://example.com:4318").is_err());
        assert!(loopback_base("https://127.0.0.1:4318").is_err());
    }

    #[test]
    fn selectors_are_percent_encoded() {
        assert_eq!(urlencode(r#"m{rep="1-2"}"#), "m%7Brep%3D%221-2%22%7D");
        assert_eq!(rfc3339_tail(1_700_000_000_123), "22:13:20.123Z");
    }
}

//! Remote-write load with a record of what was acknowledged, and checks of what VictoriaMetrics holds.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use vigil_proto::prometheus as v1;

use super::VictoriaMetrics;

pub const HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

/// A sample a client sent: (series number, timestamp ms, value).
pub type Sent = (u32, i64, f64);

/// One request: `series` series of `metric`, one sample each at `ts`.
pub fn write_request(metric: &str, series: u32, ts: i64, value: f64) -> (Bytes, Vec<Sent>) {
    let timeseries = (0..series)
        .map(|i| v1::TimeSeries {
            labels: vec![
                v1::Label { name: "__name__".into(), value: metric.into() },
                v1::Label { name: "series".into(), value: format!("{i:04}") },
            ],
            samples: vec![v1::Sample { value: value + f64::from(i), timestamp: ts }],
            ..Default::default()
        })
        .collect();
    let raw = v1::WriteRequest { timeseries, metadata: vec![] }.encode_to_vec();
    let sent = (0..series).map(|i| (i, ts, value + f64::from(i))).collect();
    (Bytes::from(snap::raw::Encoder::new().compress_vec(&raw).unwrap()), sent)
}

/// What VictoriaMetrics holds of `metric`, as (series number, timestamp, value).
pub async fn held(vm: &VictoriaMetrics, metric: &str) -> BTreeSet<(u32, i64, u64)> {
    vm.export(&format!("{{__name__=\"{metric}\"}}"))
        .await
        .into_iter()
        .flat_map(|(labels, samples)| {
            let n: u32 = labels["series"].parse().unwrap();
            samples.into_iter().map(move |(t, v)| (n, t, v.to_bits()))
        })
        .collect()
}

pub fn key(s: &Sent) -> (u32, i64, u64) {
    (s.0, s.1, s.2.to_bits())
}

/// Small xorshift: the kill moments vary per run; the seed is printed so a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Polls `f` until it returns an empty list or `timeout`; returns the last list.
pub async fn wait_for_result<T, F, Fut>(timeout: Duration, mut f: F) -> Vec<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = f().await;
        if last.is_empty() || Instant::now() >= deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sends `requests` requests of 50 series to `url` and returns what was acknowledged, plus the first
/// refusal (status, Retry-After, body), if any.
pub async fn send(
    url: &str,
    metric: &str,
    first_ts: i64,
    requests: i64,
) -> (Vec<Sent>, Option<(u16, Option<String>, String)>) {
    let mut acked = Vec::new();
    for n in 0..requests {
        let (body, sent) = write_request(metric, 50, first_ts + n, n as f64);
        let r = super::request("POST", url, &HEADERS, body).await.expect("post");
        if r.status == 204 {
            acked.extend(sent);
        } else {
            let retry = r.headers.get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            return (acked, Some((r.status, retry, r.text())));
        }
    }
    (acked, None)
}

/// Every raw sample VictoriaMetrics holds of `metric`, duplicates included, sorted.
pub async fn held_all(vm: &VictoriaMetrics, metric: &str) -> Vec<(u32, i64, u64)> {
    let mut out: Vec<_> = vm
        .export(&format!("{{__name__=\"{metric}\"}}"))
        .await
        .into_iter()
        .flat_map(|(labels, samples)| {
            let n: u32 = labels["series"].parse().unwrap();
            samples.into_iter().map(move |(t, v)| (n, t, v.to_bits()))
        })
        .collect();
    out.sort_unstable();
    out
}

/// Clients writing remote-write requests of 50 series in a loop, each request with its own timestamp,
/// recording every acknowledged sample. A client stops at [`Load::stop`], or when Vigil's connection dies.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<u64>>,
    pub acked: std::sync::Arc<parking_lot::Mutex<Vec<Sent>>>,
}

impl Load {
    /// `clients` clients send to `url`, pausing `pause` between requests; client `c`'s `n`th request has
    /// timestamp `first_ts + c * 1_000_000 + n` (so every acknowledged sample is distinct).
    pub fn start(url: &str, metric: &'static str, clients: u32, first_ts: i64, pause: Duration) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acked: std::sync::Arc<parking_lot::Mutex<Vec<Sent>>> = Default::default();
        let clients = (0..clients)
            .map(|c| {
                let (url, stop, acked) = (url.to_owned(), stop.clone(), acked.clone());
                tokio::spawn(async move {
                    let mut refused = 0u64;
                    for n in 0..1_000_000i64 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let ts = first_ts + i64::from(c) * 1_000_000 + n;
                        let (body, sent) = write_request(metric, 50, ts, (ts % 1000) as f64);
                        match super::request("POST", &url, &HEADERS, body).await {
                            Ok(r) if r.status == 204 => acked.lock().extend(sent),
                            Ok(_) => refused += 1,
                            Err(_) => break,
                        }
                        tokio::time::sleep(pause).await;
                    }
                    refused
                })
            })
            .collect();
        Self { stop, clients, acked }
    }

    /// Stops the clients; returns every acknowledged sample and how many requests were refused.
    pub async fn stop(self) -> (Vec<Sent>, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut refused = 0;
        for c in self.clients {
            refused += c.await.unwrap();
        }
        let acked = self.acked.lock().clone();
        (acked, refused)
    }
}

/// Waits until VictoriaMetrics holds every sample of `acked`; returns those it still lacks at `timeout`.
pub async fn missing_after(
    vm: &VictoriaMetrics,
    metric: &str,
    acked: &[Sent],
    timeout: Duration,
) -> Vec<(u32, i64, u64)> {
    let want: BTreeSet<_> = acked.iter().map(key).collect();
    wait_for_result(timeout, || async {
        let got = held(vm, metric).await;
        want.difference(&got).copied().collect::<Vec<_>>()
    })
    .await
}

//! The VictoriaMetrics forwarder against an in-process remote-write receiver that answers what each test
//! scripts: retries, drops, ordering, and what bytes arrive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use prost::Message;
use vigil_forward::Destination;
use vigil_forward::retry::BackoffConfig;
use vigil_forward::telemetry::ForwardMetrics;
use vigil_forward::victoriametrics::{self, VictoriaMetricsConfig};
use vigil_ingest::wal::{Entry, QueueConfig, Wal};

mod support;
use support::TempDir;
use vigil_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

#[derive(Default)]
struct Receiver {
    /// Status codes to answer with, in order; 204 once empty.
    script: Mutex<VecDeque<(u16, Option<&'static str>)>>,
    /// Every decoded request, including refused ones.
    seen: Mutex<Vec<(u16, WriteRequest, HeaderMap)>>,
    /// The path and query of every request, in order.
    targets: Mutex<Vec<String>>,
}

async fn receive(State(rx): State<Arc<Receiver>>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    rx.targets.lock().push(uri.path_and_query().map(|p| p.to_string()).unwrap_or_default());
    let raw = snap::raw::Decoder::new().decompress_vec(&body).expect("forwarder sends snappy block format");
    let req = WriteRequest::decode(raw.as_slice()).expect("forwarder sends a WriteRequest");
    let (code, retry_after) = rx.script.lock().pop_front().unwrap_or((204, None));
    rx.seen.lock().push((code, req, headers));
    let mut r = (StatusCode::from_u16(code).expect("status"), "scripted").into_response();
    if let Some(after) = retry_after {
        r.headers_mut().insert("retry-after", after.parse().expect("header"));
    }
    r
}

async fn start_receiver(script: Vec<(u16, Option<&'static str>)>) -> (Arc<Receiver>, String) {
    let rx = Arc::new(Receiver { script: Mutex::new(script.into()), ..Default::default() });
    let app = Router::new()
        .route("/api/v1/write", post(receive))
        .route("/insert/{tenant}/prometheus/api/v1/write", post(receive))
        .with_state(Arc::clone(&rx));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (rx, format!("http://{addr}/api/v1/write"))
}

struct Setup {
    wal: Arc<Wal>,
    registry: Registry,
    _dir: TempDir,
}

fn setup_with(url: &str, queue: QueueConfig) -> (Setup, victoriametrics::ForwarderHandle) {
    let mut registry = Registry::default();
    let metrics = ForwardMetrics::new(&mut registry);
    let (wal, dir) = support::wal("metrics", &queue);
    let config = VictoriaMetricsConfig {
        flush_interval: Duration::from_millis(50),
        max_samples_per_request: 10,
        backoff: BackoffConfig { initial: Duration::from_millis(10), max: Duration::from_millis(50) },
        ..VictoriaMetricsConfig::with_url(url)
    };
    let targets = vec![config.target().expect("valid config")];
    let handle =
        victoriametrics::spawn(&config, targets, wal.consumer("vm"), vigil_forward::http::client(), metrics.clone());
    (Setup { wal, registry, _dir: dir }, handle)
}

fn setup(url: &str) -> (Setup, victoriametrics::ForwarderHandle) {
    setup_with(url, QueueConfig::default())
}

fn series(name: &str, job: &str, samples: impl IntoIterator<Item = (i64, f64)>) -> TimeSeries {
    TimeSeries {
        labels: vec![
            Label { name: "__name__".into(), value: name.into() },
            Label { name: "job".into(), value: job.into() },
        ],
        samples: samples.into_iter().map(|(timestamp, value)| Sample { timestamp, value }).collect(),
        ..Default::default()
    }
}

/// Logs one request of `tenant` holding `timeseries`, as a receiver does, and waits until it is durable.
async fn log(s: &Setup, tenant: &str, timeseries: Vec<TimeSeries>) {
    let samples: usize = timeseries.iter().map(|t| t.samples.len()).sum();
    let raw = WriteRequest { timeseries, metadata: vec![] }.encode_to_vec();
    let payload = snap::raw::Encoder::new().compress_vec(&raw).expect("snappy");
    let body = Entry::encode(tenant, [samples as u32, 0, 0], &payload).expect("entry");
    s.wal.append(body).expect("append").durable().await.expect("durable");
}

/// Logs `n` samples of one series (timestamps 1000, 1001, ...).
async fn write(s: &Setup, job: &str, n: i64) {
    log(s, "anonymous", vec![series("m", job, (0..n).map(|t| (1000 + t, t as f64)))]).await;
}

fn metric(s: &Setup, name: &str) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &s.registry).expect("encode");
    out.lines().filter(|l| l.starts_with(name)).collect::<Vec<_>>().join("\n")
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn retries_429_and_5xx_honouring_retry_after_then_delivers_in_order() {
    let (rx, url) = start_receiver(vec![(429, Some("1")), (503, None), (500, None)]).await;
    let (s, _handle) = setup(&url);
    write(&s, "a", 5).await;
    let started = std::time::Instant::now();
    wait_until("delivery", || rx.seen.lock().iter().any(|(c, _, _)| *c == 204)).await;
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was not honoured");
    let seen = rx.seen.lock();
    assert_eq!(seen.iter().map(|(c, _, _)| *c).collect::<Vec<_>>(), vec![429, 503, 500, 204]);
    // Every attempt carried the same request; samples in order.
    for (_, req, headers) in seen.iter() {
        let ts: Vec<i64> = req.timeseries.iter().flat_map(|t| t.samples.iter().map(|s| s.timestamp)).collect();
        assert_eq!(ts, vec![1000, 1001, 1002, 1003, 1004]);
        assert_eq!(headers.get("content-encoding").map(|v| v.as_bytes()), Some(&b"snappy"[..]));
        assert_eq!(headers.get("x-prometheus-remote-write-version").map(|v| v.as_bytes()), Some(&b"0.1.0"[..]));
    }
    assert!(metric(&s, "vigil_forward_samples_total").ends_with(" 5"), "{}", metric(&s, "vigil_forward"));
}

#[tokio::test]
async fn drops_400_409_415_and_moves_on() {
    let (rx, url) = start_receiver(vec![(400, None), (409, None), (415, None)]).await;
    let (s, _handle) = setup(&url);
    // Three separate flushes (each of 10 samples: max_samples_per_request), then one that is taken.
    for job in ["a", "b", "c", "d"] {
        write(&s, job, 10).await;
        let expected = ["a", "b", "c", "d"].iter().position(|j| *j == job).unwrap_or(0) + 1;
        wait_until("a request per batch", || rx.seen.lock().len() >= expected).await;
    }
    let codes: Vec<u16> = rx.seen.lock().iter().map(|(c, _, _)| *c).collect();
    assert_eq!(codes, vec![400, 409, 415, 204], "refused requests must not be retried");
    let dropped = metric(&s, "vigil_forward_dropped_samples_total");
    assert!(dropped.ends_with(" 30"), "{dropped}");
    // Counted once the answer is back, a moment after the receiver saw the request.
    wait_until("the taken request counted", || metric(&s, "vigil_forward_samples_total").ends_with(" 10")).await;
}

#[tokio::test]
async fn splits_by_max_samples_per_request_in_order() {
    let (rx, url) = start_receiver(vec![]).await;
    let (s, _handle) = setup(&url);
    // 35 requests of one sample each: the forwarder joins them into requests of at most 10.
    for t in 0..35 {
        log(&s, "anonymous", vec![series("m", "big", [(1000 + t, t as f64)])]).await;
    }
    wait_until("35 samples delivered", || {
        rx.seen
            .lock()
            .iter()
            .map(|(_, r, _)| r.timeseries.iter().map(|t| t.samples.len()).sum::<usize>())
            .sum::<usize>()
            == 35
    })
    .await;
    let seen = rx.seen.lock();
    assert!(seen.iter().all(|(_, r, _)| r.timeseries.iter().map(|t| t.samples.len()).sum::<usize>() <= 10));
    let ts: Vec<i64> = seen
        .iter()
        .flat_map(|(_, r, _)| r.timeseries.iter().flat_map(|t| t.samples.iter().map(|s| s.timestamp)))
        .collect();
    assert_eq!(ts, (1000..1035).collect::<Vec<_>>(), "one series' samples must arrive in order");
    assert!(seen.iter().all(|(_, r, _)| r.timeseries.iter().all(|t| t.labels[1].value == "big")));
}

#[tokio::test]
async fn a_backend_that_stays_down_fills_its_queue_and_writes_are_refused_not_lost() {
    let (rx, url) = start_receiver((0..10_000).map(|_| (503, None)).collect()).await;
    let (s, _handle) = setup_with(&url, QueueConfig { max_bytes: 16 << 10 });
    let mut logged = 0;
    let refused = loop {
        if let Err(e) = s.wal.admit() {
            break e;
        }
        write(&s, "x", 20).await;
        logged += 1;
        assert!(logged < 10_000, "the queue never filled");
    };
    assert!(refused.to_string().contains("queue.max_bytes"), "{refused}");
    wait_until("the forwarder to keep retrying", || rx.seen.lock().len() >= 3).await;
    assert!(s.wal.admit().is_err(), "still full while the backend is down");
    assert_eq!(s.wal.dropped_bytes(), 0, "nothing undelivered was given up");
    // Every attempt so far was the first request: the position does not move past undelivered data.
    let first: Vec<i64> =
        rx.seen.lock()[0].1.timeseries.iter().flat_map(|t| t.samples.iter().map(|s| s.timestamp)).collect();
    assert!(
        rx.seen.lock().iter().all(|(_, r, _)| r
            .timeseries
            .iter()
            .flat_map(|t| t.samples.iter().map(|s| s.timestamp))
            .collect::<Vec<_>>()
            == first)
    );
}

#[tokio::test]
async fn a_tenant_url_template_sends_each_tenant_to_its_own_url_with_its_header() {
    let (rx, url) = start_receiver(vec![]).await;
    let template = url.replace("/api/v1/write", "/insert/{tenant}/prometheus/api/v1/write");
    let (s, _handle) = setup(&template);
    for (tenant, value) in [("anonymous", 1.0), ("7", 2.0), ("8:1", 3.0), ("7", 4.0)] {
        log(&s, tenant, vec![series("m", "x", [(1000 * value as i64, value)])]).await;
    }
    wait_until("four samples", || {
        rx.seen
            .lock()
            .iter()
            .map(|(_, r, _)| r.timeseries.iter().map(|t| t.samples.len()).sum::<usize>())
            .sum::<usize>()
            == 4
    })
    .await;
    let mut got: Vec<(String, String, Vec<f64>)> = rx
        .seen
        .lock()
        .iter()
        .zip(rx.targets.lock().iter())
        .map(|((_, req, headers), target)| {
            let tenant = headers.get("x-scope-orgid").unwrap().to_str().unwrap().to_owned();
            let values = req.timeseries.iter().flat_map(|t| t.samples.iter().map(|s| s.value)).collect();
            (target.clone(), tenant, values)
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("/insert/7/prometheus/api/v1/write".into(), "7".into(), vec![2.0, 4.0]),
            ("/insert/8:1/prometheus/api/v1/write".into(), "8:1".into(), vec![3.0]),
            ("/insert/anonymous/prometheus/api/v1/write".into(), "anonymous".into(), vec![1.0]),
        ]
    );
}

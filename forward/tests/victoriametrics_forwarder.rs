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
use vigil_forward::retry::BackoffConfig;
use vigil_forward::telemetry::ForwardMetrics;
use vigil_forward::victoriametrics::{self, VictoriaMetricsConfig};
use vigil_ingest::buffer::{BufferConfig, MetricsBuffer, SampleRow};
use vigil_ingest::series::{SeriesRegistry, SeriesRegistryConfig};
use vigil_proto::prometheus::{Label, TimeSeries, WriteRequest};

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
    buffer: Arc<MetricsBuffer>,
    series: Arc<SeriesRegistry>,
    registry: Registry,
}

fn setup(url: &str) -> (Setup, victoriametrics::ForwarderHandle) {
    let mut registry = Registry::default();
    let metrics = ForwardMetrics::new(&mut registry);
    let buffer =
        MetricsBuffer::new(BufferConfig { shards: 2, batch_rows: 16, max_bytes: 64 << 20, ..BufferConfig::default() });
    let series = Arc::new(SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous"));
    let config = VictoriaMetricsConfig {
        flush_interval: Duration::from_millis(50),
        max_samples_per_request: 10,
        backoff: BackoffConfig { initial: Duration::from_millis(10), max: Duration::from_millis(50) },
        ..VictoriaMetricsConfig::with_url(url)
    };
    let uri = config.validate().expect("valid config");
    let handle = victoriametrics::spawn(
        &config,
        uri,
        &buffer,
        Arc::clone(&series),
        vigil_forward::http::client(),
        metrics.clone(),
    );
    (Setup { buffer, series, registry }, handle)
}

fn key(name: &str, job: &str) -> Vec<u8> {
    TimeSeries {
        labels: vec![
            Label { name: "__name__".into(), value: name.into() },
            Label { name: "job".into(), value: job.into() },
        ],
        ..Default::default()
    }
    .encode_to_vec()
}

/// Appends `n` samples of one series and returns its id.
fn write(s: &Setup, job: &str, n: i64) -> vigil_ingest::series::SeriesRef {
    let id = s.series.resolve(s.series.default_tenant(), &key("m", job)).expect("series");
    let mut staged = s.buffer.staged_rows();
    for t in 0..n {
        staged.push_sample(SampleRow { series: id.id, slot: id.slot, timestamp_ms: 1000 + t, value: t as f64 });
    }
    s.buffer.append(&staged).expect("room in the buffer");
    id
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
    write(&s, "a", 5);
    s.buffer.seal_all();
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
        write(&s, job, 10);
        s.buffer.seal_all();
        let expected = ["a", "b", "c", "d"].iter().position(|j| *j == job).unwrap_or(0) + 1;
        wait_until("a request per batch", || rx.seen.lock().len() >= expected).await;
    }
    let codes: Vec<u16> = rx.seen.lock().iter().map(|(c, _, _)| *c).collect();
    assert_eq!(codes, vec![400, 409, 415, 204], "refused requests must not be retried");
    let dropped = metric(&s, "vigil_forward_dropped_samples_total");
    assert!(dropped.ends_with(" 30"), "{dropped}");
    assert!(metric(&s, "vigil_forward_samples_total").ends_with(" 10"));
}

#[tokio::test]
async fn splits_by_max_samples_per_request_and_releases_the_buffer() {
    let (rx, url) = start_receiver(vec![]).await;
    let (s, _handle) = setup(&url);
    write(&s, "big", 35);
    s.buffer.seal_all();
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
async fn a_backend_that_stays_down_fills_the_buffer_instead_of_losing_data() {
    let (rx, url) = start_receiver((0..10_000).map(|_| (503, None)).collect()).await;
    let mut registry = Registry::default();
    let metrics = ForwardMetrics::new(&mut registry);
    let mut config = BufferConfig { shards: 1, batch_rows: 8, ..BufferConfig::default() };
    config.max_bytes = config.min_max_bytes() + 4096;
    config.validate().expect("valid buffer");
    let buffer = MetricsBuffer::new(config);
    let series = Arc::new(SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous"));
    let vm = VictoriaMetricsConfig {
        flush_interval: Duration::from_millis(20),
        backoff: BackoffConfig { initial: Duration::from_millis(5), max: Duration::from_millis(20) },
        ..VictoriaMetricsConfig::with_url(url)
    };
    let _h = victoriametrics::spawn(
        &vm,
        vm.validate().expect("uri"),
        &buffer,
        Arc::clone(&series),
        vigil_forward::http::client(),
        metrics,
    );
    let id = series.resolve(series.default_tenant(), &key("m", "x")).expect("series");
    let mut refused = false;
    for t in 0..2_000 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut staged = buffer.staged_rows();
        staged.push_sample(SampleRow { series: id.id, slot: id.slot, timestamp_ms: t, value: 0.0 });
        if buffer.append(&staged).is_err() {
            refused = true;
            break;
        }
        buffer.seal_all();
    }
    assert!(refused, "the buffer must refuse writes rather than evict data the backend has not taken");
    wait_until("the forwarder to keep retrying", || rx.seen.lock().len() >= 3).await;
    let mut staged = buffer.staged_rows();
    staged.push_sample(SampleRow { series: id.id, slot: id.slot, timestamp_ms: 99_999, value: 0.0 });
    assert!(buffer.append(&staged).is_err(), "still full while the backend is down");
    assert_eq!(buffer.stats().evicted_batches.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_tenant_url_template_sends_each_tenant_to_its_own_url_with_its_header() {
    let (rx, url) = start_receiver(vec![]).await;
    let template = url.replace("/api/v1/write", "/insert/{tenant}/prometheus/api/v1/write");
    let (s, _handle) = setup(&template);
    let labels = key("m", "x");
    let mut staged = s.buffer.staged_rows();
    for (tenant, value) in [(None, 1.0), (Some("7"), 2.0), (Some("8:1"), 3.0), (Some("7"), 4.0)] {
        let t = match tenant {
            Some(name) => s.series.tenant(name).unwrap(),
            None => s.series.default_tenant(),
        };
        let r = s.series.resolve(t, &labels).unwrap();
        staged.push_sample(SampleRow { series: r.id, slot: r.slot, timestamp_ms: 1000 * value as i64, value });
    }
    s.buffer.append(&staged).unwrap();
    s.buffer.seal_all();
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

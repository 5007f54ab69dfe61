#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use prost::Message;
use vigil_ingest::buffer::BufferConfig;
use vigil_ingest::limits::IngestLimits;
use vigil_ingest::remote_write::{RemoteWriteVersion, receive};
use vigil_ingest::series::{MetadataStore, SeriesRegistryConfig, Tenant};
use vigil_proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

use super::*;
use crate::config::Rule;
use crate::events::{EventQuery, Severity};
use crate::selector::Selector;

const STEP_MS: i64 = 15_000;
const SPIKE_AT: usize = 300;

struct Fixture {
    buffer: Arc<MetricsBuffer>,
    registry: Arc<SeriesRegistry>,
    metadata: MetadataStore,
    metrics: DetectMetrics,
    engine: Engine,
    scores: mpsc::Receiver<WriteBack>,
}

impl Fixture {
    fn start(config: DetectConfig) -> Self {
        Self::start_replaying(config, false)
    }

    fn start_replaying(config: DetectConfig, replaying: bool) -> Self {
        let buffer = MetricsBuffer::new(BufferConfig {
            shards: 2,
            batch_rows: 256,
            max_bytes: 64 << 20,
            ..BufferConfig::default()
        });
        let registry = Arc::new(SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous"));
        let metrics = DetectMetrics::new(&mut Registry::default());
        let (tx, scores) = mpsc::channel(1024);
        let inputs = EngineInputs {
            buffer: Arc::clone(&buffer),
            registry: Arc::clone(&registry),
            metrics: metrics.clone(),
            write_back: Some(tx),
            replaying,
        };
        let engine = Engine::start(&config, inputs).unwrap();
        Self { buffer, registry, metadata: MetadataStore::default(), metrics, engine, scores }
    }

    fn write(&self, tenant: Tenant, series: Vec<TimeSeries>) {
        let body = WriteRequest { timeseries: series, metadata: vec![] }.encode_to_vec();
        let body = snap::raw::Encoder::new().compress_vec(&body).unwrap();
        let limits = IngestLimits::default();
        receive(&body, RemoteWriteVersion::V1, tenant, &limits, &self.registry, &self.metadata, &self.buffer).unwrap();
    }

    /// Seals and waits until the engine has read everything (its counters stop moving).
    async fn settle(&self) {
        self.buffer.seal_all();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let seen = self.metrics.samples_scored.get() + self.metrics.series_dropped.get();
            if seen == last || Instant::now() > deadline {
                return;
            }
            last = seen;
        }
    }

    async fn stop(self) -> Vec<WriteBack> {
        self.buffer.close();
        self.engine.join().await;
        let mut scores = self.scores;
        let mut out = Vec::new();
        while let Some(wb) = scores.recv().await {
            out.push(wb);
        }
        out
    }
}

fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
    pairs.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect()
}

/// Two hours ago: recent enough for the events' retention (`detect.events.max_age`).
fn start_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (now.as_millis() as i64 - 7_200_000) / 1000 * 1000
}

/// Noise around 100 (a fixed xorshift sequence), one huge spike at [`SPIKE_AT`], from `start_ms` on.
fn noisy_from(pairs: &[(&str, &str)], n: usize, start_ms: i64) -> TimeSeries {
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let samples = (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = (x % 1000) as f64 / 1000.0 - 0.5;
            let value = if i == SPIKE_AT { 1000.0 } else { 100.0 + noise };
            Sample { value, timestamp: start_ms + i as i64 * STEP_MS }
        })
        .collect();
    TimeSeries { labels: labels(pairs), samples, ..Default::default() }
}

fn noisy(pairs: &[(&str, &str)], n: usize) -> TimeSeries {
    noisy_from(pairs, n, start_ms())
}

fn query<'a>(tenant: &'a str, selectors: &'a [Selector]) -> EventQuery<'a> {
    EventQuery { tenant, selectors, start_ms: None, end_ms: None, min_score: 0.0, limit: 100 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_opens_one_event_and_its_scores_are_written_back() {
    let config = DetectConfig {
        rules: vec![Rule { selector: r#"{job="batch"}"#.into(), exclude: true, ..Rule::default() }],
        ..DetectConfig::default()
    };
    let f = Fixture::start(config);
    let team = f.registry.tenant("team-a").unwrap();
    let start = start_ms();
    let spike_ms = start + SPIKE_AT as i64 * STEP_MS;
    // Sent in two requests, so the spike arrives in a later batch than the history.
    let all = noisy_from(&[("__name__", "latency"), ("job", "api")], SPIKE_AT + 10, start);
    let (before, after) = all.samples.split_at(SPIKE_AT);
    f.write(team, vec![TimeSeries { samples: before.to_vec(), ..all.clone() }]);
    f.write(team, vec![noisy(&[("__name__", "latency"), ("job", "batch")], SPIKE_AT + 10)]);
    f.write(team, vec![TimeSeries { samples: after.to_vec(), ..all.clone() }]);
    // Vigil's own output and a stale sample: neither scored.
    f.write(team, vec![noisy(&[("__name__", "anomaly_score"), ("for", "latency"), ("job", "api")], 100)]);
    f.write(team, vec![TimeSeries { samples: vec![Sample { value: 1.0, timestamp: start }], ..all.clone() }]);
    f.settle().await;

    let handle = f.engine.handle();
    assert_eq!(handle.series_count(), 1, "the excluded series and anomaly_* are not scored");
    let (events, _) = handle.anomalies(&query("team-a", &[]));
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.labels.get("__name__").map(String::as_str), Some("latency"));
    assert_eq!(e.peak_ms, spike_ms);
    assert!(e.score > 1.0 && e.value == 1000.0, "{e:?}");
    assert!(e.lower <= e.expected && e.expected <= e.upper && e.upper < 1000.0, "{e:?}");
    assert!(e.severity <= Severity::P1, "a 900-unit spike on noise of ±0.5 is severe: {e:?}");
    assert!(handle.anomalies(&query("anonymous", &[])).0.is_empty(), "other tenants see nothing");
    let open: Vec<_> = events.iter().filter(|e| e.open).cloned().collect();
    assert_eq!(handle.open_anomalies(&query("team-a", &[])), open, "the open ones, read without the table");
    assert_eq!(f.metrics.anomalies.get(), 1);
    assert_eq!(f.metrics.skipped("out_of_order").get(), 1);
    let table = handle.events_table();
    assert_eq!(table.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    assert_eq!(table[0].schema(), crate::events::schema());

    let sel = [Selector::parse(r#"latency{job="api"}"#).unwrap()];
    let q =
        ForecastQuery { tenant: "team-a", selectors: &sel, horizon_ms: 3_600_000, step_ms: 300_000, max_series: 10 };
    let (forecasts, truncated) = handle.forecast(&q);
    assert!(!truncated);
    assert_eq!(forecasts.len(), 1);
    assert_eq!(forecasts[0].points.len(), 12);
    // 77 minutes of history: too little for the decomposition, the profile answers.
    assert_eq!(forecasts[0].model, crate::forecast::ForecastModel::Profile);
    assert_eq!(forecasts[0].points[0].timestamp_ms, start + (SPIKE_AT as i64 + 9) * STEP_MS + 300_000);
    assert!(handle.forecast(&ForecastQuery { tenant: "anonymous", ..q.clone() }).0.is_empty());

    let scored = f.metrics.samples_scored.get();
    let registry = Arc::clone(&f.registry);
    let written = f.stop().await;
    assert!(written.iter().all(|w| &*w.tenant == "team-a"));
    assert_eq!(written.iter().map(|w| w.samples).sum::<u64>(), scored);
    // The bodies are valid remote write: the receiver takes them, and they say what was scored.
    let mut spike_score = None;
    let check = MetricsBuffer::new(BufferConfig { shards: 1, ..BufferConfig::default() });
    for w in &written {
        let limits = IngestLimits::default();
        receive(&w.body, RemoteWriteVersion::V1, team, &limits, &registry, &MetadataStore::default(), &check).unwrap();
        let req = WriteRequest::decode(snap::raw::Decoder::new().decompress_vec(&w.body).unwrap().as_slice()).unwrap();
        for ts in &req.timeseries {
            let l: Vec<_> = ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
            if l == [("__name__", "anomaly_score"), ("for", "latency"), ("job", "api")]
                && ts.samples[0].timestamp == spike_ms
            {
                spike_score = Some(ts.samples[0].value);
            }
        }
    }
    assert!(spike_score.is_some_and(|s| s > 1.0), "anomaly_score at the spike: {spike_score:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_over_the_cap_are_dropped_and_counted_and_replay_writes_nothing_back() {
    let config = DetectConfig { max_series: 2, ..DetectConfig::default() };
    let mut f = Fixture::start_replaying(config, true);
    let t = f.registry.default_tenant();
    let series = (0..5).map(|i| noisy(&[("__name__", "m"), ("i", &i.to_string())], 50)).collect();
    f.write(t, series);
    f.settle().await;
    assert_eq!(f.engine.handle().series_count(), 2);
    assert_eq!(f.metrics.series_dropped.get(), 3, "each dropped series counted once");
    assert_eq!(f.metrics.series.get(), 2);
    assert!(f.metrics.samples_scored.get() > 0);
    assert!(f.scores.try_recv().is_err(), "nothing written back while replaying");
    f.engine.handle().replay_done();
    // Which two series won the cap depends on how the shards' threads interleaved: continue all five.
    let later =
        (0..5).map(|i| noisy_from(&[("__name__", "m"), ("i", &i.to_string())], 60, start_ms() + 3_600_000)).collect();
    f.write(t, later);
    f.settle().await;
    let written = f.stop().await;
    assert!(!written.is_empty(), "written back once replay is done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_silent_for_forget_after_are_forgotten_their_events_closed_and_their_room_given_to_new_ones() {
    let config = DetectConfig { max_series: 3, forget_after: Duration::from_secs(600), ..DetectConfig::default() };
    let f = Fixture::start(config);
    let t = f.registry.default_tenant();
    let start = start_ms() - 3 * 3_600_000;
    // Three series fill the cap; each ends on its spike, so each has an event still open.
    let old = (0..3).map(|i| noisy_from(&[("__name__", "old"), ("i", &i.to_string())], SPIKE_AT + 1, start)).collect();
    f.write(t, old);
    f.settle().await;
    let handle = f.engine.handle();
    assert_eq!(handle.series_count(), 3);
    let old_events = |open_only: bool| {
        let sel = [Selector::parse("old").unwrap()];
        handle.anomalies(&query("anonymous", &sel)).0.into_iter().filter(|e| !open_only || e.open).count()
    };
    assert_eq!(old_events(true), 3, "the spikes' events are open");
    // Two hours later, eight new series: over the cap at first, admitted once the old ones are forgotten.
    let later = start + 3 * 3_600_000;
    let new = |from: usize, n: usize| -> Vec<TimeSeries> {
        (0..8)
            .map(|i| {
                let mut s = noisy_from(&[("__name__", "new"), ("i", &i.to_string())], from + n, later);
                s.samples.drain(..from);
                s
            })
            .collect()
    };
    f.write(t, new(0, 20));
    f.settle().await;
    assert_eq!(f.metrics.series_forgotten.get(), 3, "every old series, on whichever shard");
    assert_eq!(old_events(true), 0, "their open events are closed");
    assert_eq!(old_events(false), 3, "and kept, closed");
    f.write(t, new(20, 20));
    f.settle().await;
    assert_eq!(handle.series_count(), 3, "the cap is filled again, by new series");
    assert_eq!(f.metrics.series.get(), 3);
    assert!(f.metrics.series_dropped.get() >= 5, "the rest stay over the cap");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sample_stamped_years_ahead_does_not_make_every_other_series_silent() {
    let config = DetectConfig { forget_after: Duration::from_secs(600), ..DetectConfig::default() };
    let f = Fixture::start(config);
    let t = f.registry.default_tenant();
    let series = (0..6).map(|i| noisy(&[("__name__", "steady"), ("i", &i.to_string())], 40)).collect();
    f.write(t, series);
    f.settle().await;
    let year_ms = 365 * 86_400_000;
    let broken_clock = (0..6)
        .map(|i| noisy_from(&[("__name__", "skewed"), ("i", &i.to_string())], 1, start_ms() + 10 * year_ms))
        .collect();
    f.write(t, broken_clock);
    f.settle().await;
    assert_eq!(f.metrics.series_forgotten.get(), 0);
    assert_eq!(f.engine.handle().series_count(), 12);
    f.stop().await;
}

/// Ten days of five-minute samples of a daily cycle on a rising level: the forecast comes from MSTL + ETS over
/// the engine's hourly history and follows the cycle, and the series' whole state stays within 2 KiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_seasonal_series_is_forecast_by_mstl_and_its_state_stays_under_2_kib() {
    const FIVE_MIN: i64 = 300_000;
    let f = Fixture::start(DetectConfig::default());
    let start = (start_ms() - 10 * 86_400_000) / FIVE_MIN * FIVE_MIN;
    let truth = |t: i64| {
        let days = (t - start) as f64 / 86_400_000.0;
        500.0 + 3.0 * days + 50.0 * (std::f64::consts::TAU * days.fract()).sin()
    };
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let samples: Vec<Sample> = (0..10 * 288)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = start + i * FIVE_MIN;
            Sample { value: truth(t) + (x % 1000) as f64 / 250.0 - 2.0, timestamp: t }
        })
        .collect();
    let last = samples.last().unwrap().timestamp;
    f.write(
        f.registry.default_tenant(),
        vec![TimeSeries { labels: labels(&[("__name__", "load")]), samples, ..Default::default() }],
    );
    f.settle().await;
    let handle = f.engine.handle();
    let sel = [Selector::parse("load").unwrap()];
    let q = ForecastQuery {
        tenant: "anonymous",
        selectors: &sel,
        horizon_ms: 86_400_000,
        step_ms: FIVE_MIN,
        max_series: 1,
    };
    let (forecasts, _) = handle.forecast(&q);
    assert_eq!(forecasts.len(), 1);
    let forecast = &forecasts[0];
    assert_eq!(forecast.model, crate::forecast::ForecastModel::MstlEts);
    assert_eq!(forecast.points.len(), 288);
    assert_eq!(forecast.points[0].timestamp_ms, last + FIVE_MIN);
    for p in &forecast.points {
        assert!((p.expected - truth(p.timestamp_ms)).abs() < 5.0, "{p:?} vs {}", truth(p.timestamp_ms));
        assert!(p.lower < p.expected && p.expected < p.upper);
    }
    let bytes = handle.largest_series_state();
    assert!(bytes > 1000 && bytes <= 2048, "{bytes} bytes per series");
    f.stop().await;
}

#[test]
fn an_invalid_config_or_no_runtime_is_an_error() {
    let buffer = MetricsBuffer::new(BufferConfig { shards: 1, ..BufferConfig::default() });
    let registry = Arc::new(SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous"));
    let inputs = || EngineInputs {
        buffer: Arc::clone(&buffer),
        registry: Arc::clone(&registry),
        metrics: DetectMetrics::default(),
        write_back: None,
        replaying: false,
    };
    let bad = DetectConfig { max_series: 0, ..DetectConfig::default() };
    assert!(matches!(Engine::start(&bad, inputs()), Err(EngineError::Config(p)) if p[0].contains("detect.max_series")));
    assert!(matches!(Engine::start(&DetectConfig::default(), inputs()), Err(EngineError::NoRuntime)));
}

/// Six pods of one deployment, one serving 60 % more than the others: the comparison of siblings flags it
/// (an event with a `peers` contribution, through the anomaly API), the group's isolation forest is fitted
/// from the shard threads' rows by the background thread, and nothing else raises an event — neither the
/// forest nor the peers on the five ordinary pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_unlike_its_siblings_is_an_event_and_the_group_forest_stays_quiet() {
    let config = DetectConfig {
        iforest: crate::config::IforestConfig { min_rows: 256, ..Default::default() },
        ..DetectConfig::default()
    };
    let f = Fixture::start(config);
    let t = f.registry.default_tenant();
    let start = start_ms() - 3_600_000;
    let pods: Vec<String> = (0..6).map(|i| format!("api-{i}")).collect();
    let mut rngs: Vec<fastrand::Rng> = (0..6).map(|i| fastrand::Rng::with_seed(100 + i)).collect();
    // 420 samples of 15 s (1 h 45 min), in chunks of ten minutes with the engine settled in between, so
    // each comparison (every 5 minutes of sample time) sees its windows filled.
    for chunk in 0..420 / 40 {
        let series = pods
            .iter()
            .zip(&mut rngs)
            .enumerate()
            .map(|(k, (pod, rng))| {
                let level = if k == 2 { 160.0 } else { 100.0 };
                let samples = (chunk * 40..(chunk + 1) * 40)
                    .map(|i| Sample { value: level + 4.0 * (rng.f64() - 0.5), timestamp: start + i as i64 * STEP_MS })
                    .collect();
                let pairs = [("__name__", "http_requests_per_second"), ("job", "api"), ("pod", pod.as_str())];
                TimeSeries { labels: labels(&pairs), samples, ..Default::default() }
            })
            .collect();
        f.write(t, series);
        f.settle().await;
    }
    let handle = f.engine.handle();
    let (events, _) = handle.anomalies(&query("anonymous", &[]));
    let m = &f.metrics;
    assert!(!events.is_empty(), "the odd pod raised no event: {m:?}");
    let open: Vec<_> = events.iter().filter(|e| e.open).cloned().collect();
    assert_eq!(handle.open_anomalies(&query("anonymous", &[])), open, "the open ones, read without the table");
    for e in &events {
        assert_eq!(e.labels.get("pod").map(String::as_str), Some("api-2"), "only the odd pod: {e:?}");
        let peers = e.detectors.iter().find(|(n, _)| *n == "peers").map(|(_, s)| *s);
        assert!(peers.is_some_and(|s| s > 1.0) && e.score > 1.0, "{e:?}");
    }
    assert!(m.peers_comparisons.get() >= 10 && m.peers_outliers.get() >= 1, "{m:?}");
    assert!(m.peers_sets.get() <= 1, "one set of siblings");
    assert!(m.iforest_refits.get() >= 1 && m.iforest_refit_errors.get() == 0, "{m:?}");
    assert_eq!(m.iforest_groups.get(), 1);
    assert!(m.iforest_anomalous.get() <= 2, "the forest flagged {} ordinary samples", m.iforest_anomalous.get());
    f.stop().await;
}

/// A worker holds its shard's state for a whole batch: readers of events must not wait for it. With every
/// shard's state locked, as while batches are scored, the anomaly API and the events table still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_read_while_every_shard_is_scoring_a_batch() {
    let f = Fixture::start(DetectConfig::default());
    let team = f.registry.tenant("team-a").unwrap();
    f.write(team, vec![noisy(&[("__name__", "latency"), ("job", "api")], SPIKE_AT + 10)]);
    f.settle().await;
    let handle = f.engine.handle();
    let scoring: Vec<_> = handle.shared.shards.iter().map(|s| s.lock()).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = handle.clone();
    std::thread::spawn(move || {
        let sel = [Selector::parse(r#"latency{job="api"}"#).unwrap()];
        let listed = reader.anomalies(&query("team-a", &sel)).0.len();
        let rows = reader.events_table().iter().map(|b| b.num_rows()).sum::<usize>();
        let _ = tx.send((listed, rows));
    });
    let answer = rx.recv_timeout(Duration::from_secs(10));
    drop(scoring);
    assert_eq!(answer, Ok((1, 1)), "the spike's event, read without the shards' state");
    f.stop().await;
}

/// Events open and close all the time while a reader polls: every answer lists each event once (an event
/// closing while the open ones are read is not also listed as open), and the API's answers are those of
/// the events table read the old way (build the whole table, then filter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_racing_the_workers_sees_every_event_once() {
    let f = Arc::new(Fixture::start(DetectConfig::default()));
    let t = f.registry.default_tenant();
    let start = start_ms() - 3_600_000;
    let handle = f.engine.handle();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (handle, stop) = (handle.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let (mut reads, mut most) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let (events, matched) = handle.anomalies(&EventQuery { limit: usize::MAX, ..query("anonymous", &[]) });
                let mut keys: Vec<_> = events.iter().map(|e| (e.labels.clone(), e.start_ms)).collect();
                keys.sort();
                keys.dedup();
                assert_eq!(keys.len(), events.len(), "an event listed twice: {events:?}");
                assert_eq!(matched, events.len());
                let table = handle.events_table();
                let rows = table.iter().map(|b| b.num_rows()).sum::<usize>();
                let ids = table
                    .iter()
                    .filter_map(crate::events::Columns::of)
                    .flat_map(|c| (0..c.series_id.len()).map(move |i| (c.series_id.value(i), c.start.value(i))));
                assert_eq!(ids.collect::<std::collections::HashSet<_>>().len(), rows, "a row twice in the table");
                (reads, most) = (reads + 1, most.max(events.len()));
            }
            (reads, most)
        })
    };
    // 40 series, each with a spike every 25 samples (an event that closes three samples later), written
    // 50 samples at a time.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for round in 0..12 {
        let series = (0..40)
            .map(|k| {
                let samples = (round * 50..(round + 1) * 50)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let spike = i > 60 && (i + k) % 25 == 0;
                        let value = if spike { 1000.0 } else { 100.0 + (x % 1000) as f64 / 1000.0 };
                        Sample { value, timestamp: start + i as i64 * STEP_MS }
                    })
                    .collect();
                let k = k.to_string();
                TimeSeries { labels: labels(&[("__name__", "m"), ("k", &k)]), samples, ..Default::default() }
            })
            .collect();
        f.write(t, series);
        f.buffer.seal_all();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f.settle().await;
    stop.store(true, Ordering::Relaxed);
    let (reads, most) = reader.join().unwrap();
    assert!(reads > 5 && most > 0, "{reads} reads, at most {most} events");
    // At rest, the API reads what filtering the whole table reads, query by query. (On a loaded machine
    // a worker may still be finishing a batch after `settle`: wait for the table to stop changing.)
    let mut table = handle.events_table();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let again = handle.events_table();
        if again == table {
            break;
        }
        table = again;
    }
    let sel = [Selector::parse(r#"m{k=~"1.*"}"#).unwrap(), Selector::parse(r#"{k="7"}"#).unwrap()];
    let queries = [
        query("anonymous", &[]),
        query("anonymous", &sel),
        EventQuery { min_score: 3.0, limit: 7, ..query("anonymous", &sel) },
        EventQuery {
            start_ms: Some(start + 200 * STEP_MS),
            end_ms: Some(start + 300 * STEP_MS),
            ..query("anonymous", &[])
        },
        query("team-a", &[]),
    ];
    for q in &queries {
        assert_eq!(handle.anomalies(q), crate::events::read(&table, q), "{q:?}");
    }
    let (all, _) = handle.anomalies(&EventQuery { limit: usize::MAX, ..query("anonymous", &[]) });
    assert!(all.len() >= 40 * 10 && all.iter().any(|e| e.open) && all.iter().any(|e| !e.open), "{}", all.len());
    drop(handle);
    let Ok(f) = Arc::try_unwrap(f) else { panic!("the fixture is still shared") };
    f.stop().await;
}

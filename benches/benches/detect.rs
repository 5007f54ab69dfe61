//! Issue 5's throughput targets, measured: the statistical ensemble, isolation-forest scoring and the
//! online engine, each in samples per second on one thread.
//!
//! - `ensemble/*`: [`SeriesDetector::observe`] with default [`Settings`] on 10 000 series, one sample of each
//!   series per iteration in turn (the order a scrape round reaches the engine in), every series warmed
//!   past `min_history` first. The series are a realistic mix (see [`Fleet`]): seasonal gauges, counters
//!   (scored on their rate) and flat series, scraped every minute or every five, with occasional spikes. The
//!   round's values are generated before the clock starts. `ensemble/one_series` is the same detector on a
//!   single seasonal gauge whose state stays in L1, as an upper bound without cache misses.
//!   `ensemble/10k_series_thread_cpu` is `10k_series_round` timed by the thread's CPU time (25 rounds per
//!   iteration), so that other processes on the machine do not count. The per-series state
//!   (`state_bytes()`) is printed once.
//! - `iforest/*`: [`IsolationForest`] (100 trees, ψ = 256, seeded) fitted on 4096 rows of an 8-feature
//!   service window (request rate, error ratio, latency p50/p99, CPU, memory, rate delta, latency spread;
//!   correlated through a daily load cycle, 1 % outliers) and scoring rows one at a time, in batches of 8,
//!   256 and 4096 (slice API), 4096 through linfa's `Predict`; and the fit itself (rows of the window/s).
//! - `engine/*`: samples through the metrics buffer into the running [`Engine`] (one buffer shard, so one
//!   detection thread), default `detect:` config (group isolation forests and peer comparison on), the
//!   write-back drained. Label sets from `loadgen`'s Kubernetes-like series (so the forests group them by
//!   `job`). `end_to_end`: from the start of `remote_write::receive` of the requests until the engine has
//!   scored every sample (receive on the bench thread, detection on the engine's, overlapping).
//!   `score_only*`: the rows are already in the open batch; from sealing it until every sample is scored —
//!   the detection thread alone (read the Arrow batch, resolve, observe, group forest, events, encode and
//!   compress the write-back); `_no_writeback` without the write-back, `_statistical_only` also without
//!   the forests and peers.
//!
//! ```sh
//! cargo bench -p vigil-benches --bench detect -- --measurement-time 5
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{EngineRig, gauss};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use linfa::prelude::Predict;
use ndarray::Array2;
use vigil_benches::thread_cpu_ns;
use vigil_detect::iforest::IsolationForest;
use vigil_detect::{DetectConfig, SeriesDetector, Settings};
use vigil_ingest::buffer::BufferConfig;

const SERIES: usize = 10_000;
/// Rounds fed before measuring: a day of one-minute samples, five days of five-minute ones. Every series
/// is past `min_history` (30) and its seasonal profile is allocated and learning.
const WARM_ROUNDS: usize = 1_500;
const DAY_MS: i64 = 86_400_000;
/// A spike in about one sample of 2000.
const SPIKE_ONE_IN: u32 = 2_000;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64 / 60_000 * 60_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Level · (1 + 20 % daily cycle) + 2 % noise: latencies, queue lengths, memory.
    Gauge,
    /// A cumulative count whose rate has a daily cycle, reset now and then: `*_total`.
    Counter,
    /// Constant with rare flips: `up`, build info, config values.
    Flat,
}

/// How one generated series behaves.
#[derive(Debug, Clone)]
struct Shape {
    kind: Kind,
    interval_ms: i64,
    level: f64,
    phase: f64,
    total: f64,
}

/// The 10 000 series of the ensemble bench: 60 % seasonal gauges, 30 % counters, 10 % flat; 70 % scraped
/// every minute, 30 % every five minutes; levels spread over six orders of magnitude.
struct Fleet {
    shapes: Vec<Shape>,
    detectors: Vec<SeriesDetector>,
    start_ms: i64,
    round: usize,
    rng: fastrand::Rng,
    /// The current round's samples, generated before it is timed.
    ts: Vec<i64>,
    values: Vec<f64>,
}

impl Fleet {
    fn new(settings: &Settings, n: usize) -> Self {
        let mut rng = fastrand::Rng::with_seed(5);
        let shapes = (0..n)
            .map(|i| Shape {
                kind: match i % 10 {
                    0..=5 => Kind::Gauge,
                    6..=8 => Kind::Counter,
                    _ => Kind::Flat,
                },
                interval_ms: if i % 10 < 7 { 60_000 } else { 300_000 },
                level: 10f64.powf(rng.f64() * 6.0 - 2.0),
                phase: rng.f64() * std::f64::consts::TAU,
                total: 0.0,
            })
            .collect();
        let detectors = (0..n).map(|_| SeriesDetector::new(settings)).collect();
        // The warm-up ends about now, like a server that has been running for a while.
        let start_ms = now_ms() - WARM_ROUNDS as i64 * 300_000;
        Self { shapes, detectors, start_ms, round: 0, rng, ts: vec![0; n], values: vec![0.0; n] }
    }

    /// Generates the next round: one sample of every series.
    fn next_round(&mut self) {
        let round = self.round as i64;
        self.round += 1;
        for ((s, ts), value) in self.shapes.iter_mut().zip(&mut self.ts).zip(&mut self.values) {
            let t = self.start_ms + round * s.interval_ms;
            let day = (t % DAY_MS) as f64 / DAY_MS as f64;
            let cycle = (std::f64::consts::TAU * day + s.phase).sin();
            let spike = if self.rng.u32(0..SPIKE_ONE_IN) == 0 { 8.0 } else { 0.0 };
            *ts = t;
            *value = match s.kind {
                Kind::Gauge => s.level * (1.0 + 0.2 * cycle + 0.02 * gauss(&mut self.rng) + 0.2 * spike),
                Kind::Counter => {
                    if self.rng.u32(0..20_000) == 0 {
                        s.total = 0.0;
                    }
                    let rate = s.level * (1.0 + 0.3 * cycle + 0.05 * gauss(&mut self.rng) + spike).max(0.0);
                    s.total += rate * s.interval_ms as f64 / 1000.0;
                    s.total.round()
                }
                Kind::Flat => {
                    if self.rng.u32(0..50_000) == 0 {
                        s.level = if s.level == 1.0 { 0.0 } else { 1.0 };
                    }
                    s.level
                }
            };
        }
    }

    /// Feeds the current round; returns how many samples got a verdict.
    fn observe_round(&mut self, settings: &Settings) -> usize {
        observe_all(&mut self.detectors, settings, &self.ts, &self.values)
    }

    fn print_state(&self) {
        let mut by_kind = Vec::new();
        for kind in [Kind::Gauge, Kind::Counter, Kind::Flat] {
            let bytes: Vec<usize> = self
                .shapes
                .iter()
                .zip(&self.detectors)
                .filter(|(s, _)| s.kind == kind)
                .map(|(_, d)| d.state_bytes())
                .collect();
            let mean = bytes.iter().sum::<usize>() as f64 / bytes.len().max(1) as f64;
            let max = bytes.iter().copied().max().unwrap_or(0);
            by_kind.push(format!("{kind:?}: mean {mean:.0} B, max {max} B"));
        }
        let max = self.detectors.iter().map(SeriesDetector::state_bytes).max().unwrap_or(0);
        eprintln!(
            "ensemble state per series after {WARM_ROUNDS} rounds (state_bytes(); size_of::<SeriesDetector>() = {} \
             B): {}; largest {max} B = {:.2} of the 2 KiB target",
            size_of::<SeriesDetector>(),
            by_kind.join("; "),
            max as f64 / 2048.0
        );
    }
}

/// The fleet, warmed up; prints its state per series.
fn warm_fleet(settings: &Settings) -> Fleet {
    let mut fleet = Fleet::new(settings, SERIES);
    let warm = Instant::now();
    for _ in 0..WARM_ROUNDS {
        fleet.next_round();
        fleet.observe_round(settings);
    }
    let warm = warm.elapsed();
    fleet.next_round();
    let scored = fleet.observe_round(settings);
    eprintln!(
        "ensemble: {SERIES} series warmed with {WARM_ROUNDS} rounds in {:.1} s ({:.0} samples/s incl. generation); \
         {scored} of {SERIES} samples of the next round scored",
        warm.as_secs_f64(),
        (WARM_ROUNDS * SERIES) as f64 / warm.as_secs_f64()
    );
    assert!(scored * 100 >= SERIES * 99, "the fleet is not warm: {scored} of {SERIES} scored");
    fleet.print_state();
    fleet
}

/// One sample for each detector, in turn; how many got a verdict.
fn observe_all(detectors: &mut [SeriesDetector], settings: &Settings, ts: &[i64], values: &[f64]) -> usize {
    let mut scored = 0;
    for ((d, &ts), &v) in detectors.iter_mut().zip(ts).zip(values) {
        scored += usize::from(black_box(d.observe(settings, ts, v)).is_some());
    }
    scored
}

/// CPU time this thread has run ([`thread_cpu_ns`]: time spans of 100 ms or more).
fn thread_cpu() -> Duration {
    Duration::from_nanos(thread_cpu_ns(None).unwrap())
}

/// Rounds per iteration of `ensemble/10k_series_thread_cpu`: 250 000 samples, about 100 ms.
const CPU_ROUNDS: usize = 25;

fn ensemble(c: &mut Criterion) {
    let settings = Settings::default();
    // Set up on first use, so that a filter that skips these benches skips the warm-up too.
    let mut fleet = None;
    let mut group = c.benchmark_group("ensemble");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.bench_function("10k_series_round", |b| {
        let fleet = fleet.get_or_insert_with(|| warm_fleet(&settings));
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                fleet.next_round();
                let start = Instant::now();
                black_box(fleet.observe_round(&settings));
                timed += start.elapsed();
            }
            timed
        });
    });

    // The same, timed by this thread's CPU time instead of the wall clock: samples per second per core,
    // whatever else the machine runs. The rounds are generated before the clock starts.
    let (mut ts, mut values) = (Vec::new(), Vec::new());
    group.throughput(Throughput::Elements((CPU_ROUNDS * SERIES) as u64));
    group.bench_function("10k_series_thread_cpu", |b| {
        let fleet = fleet.get_or_insert_with(|| warm_fleet(&settings));
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                ts.clear();
                values.clear();
                for _ in 0..CPU_ROUNDS {
                    fleet.next_round();
                    ts.extend_from_slice(&fleet.ts);
                    values.extend_from_slice(&fleet.values);
                }
                let start = thread_cpu();
                for (ts, values) in ts.chunks_exact(SERIES).zip(values.chunks_exact(SERIES)) {
                    black_box(observe_all(&mut fleet.detectors, &settings, ts, values));
                }
                timed += thread_cpu() - start;
            }
            timed
        });
    });

    // One seasonal gauge, its state always in cache: the detector's arithmetic alone.
    const ONE: usize = 4096;
    let mut one = None;
    let mut ts = vec![0; ONE];
    let mut values = vec![0.0; ONE];
    group.throughput(Throughput::Elements(ONE as u64));
    group.bench_function("one_series", |b| {
        let one = one.get_or_insert_with(|| {
            let mut one = Fleet::new(&settings, 1);
            for _ in 0..WARM_ROUNDS {
                one.next_round();
                one.observe_round(&settings);
            }
            one
        });
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                for (t, v) in ts.iter_mut().zip(&mut values) {
                    one.next_round();
                    (*t, *v) = (one.ts[0], one.values[0]);
                }
                let d = &mut one.detectors[0];
                let start = Instant::now();
                for (&t, &v) in ts.iter().zip(&values) {
                    black_box(d.observe(&settings, t, v));
                }
                timed += start.elapsed();
            }
            timed
        });
    });
    group.finish();
}

const FEATURES: usize = 8;
const WINDOW_ROWS: usize = 4096;

/// `n` rows of one service's feature window, one row a minute: request rate, error ratio, latency p50 and
/// p99, CPU, memory, request-rate delta, latency spread; about 1 % of the rows are incidents (errors and
/// latency up, or a traffic drop).
fn service_rows(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut rows = Vec::with_capacity(n * FEATURES);
    let mut last_rps = 0.0;
    for i in 0..n {
        let day = (i % 1440) as f64 / 1440.0;
        let load = 1.0 + 0.5 * (std::f64::consts::TAU * day).sin() + 0.05 * gauss(&mut rng);
        let incident = rng.u32(0..100) == 0;
        let (err_boost, lat_boost, drop) = if incident {
            match rng.u8(0..3) {
                0 => (20.0, 1.0, 1.0),
                1 => (1.0, 4.0, 1.0),
                _ => (1.0, 1.0, 0.3),
            }
        } else {
            (1.0, 1.0, 1.0)
        };
        let rps = 500.0 * load * drop + 10.0 * gauss(&mut rng);
        let errors = (0.002 * err_boost * (1.0 + 0.3 * gauss(&mut rng))).max(0.0);
        let p50 = 0.040 * (0.8 + 0.2 * load) * lat_boost * (1.0 + 0.05 * gauss(&mut rng));
        let p99 = p50 * (4.0 + 0.5 * gauss(&mut rng).abs()) * lat_boost;
        let cpu = 0.3 * load * drop + 0.02 * gauss(&mut rng);
        let mem = 2.0e9 + 1.0e8 * load + 2.0e7 * gauss(&mut rng);
        rows.extend_from_slice(&[rps, errors, p50, p99, cpu, mem, rps - last_rps, p99 - p50]);
        last_rps = rps;
    }
    rows
}

fn iforest(c: &mut Criterion) {
    let train = service_rows(WINDOW_ROWS, 11);
    let params = IsolationForest::params().n_trees(100).sample_size(256).seed(42);
    let forest = params.fit_rows(&train, FEATURES).unwrap();
    // Score rows the forest has not seen: the next window of the same service.
    let rows = service_rows(WINDOW_ROWS, 12);
    let mut out = vec![0.0; WINDOW_ROWS];
    forest.score_into(&rows, &mut out).unwrap();
    let mean = out.iter().sum::<f64>() / out.len() as f64;
    eprintln!(
        "iforest: {} trees, ψ = {}, depth {}, {FEATURES} features, fitted on {WINDOW_ROWS} rows; mean score of the \
         next {WINDOW_ROWS} rows {mean:.3}",
        forest.n_trees(),
        forest.sample_size(),
        forest.depth()
    );

    let mut group = c.benchmark_group("iforest");
    group.throughput(Throughput::Elements(WINDOW_ROWS as u64));
    for batch in [1, 8, 256, WINDOW_ROWS] {
        group.bench_function(format!("score_batch_{batch}"), |b| {
            b.iter(|| {
                for (r, o) in rows.chunks_exact(batch * FEATURES).zip(out.chunks_exact_mut(batch)) {
                    forest.score_into(black_box(r), o).unwrap();
                }
                black_box(&out);
            });
        });
    }
    let records = Array2::from_shape_vec((WINDOW_ROWS, FEATURES), rows.clone()).unwrap();
    group.bench_function("linfa_predict_4096", |b| b.iter(|| black_box(forest.predict(black_box(&records)))));
    group.bench_function("fit_4096", |b| {
        b.iter(|| black_box(params.fit_rows(black_box(&train), FEATURES).unwrap()));
    });
    group.finish();
}

/// Samples per iteration of the engine benches: four scrape rounds of 10 000 series.
const ENGINE_ROUNDS: usize = 4;

/// A running engine on a one-shard buffer, and a scraper of 10 000 series writing into it.
struct EngineBench {
    rig: EngineRig,
    /// The series' values: the gauge/counter/flat mix, all on a one-minute scrape.
    shapes: Fleet,
}

impl EngineBench {
    fn new(batch_rows: usize, config: &DetectConfig) -> Self {
        let rig = EngineRig::start(SERIES, batch_rows, config);
        let mut shapes = Fleet::new(&Settings::default(), SERIES);
        for s in &mut shapes.shapes {
            s.interval_ms = 60_000;
        }
        shapes.start_ms = now_ms() - 200 * 60_000;
        Self { rig, shapes }
    }

    /// Receives `rounds` scrape rounds (one request of 10 000 samples each) into the buffer.
    fn write(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.shapes.next_round();
            self.rig.write(self.shapes.ts[0], &self.shapes.values);
        }
    }

    /// Waits until the engine's counters have not moved for five seconds: it has read everything (the
    /// counters move once per batch, and one batch of at most 65 536 rows takes well under that).
    fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        let (mut last, mut still_since) = (self.rig.seen(), Instant::now());
        while still_since.elapsed() < Duration::from_secs(5) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.rig.seen();
            if now != last {
                (last, still_since) = (now, Instant::now());
            }
        }
    }

    /// Writes rounds until every series is past warm-up (counters warm up twice: on values, then rates),
    /// and checks that a round is then scored whole.
    fn warm(mut self) -> Self {
        self.write(100);
        self.rig.buffer.seal_all();
        self.drain();
        let before = self.rig.seen();
        self.write(1);
        self.rig.buffer.seal_all();
        self.drain();
        let scored = self.rig.seen() - before;
        eprintln!(
            "engine: {} series tracked; {scored} of {SERIES} samples of a round scored",
            self.rig.metrics.series.get()
        );
        assert_eq!(scored as usize, SERIES, "the engine is not warm");
        self
    }
}

/// `engine/<name>`: `iters` times, [`ENGINE_ROUNDS`] rounds through a rig made on first use (a filter that
/// skips the bench skips the set-up). `receive_timed`: the clock runs from before the rounds are received;
/// else from sealing them.
fn engine_bench(c: &mut Criterion, name: &str, batch_rows: usize, config: &DetectConfig, receive_timed: bool) {
    let samples = (ENGINE_ROUNDS * SERIES) as u64;
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(samples));
    let mut rig = None;
    group.bench_function(name, |b| {
        let bench = rig.get_or_insert_with(|| EngineBench::new(batch_rows, config).warm());
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let target = bench.rig.seen() + samples;
                let start = Instant::now();
                bench.write(ENGINE_ROUNDS);
                let start = if receive_timed { start } else { Instant::now() };
                bench.rig.buffer.seal_all();
                bench.rig.wait_for(target, Duration::from_secs(60));
                timed += start.elapsed();
            }
            timed
        });
    });
    group.finish();
    if let Some(bench) = rig {
        bench.rig.stop();
    }
}

fn engine(c: &mut Criterion) {
    let default_rows = BufferConfig::default().batch_rows;
    let defaults = DetectConfig::default();
    // Batches of the default size seal while the requests are received, as in a server.
    engine_bench(c, "end_to_end_1_shard", default_rows, &defaults, true);
    // One batch holds the iteration's rows, so nothing is read before the clock starts: the detection
    // thread alone. With the defaults; without encoding the write-back; and with the statistical ensemble
    // alone (no group isolation forests, no peer comparison, no write-back).
    engine_bench(c, "score_only_1_shard", 1 << 16, &defaults, false);
    let no_writeback = DetectConfig { write_back: false, ..DetectConfig::default() };
    engine_bench(c, "score_only_1_shard_no_writeback", 1 << 16, &no_writeback, false);
    let mut statistical = no_writeback;
    statistical.iforest.enabled = false;
    statistical.peers.enabled = false;
    engine_bench(c, "score_only_1_shard_statistical_only", 1 << 16, &statistical, false);
}

criterion_group!(benches, ensemble, iforest, engine);
criterion_main!(benches);

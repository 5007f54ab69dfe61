//! What the group isolation forests cost the detection engine: samples per CPU-second of the one detection
//! thread, with `detect.iforest` on and off, everything else at the defaults (peers on, write-back on).
//!
//! A one-shard metrics buffer feeds a running [`vigil_detect::Engine`] (so one detection thread, `vigil-detect-0`).
//! 10 000 Kubernetes-like series ([`vigil_benches::series::generate`]: six jobs, so six forest groups of about 1 700
//! series) are scraped every minute: 60 % seasonal gauges, 30 % counters (reset now and then), 10 % flat,
//! levels over six orders of magnitude, a spike in about one sample of 2 000. Before measuring, 100 rounds
//! warm every detector up and give every group a fitted forest (checked). Each iteration receives four
//! rounds (40 000 samples) and waits until the engine has taken every sample. With the default
//! `batch_rows` (8192) a batch seals after each round's request: four batches of 10 000 rows.
//!
//! The measurement is the CPU time of the detection thread (`/proc/self/task/<tid>/schedstat`) over the
//! iterations, not wall time: the machine is shared, and CPU time is what "samples per second per core"
//! means; receiving the rounds runs on the bench thread and does not count. The refits run
//! on the engine's background thread (`vigil-detect-models`); its CPU time over the whole bench is printed
//! per sample at the end of each run.
//!
//! ```sh
//! cargo bench -p vigil-benches --bench engine -- --measurement-time 5
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{EngineRig, gauss};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_benches::thread_cpu_ns;
use vigil_detect::DetectConfig;
use vigil_detect::config::IforestConfig;
use vigil_ingest::buffer::BufferConfig;

const SERIES: usize = 10_000;
/// Scrape rounds per measured batch.
const ROUNDS: usize = 4;
/// Rounds before measuring: detectors past `min_history` (counters twice: values, then rates), feature
/// rings full, every group's reservoir past `min_rows` and fitted.
const WARM_ROUNDS: usize = 100;
const STEP_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
    Flat,
}

/// The values of the 10 000 series, round after round.
struct Values {
    kinds: Vec<(Kind, f64, f64)>,
    totals: Vec<f64>,
    rng: fastrand::Rng,
    next_ms: i64,
    values: Vec<f64>,
}

impl Values {
    fn new() -> Self {
        let mut rng = fastrand::Rng::with_seed(5);
        let kinds = (0..SERIES)
            .map(|i| {
                let kind = match i % 10 {
                    0..=5 => Kind::Gauge,
                    6..=8 => Kind::Counter,
                    _ => Kind::Flat,
                };
                (kind, 10f64.powf(rng.f64() * 6.0 - 2.0), rng.f64() * std::f64::consts::TAU)
            })
            .collect();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64 / STEP_MS * STEP_MS;
        // Starts in the past so that the measured rounds stay within the events' retention.
        let next_ms = now - 2 * WARM_ROUNDS as i64 * STEP_MS;
        Self { kinds, totals: vec![0.0; SERIES], rng, next_ms, values: vec![0.0; SERIES] }
    }

    /// The next round's timestamp; its values are in `self.values`.
    fn next_round(&mut self) -> i64 {
        let t = self.next_ms;
        self.next_ms += STEP_MS;
        let day = (t % DAY_MS) as f64 / DAY_MS as f64;
        for ((&(kind, level, phase), total), value) in self.kinds.iter().zip(&mut self.totals).zip(&mut self.values) {
            let cycle = (std::f64::consts::TAU * day + phase).sin();
            let spike = if self.rng.u32(0..2_000) == 0 { 8.0 } else { 0.0 };
            *value = match kind {
                Kind::Gauge => level * (1.0 + 0.2 * cycle + 0.02 * gauss(&mut self.rng) + 0.2 * spike),
                Kind::Counter => {
                    if self.rng.u32(0..20_000) == 0 {
                        *total = 0.0;
                    }
                    let rate = level * (1.0 + 0.3 * cycle + 0.05 * gauss(&mut self.rng) + spike).max(0.0);
                    *total += rate * STEP_MS as f64 / 1000.0;
                    total.round()
                }
                Kind::Flat => level.round(),
            };
        }
        t
    }
}

/// Nanoseconds thread `tid` of this process has run.
fn cpu_ns(tid: u32) -> u64 {
    thread_cpu_ns(Some(tid)).unwrap()
}

/// Waits until a thread's CPU time has not moved for 50 ms (on a busy machine a running thread can wait
/// several milliseconds for a core); returns it.
fn settle(tid: u32) -> u64 {
    let mut last = cpu_ns(tid);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = cpu_ns(tid);
        if now == last {
            return now;
        }
        last = now;
    }
}

fn find_thread(name: &str) -> u32 {
    for entry in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = entry.unwrap().path();
        if std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.trim_end() == name) {
            return path.file_name().unwrap().to_str().unwrap().parse().unwrap();
        }
    }
    panic!("no thread named {name}");
}

/// A running engine on a one-shard buffer, the scraper writing into it, and the threads measured.
struct Rig {
    rig: EngineRig,
    values: Values,
    shard_tid: u32,
    models_tid: u32,
}

impl Rig {
    fn new(iforest: bool) -> Self {
        let config = DetectConfig {
            iforest: IforestConfig { enabled: iforest, ..IforestConfig::default() },
            ..DetectConfig::default()
        };
        // The default batch size (8192 rows): batches seal as the rounds are received (a request's 10 000
        // rows go into one batch, which then seals).
        let rig = EngineRig::start(SERIES, BufferConfig::default().batch_rows, &config);
        Self {
            rig,
            values: Values::new(),
            shard_tid: find_thread("vigil-detect-0"),
            // "vigil-detect-models", cut to the kernel's 15 characters.
            models_tid: find_thread("vigil-detect-mo"),
        }
    }

    /// Receives `rounds` rounds and seals them.
    fn write(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let ts = self.values.next_round();
            self.rig.write(ts, &self.values.values);
        }
        self.rig.buffer.seal_all();
    }

    /// Receives `rounds` rounds, seals them and waits until the engine has taken every sample.
    fn write_and_wait(&mut self, rounds: usize) {
        let target = self.rig.seen() + (rounds * SERIES) as u64;
        self.write(rounds);
        self.rig.wait_for(target, Duration::from_secs(120));
    }

    /// Warms up in batches of [`ROUNDS`] rounds, then checks that a round is scored whole and, with the
    /// forests on, that every group has one.
    fn warm(mut self, iforest: bool) -> Self {
        // Samples of series still warming up count nowhere, so the thread's CPU time says when it is done
        // (and the whole round scored below, after every earlier batch, says it was).
        for _ in 0..WARM_ROUNDS / ROUNDS {
            self.write(ROUNDS);
            settle(self.shard_tid);
        }
        let before = self.rig.metrics.samples_scored.get();
        self.write_and_wait(1);
        let scored = self.rig.metrics.samples_scored.get() - before;
        let (groups, refits) = (self.rig.metrics.iforest_groups.get(), self.rig.metrics.iforest_refits.get());
        eprintln!(
            "engine (iforest {iforest}): {scored} of {SERIES} samples of a round scored; {groups} groups, {refits} refits"
        );
        assert_eq!(scored as usize, SERIES, "the engine is not warm");
        if iforest {
            assert!(groups >= 2 && refits >= groups as u64, "not every group has a forest");
        }
        self
    }
}

/// `engine/shard_cpu_iforest_{on,off}`: CPU time of the detection thread per [`ROUNDS`] rounds.
fn bench(c: &mut Criterion, iforest: bool) {
    let samples = (ROUNDS * SERIES) as u64;
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(samples));
    let mut rig = None;
    let name = if iforest { "shard_cpu_iforest_on" } else { "shard_cpu_iforest_off" };
    let (mut measured, mut models_ns) = (0u64, 0u64);
    group.bench_function(name, |b| {
        let rig = rig.get_or_insert_with(|| Rig::new(iforest).warm(iforest));
        b.iter_custom(|iters| {
            // The detection thread runs only on sealed batches, so its CPU time over the loop is theirs
            // alone, including the write-back compressed after the counters moved (`settle`).
            settle(rig.shard_tid);
            let (shard_before, models_before) = (cpu_ns(rig.shard_tid), cpu_ns(rig.models_tid));
            for _ in 0..iters {
                rig.write_and_wait(ROUNDS);
            }
            let shard_after = settle(rig.shard_tid);
            models_ns += cpu_ns(rig.models_tid) - models_before;
            measured += iters * samples;
            Duration::from_nanos(shard_after - shard_before)
        });
    });
    group.finish();
    if let Some(rig) = rig {
        eprintln!(
            "engine (iforest {iforest}): background thread (refits, peer comparisons) {:.0} ns per sample over {measured} \
             samples; {} refits in all",
            models_ns as f64 / measured.max(1) as f64,
            rig.rig.metrics.iforest_refits.get()
        );
        rig.rig.stop();
    }
}

fn engine(c: &mut Criterion) {
    bench(c, false);
    bench(c, true);
}

criterion_group!(benches, engine);
criterion_main!(benches);

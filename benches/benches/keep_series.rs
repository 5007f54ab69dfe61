//! What the keep feeder (`vigil/src/keep_series.rs`) costs per sample: the metrics buffer's sealed batches
//! through `vigil_query::KeptSamples` (each series matched once against the keep set, then one array read
//! per sample; kept samples gathered and appended to the own-series store, flushed after every batch).
//!
//! 100 000 Kubernetes-like series (`vigil_benches::series::generate`, 71 per target, one of them `up`)
//! registered in a series registry; one iteration is one scrape round (every series once, at a timestamp
//! 15 s after the previous round's), cut into batches of 8192 rows (`buffer.batch_rows`' default). The
//! decisions are warm (made in a first round) except in `first_sight`. Timed by the bench thread's CPU time
//! (`/proc/thread-self/schedstat`), so other processes on the shared machine do not count.
//!
//! - `none_kept`: a keep set none of the series matches — what every sample costs once anything is kept.
//! - `up_kept`: `up` (what a rule `up == 0` keeps): 1 408 series of 100 000 kept, 1.4 % of the samples.
//! - `all_kept`: `{__name__=~".+"}`: every sample appended to the store (`max_samples` 4 M, so the store
//!   rolls over, as a full one does).
//! - `first_sight`: a fresh `KeptSamples` per round with `up` kept: every series' label set decoded and
//!   matched (per series, the cost of a new series or of a keep-set change).
//!
//! With an empty keep set the feeder subscribes to nothing: ingest pays nothing at all.
//!
//! ```sh
//! cargo bench -p vigil-benches --bench keep_series -- --measurement-time 5
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_benches::{EncodedSeries, series, thread_cpu_ns};
use vigil_ingest::series::{SeriesRegistry, SeriesRegistryConfig};
use vigil_query::{KeptSamples, OwnSeriesConfig, OwnSeriesMetrics, OwnSeriesStore, SampleRows};

const SERIES: usize = 100_000;
const BATCH_ROWS: usize = 8192;
const STEP_MS: i64 = 15_000;

struct Rig {
    registry: SeriesRegistry,
    slots: Vec<u32>,
    times: Vec<i64>,
    values: Vec<f64>,
    next_ms: i64,
}

impl Rig {
    fn new() -> Self {
        let config = SeriesRegistryConfig { max_series: 1 << 20, ..Default::default() };
        let registry = SeriesRegistry::new(&config, "anonymous");
        let tenant = registry.default_tenant();
        let slots = series::generate(SERIES)
            .into_iter()
            .map(|labels| registry.resolve(tenant, EncodedSeries::new(labels).label_bytes()).unwrap().slot)
            .collect();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let values = (0..SERIES).map(|i| series::sample_value(i, 0)).collect();
        Self { registry, slots, times: vec![0; SERIES], values, next_ms: now - 3_600_000 }
    }

    /// One scrape round into `kept`, batch by batch, each flushed.
    fn round(&mut self, kept: &mut KeptSamples) {
        self.times.fill(self.next_ms);
        self.next_ms += STEP_MS;
        let batches =
            self.slots.chunks(BATCH_ROWS).zip(self.times.chunks(BATCH_ROWS)).zip(self.values.chunks(BATCH_ROWS));
        for ((slots, times), values) in batches {
            kept.feed(&self.registry, SampleRows { slots, times, values });
            kept.flush();
        }
    }
}

fn store(keep: &str) -> Arc<OwnSeriesStore> {
    let config = OwnSeriesConfig { keep: vec![keep.to_owned()], max_samples: 4_000_000, ..Default::default() };
    config.validate().unwrap();
    Arc::new(OwnSeriesStore::new(config, OwnSeriesMetrics::default()))
}

/// CPU time of this thread over `iters` runs of `f`.
fn cpu_time(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = thread_cpu_ns(None).unwrap();
    for _ in 0..iters {
        f();
    }
    Duration::from_nanos(thread_cpu_ns(None).unwrap() - start)
}

fn bench(c: &mut Criterion) {
    let mut rig = Rig::new();
    let mut g = c.benchmark_group("keep_series");
    g.throughput(Throughput::Elements(SERIES as u64));
    for (name, keep) in
        [("none_kept", r#"{__name__="no_such_metric"}"#), ("up_kept", "up"), ("all_kept", r#"{__name__=~".+"}"#)]
    {
        let store = store(keep);
        let mut kept = KeptSamples::new(Arc::clone(&store));
        rig.round(&mut kept);
        let (n_kept, seen) = kept.series();
        println!("{name}: {n_kept} of {seen} series kept");
        g.bench_function(name, |b| b.iter_custom(|iters| cpu_time(iters, || rig.round(&mut kept))));
    }
    let store = store("up");
    g.bench_function("first_sight", |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut kept = KeptSamples::new(Arc::clone(&store));
                rig.round(&mut kept);
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);

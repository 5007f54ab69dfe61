//! What the `detect` and `engine` benches share: a running detection engine on a one-shard metrics buffer
//! (so one detection thread, `vigil-detect-0`), fed scrape rounds of Kubernetes-like series by remote write;
//! and Gaussian noise for the series' values.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vigil_benches::{EncodedSeries, encode_request, series};
use vigil_detect::telemetry::ReasonLabels;
use vigil_detect::{DetectConfig, DetectMetrics, Engine, EngineInputs, WriteBack};
use vigil_ingest::buffer::{BufferConfig, MetricsBuffer};
use vigil_ingest::limits::IngestLimits;
use vigil_ingest::remote_write::{RemoteWriteVersion, receive};
use vigil_ingest::series::{MetadataStore, SeriesRegistry, SeriesRegistryConfig, Tenant};

/// A standard normal deviate (Box–Muller).
pub(crate) fn gauss(rng: &mut fastrand::Rng) -> f64 {
    let (u, v) = (rng.f64().max(1e-12), rng.f64());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A running engine on a one-shard buffer, and the series a scraper writes into it.
pub(crate) struct EngineRig {
    runtime: tokio::runtime::Runtime,
    pub(crate) buffer: Arc<MetricsBuffer>,
    registry: Arc<SeriesRegistry>,
    metadata: MetadataStore,
    limits: IngestLimits,
    pub(crate) metrics: DetectMetrics,
    engine: Option<Engine>,
    /// Real label sets (Kubernetes-like, 6 to 9 labels; `job` groups them for the forests).
    series: Vec<EncodedSeries>,
    body: Vec<u8>,
    snappy: snap::raw::Encoder,
}

impl EngineRig {
    /// Starts an engine with `config` on a buffer whose batches seal at `batch_rows` (nothing runs the
    /// periodic sealer here: batches seal when full or by `seal_all`), write-back taken off its channel as
    /// the topology does and discarded; `series` label sets to write.
    pub(crate) fn start(series: usize, batch_rows: usize, config: &DetectConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let buffer =
            MetricsBuffer::new(BufferConfig { shards: 1, batch_rows, max_bytes: 256 << 20, ..BufferConfig::default() });
        let registry = Arc::new(SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous"));
        let metrics = DetectMetrics::default();
        let (tx, mut rx) = mpsc::channel::<WriteBack>(1024);
        let engine = {
            let _enter = runtime.enter();
            runtime.spawn(async move { while rx.recv().await.is_some() {} });
            let inputs = EngineInputs {
                buffer: Arc::clone(&buffer),
                registry: Arc::clone(&registry),
                metrics: metrics.clone(),
                write_back: Some(tx),
                replaying: false,
            };
            Engine::start(config, inputs).unwrap()
        };
        Self {
            runtime,
            buffer,
            registry,
            metadata: MetadataStore::default(),
            limits: IngestLimits::default(),
            metrics,
            engine: Some(engine),
            series: series::generate(series).into_iter().map(EncodedSeries::new).collect(),
            body: Vec::new(),
            snappy: snap::raw::Encoder::new(),
        }
    }

    /// Receives one scrape round, one request: `values[i]` for series i, all at `timestamp_ms`.
    pub(crate) fn write(&mut self, timestamp_ms: i64, values: &[f64]) {
        self.body.clear();
        encode_request(&mut self.body, &self.series, timestamp_ms, |i| values[i]);
        let compressed = self.snappy.compress_vec(&self.body).unwrap();
        let (limits, registry, metadata, buffer) = (&self.limits, &self.registry, &self.metadata, &self.buffer);
        receive(&compressed, RemoteWriteVersion::V1, Tenant::DEFAULT, limits, registry, metadata, buffer).unwrap();
    }

    /// Samples the engine has taken: scored, or skipped for any reason.
    pub(crate) fn seen(&self) -> u64 {
        let skipped: u64 = ["out_of_order", "not_finite"]
            .into_iter()
            .map(|reason| self.metrics.samples_skipped.get_or_create(&ReasonLabels { reason }).get())
            .sum();
        self.metrics.samples_scored.get() + skipped
    }

    /// Waits until the engine has taken `target` samples, or panics after `timeout`.
    pub(crate) fn wait_for(&self, target: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.seen() < target {
            assert!(Instant::now() < deadline, "the engine took {} of {target} samples in {timeout:?}", self.seen());
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Closes the buffer and waits for the engine's threads.
    pub(crate) fn stop(mut self) {
        self.buffer.close();
        if let Some(engine) = self.engine.take() {
            self.runtime.block_on(engine.join());
        }
    }
}

//! The one place where stages are built from a validated [`Config`] and connected.
//!
//! Start order: buffers and registry → detection engine (reading the metrics buffer, write-back held) →
//! write-ahead logs (opened and repaired) → forwarders (each resumes at its position in its log) → HTTP and
//! gRPC servers → replay of the logs' recent part into the buffers, after which readiness turns green and
//! scores are written back. Stop order, all within `server.shutdown_timeout`: stop accepting and finish
//! in-flight requests → close the metrics buffer, let detection score it to the end and log its last scores →
//! close the logs → forwarders deliver to the end of their log and stop (what they do not deliver in time
//! stays in the log for the next start).

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use vigil_detect::traces::Sources;
use vigil_detect::{CorrelateInputs, CorrelateMetrics, Correlator, DetectMetrics, Engine, EngineInputs, WriteBack};
use vigil_forward::send::Target;
use vigil_forward::telemetry::ForwardMetrics;
use vigil_forward::victoriametrics::{self, ForwarderHandle};
use vigil_forward::{Destination, ForwardMode};
use vigil_ingest::buffer::{LogsBuffer, MetricsBuffer, SpansBuffer};
use vigil_ingest::loki::{self, LokiState};
use vigil_ingest::otlp::logs::OtlpLogsState;
use vigil_ingest::otlp::traces::{self, OtlpTracesState};
use vigil_ingest::otlp::{self, OtlpHttpState};
use vigil_ingest::own_series::OwnSeriesSink;
use vigil_ingest::remote_write::{self, RemoteWriteState};
use vigil_ingest::series::{MetadataStore, SeriesRegistry};
use vigil_ingest::telemetry::{IngestMetrics, ProtocolLabels};
use vigil_ingest::wal::replay as wal_replay;
use vigil_ingest::wal::{Consumer, Wal};
use vigil_proto::alertmanager::AlertBatch;
use vigil_query::alerting::{AlertingApi, AlertingHandle, AlertingInputs, AlertingMetrics};

use vigil_query::{
    AnomalyApi, BackendStatus, CorrelateApi, OwnSeriesMetrics, OwnSeriesStore, PromApi, ReadinessState, ReplayReport,
    SelfMetrics,
};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("listening on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("creating data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    #[error("invalid forwarder: {0}")]
    Forwarder(String),
    #[error("{0}")]
    Wal(vigil_ingest::wal::OpenError),
    #[error("{0}")]
    Detect(vigil_detect::engine::EngineError),
    #[error("{0}")]
    Correlate(vigil_detect::incidents::CorrelateError),
    #[error("{0}")]
    Alerting(vigil_query::alerting::AlertingError),
    #[error("could not start the keep-series thread: {0}")]
    KeepSeries(std::io::Error),
}

/// Forwarders being started, and what readiness will report of them.
struct Wiring {
    mode: ForwardMode,
    forwarders: Vec<ForwarderHandle>,
    backends: Vec<BackendStatus>,
}

impl Wiring {
    /// One forwarder per destination of a kind: each URL alone (`replicate`: every URL gets everything,
    /// from its own log position), or all of them as a primary and standbys in listed order (`failover`:
    /// one position, the first entry's settings).
    fn spawn<C: Destination>(
        &mut self,
        kind: &'static str,
        configs: &[C],
        wal: &Wal,
        start: impl Fn(&C, Vec<Target>, Consumer) -> ForwarderHandle,
    ) -> Result<(), RunError> {
        let groups: Vec<&[C]> = match self.mode {
            ForwardMode::Replicate => configs.chunks(1).collect(),
            ForwardMode::Failover => vec![configs].into_iter().filter(|g| !g.is_empty()).collect(),
        };
        for group in groups {
            let targets = group.iter().map(C::target).collect::<Result<Vec<_>, _>>().map_err(RunError::Forwarder)?;
            // Named by the primary alone: adding or changing standbys, or switching between `replicate` and
            // `failover`, keeps the primary's position (and so its backlog).
            let consumer = wal.consumer(&consumer_name(kind, group[0].url()));
            let handle = start(&group[0], targets, consumer.clone());
            self.backends.push(BackendStatus {
                kind,
                mode: self.mode.as_str(),
                url: handle.url.clone(),
                consumer: Some(consumer),
                targets: handle.targets.clone(),
            });
            self.forwarders.push(handle);
        }
        Ok(())
    }
}

/// A forwarder's name in the log: its kind and a hash of its URL, so the same destination resumes at its
/// position after a restart and a changed URL starts afresh.
fn consumer_name(kind: &str, url: &str) -> String {
    format!("{kind}-{:016x}", xxhash_rust::xxh3::xxh3_64(url.as_bytes()))
}

pub(crate) async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    std::fs::create_dir_all(&config.server.data_dir)
        .map_err(|source| RunError::DataDir { path: config.server.data_dir.display().to_string(), source })?;

    let mut registry = Registry::default();
    let ingest_metrics = IngestMetrics::new(&mut registry);
    let forward_metrics = ForwardMetrics::new(&mut registry);
    let detect_metrics = DetectMetrics::new(&mut registry);
    let correlate_metrics = CorrelateMetrics::new(&mut registry);
    // Vigil's own series for the Prometheus API, fed by the write-back loop below.
    let own_series = Arc::new(OwnSeriesStore::new(config.own_series.clone(), OwnSeriesMetrics::new(&mut registry)));

    let buffer = MetricsBuffer::new(config.buffer.clone());
    let series = Arc::new(SeriesRegistry::new(&config.series, &config.tenancy.default_tenant));
    let metadata = Arc::new(MetadataStore::default());
    let metadata_for_replay = Arc::clone(&metadata);
    let metadata_for_scrape = Arc::clone(&metadata);
    let sealer = tokio::spawn(Arc::clone(&buffer).run_sealer());
    let spans = SpansBuffer::new(config.spans_buffer.clone());
    let spans_sealer = tokio::spawn(Arc::clone(&spans).run_sealer());
    let logs = LogsBuffer::new(config.logs_buffer.clone());
    let logs_sealer = tokio::spawn(Arc::clone(&logs).run_sealer());
    // Scores on their way back into the metrics path; bounded, the engine drops (and counts) rather than wait.
    let (scores_tx, scores_rx) = mpsc::channel::<WriteBack>(WRITE_BACK_QUEUE);
    let engine = if config.detect.enabled {
        let inputs = EngineInputs {
            buffer: Arc::clone(&buffer),
            registry: Arc::clone(&series),
            metrics: detect_metrics.clone(),
            write_back: Some(scores_tx),
            replaying: true,
        };
        Some(Engine::start(&config.detect, inputs).map_err(RunError::Detect)?)
    } else {
        drop(scores_tx);
        None
    };
    let detect = engine.as_ref().map(Engine::handle);
    // Span RED and service-graph series on their way into the metrics path, like the scores.
    let (derived_tx, derived_rx) = mpsc::channel::<WriteBack>(WRITE_BACK_QUEUE);
    let correlator = if config.correlate.enabled {
        let inputs = CorrelateInputs {
            sources: Sources {
                spans: Arc::clone(&spans),
                logs: Arc::clone(&logs),
                metrics: Arc::clone(&buffer),
                registry: Arc::clone(&series),
            },
            detect: detect.clone(),
            metrics: correlate_metrics.clone(),
            write_back: Some(derived_tx),
            replaying: true,
        };
        Some(Correlator::start(&config.correlate, inputs).map_err(RunError::Correlate)?)
    } else {
        drop(derived_tx);
        None
    };
    let correlate = correlator.as_ref().map(Correlator::handle);
    // Ingested series the own-series store keeps (`own_series.keep`, the threshold rules' selectors).
    let keep_feeder = crate::keep_series::start(&buffer, &series, &own_series).map_err(RunError::KeepSeries)?;

    // One byte total for every log: `wal.max_bytes` bounds them together.
    let wal_bytes = Arc::new(AtomicU64::new(0));
    let open_wal = |signal: &'static str| -> Result<Arc<Wal>, RunError> {
        let dir = config.server.data_dir.join("wal").join(signal);
        let (wal, report) =
            Wal::open(&dir, signal, &config.wal, &config.queue, Arc::clone(&wal_bytes)).map_err(RunError::Wal)?;
        tracing::info!(
            log = signal,
            segments = report.segments,
            records = report.records,
            damaged = report.damage.len(),
            "Write-ahead log opened (newest segment checked)."
        );
        let wal = Arc::new(wal);
        let verify = Arc::clone(&wal);
        std::thread::Builder::new()
            .name(format!("wal-verify-{signal}"))
            .spawn(move || {
                let damaged = verify.verify_sealed_segments().len();
                tracing::info!(log = signal, damaged, "Checked the log's older segments.");
            })
            .map_err(|source| RunError::Wal(vigil_ingest::wal::OpenError::new(&dir, source)))?;
        Ok(wal)
    };
    let (metrics_wal, logs_wal, spans_wal) = (open_wal("metrics")?, open_wal("logs")?, open_wal("spans")?);
    // Alerts are only delivered, never replayed (no buffer): `crate::alerts`.
    let alerts_wal = open_wal("alerts")?;
    // Replay stops here: what is written from now on goes into the buffers directly.
    let replay_until = [metrics_wal.head(), logs_wal.head(), spans_wal.head()];

    let client = vigil_forward::http::client();
    let mut wiring = Wiring { mode: config.forward.mode, forwarders: Vec::new(), backends: Vec::new() };
    let metrics_m = forward_metrics.clone();
    let c = client.clone();
    wiring.spawn("victoriametrics", &config.forward.victoriametrics, &metrics_wal, |vm, targets, consumer| {
        victoriametrics::spawn(vm, targets, consumer, c.clone(), metrics_m.clone())
    })?;
    let c = client.clone();
    let metrics_t = forward_metrics.clone();
    wiring.spawn("tempo", &config.forward.tempo, &spans_wal, |tempo, targets, consumer| {
        vigil_forward::tempo::spawn(tempo, targets, consumer, c.clone(), metrics_t.clone())
    })?;
    let c = client.clone();
    let metrics_l = forward_metrics.clone();
    wiring.spawn("loki", &config.forward.loki, &logs_wal, |loki, targets, consumer| {
        vigil_forward::loki::spawn(loki, targets, consumer, c.clone(), metrics_l.clone())
    })?;
    let (c, metrics_a) = (client.clone(), forward_metrics.clone());
    wiring.spawn("alertmanager", &config.forward.alertmanager, &alerts_wal, |am, targets, consumer| {
        vigil_forward::alertmanager::spawn(am, targets, consumer, c.clone(), metrics_a.clone())
    })?;
    let Wiring { mut forwarders, backends, .. } = wiring;
    for wal in [&metrics_wal, &spans_wal, &logs_wal, &alerts_wal] {
        wal.forget_other_consumers();
    }
    let wals = vec![Arc::clone(&metrics_wal), Arc::clone(&logs_wal), Arc::clone(&spans_wal), Arc::clone(&alerts_wal)];
    // The rule evaluator sends each tenant's alerts of an evaluation on `alerts_tx`, into the alerts log.
    let alerts_tx: mpsc::Sender<AlertBatch> = crate::alerts::spawn_alert_log(Arc::clone(&alerts_wal), &mut registry);
    let alerting = if config.alerting.enabled {
        let inputs = AlertingInputs {
            store: Arc::clone(&own_series),
            detect: detect.clone(),
            correlate: correlate.clone(),
            alerts: alerts_tx,
            metrics: AlertingMetrics::new(&mut registry),
            default_tenant: config.tenancy.default_tenant.clone(),
        };
        Some(Arc::new(AlertingHandle::start(config.alerting.clone(), inputs).map_err(RunError::Alerting)?))
    } else {
        None
    };

    let readiness = Arc::new(ReadinessState::new(Arc::clone(&buffer), wals.clone(), backends));
    let self_metrics = {
        let (m, b, s) = (ingest_metrics.clone(), Arc::clone(&buffer), Arc::clone(&series));
        let (l, sp, w, md) = (Arc::clone(&logs), Arc::clone(&spans), wals.clone(), Arc::clone(&metadata_for_scrape));
        let refresh = move || {
            m.observe_state(&b, &s, &md);
            for wal in &w {
                m.observe_wal(wal);
            }
            m.observe_buffer("logs", &l);
            m.observe_buffer("spans", &sp);
        };
        Arc::new(SelfMetrics { registry, before_scrape: Box::new(refresh) })
    };
    // `vigil_*` into the own-series store too, so Grafana can chart Vigil through its Prometheus API.
    let self_recorder = (!config.own_series.self_metrics_interval.is_zero()).then(|| {
        tokio::spawn(crate::own_series::record_self_metrics(
            Arc::clone(&self_metrics),
            own_series.clone(),
            config.tenancy.default_tenant.clone(),
            config.own_series.self_metrics_interval,
        ))
    });
    // One samples-per-second budget per tenant, shared by remote write and OTLP metrics (HTTP and gRPC).
    let rate_limit = Arc::new(vigil_ingest::rate_limit::SampleRateLimiter::new(&config.limits));
    let rw_state = Arc::new(RemoteWriteState {
        config: config.remote_write.clone(),
        limits: config.limits.clone(),
        series: Arc::clone(&series),
        metadata,
        buffer: Arc::clone(&buffer),
        metrics: ingest_metrics,
        wal: Some(Arc::clone(&metrics_wal)),
        rate_limit: Arc::clone(&rate_limit),
    });
    let own: Arc<dyn OwnSeriesSink> = own_series.clone();
    let own_derived: Arc<dyn OwnSeriesSink> = own_series.clone();
    let derived = tokio::spawn(crate::correlate::write_back_derived(
        derived_rx,
        Arc::clone(&rw_state),
        correlate_metrics,
        own_derived,
    ));
    let write_back = tokio::spawn(write_back_scores(scores_rx, Arc::clone(&rw_state), detect_metrics, own));
    let otlp_state = Arc::new(OtlpHttpState {
        limits: config.limits.clone(),
        series: Arc::clone(&series),
        buffer: Arc::clone(&buffer),
        metrics: rw_state.metrics.clone(),
        retry_after_seconds: config.remote_write.retry_after_seconds,
        // One running total per delta stream; bounded like the series registry, a fraction of it.
        deltas: otlp::DeltaToCumulative::new((config.series.max_series / 10).max(10_000) as usize),
        wal: Some(Arc::clone(&metrics_wal)),
        rate_limit,
    });
    let traces_state = Arc::new(OtlpTracesState {
        limits: config.limits.clone(),
        spans: Arc::clone(&spans),
        metrics: rw_state.metrics.clone(),
        retry_after_seconds: config.remote_write.retry_after_seconds,
        default_tenant: config.tenancy.default_tenant.clone(),
        wal: Some(Arc::clone(&spans_wal)),
    });
    let logs_state = Arc::new(OtlpLogsState {
        limits: config.limits.clone(),
        logs: Arc::clone(&logs),
        metrics: rw_state.metrics.clone(),
        retry_after_seconds: config.remote_write.retry_after_seconds,
        default_tenant: config.tenancy.default_tenant.clone(),
        stream_label_attributes: otlp::logs::default_stream_label_attributes(),
        wal: Some(Arc::clone(&logs_wal)),
    });
    let loki_state = Arc::new(LokiState {
        config: config.loki.clone(),
        default_tenant: config.tenancy.default_tenant.clone(),
        limits: config.limits.clone(),
        logs: Arc::clone(&logs),
        metrics: rw_state.metrics.clone(),
        wal: Some(Arc::clone(&logs_wal)),
    });
    let grpc_app = tonic::service::Routes::new(otlp::metrics_service(Arc::clone(&otlp_state)))
        .add_service(traces::traces_service(Arc::clone(&traces_state)))
        .add_service(otlp::logs::logs_service(Arc::clone(&logs_state)))
        .into_axum_router();
    let grpc_app = otlp::decode_errors_as_invalid_argument(grpc_app);
    let app = remote_write::router(rw_state)
        .merge(otlp::router(otlp_state))
        .merge(traces::traces_router(traces_state))
        .merge(otlp::logs::logs_router(logs_state))
        .merge(loki::router(loki_state))
        .merge(vigil_query::router(Arc::clone(&readiness), self_metrics))
        .merge(vigil_query::correlate_router(Arc::new(CorrelateApi {
            correlate: correlate.clone(),
            default_tenant: config.tenancy.default_tenant.clone(),
        })))
        .merge(vigil_query::anomalies_router(Arc::new(AnomalyApi {
            detect: detect.clone(),
            default_tenant: config.tenancy.default_tenant.clone(),
        })))
        .merge(vigil_query::sql_router(Arc::new(vigil_query::SqlApi::new(
            detect.clone(),
            correlate.clone(),
            Arc::clone(&logs),
            Arc::clone(&spans),
            config.tenancy.default_tenant.clone(),
        ))))
        .merge(vigil_query::alerting::alerting_router(Arc::new(AlertingApi {
            alerting: alerting.clone(),
            default_tenant: config.tenancy.default_tenant.clone(),
        })))
        .merge(vigil_query::prom_api_router(Arc::new(PromApi::new(own_series, config.tenancy.default_tenant.clone()))));

    let addr = config.server.http_listen.clone();
    let listener = TcpListener::bind(&addr).await.map_err(|source| RunError::Bind { addr: addr.clone(), source })?;
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(addr);
    let grpc_addr = config.server.grpc_listen.clone();
    let grpc_listener =
        TcpListener::bind(&grpc_addr).await.map_err(|source| RunError::Bind { addr: grpc_addr.clone(), source })?;

    // One shutdown signal, fanned out to both servers.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let grpc_server = tokio::spawn(
        axum::serve(grpc_listener, grpc_app).with_graceful_shutdown(stopped(stop_rx.clone())).into_future(),
    );
    // Replay runs while the servers already answer: liveness at once, readiness once it is done.
    // Detached: a stop during replay does not wait for it (it only fills the detection window).
    let _replay = {
        let (mw, lw, sw) = (Arc::clone(&metrics_wal), Arc::clone(&logs_wal), Arc::clone(&spans_wal));
        let (series, metadata, buffer) = (Arc::clone(&series), Arc::clone(&metadata_for_replay), Arc::clone(&buffer));
        let (logs, spans, readiness) = (Arc::clone(&logs), Arc::clone(&spans), Arc::clone(&readiness));
        let (detect, correlate) = (detect.clone(), correlate.clone());
        let sizes = [config.buffer.max_bytes, config.logs_buffer.max_bytes, config.spans_buffer.max_bytes];
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let [m_until, l_until, s_until] = replay_until;
            let replayed = [
                ("metrics", wal_replay::metrics(&mw, sizes[0], m_until, &series, &metadata, &buffer)),
                ("logs", wal_replay::logs(&lw, sizes[1], l_until, &logs)),
                ("spans", wal_replay::spans(&sw, sizes[2], s_until, &spans)),
            ];
            let reports = replayed
                .into_iter()
                .map(|(signal, r)| {
                    tracing::info!(
                        log = signal,
                        records = r.records,
                        rows = r.rows,
                        skipped = r.skipped,
                        "Replayed the log into the buffer."
                    );
                    ReplayReport { signal, records: r.records, rows: r.rows, skipped: r.skipped }
                })
                .collect();
            let seconds = started.elapsed().as_secs_f64();
            readiness.replay_done(reports, seconds);
            if let Some(detect) = &detect {
                detect.replay_done();
            }
            if let Some(correlate) = &correlate {
                correlate.replay_done();
            }
            tracing::info!(seconds, "Start-up replay done; ready.");
        })
    };
    tracing::info!(
        http = %local,
        grpc = %grpc_addr,
        forwarders = forwarders.len(),
        buffer_max_bytes = config.buffer.max_bytes,
        shards = buffer.shard_count(),
        "Vigil is serving."
    );
    if forwarders.is_empty() {
        tracing::info!("No forwarder configured: writes are kept in the buffer only (see --forward-victoriametrics).");
    }

    let http_server =
        tokio::spawn(axum::serve(listener, app).with_graceful_shutdown(stopped(stop_rx.clone())).into_future());
    stopped(stop_rx).await;
    // Everything from here on, in-flight requests included, fits in `server.shutdown_timeout`.
    let deadline = tokio::time::Instant::now() + config.server.shutdown_timeout;
    tracing::info!(timeout = ?config.server.shutdown_timeout, "Stopping: finishing in-flight requests.");
    let mut served = Ok(());
    match tokio::time::timeout_at(deadline, async { (http_server.await, grpc_server.await) }).await {
        Ok((http, grpc)) => {
            if let Ok(Err(e)) = grpc {
                tracing::warn!(error = %e, "The gRPC server stopped with an error.");
            }
            if let Ok(result) = http {
                served = result;
            }
        }
        Err(_) => tracing::warn!("In-flight requests did not finish in time; they were not acknowledged."),
    }
    tracing::info!("Stopped accepting requests; forwarding what is logged.");
    readiness.stopping();
    // Detection reads the metrics buffer to its end, and its last scores go into the log before it closes.
    buffer.seal_all();
    buffer.close();
    keep_feeder.stop();
    if let Some(engine) = engine
        && tokio::time::timeout_at(deadline, engine.join()).await.is_err()
    {
        tracing::warn!("Detection did not finish scoring the buffer in time.");
    }
    if tokio::time::timeout_at(deadline, write_back).await.is_err() {
        tracing::warn!("The last scores were not written back in time.");
    }
    // The last evaluation's alerts go into the alerts log before it closes.
    if let Some(alerting) = alerting {
        let stopped = tokio::task::spawn_blocking(move || alerting.stop());
        if tokio::time::timeout_at(deadline, stopped).await.is_err() {
            tracing::warn!("Alert rules did not finish their evaluation in time.");
        }
    }
    // Everything acknowledged is in the log; closing it lets each forwarder deliver to its end and stop.
    for wal in &wals {
        wal.close();
    }
    spans.seal_all();
    spans.close();
    logs.seal_all();
    logs.close();
    // Correlation reads spans and logs to their end; its last windows find the metrics path closed (counted).
    if let Some(correlator) = correlator
        && tokio::time::timeout_at(deadline, correlator.stop()).await.is_err()
    {
        tracing::warn!("Correlation did not finish in time.");
    }
    derived.abort();
    sealer.abort();
    spans_sealer.abort();
    if let Some(recorder) = &self_recorder {
        recorder.abort();
    }
    logs_sealer.abort();
    let drain = async {
        for f in &mut forwarders {
            f.join().await;
        }
    };
    if tokio::time::timeout_at(deadline, drain).await.is_err() {
        tracing::warn!(timeout = ?config.server.shutdown_timeout, "Forwarders did not deliver everything in time; the rest stays in the log for the next start.");
        for f in &forwarders {
            f.abort();
        }
    }
    served.map_err(RunError::Serve)
}

/// Write-back bodies waiting for the receiver, at most. A body is one buffer batch's scores of one tenant
/// (up to 4 MiB before compression), so this bounds the queue's memory to a few tens of MiB.
const WRITE_BACK_QUEUE: usize = 32;
/// Write-back requests waiting for their log sync at once; more wait for the oldest first.
const WRITE_BACK_IN_FLIGHT: usize = 16;

/// Feeds the engine's scores to the remote-write receiver, so they are logged, buffered and forwarded like
/// any other series (and counted as `vigil_ingest_samples_total{protocol="anomaly_writeback"}`). A body the
/// metrics path refuses (log full, series limits) is dropped and counted, never retried: the next batch's
/// scores are as good. Every body also goes to `own` (the store behind the Prometheus API), whatever the
/// metrics path answers.
async fn write_back_scores(
    mut scores: mpsc::Receiver<WriteBack>,
    into: Arc<RemoteWriteState>,
    metrics: DetectMetrics,
    own: Arc<dyn OwnSeriesSink>,
) {
    let mut syncing = tokio::task::JoinSet::new();
    let mut last_warning: Option<std::time::Instant> = None;
    let max_bytes = usize::try_from(into.limits.max_decompressed_bytes).unwrap_or(usize::MAX);
    while let Some(wb) = scores.recv().await {
        match crate::own_series::decode_write_back(&wb.body, max_bytes) {
            Ok(series) => own.append(&wb.tenant, series),
            Err(error) => {
                tracing::error!(%error, "A write-back body could not be read for the own-series store. This is a bug.")
            }
        }
        let received = log_scores(&into, &wb);
        match received {
            Ok(r) => {
                into.metrics
                    .samples
                    .get_or_create(&ProtocolLabels { protocol: "anomaly_writeback" })
                    .inc_by(r.counts.samples);
                if let Some(durable) = r.durable {
                    while syncing.len() >= WRITE_BACK_IN_FLIGHT {
                        syncing.join_next().await;
                    }
                    let (metrics, samples) = (metrics.clone(), wb.samples);
                    syncing.spawn(async move {
                        if durable.durable().await.is_err() {
                            metrics.writeback_dropped("log_failed", samples);
                        }
                    });
                }
            }
            Err(error) => {
                metrics.writeback_dropped("refused", wb.samples);
                if last_warning.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
                    last_warning = Some(std::time::Instant::now());
                    tracing::warn!(%error, "The metrics path refused scores for write-back; they are dropped (see vigil_detect_writeback_dropped_samples_total).");
                }
            }
        }
    }
    while syncing.join_next().await.is_some() {}
}

/// One body of scores into the metrics log and buffer, as a remote-write request of its tenant would go.
pub(crate) fn log_scores(into: &RemoteWriteState, wb: &WriteBack) -> Result<remote_write::Received, String> {
    let tenant = into.series.tenant(&wb.tenant).map_err(|e| e.to_string())?;
    if let Some(wal) = &into.wal {
        wal.admit().map_err(|e| e.to_string())?;
    }
    let destination = remote_write::Destination {
        limits: &into.limits,
        series: &into.series,
        metadata: &into.metadata,
        buffer: &into.buffer,
        wal: into.wal.as_deref(),
        rate_limit: None,
    };
    remote_write::receive_logged(&wb.body, remote_write::RemoteWriteVersion::V1, tenant, &destination)
        .map_err(|e| e.to_string())
}

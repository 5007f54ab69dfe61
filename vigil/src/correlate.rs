//! Correlation's derived series (span RED, service graph) into the metrics path, as the engine's scores go
//! (see `write_back_scores` in `topology.rs`): each body through the remote-write receiver with its tenant
//! (logged, buffered, forwarded, scored by the engine) and into the own-series store behind the Prometheus
//! API, counted as `vigil_ingest_samples_total{protocol="span_metrics"}`. Refused bodies are dropped and
//! counted, never retried: the next window's samples are as good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use vigil_detect::{CorrelateMetrics, WriteBack};
use vigil_ingest::own_series::OwnSeriesSink;
use vigil_ingest::remote_write::RemoteWriteState;
use vigil_ingest::telemetry::ProtocolLabels;

/// Requests waiting for their log sync at once; more wait for the oldest first.
const IN_FLIGHT: usize = 16;

pub(crate) async fn write_back_derived(
    mut bodies: mpsc::Receiver<WriteBack>,
    into: Arc<RemoteWriteState>,
    metrics: CorrelateMetrics,
    own: Arc<dyn OwnSeriesSink>,
) {
    let mut syncing = tokio::task::JoinSet::new();
    let mut last_warning: Option<Instant> = None;
    let max_bytes = usize::try_from(into.limits.max_decompressed_bytes).unwrap_or(usize::MAX);
    while let Some(wb) = bodies.recv().await {
        match crate::own_series::decode_write_back(&wb.body, max_bytes) {
            Ok(series) => own.append(&wb.tenant, series),
            Err(error) => {
                tracing::error!(%error, "A derived-series body could not be read for the own-series store. This is a bug.")
            }
        }
        match crate::topology::log_scores(&into, &wb) {
            Ok(r) => {
                into.metrics
                    .samples
                    .get_or_create(&ProtocolLabels { protocol: "span_metrics" })
                    .inc_by(r.counts.samples);
                if let Some(durable) = r.durable {
                    while syncing.len() >= IN_FLIGHT {
                        syncing.join_next().await;
                    }
                    let (metrics, samples) = (metrics.clone(), wb.samples);
                    syncing.spawn(async move {
                        if durable.durable().await.is_err() {
                            metrics.derived_dropped("log_failed", samples);
                        }
                    });
                }
            }
            Err(error) => {
                metrics.derived_dropped("refused", wb.samples);
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(%error, "The metrics path refused span-derived series; they are dropped (see vigil_correlate_derived_dropped_samples_total).");
                }
            }
        }
    }
    while syncing.join_next().await.is_some() {}
}

//! Vigil's own metrics about detection, exposed on `/metrics` as `vigil_detect_*`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

/// Cheap to clone: every field is a shared handle.
#[derive(Debug, Clone, Default)]
pub struct DetectMetrics {
    /// Series with detector state now.
    pub series: Gauge,
    pub samples_scored: Counter,
    /// Samples read but not scored: `out_of_order` (not newer than the series' last), `not_finite`.
    pub samples_skipped: Family<ReasonLabels, Counter>,
    /// Anomaly events opened.
    pub anomalies: Counter,
    /// Series not scored because `detect.max_series` was reached.
    pub series_dropped: Counter,
    /// Sealed batches the engine missed because the buffer evicted them before it read them.
    pub lagged_batches: Counter,
    /// Scores written back into the metrics path (four series per scored sample count once).
    pub writeback_samples: Counter,
    /// Scored samples whose write-back was given up: `queue_full`, `refused` (the metrics path refused it).
    pub writeback_dropped: Family<ReasonLabels, Counter>,
}

impl DetectMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("vigil_detect");
        r.register("series", "Series with detector state", m.series.clone());
        r.register("samples_scored", "Samples scored", m.samples_scored.clone());
        r.register("samples_skipped", "Samples not scored, by reason", m.samples_skipped.clone());
        r.register("anomalies", "Anomaly events opened", m.anomalies.clone());
        r.register(
            "series_dropped",
            "Series not scored because `detect.max_series` was reached",
            m.series_dropped.clone(),
        );
        r.register("lagged_batches", "Buffer batches evicted before the engine read them", m.lagged_batches.clone());
        r.register("writeback_samples", "Scored samples written back as anomaly_* series", m.writeback_samples.clone());
        r.register(
            "writeback_dropped_samples",
            "Scored samples whose anomaly_* series were not written back, by reason",
            m.writeback_dropped.clone(),
        );
        m
    }

    pub(crate) fn skipped(&self, reason: &'static str) -> Counter {
        self.samples_skipped.get_or_create(&ReasonLabels { reason }).clone()
    }

    /// Counts scored samples whose write-back was given up.
    pub fn writeback_dropped(&self, reason: &'static str, samples: u64) {
        self.writeback_dropped.get_or_create(&ReasonLabels { reason }).inc_by(samples);
    }
}

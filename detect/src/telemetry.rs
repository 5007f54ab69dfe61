//! Vigil's own metrics about detection, exposed on `/metrics` as `vigil_detect_*`.

use std::sync::atomic::AtomicU64;

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
    /// Series not scored because `detect.max_series` was reached (a series is counted again each time
    /// forgotten series free room and it is still over the cap).
    pub series_dropped: Counter,
    /// Series forgotten after `detect.forget_after` without a sample.
    pub series_forgotten: Counter,
    /// Sealed batches the engine missed because the buffer evicted them before it read them.
    pub lagged_batches: Counter,
    /// Scores written back into the metrics path (four series per scored sample count once).
    pub writeback_samples: Counter,
    /// Scored samples whose write-back was given up: `queue_full`, `refused` (the metrics path refused it).
    pub writeback_dropped: Family<ReasonLabels, Counter>,
    /// Group isolation forests refitted, and the seconds their fits and calibrations took.
    pub iforest_refits: Counter,
    pub iforest_refit_seconds: Counter<f64, AtomicU64>,
    /// Refits that failed (the group keeps its last model).
    pub iforest_refit_errors: Counter,
    /// Groups with an isolation forest (or waiting for their first fit).
    pub iforest_groups: Gauge,
    /// Series scored without a group forest because `detect.iforest.max_groups` was reached.
    pub iforest_groups_dropped: Counter,
    /// Samples the group forest scored > 1.
    pub iforest_anomalous: Counter,
    /// Comparisons of sibling series (one per `detect.peers.interval`).
    pub peers_comparisons: Counter,
    /// Sets of at least three siblings compared last time.
    pub peers_sets: Gauge,
    /// Series found unlike their siblings, summed over comparisons.
    pub peers_outliers: Counter,
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
        r.register(
            "series_forgotten",
            "Series whose state was dropped after `detect.forget_after` without a sample",
            m.series_forgotten.clone(),
        );
        r.register("lagged_batches", "Buffer batches evicted before the engine read them", m.lagged_batches.clone());
        r.register("writeback_samples", "Scored samples written back as anomaly_* series", m.writeback_samples.clone());
        r.register(
            "writeback_dropped_samples",
            "Scored samples whose anomaly_* series were not written back, by reason",
            m.writeback_dropped.clone(),
        );
        r.register("iforest_refits", "Group isolation forests refitted", m.iforest_refits.clone());
        r.register(
            "iforest_refit_seconds",
            "Seconds spent fitting and calibrating group isolation forests",
            m.iforest_refit_seconds.clone(),
        );
        r.register("iforest_refit_errors", "Group isolation forest refits that failed", m.iforest_refit_errors.clone());
        r.register("iforest_groups", "Groups of series with an isolation forest", m.iforest_groups.clone());
        r.register(
            "iforest_groups_dropped",
            "Series scored without a group forest because `detect.iforest.max_groups` was reached",
            m.iforest_groups_dropped.clone(),
        );
        r.register(
            "iforest_anomalous_samples",
            "Samples the group isolation forest scored > 1",
            m.iforest_anomalous.clone(),
        );
        r.register("peers_comparisons", "Comparisons of sibling series", m.peers_comparisons.clone());
        r.register("peers_sets", "Sets of sibling series compared last time", m.peers_sets.clone());
        r.register("peers_outliers", "Series found unlike their siblings", m.peers_outliers.clone());
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

//! Vigil's own metrics about forwarding.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub backend: &'static str,
    /// Redacted: no credentials, no query string.
    pub url: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub backend: &'static str,
    pub url: String,
    pub outcome: &'static str,
}

#[derive(Debug, Clone)]
pub struct ForwardMetrics {
    pub samples: Family<BackendLabels, Counter>,
    pub exemplars: Family<BackendLabels, Counter>,
    pub histograms: Family<BackendLabels, Counter>,
    pub dropped_samples: Family<BackendLabels, Counter>,
    pub requests: Family<OutcomeLabels, Counter>,
    pub duration: Family<BackendLabels, Histogram>,
    /// Bytes of write-ahead log acknowledged but not yet delivered to a backend.
    pub queue_bytes: Family<BackendLabels, Gauge>,
    /// Per URL: 0 closed, 1 open, 2 half-open (a probe is on its way).
    pub breaker_state: Family<BackendLabels, Gauge>,
}

impl ForwardMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            samples: Family::default(),
            exemplars: Family::default(),
            histograms: Family::default(),
            dropped_samples: Family::default(),
            requests: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_5, 2.0, 16))),
            queue_bytes: Family::default(),
            breaker_state: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("vigil_forward");
        r.register("samples", "Samples delivered to a backend", m.samples.clone());
        r.register("exemplars", "Exemplars delivered to a backend", m.exemplars.clone());
        r.register("histograms", "Native histogram samples delivered to a backend", m.histograms.clone());
        r.register("dropped_samples", "Samples a backend rejected for good (400/409/415)", m.dropped_samples.clone());
        r.register(
            "requests",
            "Requests sent to a backend, by outcome (delivered, rejected, retry, error)",
            m.requests.clone(),
        );
        r.register("request_duration_seconds", "Time a backend took to answer", m.duration.clone());
        r.register("queue_bytes", "Log bytes acknowledged but not yet delivered to a backend", m.queue_bytes.clone());
        r.register(
            "breaker_state",
            "Circuit breaker of a backend URL: 0 closed, 1 open, 2 half-open",
            m.breaker_state.clone(),
        );
        m
    }
}

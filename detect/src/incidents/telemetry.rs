//! Vigil's own metrics about correlation, exposed on `/metrics` as `vigil_correlate_*`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vigil_ingest::telemetry::SignalLabels;

use crate::telemetry::ReasonLabels;

/// Cheap to clone: every field is a shared handle.
#[derive(Debug, Clone, Default)]
pub struct CorrelateMetrics {
    /// Rows read: `signal="spans"`, `"logs"`, `"exemplars"` (exemplars with a trace id).
    pub rows: Family<SignalLabels, Counter>,
    /// Buffer batches evicted before correlation read them, per signal.
    pub lagged_batches: Family<SignalLabels, Counter>,
    /// Spans left out of the RED series or rows left out of the index: `late`, `future`,
    /// `operations_cap` (`red.max_operations`), `names_cap_or_malformed` (too many tenant or service names, or ids a receiver should have refused).
    pub skipped: Family<ReasonLabels, Counter>,
    pub index_traces: Gauge,
    pub index_refs: Gauge,
    /// Traces the index forgot: `space` (`index.max_traces`/`max_refs`) or `retention` (batches evicted).
    pub index_evicted: Family<ReasonLabels, Counter>,
    pub red_operations: Gauge,
    pub graph_edges: Gauge,
    pub graph_pending: Gauge,
    /// Spans that gave up waiting for the other side of their call, and calls of edges over `max_edges`.
    pub graph_unmatched: Counter,
    pub graph_dropped_calls: Counter,
    /// Derived samples (RED and service-graph series) handed to the metrics path.
    pub derived_samples: Counter,
    /// Derived samples given up: `queue_full`, `closed`, `refused`.
    pub derived_dropped: Family<ReasonLabels, Counter>,
    pub incidents_opened: Counter,
    pub incidents_resolved: Counter,
    pub incidents_merged: Counter,
    pub incidents_open: Gauge,
    /// Anomalies that would have opened an incident past `incidents.max_open`.
    pub incidents_over_cap: Counter,
    /// Anomaly events that opened or joined an incident.
    pub anomalies_correlated: Counter,
    /// Tentative incidents (one mild anomaly) that nothing bore out before they resolved: never shown.
    pub incidents_unconfirmed: Counter,
}

impl CorrelateMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("vigil_correlate");
        r.register("rows", "Rows read by correlation, per signal", m.rows.clone());
        r.register("lagged_batches", "Buffer batches evicted before correlation read them", m.lagged_batches.clone());
        r.register("skipped", "Rows left out of RED series or the index, by reason", m.skipped.clone());
        r.register("index_traces", "Traces in the trace-id index", m.index_traces.clone());
        r.register(
            "index_refs",
            "References (spans, log lines, exemplars) in the trace-id index",
            m.index_refs.clone(),
        );
        r.register("index_evicted", "Traces the index forgot, by reason", m.index_evicted.clone());
        r.register("red_operations", "Operations with RED series", m.red_operations.clone());
        r.register("graph_edges", "Edges in the service graph", m.graph_edges.clone());
        r.register("graph_pending", "Spans waiting for the other side of a call", m.graph_pending.clone());
        r.register(
            "graph_unmatched",
            "Spans that gave up waiting for the other side of a call",
            m.graph_unmatched.clone(),
        );
        r.register("graph_dropped_calls", "Calls of new edges past graph.max_edges", m.graph_dropped_calls.clone());
        r.register(
            "derived_samples",
            "RED and service-graph samples handed to the metrics path",
            m.derived_samples.clone(),
        );
        r.register(
            "derived_dropped_samples",
            "RED and service-graph samples given up, by reason",
            m.derived_dropped.clone(),
        );
        r.register("incidents_opened", "Incidents opened", m.incidents_opened.clone());
        r.register("incidents_resolved", "Incidents resolved", m.incidents_resolved.clone());
        r.register("incidents_merged", "Incidents merged into another", m.incidents_merged.clone());
        r.register("incidents_open", "Incidents open now", m.incidents_open.clone());
        r.register(
            "incidents_over_cap",
            "Anomalies not correlated because incidents.max_open was reached",
            m.incidents_over_cap.clone(),
        );
        r.register(
            "anomalies_correlated",
            "Anomaly events that opened or joined an incident",
            m.anomalies_correlated.clone(),
        );
        r.register(
            "incidents_unconfirmed",
            "Tentative incidents (one mild anomaly) that nothing bore out before they resolved",
            m.incidents_unconfirmed.clone(),
        );
        m
    }

    pub(crate) fn signal(family: &Family<SignalLabels, Counter>, signal: &'static str) -> Counter {
        family.get_or_create(&SignalLabels { signal }).clone()
    }

    pub(crate) fn reason(family: &Family<ReasonLabels, Counter>, reason: &'static str) -> Counter {
        family.get_or_create(&ReasonLabels { reason }).clone()
    }

    /// Counts derived samples given up.
    pub fn derived_dropped(&self, reason: &'static str, samples: u64) {
        Self::reason(&self.derived_dropped, reason).inc_by(samples);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_documented_unconfirmed_counter_is_exposed() {
        let mut registry = Registry::default();
        let m = CorrelateMetrics::new(&mut registry);
        m.incidents_unconfirmed.inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("vigil_correlate_incidents_unconfirmed_total 1"), "{text}");
    }
}

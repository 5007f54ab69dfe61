//! The `correlate:` section: the trace side (index, RED, graph, slow spans) and the incidents.
//!
//! ```yaml
//! correlate:
//!   index: { max_traces: 200000, max_refs: 2000000 }
//!   red: { step: 10s, lateness: 10s, quantiles: [0.5, 0.95, 0.99] }
//!   graph: { wait: 10s, edge_ttl: 15m }
//!   slow: { factor: 5 }
//!   incidents: { window: 5m, resolve_after: 2m, service_labels: [service, service_name, job] }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::traces::{GraphConfig, IndexConfig, RedConfig, SlowConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelateConfig {
    /// Index traces, derive RED series and the service graph, and open incidents. Off: none of it, and the
    /// incident, trace and service-graph APIs answer empty.
    pub enabled: bool,
    pub index: IndexConfig,
    pub red: RedConfig,
    pub graph: GraphConfig,
    pub slow: SlowConfig,
    pub incidents: IncidentsConfig,
}

impl Default for CorrelateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            index: IndexConfig::default(),
            red: RedConfig::default(),
            graph: GraphConfig::default(),
            slow: SlowConfig::default(),
            incidents: IncidentsConfig::default(),
        }
    }
}

/// `correlate.incidents`: how anomalies, failed and slow spans and error log lines become incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// Signals at most this far apart (in their own time) may belong to one incident.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// An incident resolves once none of its anomalies is open and nothing has joined it for this long.
    #[serde(with = "humantime_serde")]
    pub resolve_after: Duration,
    /// Anomalies whose peak score is below this neither open nor join incidents.
    pub min_score: f64,
    /// One anomaly scoring at least this (or of severity P2 or worse) is an incident by itself; a milder one
    /// is shown only once borne out by anomalies on another service, or by failed or slow spans or error log
    /// lines. Until then the tentative incident gathers signals unseen; unconfirmed, it is dropped when it
    /// would resolve (counted in `vigil_correlate_incidents_unconfirmed_total`).
    pub confirm_score: f64,
    /// Labels that name an anomalous series' service, the first present winning. Tempo's service-graph
    /// series are the `server` label's; a `job` of the form `namespace/name` (OpenTelemetry's) also
    /// matches the service `name`.
    pub service_labels: Vec<String>,
    /// Resolved incidents kept, all tenants together; the oldest go first.
    pub max_incidents: usize,
    /// Resolved incidents older than this are dropped.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Items of each kind of evidence (traces, spans, log lines, series) an incident keeps.
    pub max_evidence: usize,
    /// Open incidents at most, all tenants together; anomalies that would open more are counted and skipped.
    pub max_open: usize,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            resolve_after: Duration::from_secs(120),
            min_score: 1.0,
            confirm_score: 1.5,
            service_labels: ["service", "service_name", "service.name", "job"].map(String::from).to_vec(),
            max_incidents: 10_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_evidence: 50,
            max_open: 1000,
        }
    }
}

impl CorrelateConfig {
    /// Every problem, each naming its key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        self.index.problems(&mut problems);
        self.red.problems(&mut problems);
        self.graph.problems(&mut problems);
        self.slow.problems(&mut problems);
        let i = &self.incidents;
        if i.window.is_zero() {
            problems.push("correlate.incidents.window must be > 0".into());
        }
        if !(i.min_score.is_finite() && i.min_score >= 0.0) {
            problems.push(format!("correlate.incidents.min_score must be a number >= 0, got {}", i.min_score));
        }
        if !(i.confirm_score.is_finite() && i.confirm_score >= i.min_score) {
            problems.push(format!(
                "correlate.incidents.confirm_score must be a number >= correlate.incidents.min_score, got {}",
                i.confirm_score
            ));
        }
        if i.service_labels.iter().any(|l| l.is_empty()) {
            problems.push("correlate.incidents.service_labels must not list an empty label".into());
        }
        for (key, v) in [("max_incidents", i.max_incidents), ("max_evidence", i.max_evidence), ("max_open", i.max_open)]
        {
            if v == 0 {
                problems.push(format!("correlate.incidents.{key} must be > 0"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let c = CorrelateConfig::default();
        c.validate().unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<CorrelateConfig>(&json).unwrap(), c);
        assert_eq!(serde_json::from_str::<CorrelateConfig>("{}").unwrap(), c);
    }

    #[test]
    fn unknown_fields_are_refused_and_every_problem_named() {
        assert!(serde_json::from_str::<CorrelateConfig>(r#"{"red": {"stepp": "1s"}}"#).is_err());
        let c: CorrelateConfig = serde_json::from_str(
            r#"{"red": {"step": "10ms", "quantiles": [1.5]}, "graph": {"buckets": [1, 0.5]},
                "slow": {"factor": 0.5}, "incidents": {"window": "0s", "max_open": 0}, "index": {"max_traces": 0}}"#,
        )
        .unwrap();
        let problems = c.validate().unwrap_err().join("\n");
        for key in [
            "correlate.red.step",
            "correlate.red.quantiles",
            "correlate.graph.buckets",
            "correlate.slow.factor",
            "correlate.incidents.window",
            "correlate.incidents.max_open",
            "correlate.index.max_traces",
        ] {
            assert!(problems.contains(key), "{key} missing from:\n{problems}");
        }
    }
}

//! Incidents: anomalies (the engine's events), failed and slow spans and error log lines that belong to
//! one fault, grouped, with the fault's root cause ranked and the evidence kept.
//!
//! **Grouping** ([`correlate`]). Only an anomaly opens an incident (a failed span alone is a request, not a
//! fault; a fault shows in some series). Signals join an open incident of their tenant when they fall
//! within `correlate.incidents.window` of it (in their own time) and either share a trace id with it (an
//! anomaly shares the trace ids of its series' exemplars) or sit on a service of it or on one connected to
//! it in the service graph (one calls the other, directly or not: the only way a fault travels). A span or
//! log line that arrives before its incident waits in a per-tenant list for `window` and is pulled in when
//! the incident opens. Two open incidents that come to share a trace or connected services merge into the
//! older one (its id stays; the other id keeps answering, with the surviving incident).
//!
//! **Root cause** ([`rootcause`]): the design documents' causal rule. Take the services with anomalies
//! (and those where several failed or slow traces start: the span that failed or was slow while none of
//! its descendants was); in order of their first signal, the root is the first whose failure could reach
//! all the others — they all call it, directly or not (in the documents' words, they are downstream of it
//! in the dependency graph). Signals within one `red.step` count as simultaneous. The confidence starts
//! from the documents' 0.85 for a full cascade and moves with the traces' agreement (the share of failed
//! or slow traces that start in the root); without a full cascade the best-covering service is named with
//! a confidence scaled by how much it covers. A second stage checks the rule against the traces: when at
//! least three failed or slow traces are known, the rule's root starts at most a fifth of them and another
//! candidate at least half, the traces win (an earlier anomaly no failing request bears out is a false
//! alarm or a symptom). The reason says which rule decided.
//!
//! **Lifecycle**: open at the first anomaly (within one worker tick, 250 ms, of the engine's event);
//! resolved once none of its anomalies is open and nothing joined for `resolve_after`. Open and resolved
//! incidents are an Arrow table ([`table`]); the query API reads them through [`CorrelateHandle`].

pub mod config;
mod correlate;
mod feed;
mod handle;
mod publish;
mod rootcause;
pub mod table;
mod telemetry;
mod worker;

use std::fmt;

pub use config::{CorrelateConfig, IncidentsConfig};
pub use handle::{CorrelateHandle, IncidentQuery};
pub use telemetry::CorrelateMetrics;
pub use worker::{CorrelateError, CorrelateInputs, Correlator};

use crate::events::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(Status::Open),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RootCause {
    pub service: String,
    /// 0 to 1.
    pub confidence: f64,
    /// Which rule named it, in words.
    pub reason: String,
}

/// One incident, as the table holds it and the query API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: String,
    pub tenant: String,
    pub title: String,
    pub severity: Severity,
    pub status: Status,
    /// When Vigil opened it (wall clock, ms since the epoch).
    pub opened_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    /// Its first and newest signal (their own time).
    pub started_at_ms: i64,
    pub last_signal_ms: i64,
    pub root_cause: Option<RootCause>,
    /// Every service with a signal in it, by name.
    pub services: Vec<String>,
    /// `{"trace_ids": […], "spans": […], "logs": […], "series": […]}`, times in RFC 3339.
    pub evidence: serde_json::Value,
    /// `[{"at", "kind", "service", "detail"}, …]` in time order.
    pub timeline: serde_json::Value,
}

/// RFC 3339 in UTC with milliseconds, for evidence and timelines.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

//! The trace side of `correlate:`: the trace-id index, span-derived RED series, the service graph and what
//! counts as a slow span.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `correlate.index`: trace id → the spans, log lines and series (by exemplar) that carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Traces indexed at most, all tenants together; past it the oldest are forgotten first.
    pub max_traces: usize,
    /// References held at most, all traces together: about 48 bytes a span or exemplar, 16 a log line (and
    /// about 130 bytes per trace besides).
    pub max_refs: usize,
    /// References one trace keeps at most; more are counted, not kept.
    pub max_refs_per_trace: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        Self { max_traces: 200_000, max_refs: 1_000_000, max_refs_per_trace: 1000 }
    }
}

/// A span kind, as OTLP numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    pub fn from_otlp(n: i32) -> Self {
        match n {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// The label value Tempo's metrics-generator uses.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unspecified => "SPAN_KIND_UNSPECIFIED",
            Self::Internal => "SPAN_KIND_INTERNAL",
            Self::Server => "SPAN_KIND_SERVER",
            Self::Client => "SPAN_KIND_CLIENT",
            Self::Producer => "SPAN_KIND_PRODUCER",
            Self::Consumer => "SPAN_KIND_CONSUMER",
        }
    }
}

/// `correlate.red`: per service and operation, request rate, error ratio and latency quantiles, one sample
/// per `step` of span time, appended to the metrics path (and so scored by the anomaly engine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedConfig {
    /// Append the series to the metrics path. Off: none are written (the graph and incidents still work).
    pub write: bool,
    /// Width of one window of span end times; one sample per series per window.
    #[serde(with = "humantime_serde")]
    pub step: Duration,
    /// How long a window waits for late spans (SDKs export in batches, every 5 s by default) after a span
    /// past its end has arrived. Later spans are counted (`reason="late"`) and left out of the series.
    #[serde(with = "humantime_serde")]
    pub lateness: Duration,
    /// An operation with no span for this long gets no more zero-rate samples.
    #[serde(with = "humantime_serde")]
    pub idle_after: Duration,
    /// Latency quantiles written, each as `traces_spanmetrics_latency_seconds{quantile="…"}`.
    pub quantiles: Vec<f64>,
    /// Spans of these kinds are requests; root spans count whatever their kind.
    pub span_kinds: Vec<SpanKind>,
    /// Operations (tenant, service, span name, kind) tracked at most; spans of others are counted, not kept.
    pub max_operations: usize,
}

impl Default for RedConfig {
    fn default() -> Self {
        Self {
            write: true,
            step: Duration::from_secs(10),
            lateness: Duration::from_secs(10),
            idle_after: Duration::from_secs(300),
            quantiles: vec![0.5, 0.95, 0.99],
            span_kinds: vec![SpanKind::Server, SpanKind::Consumer],
            max_operations: 10_000,
        }
    }
}

/// `correlate.graph`: edges between services from parent/child spans in different services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    /// How long a span waits for its parent or children to arrive (spans of one trace come from several
    /// processes, each exporting on its own schedule).
    #[serde(with = "humantime_serde")]
    pub wait: Duration,
    /// Spans waiting at most; past it the oldest give up (counted).
    pub max_pending: usize,
    /// An edge not seen for this long leaves the graph.
    #[serde(with = "humantime_serde")]
    pub edge_ttl: Duration,
    /// Edges at most, all tenants together.
    pub max_edges: usize,
    /// Append `traces_service_graph_request_total`, `…_failed_total` and `…_server_seconds_{bucket,sum,count}`
    /// per edge to the metrics path, as Tempo's metrics-generator names them (Grafana's node graph reads
    /// them).
    pub write_series: bool,
    /// Upper bounds (seconds) of the server latency histogram's buckets.
    pub buckets: Vec<f64>,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            wait: Duration::from_secs(10),
            max_pending: 100_000,
            edge_ttl: Duration::from_secs(15 * 60),
            max_edges: 10_000,
            write_series: true,
            // Tempo's defaults.
            buckets: vec![0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8],
        }
    }
}

/// `correlate.slow`: a span is a latency outlier when it takes more than `factor` times the usual median of
/// its operation (learnt from the RED windows) and at least `min_duration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlowConfig {
    pub factor: f64,
    #[serde(with = "humantime_serde")]
    pub min_duration: Duration,
    /// Windows an operation needs before its spans can be called slow.
    pub min_windows: u32,
}

impl Default for SlowConfig {
    fn default() -> Self {
        Self { factor: 5.0, min_duration: Duration::from_millis(1), min_windows: 3 }
    }
}

impl IndexConfig {
    pub(crate) fn problems(&self, out: &mut Vec<String>) {
        for (key, v) in [
            ("max_traces", self.max_traces),
            ("max_refs", self.max_refs),
            ("max_refs_per_trace", self.max_refs_per_trace),
        ] {
            if v == 0 {
                out.push(format!("correlate.index.{key} must be > 0"));
            }
        }
    }
}

impl RedConfig {
    pub(crate) fn problems(&self, out: &mut Vec<String>) {
        if self.step < Duration::from_millis(100) {
            out.push(format!("correlate.red.step must be at least 100ms, got {:?}", self.step));
        }
        if self.idle_after < self.step {
            out.push("correlate.red.idle_after must be at least correlate.red.step".into());
        }
        for q in &self.quantiles {
            if !(q.is_finite() && *q > 0.0 && *q <= 1.0) {
                out.push(format!("correlate.red.quantiles: {q} is not a quantile in (0, 1]"));
            }
        }
        if self.quantiles.len() > 10 {
            out.push(format!("correlate.red.quantiles lists {} quantiles; at most 10", self.quantiles.len()));
        }
        if self.max_operations == 0 {
            out.push("correlate.red.max_operations must be > 0".into());
        }
    }
}

impl GraphConfig {
    pub(crate) fn problems(&self, out: &mut Vec<String>) {
        if self.wait.is_zero() {
            out.push("correlate.graph.wait must be > 0".into());
        }
        if self.max_pending == 0 || self.max_edges == 0 {
            out.push("correlate.graph.max_pending and correlate.graph.max_edges must be > 0".into());
        }
        if self.edge_ttl.is_zero() {
            out.push("correlate.graph.edge_ttl must be > 0".into());
        }
        let increasing = self.buckets.windows(2).all(|w| w[0] < w[1]);
        if self.buckets.is_empty() || !increasing || self.buckets.iter().any(|b| !(b.is_finite() && *b > 0.0)) {
            out.push("correlate.graph.buckets must be positive, finite and increasing".into());
        }
        if self.buckets.len() > 40 {
            out.push(format!("correlate.graph.buckets lists {} bounds; at most 40", self.buckets.len()));
        }
    }
}

impl SlowConfig {
    pub(crate) fn problems(&self, out: &mut Vec<String>) {
        if !(self.factor.is_finite() && self.factor > 1.0) {
            out.push(format!("correlate.slow.factor must be a number > 1, got {}", self.factor));
        }
    }
}

//! OTLP metrics → Prometheus series.
//!
//! Follows the OpenTelemetry spec "Prometheus and OpenMetrics compatibility", section "OTLP Metric points
//! to Prometheus" (opentelemetry-specification `specification/compatibility/prometheus_and_openmetrics.md`),
//! and, where the spec leaves room, Prometheus' own OTLP receiver with its default settings
//! (`otlptranslator`, translation strategy `UnderscoreEscapingWithSuffixes`), so that a series has the
//! same name and labels whether it went through Vigil or straight into Prometheus.
//!
//! - `names`: metric name + unit + type suffixes;
//! - `labels`: label names, attribute values as text, merging resource/scope/point labels;
//! - `convert`: per data type (gauge, sum, histogram, exponential histogram, summary) and `target_info`;
//! - `native`: exponential histogram buckets → native histogram spans and deltas;
//! - `exemplars`: exemplars with `trace_id`/`span_id`;
//! - `sink`: grouping samples into series, counting rejected points.
//!
//! Delta sums and histograms are accumulated into cumulative ones first (`delta`); delta exponential
//! histograms are rejected. Not done: `_created` series, `otel_scope_info`, scope
//! attributes and schema URL as labels, `prometheus.type` metadata (info, stateset), and
//! histograms as native histograms with custom buckets.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

mod convert;
mod delta;
mod exemplars;
mod labels;
mod names;
mod native;
mod sink;

pub use delta::DeltaToCumulative;
#[cfg(test)]
mod tests;

/// One Prometheus series made from OTLP points.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PromSeries {
    /// Sorted by name, unique names, no empty values; includes `__name__`.
    pub(crate) labels: Vec<(String, String)>,
    /// (timestamp ms, value), in the order of the points.
    pub(crate) samples: Vec<(i64, f64)>,
    /// Native histograms (from exponential histograms), (timestamp ms, histogram).
    pub(crate) histograms: Vec<(i64, vigil_proto::prometheus::Histogram)>,
    pub(crate) exemplars: Vec<PromExemplar>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PromExemplar {
    /// Sorted; includes `trace_id` / `span_id` (lower-case hex) when the exemplar has them.
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) timestamp_ms: i64,
    pub(crate) value: f64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Converted {
    pub(crate) series: Vec<PromSeries>,
    /// Data points that could not be converted (OTLP partial_success.rejected_data_points).
    pub(crate) rejected_points: u64,
    /// Why, one short human-readable message per distinct reason (joined by the caller into
    /// partial_success.error_message). Never includes attribute values (they may be secrets); metric and
    /// attribute names are fine.
    pub(crate) problems: Vec<String>,
}

/// Converts every metric of the request. Never fails as a whole: what cannot be converted is counted in
/// `rejected_points` and explained in `problems`, the rest is returned.
/// Turns delta sums and histograms into cumulative ones (keeping running totals in `deltas`), then
/// converts. Points that could not be accumulated are counted as rejected with their reason.
pub(crate) fn convert_with_deltas(
    mut request: ExportMetricsServiceRequest,
    deltas: &DeltaToCumulative,
    tenant: crate::series::Tenant,
) -> Converted {
    let refused = deltas.accumulate(&mut request, tenant.index());
    let mut converted = convert(&request);
    converted.rejected_points += refused.points;
    converted.problems.extend(refused.problems);
    converted
}

pub(crate) fn convert(request: &ExportMetricsServiceRequest) -> Converted {
    let mut sink = sink::Sink::default();
    for resource_metrics in &request.resource_metrics {
        let resource = resource_metrics.resource.as_ref().map_or(&[][..], |r| r.attributes.as_slice());
        let mut base = labels::Base::for_resource(resource);
        sink.start_resource();
        for scope_metrics in &resource_metrics.scope_metrics {
            let scope = scope_metrics.scope.as_ref();
            base.scope_name = scope.map(|s| s.name.clone()).unwrap_or_default();
            base.scope_version = scope.map(|s| s.version.clone()).unwrap_or_default();
            for metric in &scope_metrics.metrics {
                convert::metric(&mut sink, &base, metric);
            }
        }
        // target_info carries the time of the resource's latest point, and only if a point got through.
        if let Some(latest) = sink.latest() {
            convert::target_info(&mut sink, resource, &base, latest);
        }
    }
    sink.finish()
}

/// The Prometheus samples the request's points become, as the rate limit counts them
/// (`limits.max_samples_per_second_per_tenant`): a gauge or sum point is one, an exponential histogram
/// point one native histogram, a classic histogram point one per bucket (`+Inf` included) plus `_count` and
/// `_sum` (when it has one), a summary point one per quantile plus `_sum` and `_count`. Counted from the
/// request as sent, so points later refused count too, and `target_info` does not.
pub(crate) fn sample_count(request: &ExportMetricsServiceRequest) -> u64 {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let metrics = request.resource_metrics.iter().flat_map(|r| &r.scope_metrics).flat_map(|s| &s.metrics);
    let per_metric = |data: &Data| -> usize {
        match data {
            Data::Gauge(g) => g.data_points.len(),
            Data::Sum(s) => s.data_points.len(),
            Data::ExponentialHistogram(h) => h.data_points.len(),
            Data::Histogram(h) => h
                .data_points
                .iter()
                .map(|p| {
                    let finite = p.explicit_bounds.iter().zip(&p.bucket_counts).filter(|(b, _)| **b != f64::INFINITY);
                    usize::from(p.sum.is_some()) + 2 + finite.count()
                })
                .sum(),
            Data::Summary(s) => s.data_points.iter().map(|p| 2 + p.quantile_values.len()).sum(),
        }
    };
    metrics.filter_map(|m| m.data.as_ref()).map(|d| per_metric(d) as u64).sum()
}

/// Bit pattern of Prometheus' staleness marker, a NaN that PromQL reads as "series ended here".
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// OTLP's `DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`: the point marks the end of its series, which
/// Prometheus expresses with the staleness marker.
fn is_stale(flags: u32) -> bool {
    flags & 1 == 1
}

/// OTLP nanoseconds → Prometheus milliseconds.
fn ms(unix_nano: u64) -> i64 {
    // u64::MAX / 10^6 fits in an i64, so this never saturates.
    i64::try_from(unix_nano / 1_000_000).unwrap_or(i64::MAX)
}

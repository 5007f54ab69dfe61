//! Tests of the OTLP → Prometheus conversion, one or more per rule. Expected names, labels and values are
//! worked out by hand from the spec and from Prometheus' translator (its own test cases where it has them).

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::summary_data_point::ValueAtQuantile;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, exemplar, metric::Data,
    number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use vigil_proto::prometheus::BucketSpan;
use vigil_proto::prometheus::histogram::{Count, ZeroCount};

use super::labels::{label_name, value_text};
use super::names::{Kind, metric_name};
use super::{Converted, PromExemplar, PromSeries, STALE_NAN_BITS, convert};

mod delta;
mod example;
mod histograms;
mod names;
mod numbers;
mod resource;

const CUMULATIVE: i32 = 2;
const DELTA: i32 = 1;
/// 2018-12-13T14:51:00.3Z, the time used in the OTLP examples.
const T_NS: u64 = 1_544_712_660_300_000_000;
const T_MS: i64 = 1_544_712_660_300;

// ---- builders ----------------------------------------------------------------------------------------

fn any(value: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(value) })
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.to_owned(), value: any(any_value::Value::StringValue(value.to_owned())), ..Default::default() }
}

fn kv_any(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: any(value), ..Default::default() }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric { name: name.to_owned(), unit: unit.to_owned(), data: Some(data), ..Default::default() }
}

fn point(attrs: Vec<KeyValue>, time_ns: u64, value: f64) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: time_ns,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: Vec<NumberDataPoint>) -> Metric {
    metric(name, unit, Data::Gauge(Gauge { data_points: points }))
}

fn sum(name: &str, unit: &str, monotonic: bool, temporality: i32, points: Vec<NumberDataPoint>) -> Metric {
    let data = Sum { data_points: points, aggregation_temporality: temporality, is_monotonic: monotonic };
    metric(name, unit, Data::Sum(data))
}

fn histogram(name: &str, unit: &str, temporality: i32, points: Vec<HistogramDataPoint>) -> Metric {
    metric(name, unit, Data::Histogram(Histogram { data_points: points, aggregation_temporality: temporality }))
}

fn exponential(name: &str, temporality: i32, points: Vec<ExponentialHistogramDataPoint>) -> Metric {
    let data = ExponentialHistogram { data_points: points, aggregation_temporality: temporality };
    metric(name, "", Data::ExponentialHistogram(data))
}

fn buckets(offset: i32, counts: &[u64]) -> Option<Buckets> {
    Some(Buckets { offset, bucket_counts: counts.to_vec() })
}

/// A request with one resource (these attributes) and one scope (name, version) holding `metrics`.
fn request(resource: Vec<KeyValue>, scope: (&str, &str), metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest { resource_metrics: vec![resource_metrics(resource, scope, metrics)] }
}

fn resource_metrics(resource: Vec<KeyValue>, scope: (&str, &str), metrics: Vec<Metric>) -> ResourceMetrics {
    let scope = InstrumentationScope { name: scope.0.to_owned(), version: scope.1.to_owned(), ..Default::default() };
    ResourceMetrics {
        resource: Some(Resource { attributes: resource, ..Default::default() }),
        scope_metrics: vec![ScopeMetrics { scope: Some(scope), metrics, ..Default::default() }],
        ..Default::default()
    }
}

/// A request whose resource and scope add no labels, so that tests see only the point's own.
fn bare(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    request(vec![], ("", ""), metrics)
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    out.sort();
    out
}

/// Converts and checks the invariants every output must keep: labels sorted, unique, non-empty, with a
/// `__name__`; one series per label set.
fn run(request: &ExportMetricsServiceRequest) -> Converted {
    let out = convert(request);
    let mut seen = std::collections::HashSet::new();
    for s in &out.series {
        assert!(s.labels.windows(2).all(|w| w[0].0 < w[1].0), "labels not sorted/unique: {:?}", s.labels);
        assert!(s.labels.iter().all(|(k, v)| !k.is_empty() && !v.is_empty()), "empty label: {:?}", s.labels);
        assert!(s.labels.iter().any(|(k, _)| k == "__name__"), "no __name__: {:?}", s.labels);
        assert!(seen.insert(s.labels.clone()), "label set repeated: {:?}", s.labels);
        for e in &s.exemplars {
            assert!(e.labels.windows(2).all(|w| w[0].0 < w[1].0), "exemplar labels: {:?}", e.labels);
        }
    }
    out
}

/// The series with exactly these labels.
fn series<'a>(out: &'a Converted, pairs: &[(&str, &str)]) -> &'a PromSeries {
    let want = labels(pairs);
    match out.series.iter().find(|s| s.labels == want) {
        Some(s) => s,
        None => panic!("no series {want:?} in {:#?}", out.series.iter().map(|s| &s.labels).collect::<Vec<_>>()),
    }
}

fn names(out: &Converted) -> Vec<&str> {
    out.series.iter().filter_map(|s| s.labels.iter().find(|(k, _)| k == "__name__").map(|(_, v)| v.as_str())).collect()
}

fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

fn span(offset: i32, length: u32) -> BucketSpan {
    BucketSpan { offset, length }
}

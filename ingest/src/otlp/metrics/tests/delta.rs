//! Delta sums and histograms become cumulative series with running totals.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};

use crate::otlp::metrics::{DeltaToCumulative, convert_with_deltas};
use crate::series::{SeriesRegistry, SeriesRegistryConfig, Tenant};

fn request(metric: Metric) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics { metrics: vec![metric], ..Default::default() }],
            ..Default::default()
        }],
    }
}

fn delta_sum(value: f64, time_s: u64) -> ExportMetricsServiceRequest {
    request(Metric {
        name: "jobs".into(),
        data: Some(Data::Sum(Sum {
            aggregation_temporality: AggregationTemporality::Delta as i32,
            is_monotonic: true,
            data_points: vec![NumberDataPoint {
                start_time_unix_nano: (time_s - 1) * 1_000_000_000,
                time_unix_nano: time_s * 1_000_000_000,
                value: Some(Value::AsDouble(value)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    })
}

fn last_value(c: &crate::otlp::metrics::Converted, name: &str) -> Option<f64> {
    c.series.iter().find(|s| s.labels.iter().any(|(n, v)| n == "__name__" && v == name))?.samples.last().map(|s| s.1)
}

#[test]
fn delta_sums_accumulate_and_out_of_order_points_are_rejected() {
    let deltas = DeltaToCumulative::new(100);
    let mut totals = Vec::new();
    for (value, t) in [(5.0, 10), (3.0, 11), (2.0, 12)] {
        let c = convert_with_deltas(delta_sum(value, t), &deltas, Tenant::DEFAULT);
        assert_eq!(c.rejected_points, 0, "{:?}", c.problems);
        totals.push(last_value(&c, "jobs_total").expect("a jobs_total series"));
    }
    assert_eq!(totals, vec![5.0, 8.0, 10.0]);
    let late = convert_with_deltas(delta_sum(100.0, 11), &deltas, Tenant::DEFAULT);
    assert_eq!(late.rejected_points, 1);
    assert!(late.problems[0].contains("older than the last one"), "{:?}", late.problems);
    assert!(late.series.is_empty());
}

#[test]
fn delta_histograms_accumulate_bucket_by_bucket() {
    let deltas = DeltaToCumulative::new(100);
    let point = |counts: Vec<u64>, sum: f64, t: u64| {
        request(Metric {
            name: "latency".into(),
            data: Some(Data::Histogram(Histogram {
                aggregation_temporality: AggregationTemporality::Delta as i32,
                data_points: vec![HistogramDataPoint {
                    start_time_unix_nano: (t - 1) * 1_000_000_000,
                    time_unix_nano: t * 1_000_000_000,
                    count: counts.iter().sum(),
                    sum: Some(sum),
                    explicit_bounds: vec![1.0],
                    bucket_counts: counts,
                    ..Default::default()
                }],
            })),
            ..Default::default()
        })
    };
    convert_with_deltas(point(vec![1, 1], 2.0, 10), &deltas, Tenant::DEFAULT);
    let c = convert_with_deltas(point(vec![2, 0], 1.0, 11), &deltas, Tenant::DEFAULT);
    assert_eq!(c.rejected_points, 0, "{:?}", c.problems);
    assert_eq!(last_value(&c, "latency_count"), Some(4.0));
    assert_eq!(last_value(&c, "latency_sum"), Some(3.0));
    let le1 = c.series.iter().find(|s| s.labels.iter().any(|(n, v)| n == "le" && v == "1")).expect("le=1 bucket");
    assert_eq!(le1.samples.last().map(|s| s.1), Some(3.0));
}

#[test]
fn the_stream_limit_rejects_new_streams_only() {
    let deltas = DeltaToCumulative::new(1);
    assert_eq!(convert_with_deltas(delta_sum(1.0, 10), &deltas, Tenant::DEFAULT).rejected_points, 0);
    let mut other = delta_sum(1.0, 10);
    if let Some(Data::Sum(s)) = &mut other.resource_metrics[0].scope_metrics[0].metrics[0].data {
        s.data_points[0].attributes.push(opentelemetry_proto::tonic::common::v1::KeyValue {
            key: "shard".into(),
            value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue("b".into())),
            }),
            ..Default::default()
        });
    }
    let c = convert_with_deltas(other, &deltas, Tenant::DEFAULT);
    assert_eq!(c.rejected_points, 1);
    assert!(c.problems[0].contains("too many delta streams"));
    assert_eq!(
        convert_with_deltas(delta_sum(1.0, 11), &deltas, Tenant::DEFAULT).rejected_points,
        0,
        "the known stream goes on"
    );
}

#[test]
fn tenants_keep_separate_running_totals() {
    let deltas = DeltaToCumulative::new(100);
    let registry = SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous");
    let other = registry.tenant("other").unwrap();
    convert_with_deltas(delta_sum(5.0, 10), &deltas, Tenant::DEFAULT);
    let theirs = convert_with_deltas(delta_sum(1.0, 11), &deltas, other);
    let value = theirs.series.iter().flat_map(|s| &s.samples).map(|(_, v)| *v).next();
    assert_eq!(value, Some(1.0), "another tenant's stream starts from its own first delta");
}

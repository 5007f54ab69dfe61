//! Per-type conversion of one OTLP metric into series, and the per-resource `target_info` series.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, Metric, NumberDataPoint,
    SummaryDataPoint, metric::Data, number_data_point,
};

use super::labels::{
    Base, LabelMap, SERVICE_INSTANCE_ID, SERVICE_NAME, SERVICE_NAMESPACE, attribute_labels, float_text, label_name,
    series_labels,
};
use super::names::{Kind, metric_name};
use super::sink::Sink;
use super::{exemplars, is_stale, ms, native, stale_nan};

/// One metric being converted: its Prometheus family name and what its points share.
struct Family<'a> {
    /// The OTLP name, for problem messages.
    otlp: &'a str,
    /// The Prometheus family name (`_bucket`, `_sum`, … are appended to it).
    name: String,
    base: &'a Base,
}

/// Converts one metric into `sink`, or counts its points as rejected and says why.
pub(super) fn metric(sink: &mut Sink, base: &Base, metric: &Metric) {
    let otlp = metric.name.as_str();
    // opentelemetry-proto's JSON decoder leaves `data` empty when the data was invalid (or of a type it
    // does not know): its points are lost, so the metric must be reported, never silently accepted.
    let Some(data) = &metric.data else {
        sink.reject(1, format!("metric {}: no data (unknown or undecodable data type)", quoted(otlp)));
        return;
    };

    let (kind, points, temporality) = match data {
        Data::Gauge(g) => (Kind::Gauge, g.data_points.len(), None),
        Data::Sum(s) => {
            let kind = if s.is_monotonic { Kind::MonotonicCounter } else { Kind::NonMonotonicCounter };
            (kind, s.data_points.len(), Some(s.aggregation_temporality))
        }
        Data::Histogram(h) => (Kind::Histogram, h.data_points.len(), Some(h.aggregation_temporality)),
        Data::ExponentialHistogram(h) => {
            (Kind::ExponentialHistogram, h.data_points.len(), Some(h.aggregation_temporality))
        }
        Data::Summary(s) => (Kind::Summary, s.data_points.len(), None),
    };
    let points = u64::try_from(points).unwrap_or(u64::MAX);

    if let Some(temporality) = temporality
        && let Err(why) = check_cumulative(temporality)
    {
        sink.reject(points, format!("metric {}: {why}", quoted(otlp)));
        return;
    }
    let Some(name) = metric_name(otlp, &metric.unit, kind) else {
        sink.reject(points, format!("metric {}: the name leaves no valid Prometheus metric name", quoted(otlp)));
        return;
    };
    let family = Family { otlp, name, base };

    match data {
        // The spec drops exemplars of gauges and of non-monotonic sums, keeps those of counters.
        Data::Gauge(g) => numbers(sink, &family, &g.data_points, false),
        Data::Sum(s) => numbers(sink, &family, &s.data_points, s.is_monotonic),
        Data::Histogram(h) => h.data_points.iter().for_each(|p| histogram(sink, &family, p)),
        Data::ExponentialHistogram(h) => h.data_points.iter().for_each(|p| exponential(sink, &family, p)),
        Data::Summary(s) => s.data_points.iter().for_each(|p| summary(sink, &family, p)),
    }
}

/// Only cumulative data can become Prometheus counters and histograms. Delta data would need a running
/// sum kept per series (the collector's `deltatocumulative` processor does that), which Vigil does not do.
fn check_cumulative(temporality: i32) -> Result<(), String> {
    match AggregationTemporality::try_from(temporality) {
        Ok(AggregationTemporality::Cumulative) => Ok(()),
        Ok(AggregationTemporality::Delta) => Err("delta temporality is not supported; send cumulative \
             (e.g. the collector's deltatocumulative processor)"
            .to_owned()),
        Ok(AggregationTemporality::Unspecified) => Err("aggregation temporality is unspecified".to_owned()),
        Err(_) => Err(format!("unknown aggregation temporality {temporality}")),
    }
}

/// Gauge and sum points: one sample each.
fn numbers(sink: &mut Sink, family: &Family<'_>, points: &[NumberDataPoint], keep_exemplars: bool) {
    for p in points {
        let value = if is_stale(p.flags) {
            stale_nan()
        } else {
            match p.value {
                Some(number_data_point::Value::AsDouble(d)) => d,
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                // Prometheus would write 0 here; a point without a value is more likely a broken sender.
                None => {
                    sink.reject(1, format!("metric {}: data point has no value", quoted(family.otlp)));
                    continue;
                }
            }
        };
        let Some(base) = point_labels(sink, family, &p.attributes) else { continue };
        let series = sink.sample(series_labels(&base, &family.name, None), ms(p.time_unix_nano), value);
        if keep_exemplars {
            sink.exemplars(series, exemplars::convert_all(&p.exemplars));
        }
    }
}

/// A classic histogram: `_sum` (if the point has one), `_count`, and `_bucket{le}` with cumulative counts
/// ending in `le="+Inf"` = count.
fn histogram(sink: &mut Sink, family: &Family<'_>, p: &HistogramDataPoint) {
    let Some(base) = point_labels(sink, family, &p.attributes) else { return };
    let ts = ms(p.time_unix_nano);
    let stale = is_stale(p.flags);
    let value = |v: f64| if stale { stale_nan() } else { v };

    if let Some(sum) = p.sum {
        sink.sample(series_labels(&base, &format!("{}_sum", family.name), None), ts, value(sum));
    }
    sink.sample(series_labels(&base, &format!("{}_count", family.name), None), ts, value(p.count as f64));

    let bucket = format!("{}_bucket", family.name);
    // (upper bound, series index), to hang exemplars on their buckets afterwards.
    let mut buckets: Vec<(f64, usize)> = Vec::with_capacity(p.explicit_bounds.len() + 1);
    let mut cumulative: u64 = 0;
    for (&bound, &count) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
        cumulative = cumulative.saturating_add(count);
        // A bound of +Inf would repeat the `le="+Inf"` series written below, with the same timestamp.
        if bound == f64::INFINITY {
            continue;
        }
        let labels = series_labels(&base, &bucket, Some(("le", float_text(bound))));
        buckets.push((bound, sink.sample(labels, ts, value(cumulative as f64))));
    }
    let labels = series_labels(&base, &bucket, Some(("le", float_text(f64::INFINITY))));
    buckets.push((f64::INFINITY, sink.sample(labels, ts, value(p.count as f64))));

    // Prometheus puts each exemplar on the lowest bucket whose bound is at least the exemplar's value.
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    for exemplar in exemplars::convert_all(&p.exemplars) {
        if let Some(&(_, series)) = buckets.iter().find(|(bound, _)| exemplar.value <= *bound) {
            sink.exemplars(series, [exemplar]);
        }
    }
}

/// An exponential histogram: one native histogram sample, exemplars on the same series.
fn exponential(sink: &mut Sink, family: &Family<'_>, p: &ExponentialHistogramDataPoint) {
    let h = match native::native_histogram(p) {
        Ok(h) => h,
        Err(why) => {
            sink.reject(1, format!("metric {}: {why}", quoted(family.otlp)));
            return;
        }
    };
    let Some(base) = point_labels(sink, family, &p.attributes) else { return };
    let series = sink.histogram(series_labels(&base, &family.name, None), ms(p.time_unix_nano), h);
    sink.exemplars(series, exemplars::convert_all(&p.exemplars));
}

/// A summary: `{quantile}` series, `_sum` and `_count` (Prometheus writes `_sum` whatever its sign).
fn summary(sink: &mut Sink, family: &Family<'_>, p: &SummaryDataPoint) {
    let Some(base) = point_labels(sink, family, &p.attributes) else { return };
    let ts = ms(p.time_unix_nano);
    let stale = is_stale(p.flags);
    let value = |v: f64| if stale { stale_nan() } else { v };

    sink.sample(series_labels(&base, &format!("{}_sum", family.name), None), ts, value(p.sum));
    sink.sample(series_labels(&base, &format!("{}_count", family.name), None), ts, value(p.count as f64));
    for q in &p.quantile_values {
        let labels = series_labels(&base, &family.name, Some(("quantile", float_text(q.quantile))));
        sink.sample(labels, ts, value(q.value));
    }
}

/// A point's labels before `__name__`: its attributes, then scope, `job` and `instance` over them. `None`
/// (and the point counted as rejected) when an attribute name cannot be made a label name.
fn point_labels(sink: &mut Sink, family: &Family<'_>, attrs: &[KeyValue]) -> Option<LabelMap> {
    match attribute_labels(attrs) {
        Ok(mut labels) => {
            family.base.apply(&mut labels);
            Some(labels)
        }
        Err(key) => {
            let why =
                format!("metric {}: attribute name {} gives no valid label name", quoted(family.otlp), quoted(key));
            sink.reject(1, why);
            None
        }
    }
}

/// The resource's `target_info` series (value 1 at `timestamp_ms`): its attributes other than the three
/// that make `job` and `instance`, plus `job` and `instance`. Like Prometheus, none when the resource
/// has no other attributes or when there is neither `job` nor `instance` to join it on.
pub(super) fn target_info(sink: &mut Sink, resource: &[KeyValue], base: &Base, timestamp_ms: i64) {
    let identifying = [SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_INSTANCE_ID];
    let others: Vec<&KeyValue> = resource.iter().filter(|kv| !identifying.contains(&kv.key.as_str())).collect();
    if others.is_empty() {
        return;
    }
    // An attribute that cannot be a label is left out (and reported) rather than losing the whole series.
    let (good, bad): (Vec<&KeyValue>, Vec<&KeyValue>) =
        others.into_iter().partition(|kv| label_name(&kv.key).is_some());
    for kv in bad {
        sink.problem(format!(
            "resource attribute name {} gives no valid label name; left out of target_info",
            quoted(&kv.key)
        ));
    }
    let Ok(mut labels) = attribute_labels(good) else { return };
    let identity = Base { job: base.job.clone(), instance: base.instance.clone(), ..Base::default() };
    identity.apply(&mut labels);

    let labels = series_labels(&labels, "target_info", None);
    let joinable = labels.iter().any(|(name, _)| name == "job" || name == "instance");
    if joinable && !sink.has_sample_at(&labels, timestamp_ms) {
        sink.sample(labels, timestamp_ms, 1.0);
    }
}

/// A name quoted for a problem message, cut short if very long (messages go back to the sender).
fn quoted(name: &str) -> String {
    const MAX_CHARS: usize = 100;
    if name.chars().count() > MAX_CHARS {
        let short: String = name.chars().take(MAX_CHARS).collect();
        format!("{:?}…", short)
    } else {
        format!("{name:?}")
    }
}

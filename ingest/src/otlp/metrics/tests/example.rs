//! The OTLP/JSON example that ships with opentelemetry-proto, converted and checked by hand.

use super::*;

// ---- the OTLP example file ----------------------------------------------------------------------

const EXAMPLE: &str = include_str!("../testdata/metrics.json");

fn decode(json: &str) -> ExportMetricsServiceRequest {
    match serde_json::from_str(json) {
        Ok(req) => req,
        Err(e) => panic!("decode: {e}"),
    }
}

/// The labels every point of the example carries: service.name → job, and the scope.
fn example_labels<'a>(name: &'a str, attr: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
    vec![
        ("__name__", name),
        attr,
        ("job", "my.service"),
        ("otel_scope_name", "my.library"),
        ("otel_scope_version", "1.0.0"),
    ]
}

#[test]
fn otlp_example_json_as_shipped() {
    // The example's sum, histogram and exponential histogram are DELTA (aggregationTemporality 1): only
    // the gauge gets through. The resource has only service.name, so there is no target_info; the scope
    // attribute is not a label.
    let out = run(&decode(EXAMPLE));
    assert_eq!(out.series.len(), 1);
    let gauge = series(&out, &example_labels("my_gauge_ratio", ("my_gauge_attr", "some value")));
    assert_eq!(gauge.samples, vec![(T_MS, 10.0)]);
    assert_eq!(out.rejected_points, 3);
    let delta = "delta temporality is not supported; send cumulative (e.g. the collector's deltatocumulative \
                 processor)";
    assert_eq!(
        out.problems,
        vec![
            format!(r#"metric "my.counter": {delta}"#),
            format!(r#"metric "my.histogram": {delta}"#),
            format!(r#"metric "my.exponential.histogram": {delta}"#),
        ]
    );
}

#[test]
fn otlp_example_json_made_cumulative() {
    // The same file with every temporality switched to CUMULATIVE (2), to check all four conversions.
    let json = EXAMPLE.replace(r#""aggregationTemporality": 1"#, r#""aggregationTemporality": 2"#);
    assert_eq!(json.matches(r#""aggregationTemporality": 2"#).count(), 3);
    let out = run(&decode(&json));
    assert_eq!((out.rejected_points, out.problems.len()), (0, 0));

    // my.counter, unit "1", monotonic: `_total`, no `_ratio` (counters never get it).
    let counter = series(&out, &example_labels("my_counter_total", ("my_counter_attr", "some value")));
    assert_eq!(counter.samples, vec![(T_MS, 5.0)]);

    let gauge = series(&out, &example_labels("my_gauge_ratio", ("my_gauge_attr", "some value")));
    assert_eq!(gauge.samples, vec![(T_MS, 10.0)]);

    // my.histogram: count 2, sum 2, bucketCounts [1, 1], explicitBounds [1].
    let attr = ("my_histogram_attr", "some value");
    let bucket = |le| {
        let mut l = example_labels("my_histogram_bucket", attr);
        l.push(("le", le));
        series(&out, &l).samples.clone()
    };
    assert_eq!(bucket("1"), vec![(T_MS, 1.0)]);
    assert_eq!(bucket("+Inf"), vec![(T_MS, 2.0)]);
    assert_eq!(series(&out, &example_labels("my_histogram_sum", attr)).samples, vec![(T_MS, 2.0)]);
    assert_eq!(series(&out, &example_labels("my_histogram_count", attr)).samples, vec![(T_MS, 2.0)]);

    // my.exponential.histogram: scale 0, count 3, sum 10, zeroCount 1, positive offset 1 counts [0, 2],
    // zeroThreshold 0 (unset → 1e-128).
    let e = series(&out, &example_labels("my_exponential_histogram", ("my_exponential_histogram_attr", "some value")));
    assert!(e.samples.is_empty());
    let (ts, h) = &e.histograms[0];
    assert_eq!(*ts, T_MS);
    assert_eq!(h.schema, 0);
    assert_eq!(h.count, Some(Count::CountInt(3)));
    assert_eq!(h.sum, 10.0);
    assert_eq!(h.zero_count, Some(ZeroCount::ZeroCountInt(1)));
    assert_eq!(h.zero_threshold, 1e-128);
    assert_eq!(h.positive_spans, vec![span(2, 2)]);
    assert_eq!(h.positive_deltas, vec![0, 2]);
    assert!(h.negative_spans.is_empty() && h.negative_deltas.is_empty());

    // counter, gauge, 4 histogram series, exponential histogram; still no target_info.
    assert_eq!(out.series.len(), 7);
}

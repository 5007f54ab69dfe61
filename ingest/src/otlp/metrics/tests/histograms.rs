//! Classic histograms, summaries and exponential (native) histograms.

use super::*;

// ---- classic histograms -------------------------------------------------------------------------

fn histogram_point() -> HistogramDataPoint {
    HistogramDataPoint {
        attributes: vec![kv("http.route", "/")],
        time_unix_nano: T_NS,
        count: 10,
        sum: Some(12.5),
        bucket_counts: vec![1, 2, 0, 3, 4],
        explicit_bounds: vec![0.005, 0.1, 1.0, 10.0],
        ..Default::default()
    }
}

#[test]
fn histogram_buckets_are_cumulative_with_inf_sum_and_count() {
    let out = run(&bare(vec![histogram("http.server.duration", "ms", CUMULATIVE, vec![histogram_point()])]));
    let name = "http_server_duration_milliseconds";
    let one = |suffix: &str, le: Option<&str>| {
        let full = format!("{name}{suffix}");
        let mut pairs = vec![("__name__", full.as_str()), ("http_route", "/")];
        pairs.extend(le.map(|le| ("le", le)));
        series(&out, &pairs).samples.clone()
    };
    assert_eq!(one("_bucket", Some("0.005")), vec![(T_MS, 1.0)]);
    assert_eq!(one("_bucket", Some("0.1")), vec![(T_MS, 3.0)]);
    assert_eq!(one("_bucket", Some("1")), vec![(T_MS, 3.0)]);
    assert_eq!(one("_bucket", Some("10")), vec![(T_MS, 6.0)]);
    assert_eq!(one("_bucket", Some("+Inf")), vec![(T_MS, 10.0)]);
    assert_eq!(one("_sum", None), vec![(T_MS, 12.5)]);
    assert_eq!(one("_count", None), vec![(T_MS, 10.0)]);
    assert_eq!(out.series.len(), 7);
}

#[test]
fn histogram_without_sum_has_no_sum_series() {
    let mut p = histogram_point();
    p.sum = None;
    p.bucket_counts = vec![];
    p.explicit_bounds = vec![];
    let out = run(&bare(vec![histogram("h", "", CUMULATIVE, vec![p])]));
    assert_eq!(names(&out), vec!["h_count", "h_bucket"]);
    assert_eq!(
        series(&out, &[("__name__", "h_bucket"), ("http_route", "/"), ("le", "+Inf")]).samples,
        vec![(T_MS, 10.0)]
    );
}

#[test]
fn histogram_le_values_are_formatted_like_prometheus() {
    let p = HistogramDataPoint {
        time_unix_nano: T_NS,
        count: 4,
        bucket_counts: vec![1, 1, 1, 1, 0],
        explicit_bounds: vec![-0.5, 1e-7, 2.5e6, 1e21],
        ..Default::default()
    };
    let out = run(&bare(vec![histogram("h", "", CUMULATIVE, vec![p])]));
    let les: Vec<&str> =
        out.series.iter().filter_map(|s| s.labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v.as_str())).collect();
    assert_eq!(les, vec!["-0.5", "0.0000001", "2500000", "1000000000000000000000", "+Inf"]);
}

#[test]
fn histogram_exemplars_go_to_their_bucket() {
    let mut p = histogram_point();
    let ex = |value: f64, span: Vec<u8>| Exemplar {
        value: Some(exemplar::Value::AsDouble(value)),
        time_unix_nano: T_NS - 5_000_000,
        span_id: span,
        ..Default::default()
    };
    p.exemplars = vec![ex(0.05, vec![1, 2, 3, 4, 5, 6, 7, 8]), ex(0.1, vec![]), ex(1000.0, vec![])];
    let out = run(&bare(vec![histogram("h", "", CUMULATIVE, vec![p])]));
    let bucket = |le: &str| &series(&out, &[("__name__", "h_bucket"), ("http_route", "/"), ("le", le)]).exemplars;
    assert_eq!(
        bucket("0.1"),
        &vec![
            PromExemplar { labels: labels(&[("span_id", "0102030405060708")]), timestamp_ms: T_MS - 5, value: 0.05 },
            PromExemplar { labels: vec![], timestamp_ms: T_MS - 5, value: 0.1 },
        ]
    );
    assert_eq!(bucket("+Inf").len(), 1);
    assert_eq!(bucket("+Inf")[0].value, 1000.0);
    assert!(bucket("0.005").is_empty() && bucket("1").is_empty() && bucket("10").is_empty());
}

#[test]
fn stale_histogram_marks_every_series_stale() {
    let mut p = histogram_point();
    p.flags = 1;
    let out = run(&bare(vec![histogram("h", "", CUMULATIVE, vec![p])]));
    assert_eq!(out.series.len(), 7);
    assert!(out.series.iter().all(|s| s.samples.len() == 1 && is_stale(s.samples[0].1)));
}

#[test]
fn delta_histograms_are_rejected() {
    let out = run(&bare(vec![histogram("lat", "s", DELTA, vec![histogram_point(), histogram_point()])]));
    assert!(out.series.is_empty());
    assert_eq!(out.rejected_points, 2);
    assert_eq!(
        out.problems,
        vec![
            "metric \"lat\": delta temporality is not supported; send cumulative (e.g. the collector's \
              deltatocumulative processor)"
                .to_owned()
        ]
    );
}

// ---- summaries ----------------------------------------------------------------------------------

#[test]
fn summary_quantiles_sum_and_count() {
    let q = |quantile: f64, value: f64| ValueAtQuantile { quantile, value };
    let p = SummaryDataPoint {
        attributes: vec![kv("op", "read")],
        time_unix_nano: T_NS,
        count: 100,
        sum: 250.5,
        quantile_values: vec![q(0.0, 0.1), q(0.5, 2.0), q(0.99, 9.5), q(1.0, 12.0)],
        ..Default::default()
    };
    let out = run(&bare(vec![metric("rpc.duration", "s", Data::Summary(Summary { data_points: vec![p] }))]));
    let one = |name: &str, quantile: Option<&str>| {
        let mut pairs = vec![("__name__", name), ("op", "read")];
        pairs.extend(quantile.map(|q| ("quantile", q)));
        series(&out, &pairs).samples.clone()
    };
    assert_eq!(one("rpc_duration_seconds", Some("0")), vec![(T_MS, 0.1)]);
    assert_eq!(one("rpc_duration_seconds", Some("0.5")), vec![(T_MS, 2.0)]);
    assert_eq!(one("rpc_duration_seconds", Some("0.99")), vec![(T_MS, 9.5)]);
    assert_eq!(one("rpc_duration_seconds", Some("1")), vec![(T_MS, 12.0)]);
    assert_eq!(one("rpc_duration_seconds_sum", None), vec![(T_MS, 250.5)]);
    assert_eq!(one("rpc_duration_seconds_count", None), vec![(T_MS, 100.0)]);
    assert_eq!(out.series.len(), 6);
}

// ---- exponential histograms ---------------------------------------------------------------------

fn exp_point(scale: i32, positive: Option<Buckets>, negative: Option<Buckets>) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint { time_unix_nano: T_NS, scale, positive, negative, ..Default::default() }
}

/// The native histogram of one exponential histogram point.
fn native(p: ExponentialHistogramDataPoint) -> vigil_proto::prometheus::Histogram {
    let out = run(&bare(vec![exponential("e", CUMULATIVE, vec![p])]));
    assert_eq!(out.rejected_points, 0, "{:?}", out.problems);
    let s = series(&out, &[("__name__", "e")]);
    assert!(s.samples.is_empty());
    assert_eq!(s.histograms.len(), 1);
    assert_eq!(s.histograms[0].0, s.histograms[0].1.timestamp);
    s.histograms[0].1.clone()
}

#[test]
fn exponential_histogram_becomes_a_native_histogram() {
    let mut p = exp_point(0, buckets(1, &[0, 2]), buckets(-2, &[3]));
    p.count = 6;
    p.sum = Some(10.0);
    p.zero_count = 1;
    p.attributes = vec![kv("k", "v")];
    let out = run(&bare(vec![metric(
        "req.size",
        "By",
        Data::ExponentialHistogram(ExponentialHistogram { data_points: vec![p], aggregation_temporality: CUMULATIVE }),
    )]));
    let s = series(&out, &[("__name__", "req_size_bytes"), ("k", "v")]);
    let h = &s.histograms[0].1;
    assert_eq!(s.histograms[0].0, T_MS);
    assert_eq!(h.timestamp, T_MS);
    assert_eq!(h.schema, 0);
    assert_eq!(h.count, Some(Count::CountInt(6)));
    assert_eq!(h.sum, 10.0);
    assert_eq!(h.zero_count, Some(ZeroCount::ZeroCountInt(1)));
    // Not set in the point: the spec's default.
    assert_eq!(h.zero_threshold, 1e-128);
    // OTLP positive buckets 1 and 2 ((2,4] and (4,8] at scale 0) are Prometheus buckets 2 and 3.
    assert_eq!(h.positive_spans, vec![span(2, 2)]);
    assert_eq!(h.positive_deltas, vec![0, 2]);
    // OTLP negative bucket -2 ((1/4,1/2]) is Prometheus bucket -1.
    assert_eq!(h.negative_spans, vec![span(-1, 1)]);
    assert_eq!(h.negative_deltas, vec![3]);
    assert!(h.positive_counts.is_empty() && h.negative_counts.is_empty() && h.custom_values.is_empty());
    assert_eq!(h.reset_hint, 0, "UNKNOWN");
}

#[test]
fn exponential_histogram_gaps_and_spans() {
    // OTLP buckets -3 and 1 (Prometheus -2 and 2): a gap of three empty buckets starts a new span.
    let h = native(exp_point(2, buckets(-3, &[1, 0, 0, 0, 2]), None));
    assert_eq!(h.schema, 2);
    assert_eq!(h.positive_spans, vec![span(-2, 1), span(3, 1)]);
    assert_eq!(h.positive_deltas, vec![1, 1]);
    // A gap of two is filled with zero buckets instead.
    let h = native(exp_point(0, buckets(0, &[4, 0, 0, 1]), None));
    assert_eq!(h.positive_spans, vec![span(1, 4)]);
    assert_eq!(h.positive_deltas, vec![4, -4, 0, 1]);
    // Leading empty buckets are not trimmed; like Prometheus this leaves an empty first span.
    let h = native(exp_point(0, buckets(0, &[0, 0, 0, 5]), None));
    assert_eq!(h.positive_spans, vec![span(1, 0), span(3, 1)]);
    assert_eq!(h.positive_deltas, vec![5]);
    // No buckets at all.
    let h = native(exp_point(0, None, buckets(3, &[])));
    assert!(h.positive_spans.is_empty() && h.negative_spans.is_empty() && h.negative_deltas.is_empty());
}

#[test]
fn exponential_histogram_above_scale_8_is_downscaled() {
    // Scale 10 → schema 8: every 4 neighbouring buckets merge. OTLP 0..3 → index 1, OTLP 4 → index 2.
    let h = native(exp_point(10, buckets(0, &[1, 1, 1, 1, 1]), None));
    assert_eq!(h.schema, 8);
    assert_eq!(h.positive_spans, vec![span(1, 2)]);
    assert_eq!(h.positive_deltas, vec![4, -3]);
    // Negative offsets round down: OTLP -4..-1 → index 0, OTLP 0..1 → index 1.
    let h = native(exp_point(10, buckets(-4, &[1, 2, 3, 4, 5, 6]), None));
    assert_eq!(h.positive_spans, vec![span(0, 2)]);
    assert_eq!(h.positive_deltas, vec![10, 1]);
    // A huge scale merges everything into one bucket without overflowing the shift.
    let h = native(exp_point(200, buckets(5, &[1, 2]), None));
    assert_eq!((h.schema, h.positive_spans.clone(), h.positive_deltas.clone()), (8, vec![span(1, 1)], vec![3]));
}

#[test]
fn exponential_histogram_scale_below_minus_4_is_rejected() {
    let points = vec![exp_point(-5, buckets(0, &[1]), None), exp_point(-4, buckets(0, &[1]), None)];
    let out = run(&bare(vec![exponential("e", CUMULATIVE, points)]));
    assert_eq!(out.rejected_points, 1);
    assert_eq!(out.problems, vec![r#"metric "e": exponential histogram scale -5 is below -4"#.to_owned()]);
    assert_eq!(series(&out, &[("__name__", "e")]).histograms[0].1.schema, -4);
}

#[test]
fn exponential_histogram_zero_threshold_stale_and_exemplars() {
    let mut p = exp_point(3, buckets(0, &[1]), None);
    p.zero_threshold = 0.001;
    p.count = 1;
    p.exemplars = vec![Exemplar { value: Some(exemplar::Value::AsDouble(1.01)), ..Default::default() }];
    let out = run(&bare(vec![exponential("e", CUMULATIVE, vec![p.clone()])]));
    let s = series(&out, &[("__name__", "e")]);
    assert_eq!(s.histograms[0].1.zero_threshold, 0.001);
    assert_eq!(s.histograms[0].1.sum, 0.0, "no sum in the point");
    assert_eq!(s.exemplars.len(), 1);

    p.flags = 1;
    let h = native(p);
    assert_eq!(h.count, Some(Count::CountInt(STALE_NAN_BITS)));
    assert!(is_stale(h.sum));
}

#[test]
fn delta_exponential_histograms_are_rejected() {
    let out = run(&bare(vec![exponential("e", DELTA, vec![exp_point(0, None, None)])]));
    assert!(out.series.is_empty());
    assert_eq!(out.rejected_points, 1);
    assert!(out.problems[0].starts_with(r#"metric "e": delta temporality is not supported"#));
}

// ---- what the rate limit counts -----------------------------------------------------------------

#[test]
fn sample_count_is_the_samples_the_points_become() {
    let q = |quantile: f64, value: f64| ValueAtQuantile { quantile, value };
    let summary = SummaryDataPoint {
        time_unix_nano: T_NS,
        count: 3,
        sum: 4.0,
        quantile_values: vec![q(0.5, 1.0), q(0.9, 2.0)],
        ..Default::default()
    };
    let mut inf_bound = histogram_point();
    inf_bound.explicit_bounds[3] = f64::INFINITY;
    inf_bound.sum = None;
    inf_bound.attributes = vec![kv("http.route", "/inf")];
    let req = bare(vec![
        gauge("g", "", vec![point(vec![kv("a", "1")], T_NS, 1.0), point(vec![kv("a", "2")], T_NS, 2.0)]),
        sum("c", "", true, CUMULATIVE, vec![point(vec![], T_NS, 3.0)]),
        histogram("h", "s", CUMULATIVE, vec![histogram_point(), inf_bound]),
        metric("s", "", Data::Summary(Summary { data_points: vec![summary] })),
        exponential("e", CUMULATIVE, vec![exp_point(0, buckets(0, &[1, 2]), None)]),
    ]);
    let out = run(&req);
    assert!(out.problems.is_empty(), "{:?}", out.problems);
    let converted: usize = out.series.iter().map(|s| s.samples.len() + s.histograms.len()).sum();
    // 2 gauge + 1 sum + (4 buckets + +Inf + sum + count) + (3 finite buckets + +Inf + count) + (2 + 2) + 1.
    assert_eq!(super::super::sample_count(&req), 2 + 1 + 7 + 5 + 4 + 1);
    assert_eq!(super::super::sample_count(&req), converted as u64);
    assert_eq!(super::super::sample_count(&ExportMetricsServiceRequest::default()), 0);
}

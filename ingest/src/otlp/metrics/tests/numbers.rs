//! Gauges and sums, exemplars, and what is rejected (undecodable data, bad names) and how it is reported.

use super::*;

// ---- gauges and sums ----------------------------------------------------------------------------

#[test]
fn gauge_points_become_samples_and_drop_exemplars() {
    let mut p1 = point(vec![kv("cpu", "0")], 1_000_000_000, 0.5);
    p1.exemplars = vec![Exemplar { value: Some(exemplar::Value::AsDouble(0.5)), ..Default::default() }];
    let p2 = NumberDataPoint {
        attributes: vec![kv("cpu", "0")],
        time_unix_nano: 2_500_000_999,
        value: Some(number_data_point::Value::AsInt(-3)),
        ..Default::default()
    };
    let out = run(&bare(vec![gauge("cpu.load", "1", vec![p1, p2])]));
    assert_eq!(out.series.len(), 1);
    let s = series(&out, &[("__name__", "cpu_load_ratio"), ("cpu", "0")]);
    // Nanoseconds are cut down to milliseconds.
    assert_eq!(s.samples, vec![(1_000, 0.5), (2_500, -3.0)]);
    assert!(s.exemplars.is_empty());
    assert!(s.histograms.is_empty());
    assert_eq!((out.rejected_points, out.problems.len()), (0, 0));
}

#[test]
fn cumulative_monotonic_sum_is_a_counter_with_total() {
    let mut p = point(vec![kv("code", "200")], T_NS, 17.0);
    p.start_time_unix_nano = T_NS - 60_000_000_000;
    p.exemplars = vec![Exemplar {
        value: Some(exemplar::Value::AsInt(1)),
        time_unix_nano: T_NS - 1_000_000,
        trace_id: vec![0xab; 16],
        ..Default::default()
    }];
    let out = run(&bare(vec![sum("http.requests", "{request}", true, CUMULATIVE, vec![p])]));
    let s = series(&out, &[("__name__", "http_requests_total"), ("code", "200")]);
    assert_eq!(s.samples, vec![(T_MS, 17.0)]);
    // Counters keep their exemplars.
    assert_eq!(
        s.exemplars,
        vec![PromExemplar { labels: labels(&[("trace_id", &"ab".repeat(16))]), timestamp_ms: T_MS - 1, value: 1.0 }]
    );
}

#[test]
fn cumulative_non_monotonic_sum_is_a_gauge() {
    let mut p = point(vec![], T_NS, -2.0);
    p.exemplars = vec![Exemplar { value: Some(exemplar::Value::AsDouble(1.0)), ..Default::default() }];
    let out = run(&bare(vec![
        sum("queue.depth", "", false, CUMULATIVE, vec![p]),
        sum("pool.usage", "1", false, CUMULATIVE, vec![point(vec![], T_NS, 0.5)]),
        sum("system.memory.usage", "By", false, CUMULATIVE, vec![point(vec![], T_NS, 1024.0)]),
    ]));
    assert_eq!(names(&out), vec!["queue_depth", "pool_usage", "system_memory_usage_bytes"]);
    // The spec drops exemplars of everything but histograms and monotonic sums.
    assert!(out.series[0].exemplars.is_empty());
    assert_eq!(out.series[0].samples, vec![(T_MS, -2.0)]);
    assert_eq!(out.series[2].samples, vec![(T_MS, 1024.0)]);
}

#[test]
fn delta_sums_are_rejected_with_a_reason() {
    let points = || vec![point(vec![], T_NS, 1.0), point(vec![kv("a", "b")], T_NS, 2.0)];
    let out = run(&bare(vec![
        sum("x", "", true, DELTA, points()),
        sum("y", "", false, DELTA, points()),
        gauge("ok", "", vec![point(vec![], T_NS, 3.0)]),
    ]));
    assert_eq!(names(&out), vec!["ok"]);
    assert_eq!(out.rejected_points, 4);
    assert_eq!(
        out.problems,
        vec![
            "metric \"x\": delta temporality is not supported; send cumulative (e.g. the collector's \
             deltatocumulative processor)"
                .to_owned(),
            "metric \"y\": delta temporality is not supported; send cumulative (e.g. the collector's \
             deltatocumulative processor)"
                .to_owned(),
        ]
    );
}

#[test]
fn unspecified_or_unknown_temporality_is_rejected() {
    let out = run(&bare(vec![
        sum("u", "", true, 0, vec![point(vec![], T_NS, 1.0)]),
        histogram("h", "", 7, vec![HistogramDataPoint::default()]),
    ]));
    assert!(out.series.is_empty());
    assert_eq!(out.rejected_points, 2);
    assert_eq!(
        out.problems,
        vec![
            r#"metric "u": aggregation temporality is unspecified"#.to_owned(),
            r#"metric "h": unknown aggregation temporality 7"#.to_owned(),
        ]
    );
}

#[test]
fn point_without_value_is_rejected_unless_stale() {
    let empty = NumberDataPoint { time_unix_nano: T_NS, ..Default::default() };
    let stale = NumberDataPoint { time_unix_nano: T_NS + 1_000_000, flags: 1, ..Default::default() };
    let out = run(&bare(vec![gauge("g", "", vec![empty, stale])]));
    assert_eq!(out.rejected_points, 1);
    assert_eq!(out.problems, vec![r#"metric "g": data point has no value"#.to_owned()]);
    let s = series(&out, &[("__name__", "g")]);
    assert_eq!(s.samples.len(), 1);
    assert_eq!(s.samples[0].0, T_MS + 1);
    assert!(is_stale(s.samples[0].1));
}

#[test]
fn no_recorded_value_becomes_the_stale_marker() {
    let mut p = point(vec![], T_NS, 5.0);
    p.flags = 1;
    let out = run(&bare(vec![sum("c", "", true, CUMULATIVE, vec![p])]));
    let s = series(&out, &[("__name__", "c_total")]);
    assert!(is_stale(s.samples[0].1));
    assert_eq!(STALE_NAN_BITS, 0x7ff0_0000_0000_0002);
}

#[test]
fn points_of_one_series_share_it_in_point_order() {
    let metrics = vec![
        gauge("g", "", vec![point(vec![kv("k", "a")], 3_000_000, 1.0), point(vec![kv("k", "b")], 1_000_000, 2.0)]),
        gauge("g", "", vec![point(vec![kv("k", "a")], 2_000_000, 3.0)]),
    ];
    let mut req = request(vec![kv("service.name", "s")], ("lib", ""), metrics);
    // The same metric again under a second ScopeMetrics with the same scope.
    let again = req.resource_metrics[0].scope_metrics[0].clone();
    req.resource_metrics[0].scope_metrics.push(again);
    let out = run(&req);
    assert_eq!(out.series.len(), 2);
    let a = series(&out, &[("__name__", "g"), ("job", "s"), ("k", "a"), ("otel_scope_name", "lib")]);
    assert_eq!(a.samples, vec![(3, 1.0), (2, 3.0), (3, 1.0), (2, 3.0)]);
    let b = series(&out, &[("__name__", "g"), ("job", "s"), ("k", "b"), ("otel_scope_name", "lib")]);
    assert_eq!(b.samples, vec![(1, 2.0), (1, 2.0)]);
}

// ---- exemplars ----------------------------------------------------------------------------------

#[test]
fn exemplar_ids_in_lower_case_hex_and_attributes_as_labels() {
    let trace: Vec<u8> = (0x10..0x20).collect();
    let e = Exemplar {
        filtered_attributes: vec![kv("user.id", "u1"), kv("trace_id", "spoofed"), kv("", "no name")],
        time_unix_nano: 1_999_999,
        value: Some(exemplar::Value::AsInt(7)),
        span_id: vec![0xDE, 0xAD, 0xBE, 0xEF, 0, 1, 2, 3],
        trace_id: trace,
    };
    let mut p = point(vec![], T_NS, 1.0);
    p.exemplars = vec![e];
    let out = run(&bare(vec![sum("c", "", true, CUMULATIVE, vec![p])]));
    assert_eq!(
        out.series[0].exemplars,
        vec![PromExemplar {
            labels: labels(&[
                ("span_id", "deadbeef00010203"),
                ("trace_id", "101112131415161718191a1b1c1d1e1f"),
                ("user_id", "u1"),
            ]),
            timestamp_ms: 1,
            value: 7.0,
        }]
    );
}

#[test]
fn exemplar_ids_of_wrong_length_or_zero_are_dropped() {
    let e = |trace: Vec<u8>, span: Vec<u8>| Exemplar {
        value: Some(exemplar::Value::AsDouble(1.0)),
        trace_id: trace,
        span_id: span,
        ..Default::default()
    };
    let mut p = point(vec![], T_NS, 1.0);
    p.exemplars = vec![e(vec![1; 15], vec![1; 9]), e(vec![0; 16], vec![0; 8]), Exemplar::default()];
    let out = run(&bare(vec![sum("c", "", true, CUMULATIVE, vec![p])]));
    // The exemplar without a value is skipped; the others keep their value without id labels.
    let ex = &out.series[0].exemplars;
    assert_eq!(ex.len(), 2);
    assert!(ex.iter().all(|e| e.labels.is_empty()));
}

#[test]
fn exemplar_attributes_over_128_characters_are_dropped_but_ids_kept() {
    let e = Exemplar {
        filtered_attributes: vec![kv("note", &"x".repeat(100))],
        value: Some(exemplar::Value::AsDouble(1.0)),
        trace_id: vec![1; 16],
        ..Default::default()
    };
    let mut p = point(vec![], T_NS, 1.0);
    p.exemplars = vec![e.clone()];
    let out = run(&bare(vec![sum("c", "", true, CUMULATIVE, vec![p])]));
    // 8 + 32 (trace_id) + 4 + 100 (note) = 144 > 128.
    assert_eq!(out.series[0].exemplars[0].labels, labels(&[("trace_id", &"01".repeat(16))]));

    let mut short = e;
    short.filtered_attributes = vec![kv("note", &"x".repeat(84))];
    let mut p = point(vec![], T_NS, 1.0);
    p.exemplars = vec![short];
    let out = run(&bare(vec![sum("c", "", true, CUMULATIVE, vec![p])]));
    // Exactly 128: kept.
    assert_eq!(out.series[0].exemplars[0].labels.len(), 2);
}

// ---- undecodable data, names and problem reporting ----------------------------------------------

#[test]
fn metric_without_data_is_rejected_not_ignored() {
    let broken = Metric { name: "broken".into(), data: None, ..Default::default() };
    let out = run(&bare(vec![broken, gauge("ok", "", vec![point(vec![], T_NS, 1.0)])]));
    assert_eq!(names(&out), vec!["ok"]);
    assert_eq!(out.rejected_points, 1);
    assert_eq!(out.problems, vec![r#"metric "broken": no data (unknown or undecodable data type)"#.to_owned()]);
}

#[test]
fn invalid_json_inside_a_metric_is_rejected() {
    // The enum given as a name is invalid OTLP/JSON; opentelemetry-proto decodes the request anyway but
    // leaves `data` empty. It must come out as a rejected point.
    let json = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
        {"name":"bad","sum":{"aggregationTemporality":"AGGREGATION_TEMPORALITY_CUMULATIVE","isMonotonic":true,
            "dataPoints":[{"asInt":"1","timeUnixNano":"1000000"}]}},
        {"name":"good","gauge":{"dataPoints":[{"asInt":"2","timeUnixNano":"1000000"}]}}
    ]}]}]}"#;
    let req = match serde_json::from_str::<ExportMetricsServiceRequest>(json) {
        Ok(req) => req,
        Err(e) => panic!("decode: {e}"),
    };
    assert!(req.resource_metrics[0].scope_metrics[0].metrics[0].data.is_none());
    let out = run(&req);
    assert_eq!(out.rejected_points, 1);
    assert_eq!(out.problems, vec![r#"metric "bad": no data (unknown or undecodable data type)"#.to_owned()]);
    assert_eq!(series(&out, &[("__name__", "good")]).samples, vec![(1, 2.0)]);
}

#[test]
fn metric_name_that_leaves_nothing_is_rejected() {
    let out = run(&bare(vec![gauge("@#$%", "", vec![point(vec![], T_NS, 1.0), point(vec![], T_NS, 2.0)])]));
    assert!(out.series.is_empty());
    assert_eq!(out.rejected_points, 2);
    assert_eq!(out.problems, vec![r#"metric "@#$%": the name leaves no valid Prometheus metric name"#.to_owned()]);
}

#[test]
fn empty_metrics_and_requests_give_nothing() {
    assert_eq!(run(&ExportMetricsServiceRequest::default()), Converted::default());
    let out =
        run(&request(vec![kv("service.name", "a"), kv("host.name", "h")], ("", ""), vec![gauge("g", "", vec![])]));
    assert_eq!(out, Converted::default());
}

#[test]
fn problems_are_distinct_and_capped() {
    let delta = |name: String| sum(&name, "", true, DELTA, vec![point(vec![], T_NS, 1.0)]);
    // The same reason twice gives one message.
    let out = run(&bare(vec![delta("x".into()), delta("x".into())]));
    assert_eq!((out.rejected_points, out.problems.len()), (2, 1));
    // Twenty reasons give sixteen messages and a count of the rest.
    let out = run(&bare((0..20).map(|i| delta(format!("m{i}"))).collect()));
    assert_eq!(out.rejected_points, 20);
    assert_eq!(out.problems.len(), 17);
    assert!(out.problems[15].starts_with(r#"metric "m15""#));
    assert_eq!(out.problems[16], "and 4 more problems");
    // Very long names are cut in messages.
    let out = run(&bare(vec![delta("n".repeat(500))]));
    assert!(out.problems[0].chars().count() < 250, "{}", out.problems[0]);
    assert!(out.problems[0].starts_with(&format!("metric \"{}\"…: delta", "n".repeat(100))));
}

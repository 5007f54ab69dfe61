//! Metric names (name, unit and type suffixes) and label names and values.

use super::*;

// ---- metric names -------------------------------------------------------------------------------

#[test]
fn names_from_the_brief() {
    let cases = [
        ("http.server.duration", "ms", Kind::Histogram, "http_server_duration_milliseconds"),
        ("system.memory.usage", "By", Kind::NonMonotonicCounter, "system_memory_usage_bytes"),
        ("system.memory.usage", "By", Kind::Gauge, "system_memory_usage_bytes"),
        ("requests", "{request}", Kind::MonotonicCounter, "requests_total"),
        ("foo", "1", Kind::Gauge, "foo_ratio"),
    ];
    for (name, unit, kind, want) in cases {
        assert_eq!(metric_name(name, unit, kind).as_deref(), Some(want), "{name} [{unit}] {kind:?}");
    }
}

#[test]
fn names_unit_words() {
    let cases = [
        ("s", "x_seconds"),
        ("ms", "x_milliseconds"),
        ("us", "x_microseconds"),
        ("ns", "x_nanoseconds"),
        ("min", "x_minutes"),
        ("h", "x_hours"),
        ("d", "x_days"),
        ("By", "x_bytes"),
        ("KBy", "x_kilobytes"),
        ("MBy", "x_megabytes"),
        ("GBy", "x_gigabytes"),
        ("TBy", "x_terabytes"),
        ("KiBy", "x_kibibytes"),
        ("MiBy", "x_mebibytes"),
        ("GiBy", "x_gibibytes"),
        ("TiBy", "x_tebibytes"),
        ("m", "x_meters"),
        ("V", "x_volts"),
        ("A", "x_amperes"),
        ("J", "x_joules"),
        ("W", "x_watts"),
        ("g", "x_grams"),
        ("Cel", "x_celsius"),
        ("Hz", "x_hertz"),
        ("%", "x_percent"),
        // Unknown units are kept, cleaned up like a name.
        ("custom_unit", "x_custom_unit"),
        ("unit__multiple__underscores", "x_unit_multiple_underscores"),
        // Spaces around the unit do not matter.
        (" s ", "x_seconds"),
        // Annotations give no suffix.
        ("{packet}", "x"),
        ("", "x"),
    ];
    for (unit, want) in cases {
        assert_eq!(metric_name("x", unit, Kind::Gauge).as_deref(), Some(want), "unit {unit:?}");
    }
}

#[test]
fn names_per_units() {
    let cases = [
        ("By/s", "x_bytes_per_second"),
        ("m/s", "x_meters_per_second"),
        ("m/m", "x_meters_per_minute"),
        ("1/h", "x_per_hour"),
        ("{request}/d", "x_per_day"),
        ("By/w", "x_bytes_per_week"),
        ("By/mo", "x_bytes_per_month"),
        ("By/y", "x_bytes_per_year"),
        ("By/{custom}", "x_bytes"),
        // A per unit not in the map is used as it is.
        ("By/min", "x_bytes_per_min"),
        ("unit@with#special/chars", "x_unit_with_special_per_chars"),
    ];
    for (unit, want) in cases {
        assert_eq!(metric_name("x", unit, Kind::Gauge).as_deref(), Some(want), "unit {unit:?}");
    }
}

#[test]
fn names_sanitised() {
    let cases = [
        ("metric@with#special$chars", "metric_with_special_chars"),
        ("metric@@##$$name", "metric_name"),
        ("metric__with__multiple__underscores", "metric_with_multiple_underscores"),
        ("_leading_and_trailing_", "leading_and_trailing"),
        ("namespace:sub.metric", "namespace:sub_metric"),
        ("métric", "m_tric"),
        // A leading digit gets an underscore.
        ("2xx.responses", "_2xx_responses"),
    ];
    for (name, want) in cases {
        assert_eq!(metric_name(name, "", Kind::Gauge).as_deref(), Some(want), "{name:?}");
    }
    assert_eq!(metric_name("@#$%", "", Kind::Gauge), None);
    assert_eq!(metric_name("", "", Kind::Summary), None);
}

#[test]
fn names_suffixes_not_repeated() {
    let cases = [
        ("response_time_seconds", "s", Kind::Gauge, "response_time_seconds"),
        // Prometheus checks every token of the name for the unit word, not only the last.
        ("seconds_in_queue", "s", Kind::Gauge, "seconds_in_queue"),
        ("requests_total", "", Kind::MonotonicCounter, "requests_total"),
        ("cpu_seconds_total", "s", Kind::MonotonicCounter, "cpu_seconds_total"),
        // `total` moves to the end.
        ("total_requests", "", Kind::MonotonicCounter, "requests_total"),
        ("cpu_usage_ratio", "1", Kind::Gauge, "cpu_usage_ratio"),
        ("throughput_bytes", "By/s", Kind::Gauge, "throughput_bytes_per_second"),
        // The unit comes before the type suffix.
        ("requests", "1/s", Kind::MonotonicCounter, "requests_per_second_total"),
        ("cpu.time", "s", Kind::MonotonicCounter, "cpu_time_seconds_total"),
    ];
    for (name, unit, kind, want) in cases {
        assert_eq!(metric_name(name, unit, kind).as_deref(), Some(want), "{name} [{unit}] {kind:?}");
    }
}

#[test]
fn names_total_and_ratio_only_where_they_belong() {
    // `_total` only for monotonic sums.
    assert_eq!(metric_name("items", "", Kind::NonMonotonicCounter).as_deref(), Some("items"));
    assert_eq!(metric_name("items", "", Kind::Gauge).as_deref(), Some("items"));
    assert_eq!(metric_name("items", "", Kind::Histogram).as_deref(), Some("items"));
    // `_ratio` only for gauges with unit exactly "1" (Prometheus: not for counters, not for up-down sums).
    assert_eq!(metric_name("items", "1", Kind::MonotonicCounter).as_deref(), Some("items_total"));
    assert_eq!(metric_name("items", "1", Kind::NonMonotonicCounter).as_deref(), Some("items"));
    assert_eq!(metric_name("items", "1", Kind::Summary).as_deref(), Some("items"));
    assert_eq!(metric_name("items", "1/s", Kind::Gauge).as_deref(), Some("items_per_second"));
}

// ---- label names and values ---------------------------------------------------------------------

#[test]
fn label_names_normalised_like_prometheus() {
    let cases = [
        ("http.method", Some("http_method")),
        ("label:with:colons", Some("label_with_colons")),
        ("LabelWithCapitalLetters", Some("LabelWithCapitalLetters")),
        ("label!with&special$chars)", Some("label_with_special_chars_")),
        // One `_` per character, runs kept (Prometheus' default `label_name_preserve_multiple_underscores`).
        ("label_with_foreign_characters_字符", Some("label_with_foreign_characters___")),
        ("a..b", Some("a__b")),
        ("123label", Some("key_123label")),
        ("_label_starting_with_underscore", Some("key_label_starting_with_underscore")),
        ("__label_starting_with_2underscores", Some("__label_starting_with_2underscores")),
        ("__name__", Some("__name__")),
        ("", None),
        (".", None),
        ("__", None),
        ("字", None),
    ];
    for (key, want) in cases {
        assert_eq!(label_name(key).as_deref(), want, "{key:?}");
    }
}

#[test]
fn attribute_values_as_text() {
    use any_value::Value;
    let text = |v: Value| value_text(any(v).as_ref());
    assert_eq!(text(Value::StringValue("a b".into())), "a b");
    assert_eq!(text(Value::BoolValue(true)), "true");
    assert_eq!(text(Value::BoolValue(false)), "false");
    assert_eq!(text(Value::IntValue(-42)), "-42");
    assert_eq!(text(Value::DoubleValue(1.5)), "1.5");
    assert_eq!(text(Value::DoubleValue(10.0)), "10");
    assert_eq!(text(Value::DoubleValue(0.000001)), "0.000001");
    assert_eq!(text(Value::DoubleValue(1e-7)), "1e-7");
    assert_eq!(text(Value::DoubleValue(1e21)), "1e+21");
    assert_eq!(text(Value::DoubleValue(1.5e300)), "1.5e+300");
    assert_eq!(text(Value::DoubleValue(123456789012345680000.0)), "123456789012345680000");
    assert_eq!(text(Value::BytesValue(b"hello".to_vec())), "aGVsbG8=");
    assert_eq!(text(Value::BytesValue(vec![0, 1, 2, 255])), "AAEC/w==");
    assert_eq!(text(Value::BytesValue(b"he".to_vec())), "aGU=");
    let array = ArrayValue {
        values: vec![
            any(Value::IntValue(1)).unwrap_or_default(),
            any(Value::StringValue("a\"b".into())).unwrap_or_default(),
            any(Value::BoolValue(true)).unwrap_or_default(),
            any(Value::DoubleValue(2.5)).unwrap_or_default(),
            AnyValue { value: None },
        ],
    };
    assert_eq!(text(Value::ArrayValue(array)), r#"[1,"a\"b",true,2.5,null]"#);
    // Map keys come out sorted, as Go's encoder writes them; `<` `>` `&` escaped as Go does.
    let list = KeyValueList {
        values: vec![kv_any("b", Value::IntValue(1)), kv("a", "<x&y>"), kv_any("c", Value::BytesValue(vec![255]))],
    };
    assert_eq!(text(Value::KvlistValue(list)), r#"{"a":"\u003cx\u0026y\u003e","b":1,"c":"/w=="}"#);
    assert_eq!(value_text(None), "");
    assert_eq!(value_text(Some(&AnyValue { value: None })), "");
}

#[test]
fn attributes_become_labels_and_non_strings_are_rendered() {
    let attrs = vec![
        kv("http.method", "GET"),
        kv_any("http.status_code", any_value::Value::IntValue(200)),
        kv_any("retry", any_value::Value::BoolValue(false)),
        kv_any("ratio", any_value::Value::DoubleValue(0.25)),
        kv("empty", ""),
        kv("9lives", "cat"),
    ];
    let out = run(&bare(vec![gauge("g", "", vec![point(attrs, T_NS, 1.0)])]));
    assert_eq!(
        out.series[0].labels,
        labels(&[
            ("__name__", "g"),
            ("http_method", "GET"),
            ("http_status_code", "200"),
            ("key_9lives", "cat"),
            ("ratio", "0.25"),
            ("retry", "false"),
        ])
    );
}

#[test]
fn colliding_attribute_names_join_values_in_key_order() {
    // "a-b" < "a.b" < "a_b" byte-wise; all three become `a_b`.
    let attrs = vec![kv("a_b", "2"), kv("a.b", "1"), kv("a-b", "0"), kv("a/b", "")];
    let out = run(&bare(vec![gauge("g", "", vec![point(attrs, T_NS, 1.0)])]));
    assert_eq!(out.series[0].labels, labels(&[("__name__", "g"), ("a_b", "0;1;2")]));
}

#[test]
fn invalid_attribute_name_rejects_the_point() {
    let points = vec![point(vec![kv(".", "secret-value")], T_NS, 1.0), point(vec![kv("ok", "x")], T_NS, 2.0)];
    let out = run(&bare(vec![gauge("g", "", points)]));
    assert_eq!(out.rejected_points, 1);
    assert_eq!(out.problems, vec![r#"metric "g": attribute name "." gives no valid label name"#.to_owned()]);
    assert_eq!(series(&out, &[("__name__", "g"), ("ok", "x")]).samples, vec![(T_MS, 2.0)]);
    assert!(!out.problems.concat().contains("secret-value"));
}

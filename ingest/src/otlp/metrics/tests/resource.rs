//! `job`, `instance`, scope labels, label precedence and `target_info`.

use super::*;

// ---- resource, scope and label merging ----------------------------------------------------------

#[test]
fn job_and_instance_from_the_resource() {
    let one = |resource: Vec<KeyValue>| {
        let out = run(&request(resource, ("", ""), vec![gauge("g", "", vec![point(vec![], T_NS, 1.0)])]));
        out.series.iter().find(|s| s.labels.contains(&("__name__".into(), "g".into()))).map(|s| s.labels.clone())
    };
    assert_eq!(
        one(vec![kv("service.name", "api"), kv("service.namespace", "shop"), kv("service.instance.id", "pod-1")]),
        Some(labels(&[("__name__", "g"), ("instance", "pod-1"), ("job", "shop/api")]))
    );
    assert_eq!(one(vec![kv("service.name", "api")]), Some(labels(&[("__name__", "g"), ("job", "api")])));
    // An empty namespace is no namespace (spec).
    assert_eq!(
        one(vec![kv("service.name", "api"), kv("service.namespace", "")]),
        Some(labels(&[("__name__", "g"), ("job", "api")]))
    );
    // No service.name: no job (Prometheus does not invent `unknown_service`), namespace alone is ignored.
    assert_eq!(
        one(vec![kv("service.namespace", "shop"), kv("service.instance.id", "pod-1")]),
        Some(labels(&[("__name__", "g"), ("instance", "pod-1")]))
    );
    // Other resource attributes do not become labels of the points.
    assert_eq!(
        one(vec![kv("service.name", "api"), kv("host.name", "h1")]),
        Some(labels(&[("__name__", "g"), ("job", "api")]))
    );
}

#[test]
fn scope_name_and_version_labels() {
    let g = || gauge("g", "", vec![point(vec![], T_NS, 1.0)]);
    let out = run(&request(vec![], ("io.opentelemetry.http", "1.2.3"), vec![g()]));
    assert_eq!(
        out.series[0].labels,
        labels(&[("__name__", "g"), ("otel_scope_name", "io.opentelemetry.http"), ("otel_scope_version", "1.2.3")])
    );
    let out = run(&request(vec![], ("lib", ""), vec![g()]));
    assert_eq!(out.series[0].labels, labels(&[("__name__", "g"), ("otel_scope_name", "lib")]));
    // No scope message at all.
    let mut req = bare(vec![g()]);
    req.resource_metrics[0].scope_metrics[0].scope = None;
    assert_eq!(run(&req).series[0].labels, labels(&[("__name__", "g")]));
}

#[test]
fn point_attributes_lose_to_name_scope_job_and_instance() {
    let attrs = vec![
        kv("__name__", "evil"),
        kv("job", "from-point"),
        kv("instance", "from-point"),
        kv("otel_scope_name", "from-point"),
        kv("otel.scope.version", "from-point"),
        kv("env", "prod"),
    ];
    // The resource has service.name but no service.instance.id: the point's `instance` survives (as in
    // Prometheus, which only sets `instance` when there is an id), its `job` does not.
    let req =
        request(vec![kv("service.name", "svc")], ("lib", "2"), vec![gauge("g", "", vec![point(attrs, T_NS, 1.0)])]);
    let out = run(&req);
    assert_eq!(
        out.series[0].labels,
        labels(&[
            ("__name__", "g"),
            ("env", "prod"),
            ("instance", "from-point"),
            ("job", "svc"),
            ("otel_scope_name", "lib"),
            ("otel_scope_version", "2"),
        ])
    );
}

#[test]
fn target_info_per_resource() {
    let resource = vec![
        kv("service.name", "api"),
        kv("service.namespace", "shop"),
        kv("service.instance.id", "pod-1"),
        kv("host.name", "h1"),
        kv_any("process.pid", any_value::Value::IntValue(42)),
    ];
    let metrics = vec![
        gauge("a", "", vec![point(vec![], 3_000_000_000, 1.0), point(vec![kv("x", "1")], 1_000_000_000, 1.0)]),
        gauge("b", "", vec![point(vec![], 2_000_000_000, 1.0)]),
        // Rejected points do not count for target_info's time.
        sum("c", "", true, DELTA, vec![point(vec![], 9_000_000_000, 1.0)]),
    ];
    let out = run(&request(resource, ("lib", "1"), metrics));
    let info = series(
        &out,
        &[
            ("__name__", "target_info"),
            ("host_name", "h1"),
            ("instance", "pod-1"),
            ("job", "shop/api"),
            ("process_pid", "42"),
        ],
    );
    // Value 1 at the time of the resource's latest accepted point.
    assert_eq!(info.samples, vec![(3_000, 1.0)]);
    assert_eq!(names(&out), vec!["a", "a", "b", "target_info"]);
}

#[test]
fn no_target_info_without_other_attributes_or_identity() {
    let g = || gauge("g", "", vec![point(vec![], T_NS, 1.0)]);
    // Only the identifying attributes: target_info would say nothing.
    let out = run(&request(vec![kv("service.name", "api"), kv("service.instance.id", "1")], ("", ""), vec![g()]));
    assert_eq!(names(&out), vec!["g"]);
    // Other attributes but neither job nor instance to join them on (Prometheus skips it too).
    let out = run(&request(vec![kv("host.name", "h1")], ("", ""), vec![g()]));
    assert_eq!(names(&out), vec!["g"]);
    // No accepted point in the resource.
    let out = run(&request(
        vec![kv("service.name", "api"), kv("host.name", "h1")],
        ("", ""),
        vec![sum("s", "", true, DELTA, vec![point(vec![], T_NS, 1.0)])],
    ));
    assert!(out.series.is_empty());
    // Only service.instance.id is enough to join on.
    let out = run(&request(vec![kv("service.instance.id", "i"), kv("host.name", "h1")], ("", ""), vec![g()]));
    assert_eq!(
        series(&out, &[("__name__", "target_info"), ("host_name", "h1"), ("instance", "i")]).samples,
        vec![(T_MS, 1.0)]
    );
}

#[test]
fn target_info_once_for_a_resource_sent_twice() {
    let resource = vec![kv("service.name", "api"), kv("host.name", "h1")];
    let rm = || resource_metrics(resource.clone(), ("", ""), vec![gauge("g", "", vec![point(vec![], T_NS, 1.0)])]);
    let out = run(&ExportMetricsServiceRequest { resource_metrics: vec![rm(), rm()] });
    let info = series(&out, &[("__name__", "target_info"), ("host_name", "h1"), ("job", "api")]);
    assert_eq!(info.samples, vec![(T_MS, 1.0)]);
    // The points themselves are both kept, in one series.
    assert_eq!(series(&out, &[("__name__", "g"), ("job", "api")]).samples, vec![(T_MS, 1.0), (T_MS, 1.0)]);
}

#[test]
fn target_info_leaves_out_attributes_that_cannot_be_labels() {
    let resource = vec![kv("service.name", "api"), kv("...", "v"), kv("host.name", "h1")];
    let out = run(&request(resource, ("", ""), vec![gauge("g", "", vec![point(vec![], T_NS, 1.0)])]));
    series(&out, &[("__name__", "target_info"), ("host_name", "h1"), ("job", "api")]);
    assert_eq!(out.rejected_points, 0);
    assert_eq!(
        out.problems,
        vec![r#"resource attribute name "..." gives no valid label name; left out of target_info"#.to_owned()]
    );
}

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use vigil_detect::events::Severity;
use vigil_detect::incidents::{Incident, RootCause, Status};
use vigil_ingest::own_series::{OwnSeries, OwnSeriesSink};
use vigil_proto::alertmanager::{AlertBatch, PostableAlert};

use super::evaluator::{Evaluator, World};
use super::rules;
use super::*;
use crate::own_series::{OwnSeriesConfig, OwnSeriesMetrics};
use crate::params::rfc3339;

const T0: i64 = 1_700_000_000_000;

fn now() -> i64 {
    T0
}

fn store() -> OwnSeriesStore {
    OwnSeriesStore::with_clock(OwnSeriesConfig::default(), OwnSeriesMetrics::default(), now)
}

fn put(store: &OwnSeriesStore, tenant: &str, labels: &[(&str, &str)], at: i64, value: f64) {
    let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    store.append(tenant, vec![OwnSeries { labels, samples: vec![(at, value)] }]);
}

fn config() -> AlertingConfig {
    AlertingConfig {
        resend_delay: Duration::from_secs(60),
        evaluation_interval: Duration::from_secs(1),
        group_window: Duration::from_secs(2),
        ..AlertingConfig::default()
    }
}

fn evaluator(text: &str) -> Evaluator {
    Evaluator::new(rules::parse(text, &config().group_by).unwrap())
}

/// One evaluation at `at`; the batches it sent.
fn tick(e: &mut Evaluator, store: &OwnSeriesStore, at: i64, incidents: &[Incident]) -> Vec<AlertBatch> {
    let open = |tenant: &str| incidents.iter().filter(|i| i.tenant == tenant).cloned().collect();
    let none = |_: &str| Vec::new();
    let world = World { store, open_incidents: &open, anomalies: &none, now_ms: at, default_tenant: "default" };
    let mut out = Vec::new();
    e.evaluate(&world, &config(), &mut |b| {
        out.push(b);
        true
    });
    out
}

fn alerts(batches: &[AlertBatch]) -> Vec<&PostableAlert> {
    batches.iter().flat_map(|b| &b.alerts).collect()
}

fn firing(a: &PostableAlert, at: i64) -> bool {
    a.ends_at.as_deref().is_some_and(|e| e > rfc3339(at).as_str())
}

#[test]
fn rule_files_that_do_not_validate_name_the_rule_and_the_key() {
    let cases = [
        ("rules: [", "did not find expected"),
        ("rules:\n- alert: A\n  threshold: {expr: up, op: '>', value: 1}\n  labls: {}\n", "unknown field `labls`"),
        (
            "rules:\n- alert: A\n  threshold: {expr: up, op: '=>', value: 1}\n",
            "rules[0] (alert \"A\"): threshold.op must be one of",
        ),
        (
            "rules:\n- alert: A\n  threshold: {expr: 'rate(up[5m]', op: '>', value: 1}\n",
            "rules[0] (alert \"A\"): threshold.expr:",
        ),
        (
            "rules:\n- alert: A\n  threshold: {expr: 'up[5m]', op: '>', value: 1}\n",
            "expected an instant vector or scalar",
        ),
        ("rules:\n- alert: A\n  anomaly: {match: 'sum(up)'}\n", "anomaly.match must be a series selector"),
        ("rules:\n- alert: A\n  anomaly: {match: up, min_score: -1}\n", "min_score must be a number ≥ 0"),
        ("rules:\n- alert: A\n  anomaly: {match: up, for: soon}\n", "for"),
        ("rules:\n- alert: A\n  composite: {all: [B]}\n", "composite names \"B\", which is no rule here"),
        ("rules:\n- alert: A\n  composite: {all: [B]}\n- alert: B\n  composite: {any: [A]}\n", "form a cycle"),
        (
            "rules:\n- alert: A\n  anomaly: {match: up}\n- alert: A\n  anomaly: {match: up}\n",
            "already used by rules[0]",
        ),
        ("rules:\n- alert: A\n", "needs exactly one of threshold, anomaly or composite"),
        ("rules:\n- alert: A\n  anomaly: {match: up}\n  labels: {alertname: x}\n", "labels.alertname"),
        ("rules:\n- alert: A\n  anomaly: {match: up}\n  group_by: ['bad-label']\n", "not a valid label name"),
        ("inhibit_rules:\n- target_matchers: ['a=\"b\"']\n", "source_matchers is empty"),
        ("inhibit_rules:\n- source_matchers: ['a=']\n", "inhibit_rules[0].source_matchers"),
    ];
    for (text, want) in cases {
        let errors = rules::parse(text, &[]).expect_err(text).join("\n");
        assert!(errors.contains(want), "{text:?}: {errors}");
    }
    let set = rules::parse(rules::DEFAULT_RULES, &config().group_by).unwrap();
    assert_eq!(set.rules.len(), 1, "the embedded default rules validate");
    let ordered = rules::parse(
        "rules:\n- alert: C\n  composite: {any: [A, B]}\n- alert: A\n  anomaly: {match: up}\n- alert: B\n  anomaly: {match: up}\n",
        &[],
    )
    .unwrap();
    let names: Vec<&str> = ordered.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"], "a composite is evaluated after the rules it names");
}

#[test]
fn check_rules_file_reports_a_missing_file_and_problems_with_the_path() {
    let dir = std::env::temp_dir().join(format!("vigil-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "rules:\n- alert: A\n  threshold: {expr: up, op: '~', value: 1}\n").unwrap();
    let e = check_rules_file(&bad, &[]).unwrap_err().to_string();
    assert!(e.contains("bad.yaml") && e.contains("threshold.op"), "{e}");
    let e = check_rules_file(&dir.join("missing.yaml"), &[]).unwrap_err().to_string();
    assert!(e.contains("missing.yaml") && e.contains("No such file"), "{e}");
    let good = dir.join("good.yaml");
    std::fs::write(&good, "rules:\n- alert: A\n  anomaly: {match: up}\n").unwrap();
    assert_eq!(check_rules_file(&good, &[]).unwrap(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_threshold_is_pending_then_firing_then_resolved_and_resent_while_firing() {
    let s = store();
    let mut e = evaluator(
        "rules:\n- alert: HighErrors\n  threshold: {expr: 'traces_spanmetrics_error_ratio', op: '>', value: 0.1, for: 2s}\n  labels: {severity: page}\n  annotations: {summary: '{{ $labels.service }} errors at {{ $value }}'}\n",
    );
    let ratio = |svc: &'static str, at: i64, v: f64| {
        put(&s, "default", &[("__name__", "traces_spanmetrics_error_ratio"), ("service", svc)], at, v)
    };
    ratio("api", T0, 0.5);
    ratio("db", T0, 0.01);
    assert!(tick(&mut e, &s, T0, &[]).is_empty(), "pending: nothing sent");
    assert!(tick(&mut e, &s, T0 + 1000, &[]).is_empty());
    let sent = tick(&mut e, &s, T0 + 2000, &[]);
    let a = alerts(&sent);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(sent[0].tenant, "default");
    assert!(!sent[0].alerts[0].labels.contains_key("tenant"), "the default tenant's alerts carry no tenant label");
    let want: BTreeMap<String, String> = [("alertname", "HighErrors"), ("service", "api"), ("severity", "page")]
        .map(|(k, v)| (k.into(), v.into()))
        .into();
    assert_eq!(a[0].labels, want);
    assert_eq!(a[0].annotations["summary"], "api errors at 0.5000");
    assert_eq!(a[0].starts_at.as_deref(), Some(rfc3339(T0).as_str()), "startsAt is when it became active");
    assert!(firing(a[0], T0 + 2000));
    assert!(tick(&mut e, &s, T0 + 3000, &[]).is_empty(), "not re-sent before resend_delay");
    let again = tick(&mut e, &s, T0 + 62_000, &[]);
    assert_eq!(alerts(&again).len(), 1, "re-sent while firing");
    ratio("api", T0 + 63_000, 0.0);
    assert!(tick(&mut e, &s, T0 + 63_000, &[]).is_empty(), "inside group_window: still one firing alert");
    let resolved = tick(&mut e, &s, T0 + 65_500, &[]);
    let r = alerts(&resolved);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].ends_at.as_deref(), Some(rfc3339(T0 + 62_000).as_str()), "ends when it last fired");
    assert!(tick(&mut e, &s, T0 + 66_000, &[]).is_empty(), "resolved is not repeated at once");
}

#[test]
fn anomaly_rules_match_source_labels_and_group_a_service_into_one_alert() {
    let s = store();
    let mut e = evaluator(
        "rules:\n- alert: Anomalous\n  anomaly: {match: 'http_latency_seconds{job=\"shop\"}', min_score: 1}\n",
    );
    let score = |pod: &'static str, svc: &'static str, metric: &'static str, v: f64| {
        put(
            &s,
            "default",
            &[("__name__", "anomaly_score"), ("for", metric), ("job", "shop"), ("pod", pod), ("service", svc)],
            T0,
            v,
        );
    };
    score("p1", "cart", "http_latency_seconds", 3.0);
    score("p2", "cart", "http_latency_seconds", 1.5);
    score("p3", "cart", "http_latency_seconds", 0.4);
    score("p4", "pay", "other_metric", 9.0);
    put(&s, "default", &[("__name__", "http_latency_seconds"), ("job", "shop"), ("service", "x")], T0, 50.0);
    let a = tick(&mut e, &s, T0, &[]);
    let a = alerts(&a);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0].labels["service"], "cart");
    assert_eq!(
        a[0].annotations["series_count"], "2",
        "p1 and p2: the score of p3 is below min_score, p4 is another metric"
    );
    assert!(a[0].annotations["series"].contains("pod=\"p1\""));
}

#[test]
fn a_composite_fires_where_all_its_rules_fire_on_the_same_service() {
    let s = store();
    let mut e = evaluator(concat!(
        "rules:\n",
        "- alert: Errors\n  threshold: {expr: err, op: '>', value: 0.1}\n  send: false\n",
        "- alert: Slow\n  threshold: {expr: lat, op: '>', value: 1}\n  send: false\n",
        "- alert: Degraded\n  composite: {all: [Errors, Slow], on: [service]}\n",
    ));
    put(&s, "default", &[("__name__", "err"), ("service", "api")], T0, 0.5);
    put(&s, "default", &[("__name__", "err"), ("service", "db")], T0, 0.5);
    put(&s, "default", &[("__name__", "lat"), ("service", "api")], T0, 3.0);
    put(&s, "default", &[("__name__", "lat"), ("service", "db")], T0, 0.2);
    let sent = tick(&mut e, &s, T0, &[]);
    let a = alerts(&sent);
    assert_eq!(a.len(), 1, "only the composite is sent: {a:?}");
    assert_eq!((a[0].labels["alertname"].as_str(), a[0].labels["service"].as_str()), ("Degraded", "api"));
}

#[test]
fn tenants_are_evaluated_apart_and_rules_can_name_theirs() {
    let s = store();
    let mut e = evaluator(concat!(
        "rules:\n",
        "- alert: Everyone\n  threshold: {expr: m, op: '>', value: 1}\n",
        "- alert: OnlyB\n  threshold: {expr: m, op: '>', value: 1}\n  tenants: [b]\n",
    ));
    put(&s, "a", &[("__name__", "m"), ("service", "x")], T0, 5.0);
    put(&s, "b", &[("__name__", "m"), ("service", "y")], T0, 0.0);
    let sent = tick(&mut e, &s, T0, &[]);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].tenant, "a");
    let names: Vec<&str> = sent[0].alerts.iter().map(|a| a.labels["alertname"].as_str()).collect();
    assert_eq!(names, ["Everyone"], "tenant b's quiet series alert nobody, OnlyB never reads tenant a");
    assert_eq!(sent[0].alerts[0].labels["tenant"], "a", "one Alertmanager tells the tenants apart");
}

fn incident(services: &[&str], root: &str) -> Incident {
    Incident {
        id: "inc-1".into(),
        tenant: "default".into(),
        title: "t".into(),
        severity: Severity::P2,
        status: Status::Open,
        opened_at_ms: T0,
        resolved_at_ms: None,
        started_at_ms: T0,
        last_signal_ms: T0,
        root_cause: Some(RootCause { service: root.into(), confidence: 0.85, reason: "cascade".into() }),
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        evidence: serde_json::json!({"trace_ids": ["4bf92f3577b34da6a3ce929d0e0e4736"]}),
        timeline: serde_json::json!([]),
    }
}

#[test]
fn the_root_cause_alert_goes_out_and_the_symptoms_it_explains_are_silenced() {
    let s = store();
    let mut e = evaluator("rules:\n- alert: Anomalous\n  anomaly: {match: '{__name__=\"lat\"}'}\n");
    for svc in ["frontend", "checkout", "db"] {
        put(&s, "default", &[("__name__", "anomaly_score"), ("for", "lat"), ("service", svc)], T0, 4.0);
    }
    let open = [incident(&["frontend", "checkout", "db"], "db")];
    let sent = tick(&mut e, &s, T0, &open);
    let a = alerts(&sent);
    assert_eq!(a.len(), 1, "one alert for the fault: {a:?}");
    assert_eq!(a[0].labels["service"], "db");
    assert_eq!(a[0].annotations["incident"], "inc-1");
    assert!(a[0].annotations["root_cause"].starts_with("db (confidence 0.85)"));
    assert_eq!(a[0].annotations["trace_ids"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(a[0].annotations["incident_url"].ends_with("/api/v1/incidents/inc-1"));
    // Before the incident names its root, the symptoms were sent; once it does they are ended.
    let s2 = store();
    let mut e2 = evaluator("rules:\n- alert: Anomalous\n  anomaly: {match: '{__name__=\"lat\"}'}\n");
    put(&s2, "default", &[("__name__", "anomaly_score"), ("for", "lat"), ("service", "frontend")], T0, 4.0);
    assert_eq!(alerts(&tick(&mut e2, &s2, T0, &[])).len(), 1);
    put(&s2, "default", &[("__name__", "anomaly_score"), ("for", "lat"), ("service", "db")], T0 + 1000, 4.0);
    let sent = tick(&mut e2, &s2, T0 + 1000, &[incident(&["frontend", "db"], "db")]);
    let a = alerts(&sent);
    let by_service: BTreeMap<&str, bool> =
        a.iter().map(|a| (a.labels["service"].as_str(), firing(a, T0 + 1000))).collect();
    assert_eq!(by_service, BTreeMap::from([("db", true), ("frontend", false)]), "frontend ended, db firing");
}

#[test]
fn a_full_queue_leaves_the_alert_due_for_the_next_evaluation() {
    let s = store();
    let mut e = evaluator("rules:\n- alert: A\n  threshold: {expr: m, op: '>', value: 1}\n");
    put(&s, "default", &[("__name__", "m")], T0, 5.0);
    let open = |_: &str| Vec::new();
    let none = |_: &str| Vec::new();
    let world = World { store: &s, open_incidents: &open, anomalies: &none, now_ms: T0, default_tenant: "default" };
    let mut refused = 0;
    e.evaluate(&world, &config(), &mut |_| {
        refused += 1;
        false
    });
    assert_eq!(refused, 1);
    assert_eq!(alerts(&tick(&mut e, &s, T0 + 1000, &[])).len(), 1, "sent on the next evaluation");
}

#[test]
fn a_reload_keeps_the_state_of_unchanged_rules_and_drops_changed_ones() {
    let s = store();
    let a = "- alert: A\n  threshold: {expr: m, op: '>', value: 1, for: 10s}\n";
    let mut e = evaluator(&format!("rules:\n{a}- alert: B\n  threshold: {{expr: m, op: '>', value: 1, for: 10s}}\n"));
    put(&s, "default", &[("__name__", "m")], T0, 5.0);
    tick(&mut e, &s, T0, &[]);
    e.replace(
        rules::parse(
            &format!("rules:\n{a}- alert: B\n  threshold: {{expr: m, op: '>', value: 2, for: 10s}}\n"),
            &config().group_by,
        )
        .unwrap(),
    );
    put(&s, "default", &[("__name__", "m")], T0 + 10_000, 5.0);
    let sent = tick(&mut e, &s, T0 + 10_000, &[]);
    let names: Vec<&str> = alerts(&sent).iter().map(|a| a.labels["alertname"].as_str()).collect();
    assert_eq!(names, ["A"], "A was pending for 10 s across the reload; B changed and starts over");
}

#[test]
fn inhibit_rules_silence_alerts_on_the_node_of_a_node_alert() {
    let s = store();
    let mut e = evaluator(concat!(
        "rules:\n",
        "- alert: NodeDown\n  threshold: {expr: 'node_up == 0', op: '==', value: 0}\n  group_by: [node]\n",
        "- alert: Slow\n  threshold: {expr: lat, op: '>', value: 1}\n  group_by: [node, service]\n",
        "inhibit_rules:\n- source_matchers: ['alertname=\"NodeDown\"']\n  target_matchers: ['alertname!=\"NodeDown\"']\n  equal: [node]\n",
    ));
    put(&s, "default", &[("__name__", "node_up"), ("node", "n1")], T0, 0.0);
    put(&s, "default", &[("__name__", "lat"), ("node", "n1"), ("service", "api")], T0, 3.0);
    put(&s, "default", &[("__name__", "lat"), ("node", "n2"), ("service", "db")], T0, 3.0);
    let sent = tick(&mut e, &s, T0, &[]);
    let mut got: Vec<(String, String)> =
        alerts(&sent).iter().map(|a| (a.labels["alertname"].clone(), a.labels["node"].clone())).collect();
    got.sort();
    assert_eq!(got, [("NodeDown".into(), "n1".into()), ("Slow".into(), "n2".into())]);
}

#[test]
fn an_anomaly_rule_reads_each_series_newest_score_within_the_lookback_only() {
    let s = store();
    let mut e = evaluator("rules:\n- alert: A\n  anomaly: {match: '{__name__=\"m\"}'}\n");
    let labels = [("__name__", "anomaly_score"), ("for", "m"), ("service", "api")];
    put(&s, "default", &labels, T0 - 60_000, 5.0);
    put(&s, "default", &labels, T0 - 1_000, 0.2);
    assert!(tick(&mut e, &s, T0, &[]).is_empty(), "the newest score is low: an older high one does not count");
    put(&s, "default", &labels, T0 + 1_000, 3.0);
    assert!(tick(&mut e, &s, T0, &[]).is_empty(), "a score after the evaluation time is not read");
    assert_eq!(alerts(&tick(&mut e, &s, T0 + 1_000, &[])).len(), 1);
    let stale = tick(&mut e, &s, T0 + 1_000 + 5 * 60_000 + 1, &[]);
    let r = alerts(&stale);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(!firing(r[0], T0 + 301_001), "stale after the 5 m lookback: resolved");
}

#[test]
fn an_incident_groups_its_services_alerts_under_its_root_cause_even_when_the_root_shows_nothing() {
    let s = store();
    let mut e = evaluator("rules:\n- alert: Anomalous\n  anomaly: {match: '{__name__=\"lat\"}'}\n");
    for svc in ["frontend", "checkout"] {
        put(&s, "default", &[("__name__", "anomaly_score"), ("for", "lat"), ("service", svc)], T0, 4.0);
    }
    let sent = tick(&mut e, &s, T0, &[incident(&["frontend", "checkout", "inventory"], "inventory")]);
    let a = alerts(&sent);
    assert_eq!(a.len(), 1, "one alert for the fault: {a:?}");
    assert_eq!(a[0].labels["service"], "inventory", "named by the root cause");
    assert_eq!(a[0].annotations["series_count"], "2");
    assert_eq!(a[0].annotations["incident"], "inc-1");
    let apart = AlertingConfig { group_by_incident: false, ..config() };
    let mut e2 = evaluator("rules:\n- alert: Anomalous\n  anomaly: {match: '{__name__=\"lat\"}'}\n");
    let open = |_: &str| vec![incident(&["frontend", "checkout", "inventory"], "inventory")];
    let none = |_: &str| Vec::new();
    let world = World { store: &s, open_incidents: &open, anomalies: &none, now_ms: T0, default_tenant: "default" };
    let mut n = 0;
    e2.evaluate(&world, &apart, &mut |b| {
        n += b.alerts.len();
        true
    });
    assert_eq!(n, 2, "group_by_incident off: one alert per service (no root alert to silence them)");
}

#[test]
fn an_open_anomaly_event_keeps_an_anomaly_rule_holding_when_the_newest_score_is_back_under_the_bar() {
    let s = store();
    let mut e = evaluator("rules:\n- alert: Slow\n  anomaly: {match: 'lat{job=\"api\"}', min_score: 1, for: 1s}\n");
    // The burst's newest score is low; the engine still holds the anomaly open, peak 4.
    put(&s, "default", &[("__name__", "anomaly_score"), ("for", "lat"), ("job", "api")], T0 - 500, 0.3);
    let event = |name: &str, open: bool| vigil_detect::events::Anomaly {
        labels: [("__name__", name), ("job", "api")].map(|(k, v)| (k.to_owned(), v.to_owned())).into(),
        start_ms: T0 - 3000,
        end_ms: T0 - 500,
        peak_ms: T0 - 2000,
        value: 9.0,
        score: 4.0,
        expected: 1.0,
        lower: 0.0,
        upper: 2.0,
        detectors: Vec::new(),
        severity: Severity::P2,
        open,
    };
    let events = vec![event("lat", true), event("other", true)];
    let open = |_: &str| Vec::new();
    let anomalies = |_: &str| events.clone();
    let mut sent = Vec::new();
    for at in [T0, T0 + 1000] {
        let world =
            World { store: &s, open_incidents: &open, anomalies: &anomalies, now_ms: at, default_tenant: "default" };
        e.evaluate(&world, &config(), &mut |b| {
            sent.push(b);
            true
        });
    }
    let a = alerts(&sent);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(
        a[0].annotations["series"], "{for=\"lat\",job=\"api\"}",
        "the event's series, named as its score series"
    );
    // Closed: nothing holds it any more.
    let closed = vec![event("lat", false)];
    let anomalies = |_: &str| closed.clone();
    let world =
        World { store: &s, open_incidents: &open, anomalies: &anomalies, now_ms: T0 + 5000, default_tenant: "default" };
    let mut after = Vec::new();
    e.evaluate(&world, &config(), &mut |b| {
        after.push(b);
        true
    });
    assert!(alerts(&after).iter().all(|a| !firing(a, T0 + 5000)) && alerts(&after).len() == 1, "resolved once closed");
}

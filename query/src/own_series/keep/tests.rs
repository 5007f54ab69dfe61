#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use vigil_ingest::series::SeriesRegistryConfig;

use super::*;
use crate::own_series::{Budget, OwnSeriesConfig, OwnSeriesMetrics};

/// A canonical key (remote-write 1.0 `Label` messages, sorted) of short labels.
fn key(labels: &[(&str, &str)]) -> Vec<u8> {
    let mut sorted = labels.to_vec();
    sorted.sort();
    let mut out = Vec::new();
    for (n, v) in sorted {
        out.extend([0x0a, (4 + n.len() + v.len()) as u8, 0x0a, n.len() as u8]);
        out.extend(n.as_bytes());
        out.extend([0x12, v.len() as u8]);
        out.extend(v.as_bytes());
    }
    out
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn store(keep: &[&str]) -> Arc<OwnSeriesStore> {
    let config = OwnSeriesConfig { keep: keep.iter().map(|s| (*s).to_owned()).collect(), ..Default::default() };
    Arc::new(OwnSeriesStore::new(config, OwnSeriesMetrics::default()))
}

struct Rig {
    registry: SeriesRegistry,
}

impl Rig {
    fn new() -> Self {
        Self { registry: SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous") }
    }

    fn slot(&self, tenant: &str, labels: &[(&str, &str)]) -> u32 {
        let t = self.registry.tenant(tenant).unwrap();
        self.registry.resolve(t, &key(labels)).unwrap().slot
    }
}

fn feed(kept: &mut KeptSamples, rig: &Rig, rows: &[(u32, i64, f64)]) {
    let slots: Vec<u32> = rows.iter().map(|r| r.0).collect();
    let times: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let values: Vec<f64> = rows.iter().map(|r| r.2).collect();
    kept.feed(&rig.registry, SampleRows { slots: &slots, times: &times, values: &values });
}

/// `tenant`'s series named `name` in the store: labels (without `__name__`) → samples.
type Pairs = Vec<(String, String)>;

fn stored(s: &OwnSeriesStore, tenant: &str, name: &str) -> Vec<(Pairs, Vec<(i64, f64)>)> {
    let matches = |l: &Labels| l.get(METRIC_NAME).is_some_and(|n| n == name);
    let mut budget = Budget { series: 1000, samples: 1_000_000 };
    let mut out: Vec<_> = s
        .select(tenant, &matches, (0, i64::MAX), &mut budget)
        .unwrap()
        .into_iter()
        .map(|sel| {
            let labels = sel.labels.iter().filter(|(k, _)| *k != METRIC_NAME).map(|(k, v)| (k.clone(), v.clone()));
            (labels.collect::<Vec<_>>(), sel.samples)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn texts(set: &KeepSet) -> Vec<String> {
    set.snapshot().selectors()
}

#[test]
fn keep_entries_must_be_plain_selectors_and_errors_name_them() {
    let ok = OwnSeriesConfig {
        keep: vec!["up".into(), r#"node_cpu_seconds_total{mode="idle"}"#.into(), r#"{job=~"api|db"}"#.into()],
        ..Default::default()
    };
    assert_eq!(ok.validate(), Ok(()));
    let bad = OwnSeriesConfig {
        keep: vec![
            "up".into(),
            "rate(up[5m])".into(),
            "up[5m]".into(),
            "up offset 5m".into(),
            "up{".into(),
            r#"{job=~".*"}"#.into(),
        ],
        ..Default::default()
    };
    let problems = bad.validate().unwrap_err();
    assert_eq!(problems.len(), 5, "{problems:?}");
    for (p, i) in problems.iter().zip(1..) {
        assert!(p.starts_with(&format!("own_series.keep[{i}]: ")), "{p}");
    }
    assert!(problems[0].contains("is not a series selector"), "{}", problems[0]);
    assert!(problems[2].contains("without offset or @"), "{}", problems[2]);
    // The YAML shape.
    let parsed: OwnSeriesConfig = serde_yaml_ng::from_str("keep: ['up', 'node_load1{instance=\"a\"}']").unwrap();
    assert_eq!(parsed.keep, ["up", "node_load1{instance=\"a\"}"]);
}

#[test]
fn the_selectors_inside_a_threshold_expression_are_found() {
    let expr = r#"sum by (job) (rate(http_requests_total{code=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m])) > on (job) group_left topk(1, up offset 1m) or absent(node_load1) + scalar(x{a="b"} @ 100)"#;
    let mut got: Vec<String> = rule_selectors(expr, None).iter().map(KeepSelector::describe).collect();
    got.sort();
    assert_eq!(got, ["http_requests_total", r#"http_requests_total{code=~"5.."}"#, "node_load1", "up", r#"x{a="b"}"#,]);
    // Vigil's own names are not ingested series: a rule on them keeps nothing.
    let own = r#"anomaly_score{for="x"} > 3 or increase(vigil_ingest_rejected_requests_total[1m]) > 0 or {__name__="vigil_up"}"#;
    assert!(rule_selectors(own, None).is_empty());
    // A rule's tenants limit its selectors.
    let limited = rule_selectors("up == 0", Some(&["b".to_owned(), "a".to_owned(), "a".to_owned()]));
    assert_eq!(limited.iter().map(KeepSelector::describe).collect::<Vec<_>>(), ["up (tenants a, b)"]);
    // A nameless selector is kept as it is.
    assert_eq!(rule_selectors(r#"{job="api"} > 1"#, None)[0].describe(), r#"{job="api"}"#);
}

#[test]
fn rule_selectors_join_the_configured_ones_and_readers_are_told_of_changes() {
    let s = store(&["up"]);
    let set = s.keep();
    let mut rx = set.subscribe();
    assert_eq!(texts(set), ["up"]);
    assert!(!set.set_rule_selectors(rule_selectors("up == 0", None)), "already kept: no change");
    assert!(!rx.has_changed().unwrap());
    assert!(set.set_rule_selectors(rule_selectors("node_load1 > 4 and up", None)));
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update().selectors(), ["node_load1", "up"]);
    assert_eq!(s.metrics.keep_selectors.get(), 2);
    assert!(!set.set_rule_selectors(rule_selectors("up > 0 and node_load1", None)), "same set, other order");
    assert!(set.set_rule_selectors(Vec::new()));
    assert_eq!(texts(set), ["up"]);
    let empty = store(&[]);
    assert!(empty.keep().snapshot().is_empty());
}

#[test]
fn kept_series_reach_the_store_per_tenant_and_the_rest_is_decided_once() {
    let s = store(&[r#"up{job="api"}"#]);
    let rig = Rig::new();
    let mut kept = KeptSamples::new(Arc::clone(&s));
    let up_a = rig.slot("a", &[("__name__", "up"), ("job", "api"), ("instance", "i1")]);
    let up_b = rig.slot("b", &[("__name__", "up"), ("job", "api"), ("instance", "i1")]);
    let up_db = rig.slot("a", &[("__name__", "up"), ("job", "db")]);
    let load = rig.slot("a", &[("__name__", "node_load1"), ("job", "api")]);
    let score = rig.slot("a", &[("__name__", "anomaly_score"), ("job", "api"), ("for", "up")]);
    let t = now_ms() - 10_000;
    let stale = f64::from_bits(STALE_NAN_BITS);
    feed(
        &mut kept,
        &rig,
        &[(up_a, t, 1.0), (up_db, t, 1.0), (load, t, 0.5), (up_b, t, 1.0), (score, t, 9.0), (up_a, t + 1000, 0.0)],
    );
    feed(&mut kept, &rig, &[(up_a, t + 2000, stale), (up_b, t + 2000, 0.0), (up_db, t + 2000, 1.0)]);
    assert_eq!(kept.waiting(), 4);
    assert_eq!(kept.series(), (2, 5));
    assert!(s.is_empty(), "nothing appended before the flush");
    kept.flush();
    assert_eq!(kept.waiting(), 0);
    let series =
        |pairs: &[(&str, &str)]| -> Pairs { pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() };
    let up = series(&[("instance", "i1"), ("job", "api")]);
    assert_eq!(stored(&s, "a", "up"), [(up.clone(), vec![(t, 1.0), (t + 1000, 0.0)])]);
    assert_eq!(stored(&s, "b", "up"), [(up, vec![(t, 1.0), (t + 2000, 0.0)])]);
    assert!(stored(&s, "a", "node_load1").is_empty() && stored(&s, "a", "anomaly_score").is_empty());
    assert_eq!(s.len(), (2, 4));
    // A sample of a series already decided: no new decision.
    feed(&mut kept, &rig, &[(up_a, t + 3000, 1.0)]);
    kept.flush();
    assert_eq!(kept.series(), (2, 5));
    assert_eq!(stored(&s, "a", "up")[0].1.len(), 3);
}

#[test]
fn a_changed_keep_set_is_taken_at_the_next_batch_and_forgets_the_decisions() {
    let s = store(&[]);
    let rig = Rig::new();
    let mut kept = KeptSamples::new(Arc::clone(&s));
    let up = rig.slot("a", &[("__name__", "up"), ("job", "api")]);
    let load = rig.slot("a", &[("__name__", "node_load1")]);
    let t = now_ms() - 10_000;
    feed(&mut kept, &rig, &[(up, t, 1.0), (load, t, 2.0)]);
    assert_eq!((kept.waiting(), kept.series()), (0, (0, 0)), "an empty set looks at nothing");
    s.keep().set_rule_selectors(rule_selectors("up == 0", None));
    feed(&mut kept, &rig, &[(up, t + 1000, 0.0), (load, t + 1000, 2.0)]);
    assert_eq!((kept.waiting(), kept.series()), (1, (1, 2)));
    // The rules change before the flush: what was gathered goes in, then the new set decides.
    s.keep().set_rule_selectors(rule_selectors("node_load1 > 1 and tenant_only", Some(&["a".to_owned()])));
    feed(&mut kept, &rig, &[(up, t + 2000, 0.0), (load, t + 2000, 3.0)]);
    kept.flush();
    assert_eq!(stored(&s, "a", "up")[0].1, [(t + 1000, 0.0)]);
    assert_eq!(stored(&s, "a", "node_load1")[0].1, [(t + 2000, 3.0)]);
    // Limited to tenant b: tenant a's series are not kept.
    s.keep().set_rule_selectors(rule_selectors("node_load1 > 1", Some(&["b".to_owned()])));
    feed(&mut kept, &rig, &[(load, t + 3000, 4.0)]);
    assert_eq!(kept.waiting(), 0);
}

#[test]
fn kept_series_obey_the_store_bounds() {
    let config = OwnSeriesConfig { keep: vec!["up".into()], max_series: 1, ..Default::default() };
    let s = Arc::new(OwnSeriesStore::new(config, OwnSeriesMetrics::default()));
    let rig = Rig::new();
    let mut kept = KeptSamples::new(Arc::clone(&s));
    let a = rig.slot("a", &[("__name__", "up"), ("job", "a")]);
    let b = rig.slot("a", &[("__name__", "up"), ("job", "b")]);
    let now = now_ms();
    feed(&mut kept, &rig, &[(a, now, 1.0), (b, now, 1.0), (a, now - 48 * 3600 * 1000, 1.0)]);
    kept.flush();
    assert_eq!(s.len(), (1, 1));
    let dropped = |reason| s.metrics.dropped.get_or_create(&super::super::ReasonLabels { reason }).get();
    assert_eq!((dropped("series_limit"), dropped("too_old")), (1, 1));
    kept.lagged(3);
    assert_eq!(s.metrics.keep_lagged.get(), 3);
}

#[test]
fn a_rule_file_keeps_what_its_threshold_rules_read() {
    let file = r#"
rules:
  - alert: TargetDown
    threshold: {expr: 'up{job="api"} == 0', op: '==', value: 0}
  - alert: Load
    threshold: {expr: 'avg by (instance) (node_load1) / count(node_cpu_seconds_total{mode="idle"})', op: '>', value: 2}
    tenants: [team-a]
  - alert: Scores
    threshold: {expr: 'max(anomaly_score)', op: '>', value: 3}
  - alert: Anomalous
    anomaly: {match: '{job="api"}'}
  - alert: Both
    composite: {all: [TargetDown, Anomalous]}
"#;
    let set = crate::alerting::rules::parse(file, &[]).unwrap();
    let mut got: Vec<String> = set.keep_selectors().iter().map(KeepSelector::describe).collect();
    got.sort();
    assert_eq!(
        got,
        ["node_cpu_seconds_total{mode=\"idle\"} (tenants team-a)", "node_load1 (tenants team-a)", "up{job=\"api\"}",]
    );
}

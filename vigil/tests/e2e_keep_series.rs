//! Threshold rules over ingested metrics: series sent by remote write (1.0, 2.0) and OTLP that a threshold
//! rule reads (or `own_series.keep` names) are recorded into Vigil's own-series store by the keep feeder,
//! so a Prometheus-style rule (`up == 0`) fires at the real Alertmanager (Debian's
//! `prometheus-alertmanager`) and `/api/v1/query` answers them, each tenant its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../forward/tests/support/alertmanager.rs"]
mod alertmanager;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alertmanager::{Alertmanager, labels};
use bytes::Bytes;
use prost::Message;
use serde_json::Value;
use support::*;
use vigil_proto::{prometheus as v1, prometheus_v2 as v2};

const V1_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn snappy(raw: &[u8]) -> Bytes {
    Bytes::from(snap::raw::Encoder::new().compress_vec(raw).unwrap())
}

/// One remote write 1.0 request of `tenant`: each series' one sample at `ts`.
async fn write_v1(vigil: &Vigil, tenant: &str, series: &[(&[(&str, &str)], f64)], ts: i64) {
    let timeseries = series
        .iter()
        .map(|(labels, value)| v1::TimeSeries {
            labels: labels.iter().map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() }).collect(),
            samples: vec![v1::Sample { value: *value, timestamp: ts }],
            ..Default::default()
        })
        .collect();
    let body = snappy(&v1::WriteRequest { timeseries, metadata: vec![] }.encode_to_vec());
    let headers = [V1_HEADERS.as_slice(), &[("X-Scope-OrgID", tenant)]].concat();
    let r = request("POST", &vigil.url("/api/v1/write"), &headers, body).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// `/api/v1/query?query=…` as `tenant`: each result series' labels and value.
async fn query(vigil: &Vigil, tenant: &str, q: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let url = vigil.url(&format!("/api/v1/query?query={}", urlencode(q)));
    let r = request("GET", &url, &[("X-Scope-OrgID", tenant)], Bytes::new()).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s["metric"].as_object().unwrap().iter();
            let labels = labels.map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
            (labels, s["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> BTreeMap<String, String> {
    p.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn named<'a>(alerts: &'a [Value], name: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| labels(a).get("alertname").map(String::as_str) == Some(name)).collect()
}

const UP_A: &[(&str, &str)] = &[("__name__", "up"), ("instance", "a:9100"), ("job", "api")];
const UP_B: &[(&str, &str)] = &[("__name__", "up"), ("instance", "b:9100"), ("job", "api")];
/// Sent with `up`, read by no rule: never recorded.
const LOAD_A: &[(&str, &str)] = &[("__name__", "node_load1"), ("instance", "a:9100"), ("job", "api")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_written_up_going_to_zero_fires_its_tenants_threshold_rule_at_alertmanager() {
    let dir = TempDir::new("e2e-keep-series");
    let am = Alertmanager::start(&alertmanager::config(&["alertname", "tenant", "instance"], None, "")).await;
    let rules_file = dir.0.join("rules.yaml");
    std::fs::write(
        &rules_file,
        "rules:\n- alert: TargetDown\n  threshold: {expr: 'up == 0', op: '==', value: 0}\n  group_by: [job, instance]\n  labels: {severity: page}\n  annotations: {summary: '{{ $labels.instance }} is down'}\n",
    )
    .unwrap();
    let config = dir.0.join("vigil.yaml");
    std::fs::write(
        &config,
        format!(
            "alerting:\n  rules_file: {}\n  evaluation_interval: 300ms\n  reload_interval: 300ms\n  resend_delay: 3s\n  group_window: 1s\n\
             forward:\n  alertmanager:\n    - url: {}\n      flush_interval: 50ms\n",
            rules_file.display(),
            am.alerts_url()
        ),
    )
    .unwrap();
    let vigil = Vigil::start(&dir.0, &["--config".into(), config.display().to_string()]).await;

    // Both tenants' targets are up; tenant a also sends a series no rule reads.
    let t0 = now_ms();
    write_v1(&vigil, "team-a", &[(UP_A, 1.0), (LOAD_A, 0.5)], t0).await;
    write_v1(&vigil, "team-b", &[(UP_B, 1.0)], t0).await;
    let up_a = wait_for("team-a's up through /api/v1/query", Duration::from_secs(20), || async {
        let got = query(&vigil, "team-a", "up").await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(up_a, [(pairs(UP_A), 1.0)], "team-a sees its own up only");
    let m = vigil.metrics().await;
    assert_eq!(metric_sum(&m, "vigil_own_series_keep_selectors", &[]), 1.0, "`up` from the rule");
    assert!(query(&vigil, "team-a", "node_load1").await.is_empty(), "no rule reads node_load1: not kept");

    // Tenant b's target goes down: b's alert fires, and nothing for tenant a.
    write_v1(&vigil, "team-b", &[(UP_B, 0.0)], now_ms()).await;
    let b_down = am
        .wait_for_alerts("team-b's TargetDown", Duration::from_secs(20), |a| {
            named(a, "TargetDown").first().map(|v| (*v).clone())
        })
        .await;
    let l = labels(&b_down);
    assert_eq!(l.get("tenant").map(String::as_str), Some("team-b"), "{l:?}");
    assert_eq!(l.get("instance").map(String::as_str), Some("b:9100"), "{l:?}");
    assert_eq!(l.get("severity").map(String::as_str), Some("page"));
    assert_eq!(b_down["annotations"]["summary"], "b:9100 is down");
    // Evaluations go on for a while: still only b's alert.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alerts = am.alerts().await;
    assert_eq!(named(&alerts, "TargetDown").len(), 1, "{alerts:#?}");
    assert_eq!(query(&vigil, "team-a", "up").await, [(pairs(UP_A), 1.0)]);
    assert_eq!(query(&vigil, "team-b", "up").await, [(pairs(UP_B), 0.0)]);

    // Tenant a's target goes 1 → 0: its own alert fires too.
    write_v1(&vigil, "team-a", &[(UP_A, 0.0), (LOAD_A, 0.7)], now_ms()).await;
    let both = am
        .wait_for_alerts("both tenants' TargetDown", Duration::from_secs(20), |a| {
            let down = named(a, "TargetDown");
            (down.len() == 2).then(|| down.into_iter().cloned().collect::<Vec<_>>())
        })
        .await;
    let who: BTreeMap<String, String> =
        both.iter().map(|a| (labels(a)["tenant"].clone(), labels(a)["instance"].clone())).collect();
    assert_eq!(who, pairs(&[("team-a", "a:9100"), ("team-b", "b:9100")]));
    assert_eq!(query(&vigil, "team-a", "up").await, [(pairs(UP_A), 0.0)]);
    assert_eq!(query(&vigil, "team-a", "up == 0").await.len(), 1);

    // A rule reading node_load1 is added: the keep set follows the reload, and the feeder reads the buffer
    // again from its oldest batch, so the sample sent before the rule existed is there and alerts at once.
    std::fs::write(
        &rules_file,
        "rules:\n- alert: TargetDown\n  threshold: {expr: 'up == 0', op: '==', value: 0}\n  group_by: [job, instance]\n\
         - alert: HighLoad\n  threshold: {expr: 'node_load1', op: '>', value: 0.6}\n  group_by: [instance]\n  tenants: [team-a]\n",
    )
    .unwrap();
    am.wait_for_alerts("team-a's HighLoad", Duration::from_secs(20), |a| {
        let high = named(a, "HighLoad");
        (high.len() == 1 && labels(high[0]).get("tenant").map(String::as_str) == Some("team-a")).then_some(())
    })
    .await;
    assert_eq!(query(&vigil, "team-a", "node_load1").await, [(pairs(LOAD_A), 0.7)]);
    let m = vigil.metrics().await;
    assert_eq!(metric_sum(&m, "vigil_own_series_keep_selectors", &[]), 2.0, "up, and node_load1 for team-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_series_keep_records_remote_write_2_and_otlp_series() {
    let dir = TempDir::new("e2e-keep-series-config");
    let config = dir.0.join("vigil.yaml");
    std::fs::write(
        &config,
        "own_series:\n  keep: ['node_load1', 'http_requests_total{code=~\"5..\"}']\nalerting:\n  enabled: false\n",
    )
    .unwrap();
    let vigil = Vigil::start(&dir.0, &["--config".into(), config.display().to_string()]).await;
    let now = now_ms() - 1000;

    // Remote write 2.0: one kept series (code 500) and one not (code 200).
    let symbols: Vec<String> = ["", "__name__", "http_requests_total", "job", "api", "code", "500", "200"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let series = |code: u32, value: f64| v2::TimeSeries {
        labels_refs: vec![1, 2, 5, code, 3, 4],
        samples: vec![v2::Sample { value, timestamp: now, start_timestamp: 0 }],
        ..Default::default()
    };
    let body = snappy(&v2::Request { symbols, timeseries: vec![series(6, 7.0), series(7, 90.0)] }.encode_to_vec());
    let headers = [
        ("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"),
        ("Content-Encoding", "snappy"),
        ("X-Prometheus-Remote-Write-Version", "2.0.0"),
        ("X-Scope-OrgID", "team-a"),
    ];
    let r = request("POST", &vigil.url("/api/v1/write"), &headers, body).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.text());

    // OTLP/HTTP JSON: a kept gauge and one not kept.
    let point = serde_json::json!([{"timeUnixNano": format!("{}", now * 1_000_000), "asDouble": 2.5}]);
    let otlp = serde_json::json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "node"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "node_load1", "gauge": {"dataPoints": point}},
            {"name": "node_load5", "gauge": {"dataPoints": point}}
        ]}]
    }]});
    let headers = [("Content-Type", "application/json"), ("X-Scope-OrgID", "team-a")];
    let r = request("POST", &vigil.url("/v1/metrics"), &headers, Bytes::from(otlp.to_string())).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    let load = wait_for("node_load1 through /api/v1/query", Duration::from_secs(20), || async {
        let got = query(&vigil, "team-a", "node_load1").await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(load, [(pairs(&[("__name__", "node_load1"), ("job", "node")]), 2.5)]);
    let requests = wait_for("http_requests_total through /api/v1/query", Duration::from_secs(20), || async {
        let got = query(&vigil, "team-a", "http_requests_total").await;
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(
        requests,
        [(pairs(&[("__name__", "http_requests_total"), ("code", "500"), ("job", "api")]), 7.0)],
        "code 200 is not kept"
    );
    assert!(query(&vigil, "team-a", "node_load5").await.is_empty());
    assert!(query(&vigil, "anonymous", "node_load1").await.is_empty(), "another tenant sees nothing");
    let m = vigil.metrics().await;
    assert_eq!(metric_sum(&m, "vigil_own_series_keep_selectors", &[]), 2.0);
}

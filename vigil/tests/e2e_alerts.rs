//! Alert rules against the real Alertmanager (Debian's `prometheus-alertmanager`), through the whole path:
//! rule evaluation over Vigil's own series → alerts channel → alerts write-ahead log → Alertmanager
//! forwarder → `POST /api/v2/alerts`. What Alertmanager holds is read back from its API.
//!
//! The rules read Vigil's self-metrics (recorded into its own series every 300 ms), which the test moves
//! by sending requests Vigil refuses: `vigil_ingest_rejected_requests_total{protocol, reason}` grows while
//! bad requests arrive, and its `increase` over 3 s falls back to 0 once they stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../forward/tests/support/alertmanager.rs"]
mod alertmanager;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use alertmanager::{Alertmanager, labels};
use bytes::Bytes;
use serde_json::Value;
use support::*;

/// Rejected remote writes: a body that is not snappy (`reason` one value) and a content type Vigil does
/// not speak (another).
async fn send_bad_requests(vigil: &Vigil, n: usize) {
    let url = vigil.url("/api/v1/write");
    for _ in 0..n {
        let headers = [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy")];
        let r = request("POST", &url, &headers, Bytes::from_static(b"not snappy")).await.unwrap();
        assert_eq!(r.status, 400, "{}", r.text());
        let headers = [("Content-Type", "text/csv"), ("Content-Encoding", "snappy")];
        let r = request("POST", &url, &headers, Bytes::from_static(b"a,b")).await.unwrap();
        assert_eq!(r.status, 415, "{}", r.text());
    }
}

/// Keeps sending bad requests for `d`.
async fn bad_requests_for(vigil: &Vigil, d: Duration) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        send_bad_requests(vigil, 1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start(dir: &Path, am: &Alertmanager, rules: &str) -> Vigil {
    let rules_file = dir.join("rules.yaml");
    std::fs::write(&rules_file, rules).unwrap();
    let config = dir.join("vigil.yaml");
    std::fs::write(
        &config,
        format!(
            "own_series:\n  self_metrics_interval: 300ms\n\
             alerting:\n  rules_file: {}\n  evaluation_interval: 300ms\n  reload_interval: 300ms\n  resend_delay: 3s\n  group_window: 1s\n\
             forward:\n  alertmanager:\n    - url: {}\n      flush_interval: 50ms\n",
            rules_file.display(),
            am.alerts_url()
        ),
    )
    .unwrap();
    Vigil::start(dir, &["--config".into(), config.display().to_string()]).await
}

fn named<'a>(alerts: &'a [Value], name: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| labels(a).get("alertname").map(String::as_str) == Some(name)).collect()
}

const REJECTED: &str = "increase(vigil_ingest_rejected_requests_total[3s])";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grouped_alert_fires_resolves_and_fires_again_at_alertmanager() {
    let dir = TempDir::new("e2e-alerts-lifecycle");
    let am = Alertmanager::start(&alertmanager::config(&["alertname"], None, "")).await;
    let rules = format!(
        "rules:\n- alert: IngestRejecting\n  threshold: {{expr: '{REJECTED}', op: '>', value: 0}}\n  group_by: [protocol]\n  labels: {{severity: warning}}\n  annotations: {{summary: 'Vigil refuses {{{{ $labels.protocol }}}} requests'}}\n"
    );
    let vigil = start(&dir.0, &am, &rules).await;

    bad_requests_for(&vigil, Duration::from_secs(2)).await;
    let first = am
        .wait_for_alerts("one grouped IngestRejecting alert", Duration::from_secs(20), |a| {
            let n = named(a, "IngestRejecting");
            (n.len() == 1 && n[0]["annotations"]["series_count"] == "2").then(|| n[0].clone())
        })
        .await;
    let l = labels(&first);
    assert_eq!(l.get("severity").map(String::as_str), Some("warning"));
    assert!(l.contains_key("protocol") && !l.contains_key("reason"), "grouped by protocol: {l:?}");
    assert_eq!(first["status"]["state"], "active");
    assert!(first["annotations"]["summary"].as_str().unwrap().starts_with("Vigil refuses "));
    assert!(first["annotations"]["series"].as_str().unwrap().contains("reason="), "{first}");
    assert!(first["generatorURL"].as_str().unwrap().ends_with("/api/v1/alerts"));
    let rules_api = get(&vigil.url("/api/v1/rules")).await.unwrap();
    let body: Value = serde_json::from_slice(&rules_api.body).unwrap();
    let rule = &body["data"]["groups"][0]["rules"][0];
    assert_eq!((rule["state"].as_str(), rule["health"].as_str()), (Some("firing"), Some("ok")), "{rule}");
    assert_eq!(rule["notifications"][0]["state"], "firing");

    // Requests stop: the increase falls to 0 within 3 s, the group resolves after its 1 s window, and
    // Alertmanager no longer lists it.
    am.wait_for_alerts("the alert to resolve", Duration::from_secs(20), |a| {
        named(a, "IngestRejecting").is_empty().then_some(())
    })
    .await;

    // They come back: the same alert fires again, as a new one (a later startsAt).
    bad_requests_for(&vigil, Duration::from_secs(1)).await;
    let again = am
        .wait_for_alerts("the alert to fire again", Duration::from_secs(20), |a| {
            named(a, "IngestRejecting").first().map(|v| (*v).clone())
        })
        .await;
    assert!(again["startsAt"].as_str().unwrap() > first["startsAt"].as_str().unwrap(), "{again} after {first}");
    assert_eq!(labels(&again), l, "same identity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inhibition_in_vigil_and_in_alertmanager() {
    let dir = TempDir::new("e2e-alerts-inhibit");
    // Alertmanager's own inhibit rule: a critical alert suppresses warnings with the same `protocol`.
    let am_inhibit = "inhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [protocol]\n";
    let am = Alertmanager::start(&alertmanager::config(&["alertname"], None, am_inhibit)).await;
    // Vigil's: IngestDown (the "node" alert) silences IngestRejecting with the same protocol before it is
    // ever sent; IngestNoisy is left for Alertmanager to suppress.
    let rules = format!(
        "rules:\n\
         - alert: IngestDown\n  threshold: {{expr: '{REJECTED}', op: '>', value: 0}}\n  group_by: [protocol]\n  labels: {{severity: critical}}\n\
         - alert: IngestRejecting\n  threshold: {{expr: '{REJECTED}', op: '>', value: 0}}\n  group_by: [protocol]\n  labels: {{severity: page}}\n\
         - alert: IngestNoisy\n  threshold: {{expr: '{REJECTED}', op: '>', value: 0}}\n  group_by: [protocol]\n  labels: {{severity: warning}}\n\
         inhibit_rules:\n- source_matchers: ['alertname=\"IngestDown\"']\n  target_matchers: ['alertname=\"IngestRejecting\"']\n  equal: [protocol]\n"
    );
    let vigil = start(&dir.0, &am, &rules).await;
    bad_requests_for(&vigil, Duration::from_secs(2)).await;
    let held = am
        .wait_for_alerts("IngestDown active and IngestNoisy suppressed", Duration::from_secs(20), |a| {
            let down = named(a, "IngestDown");
            let noisy = named(a, "IngestNoisy");
            (down.len() == 1 && noisy.len() == 1 && noisy[0]["status"]["state"] == "suppressed").then(|| a.to_vec())
        })
        .await;
    assert!(named(&held, "IngestRejecting").is_empty(), "silenced in Vigil, never sent: {held:#?}");
    let noisy = named(&held, "IngestNoisy")[0];
    assert_eq!(noisy["status"]["inhibitedBy"].as_array().unwrap().len(), 1, "{noisy}");
    let rules_api = get(&vigil.url("/api/v1/rules")).await.unwrap();
    let body: Value = serde_json::from_slice(&rules_api.body).unwrap();
    let states: BTreeMap<String, String> = body["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["name"].as_str().unwrap().to_owned(), r["notifications"][0]["state"].as_str().unwrap_or("-").to_owned())
        })
        .collect();
    assert_eq!(states["IngestRejecting"], "inhibited", "{states:?}");
    assert_eq!(states["IngestDown"], "firing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_edit_of_the_rule_file_keeps_the_old_rules_and_says_why() {
    let dir = TempDir::new("e2e-alerts-reload");
    let am = Alertmanager::start(&alertmanager::config(&["alertname"], None, "")).await;
    let vigil = start(
        &dir.0,
        &am,
        &format!("rules:\n- alert: First\n  threshold: {{expr: '{REJECTED}', op: '>', value: 0}}\n"),
    )
    .await;
    std::fs::write(
        dir.0.join("rules.yaml"),
        "rules:\n- alert: Broken\n  threshold: {expr: 'rate(x[', op: '>', value: 0}\n",
    )
    .unwrap();
    let body = wait_for("the reload error on /api/v1/rules", Duration::from_secs(10), || async {
        let r = get(&vigil.url("/api/v1/rules")).await.ok()?;
        let v: Value = serde_json::from_slice(&r.body).ok()?;
        v["data"]["groups"][0]["lastReloadError"].is_string().then_some(v)
    })
    .await;
    let group = &body["data"]["groups"][0];
    assert!(
        group["lastReloadError"].as_str().unwrap().contains("rules[0] (alert \"Broken\"): threshold.expr"),
        "{group}"
    );
    assert_eq!(group["rules"][0]["name"], "First", "the old rules keep running");
    let m = vigil.metrics().await;
    assert_eq!(metric_sum(&m, "vigil_alerting_rule_reloads_total", &["result=\"failure\""]), 1.0);
    // A good edit is taken.
    let rules = format!("rules:\n- alert: Second\n  threshold: {{expr: '{REJECTED}', op: '>', value: 0}}\n");
    std::fs::write(dir.0.join("rules.yaml"), rules).unwrap();
    bad_requests_for(&vigil, Duration::from_secs(1)).await;
    am.wait_for_alerts("the new rule's alert", Duration::from_secs(20), |a| {
        (!named(a, "Second").is_empty()).then_some(())
    })
    .await;
}

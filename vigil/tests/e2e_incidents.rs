//! Incidents end to end: a small shop (frontend → checkout → {payments, inventory}) sends real OTLP spans
//! over HTTP, OTLP error log lines with trace ids, and a per-service latency gauge with exemplars by remote
//! write; payments then fails 60 % of its requests, slowly. Vigil must open one incident within 5 s of the
//! first anomalous data, name payments as the root cause, and show the failed traces and their log lines
//! as evidence; `/api/v1/traces/{id}` must return a failed trace's spans, log lines and exemplar series;
//! `/api/v1/service-graph` the topology; the span RED and service-graph series must be queryable through
//! the Prometheus API; another tenant sees none of it. The real Alertmanager (Debian's
//! `prometheus-alertmanager`) must hold one alert for the fault, on payments with the incident's root cause
//! and trace ids, not one per symptom: the alerts of the services payments' failure reached are silenced.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../forward/tests/support/alertmanager.rs"]
mod alertmanager;
mod scenario;
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use scenario::*;
use serde_json::Value;
use support::*;

const TENANT: &str = "shop-team";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

async fn get_json(vigil: &Vigil, path: &str, tenant: &str) -> (u16, Value) {
    let r = request("GET", &vigil.url(path), &[("X-Scope-OrgID", tenant)], Bytes::new()).await.unwrap();
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_service_is_one_incident_with_its_root_cause_traces_and_log_lines() {
    let dir = TempDir::new("incidents");
    let am = alertmanager::Alertmanager::start(&alertmanager::config(&["alertname", "tenant"], None, "")).await;
    let config = vigil_config(&dir.0, &am.alerts_url());
    let vigil = Vigil::start(&dir.0, &["--config".into(), config.display().to_string()]).await;

    let shop = Topology::shop();
    let payments = 2;
    let scenario = Scenario {
        tenant: TENANT.into(),
        topology: shop.clone(),
        fault: Fault { service: payments, kind: FaultKind::Both { ratio: 0.6, extra_ms: 300.0 } },
        step_ms: 2000,
        history: 40,
        fault_windows: 3,
        requests_per_window: 10,
        seed: 7,
    };
    let (windows, truth) = scenario.generate(now_ms() - 500);
    for w in windows.iter().filter(|w| !w.faulty) {
        send_window(&vigil.url(""), TENANT, w).await;
    }
    // Let the healthy history be scored before the fault arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, none) = get_json(&vigil, "/api/v1/incidents", TENANT).await;
    assert_eq!(none["data"], serde_json::json!([]), "no incident from healthy traffic: {none}");
    let fault_sent_ms = now_ms();
    for w in windows.iter().filter(|w| w.faulty) {
        send_window(&vigil.url(""), TENANT, w).await;
    }

    // The incident: opened quickly, and (once the span-derived anomalies are in) rooted at payments.
    let incident = wait_for("an incident rooted at payments", Duration::from_secs(60), || async {
        let (status, body) = get_json(&vigil, "/api/v1/incidents", TENANT).await;
        assert_eq!(status, 200, "{body}");
        let list = body["data"].as_array().cloned().unwrap_or_default();
        list.into_iter()
            .find(|i| i["root_cause"]["service"] == "payments" && !i["evidence"]["logs"].as_array().unwrap().is_empty())
    })
    .await;
    // What else comes in is grouped into it, not a second incident.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, body) = get_json(&vigil, "/api/v1/incidents", TENANT).await;
    let all = body["data"].as_array().unwrap();
    assert_eq!(all.len(), 1, "one fault, one incident: {body:#}");
    let incident = all.iter().find(|i| i["id"] == incident["id"]).expect("the same incident");
    let opened = rfc3339_ms(incident["opened_at"].as_str().unwrap());
    eprintln!("incident opened {} ms after the fault's first data was sent", opened - fault_sent_ms);
    assert!(opened - fault_sent_ms <= 5000, "opened {} ms after the fault's first data", opened - fault_sent_ms);
    assert_eq!(incident["status"], "open");
    assert!(["P0", "P1", "P2", "P3"].contains(&incident["severity"].as_str().unwrap()));
    let root = &incident["root_cause"];
    assert!(root["confidence"].as_f64().unwrap() >= 0.85, "{root}");
    assert!(root["reason"].as_str().unwrap().contains("failed or slow traces start here"), "{root}");
    assert!(incident["title"].as_str().unwrap().starts_with("payments:"), "{}", incident["title"]);
    let services: BTreeSet<&str> =
        incident["services"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    for s in ["frontend", "checkout", "payments"] {
        assert!(services.contains(s), "{s} missing from {services:?}");
    }
    assert!(!services.contains("inventory"), "inventory did nothing wrong: {services:?}");

    // Evidence: failed traces only, their spans, and the log lines sent with those trace ids.
    let ev = &incident["evidence"];
    let traces: Vec<&str> = ev["trace_ids"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert!(traces.len() >= 5, "{ev:#}");
    for t in &traces {
        assert!(truth.fault_traces.contains(*t), "trace {t} is not one of the fault's");
    }
    assert!(traces.iter().filter(|t| truth.failed_traces.contains(**t)).count() >= 5);
    // Payments fails 60 % of its requests and is slow on all: every span shown is of a fault trace, and
    // a failed span is of a failed trace.
    for s in ev["spans"].as_array().unwrap() {
        let t = s["trace_id"].as_str().unwrap();
        assert!(truth.fault_traces.contains(t), "{s}");
        assert!(s["slow"].as_bool().unwrap() || s["error"].as_bool().unwrap(), "{s}");
        if s["error"].as_bool().unwrap() {
            assert!(truth.failed_traces.contains(t), "{s}");
        }
    }
    assert!(ev["spans"].as_array().unwrap().iter().any(|s| s["service"] == "payments" && s["error"] == true));
    let logs = ev["logs"].as_array().unwrap();
    for l in logs {
        let pair = (l["trace_id"].as_str().unwrap().to_owned(), l["body"].as_str().unwrap().to_owned());
        assert!(truth.error_logs.contains(&pair), "a log line that was not sent: {l}");
    }
    assert!(
        logs.iter().any(|l| l["service"] == "payments" && l["body"].as_str().unwrap().contains("timed out")),
        "{logs:#?}"
    );
    let series: Vec<String> =
        ev["series"].as_array().unwrap().iter().map(|s| s["labels"]["__name__"].as_str().unwrap().to_owned()).collect();
    assert!(series.iter().any(|n| n == LATENCY_METRIC), "the latency gauge's anomaly: {series:?}");
    assert!(series.iter().any(|n| n == "traces_spanmetrics_error_ratio"), "the span-derived error ratio's: {series:?}");
    let timeline = incident["timeline"].as_array().unwrap();
    assert!(timeline.iter().any(|t| t["kind"] == "root_cause" && t["service"] == "payments"));

    // The same incident by id; an unknown id is a clear 404.
    let id = incident["id"].as_str().unwrap();
    let (status, one) = get_json(&vigil, &format!("/api/v1/incidents/{id}"), TENANT).await;
    assert_eq!(status, 200);
    assert_eq!(one["data"]["id"], id);
    assert_eq!(one["data"]["root_cause"]["service"], "payments");
    let (status, missing) = get_json(&vigil, "/api/v1/incidents/nope", TENANT).await;
    assert_eq!((status, missing["errorType"].as_str()), (404, Some("not_found")));
    let (status, _) = get_json(&vigil, &format!("/api/v1/incidents/{id}"), "someone-else").await;
    assert_eq!(status, 404, "another tenant cannot read it");
    let (_, theirs) = get_json(&vigil, "/api/v1/incidents", "someone-else").await;
    assert_eq!(theirs["data"], serde_json::json!([]));
    let start = (fault_sent_ms - 3_600_000) / 1000;
    let (_, ranged) = get_json(&vigil, &format!("/api/v1/incidents?start={start}&status=open"), TENANT).await;
    assert_eq!(ranged["data"].as_array().map(Vec::len), Some(1));
    let (_, later) =
        get_json(&vigil, &format!("/api/v1/incidents?start={}", (now_ms() + 3_600_000) / 1000), TENANT).await;
    assert_eq!(later["data"].as_array().map(Vec::len), Some(1), "open incidents last until now and beyond");
    let (_, resolved) = get_json(&vigil, "/api/v1/incidents?status=resolved", TENANT).await;
    assert_eq!(resolved["data"], serde_json::json!([]));

    // A failed trace whose exemplar the payments gauge carries: its spans, its log lines, that series.
    let fault_window = windows.iter().rfind(|w| w.faulty).unwrap();
    let payments_series =
        fault_window.metrics.timeseries.iter().find(|t| t.labels.iter().any(|l| l.value == "payments")).unwrap();
    let trace_id = &payments_series.exemplars[0].labels.iter().find(|l| l.name == "trace_id").unwrap().value;
    assert!(truth.failed_traces.contains(trace_id), "the gauge's exemplar points at a failed trace");
    let (status, t) = get_json(&vigil, &format!("/api/v1/traces/{trace_id}"), TENANT).await;
    assert_eq!(status, 200, "{t}");
    let t = &t["data"];
    assert_eq!(t["spans"].as_array().unwrap().len(), 7, "three calls and four services: {t:#}");
    assert_eq!(t["error_origins"], serde_json::json!(["payments"]));
    let span_services: BTreeSet<&str> =
        t["spans"].as_array().unwrap().iter().map(|s| s["service"].as_str().unwrap()).collect();
    assert_eq!(span_services, BTreeSet::from(["frontend", "checkout", "payments", "inventory"]));
    let inventory = t["spans"].as_array().unwrap().iter().find(|s| s["service"] == "inventory").unwrap();
    assert_eq!(inventory["error"], false);
    let sent: BTreeSet<&str> =
        truth.error_logs.iter().filter(|(t, _)| t == trace_id).map(|(_, b)| b.as_str()).collect();
    let got: BTreeSet<&str> = t["logs"].as_array().unwrap().iter().map(|l| l["body"].as_str().unwrap()).collect();
    assert_eq!(got, sent, "every log line of the trace, and only those");
    assert!(t["logs"].as_array().unwrap().iter().all(|l| l["trace_id"] == trace_id.as_str()));
    let series = t["series"].as_array().unwrap();
    assert!(
        series.iter().any(|s| s["labels"]["__name__"] == LATENCY_METRIC && s["labels"]["job"] == "payments"),
        "{series:?}"
    );
    let (status, _) = get_json(&vigil, &format!("/api/v1/traces/{trace_id}"), "someone-else").await;
    assert_eq!(status, 404);
    let (status, body) = get_json(&vigil, &format!("/api/v1/traces/{}", "ab".repeat(16)), TENANT).await;
    assert_eq!((status, body["errorType"].as_str()), (404, Some("not_found")));
    let (status, body) = get_json(&vigil, "/api/v1/traces/not-a-trace-id", TENANT).await;
    assert_eq!((status, body["errorType"].as_str()), (400, Some("bad_data")));
    assert!(body["error"].as_str().unwrap().contains("32 hexadecimal characters"), "{body}");

    // The service graph is the topology, with payments' failures on checkout → payments.
    let (_, g) = get_json(&vigil, "/api/v1/service-graph", TENANT).await;
    let edges: BTreeSet<(String, String)> = g["data"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["source"].as_str().unwrap().to_owned(), e["target"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(edges, truth.edges);
    let to_payments = g["data"]["edges"].as_array().unwrap().iter().find(|e| e["target"] == "payments").unwrap();
    assert!(to_payments["failed_total"].as_u64().unwrap() > 0, "{to_payments}");
    let to_inventory = g["data"]["edges"].as_array().unwrap().iter().find(|e| e["target"] == "inventory").unwrap();
    assert_eq!(to_inventory["failed_total"], 0);
    let (_, g) = get_json(&vigil, "/api/v1/service-graph", "someone-else").await;
    assert_eq!(g["data"]["edges"], serde_json::json!([]));

    // The derived series are queryable like Vigil's other series (Grafana's Prometheus data source).
    for q in [
        r#"traces_spanmetrics_error_ratio{service="payments"}"#,
        r#"traces_service_graph_request_failed_total{server="payments"}"#,
    ] {
        let (status, body) = get_json(&vigil, &format!("/api/v1/query?query={}", urlencode(q)), TENANT).await;
        assert_eq!(status, 200, "{body}");
        assert!(!body["data"]["result"].as_array().unwrap().is_empty(), "{q}: {body}");
    }
    // Alertmanager holds one alert for the fault: payments', with the incident; the anomalies of frontend
    // and checkout that payments explains were silenced (ended there if they had gone out first).
    let id = incident["id"].as_str().unwrap().to_owned();
    let ours = |alerts: &[Value]| -> Vec<Value> {
        alerts
            .iter()
            .filter(|a| alertmanager::labels(a).get("tenant").map(String::as_str) == Some(TENANT))
            .cloned()
            .collect()
    };
    let alert = am
        .wait_for_alerts("one alert on payments at Alertmanager", Duration::from_secs(30), |a| {
            let ours = ours(a);
            (ours.len() == 1 && ours[0]["labels"]["service"] == "payments").then(|| ours[0].clone())
        })
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = ours(&am.alerts().await);
    assert_eq!(held.len(), 1, "still one alert, not one per symptom: {held:#?}");
    let a = &alert["annotations"];
    assert_eq!(a["incident"], id.as_str(), "{alert:#}");
    assert!(a["root_cause"].as_str().unwrap().starts_with("payments (confidence"), "{alert:#}");
    assert!(a["incident_url"].as_str().unwrap().ends_with(&format!("/api/v1/incidents/{id}")));
    let traces: Vec<&str> = a["trace_ids"].as_str().unwrap().split(',').collect();
    assert!(!traces.is_empty() && traces.iter().all(|t| truth.fault_traces.contains(*t)), "{traces:?}");
    assert_eq!(alert["labels"]["alertname"], "ServiceAnomaly");

    let m = vigil.metrics().await;
    assert_eq!(metric_sum(&m, "vigil_correlate_incidents_opened_total", &[]), 1.0, "{m}");
    assert!(metric_sum(&m, "vigil_correlate_derived_samples_total", &[]) > 100.0);
    assert!(metric_sum(&m, "vigil_ingest_samples_total", &["protocol=\"span_metrics\""]) > 100.0);
    assert!(metric_sum(&m, "vigil_correlate_index_traces", &[]) >= 400.0);
    assert_eq!(metric_sum(&m, "vigil_correlate_skipped_total", &["late"]), 0.0);
}

//! Vigil as a Grafana Prometheus data source, end to end: a series with a spike is remote-written, the
//! engine scores it, and Vigil's own Prometheus API answers Grafana-shaped requests over the scores —
//! `max_over_time(anomaly_score[5m])` peaks at the spike's score (the one the anomaly API reports), the
//! range query has the score at the spike's step, and series/labels list Vigil's own series only, per tenant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use support::spike::write_spike;
use support::*;

const METRIC: &str = "e2e_prom_latency_seconds";
const TENANT: &str = "team-prom";
const FORM: &str = "application/x-www-form-urlencoded";

/// A form POST (Grafana's default for queries) or a GET, as `tenant`; the JSON answer.
async fn call(vigil: &Vigil, path: &str, form: Option<&str>, tenant: Option<&str>) -> serde_json::Value {
    let mut headers: Vec<(&str, &str)> = tenant.map(|t| ("X-Scope-OrgID", t)).into_iter().collect();
    let (method, body) = match form {
        Some(f) => {
            headers.push(("Content-Type", FORM));
            ("POST", Bytes::from(f.to_owned()))
        }
        None => ("GET", Bytes::new()),
    };
    let r = request(method, &vigil.url(path), &headers, body).await.unwrap();
    assert_eq!(r.status, 200, "{path} {form:?}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_queries_the_scores_of_a_spike_through_vigils_prometheus_api() {
    let dir = TempDir::new("prom-api");
    let config = dir.0.join("vigil.yaml");
    std::fs::write(&config, "own_series:\n  self_metrics_interval: 1s\n").unwrap();
    let vigil = Vigil::start(&dir.0, &["--config".into(), config.display().to_string()]).await;

    // 300 samples of noise around 0.1 s, 15 s apart and ending a minute ago, then one spike to 5 s.
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64 / 1000 * 1000;
    let spike_ms = write_spike(&vigil, METRIC, TENANT, 0x2545_f491_4f6c_dd1d, now_ms).await;

    // The anomaly API's event for the spike: its score is the one to find through PromQL.
    let anomalies = format!("/api/v1/anomalies?match[]={}", urlencode(METRIC));
    let event = wait_for("the spike in /api/v1/anomalies", Duration::from_secs(60), || {
        let vigil = &vigil;
        let path = anomalies.clone();
        async move {
            let v = call(vigil, &path, None, Some(TENANT)).await;
            v["data"].as_array().and_then(|d| d.first().cloned())
        }
    })
    .await;
    let score = event["score"].as_f64().unwrap();
    assert!(score > 1.0, "{event}");

    // Grafana's instant query, POSTed as a form at the spike's time.
    let query = format!(r#"max_over_time(anomaly_score{{for="{METRIC}"}}[5m])"#);
    let form = format!("query={}&time={}", urlencode(&query), seconds(spike_ms));
    let answer = wait_for("the spike's score through /api/v1/query", Duration::from_secs(30), || {
        let (vigil, form) = (&vigil, form.clone());
        async move {
            let v = call(vigil, "/api/v1/query", Some(&form), Some(TENANT)).await;
            let value = v["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok()?;
            (value == score).then_some(v)
        }
    })
    .await;
    assert_eq!(answer["data"]["resultType"], "vector");
    let result = answer["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1, "{answer}");
    assert_eq!(
        result[0]["metric"],
        serde_json::json!({"for": METRIC, "instance": "a:9100", "job": "api"}),
        "max_over_time drops the name"
    );
    assert_eq!(result[0]["value"][0].as_f64().unwrap(), spike_ms as f64 / 1000.0);
    // Five minutes later the spike has left the window: the peak is lower.
    let later = format!("query={}&time={}", urlencode(&query), seconds(spike_ms + 300_000));
    let v = call(&vigil, "/api/v1/query", Some(&later), Some(TENANT)).await;
    let after: f64 = v["data"]["result"][0]["value"][1].as_str().unwrap_or("NaN").parse().unwrap();
    assert!(after.is_nan() || after < score, "the window (spike, spike + 5m] holds no score as high: {v}");

    // Grafana's range query: start/end/step as seconds, 15 s steps on the samples' grid.
    let start = spike_ms - 10 * 60_000;
    let form = format!(
        "query={}&start={}&end={}&step=15",
        urlencode(&format!(r#"anomaly_score{{for="{METRIC}"}}"#)),
        seconds(start),
        seconds(spike_ms)
    );
    let range = call(&vigil, "/api/v1/query_range", Some(&form), Some(TENANT)).await;
    assert_eq!(range["data"]["resultType"], "matrix");
    let values = range["data"]["result"][0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 41, "one point per 15 s step over 10 minutes, both ends included");
    let last = &values[40];
    assert_eq!(
        (last[0].as_f64().unwrap(), last[1].as_str().unwrap().parse::<f64>().unwrap()),
        (spike_ms as f64 / 1000.0, score)
    );
    assert!(values[..40].iter().all(|p| p[1].as_str().unwrap().parse::<f64>().unwrap() < score), "{range}");

    // The query editor's lookups list Vigil's own series only (not the written metric), for the tenant only.
    let names = call(&vigil, "/api/v1/label/__name__/values", None, Some(TENANT)).await;
    assert_eq!(
        names["data"],
        serde_json::json!(["anomaly_expected", "anomaly_lower", "anomaly_score", "anomaly_upper"])
    );
    let series =
        call(&vigil, &format!("/api/v1/series?match[]={}", urlencode("anomaly_score")), None, Some(TENANT)).await;
    assert_eq!(
        series["data"],
        serde_json::json!([{"__name__": "anomaly_score", "for": METRIC, "instance": "a:9100", "job": "api"}])
    );
    let labels =
        call(&vigil, &format!("/api/v1/labels?start={}&end={}", seconds(start), seconds(now_ms)), None, Some(TENANT))
            .await;
    assert_eq!(labels["data"], serde_json::json!(["__name__", "for", "instance", "job"]));
    // The default tenant holds Vigil's self-metrics (every second here), none of team-prom's scores: the
    // 301 samples written show up once a recording comes after them.
    let written = format!("query={}", urlencode(r#"sum(vigil_ingest_samples_total{protocol="remote_write"})"#));
    wait_for("vigil_ingest_samples_total through /api/v1/query", Duration::from_secs(30), || {
        let (vigil, form) = (&vigil, written.clone());
        async move {
            let v = call(vigil, "/api/v1/query", Some(&form), None).await;
            (v["data"]["result"][0]["value"][1] == "301").then_some(())
        }
    })
    .await;
    let other = call(&vigil, "/api/v1/label/__name__/values", None, None).await;
    let names = other["data"].as_array().unwrap();
    assert!(names.iter().all(|n| n.as_str().unwrap().starts_with("vigil_")), "{names:?}");
    assert!(names.iter().any(|n| n == "vigil_own_series_appended_samples_total"), "{names:?}");

    let r =
        request("POST", &vigil.url("/api/v1/query"), &[("Content-Type", FORM)], Bytes::from("query=rate(x%5B5m%5D"))
            .await
            .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    // Every score written back is in the store: counted through PromQL over the tenant's own series. (The
    // tee comes just before the metrics path counts a body, so a scrape may fall between the two: poll.)
    let count = format!(
        "query={}&time={}",
        urlencode(r#"sum(count_over_time({__name__=~"anomaly_.*"}[2h]))"#),
        seconds(now_ms)
    );
    let m = wait_for("the store to hold every written-back sample", Duration::from_secs(10), || {
        let (vigil, count) = (&vigil, count.clone());
        async move {
            let m = vigil.metrics().await;
            let written_back = metric_sum(&m, "vigil_ingest_samples_total", &[r#"protocol="anomaly_writeback""#]);
            let v = call(vigil, "/api/v1/query", Some(&count), Some(TENANT)).await;
            let stored: f64 = v["data"]["result"][0]["value"][1].as_str()?.parse().ok()?;
            (written_back >= 4.0 * 200.0 && stored == written_back).then_some(m)
        }
    })
    .await;
    // The four anomaly_* series and the self-metrics.
    assert!(metric_sum(&m, "vigil_own_series_series", &[]) > 4.0 + 10.0, "{m}");
}

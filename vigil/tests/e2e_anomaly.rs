//! The anomaly path end to end: a series with a spike is remote-written to Vigil; its scores reach the real
//! VictoriaMetrics as `anomaly_score{for="<metric>"}` (and expected/lower/upper), and Vigil's anomaly API
//! lists the spike, for its tenant only, with its expected value, band and severity.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use support::spike::write_spike;
use support::*;

const METRIC: &str = "e2e_latency_seconds";
const TENANT: &str = "team-e2e";

async fn get_json(url: &str, tenant: Option<&str>) -> serde_json::Value {
    let headers: Vec<(&str, &str)> = tenant.map(|t| ("X-Scope-OrgID", t)).into_iter().collect();
    let r = request("GET", url, &headers, Bytes::new()).await.unwrap();
    assert_eq!(r.status, 200, "{url}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_is_scored_written_to_victoriametrics_and_listed_by_the_anomaly_api() {
    let dir = TempDir::new("anomaly");
    let vm = VictoriaMetrics::start(&dir.0).await;
    let config = dir.0.join("vigil.yaml");
    std::fs::write(
        &config,
        format!("forward:\n  victoriametrics:\n    - url: {}\n      flush_interval: 100ms\n", vm.write_url()),
    )
    .unwrap();
    let vigil = Vigil::start(&dir.0, &["--config".into(), config.display().to_string()]).await;

    // 300 samples of noise around 0.1 s, 15 s apart and ending a minute ago, then one spike to 5 s.
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64 / 1000 * 1000;
    let spike_ms = write_spike(&vigil, METRIC, TENANT, 0x9e37_79b9_7f4a_7c15, now_ms).await;

    // VictoriaMetrics holds the scores at the spike's timestamp, with the source labels and `for`.
    let at_spike = |name: &'static str| {
        let vm = &vm;
        async move {
            let selector = format!("{name}{{for=\"{METRIC}\",job=\"api\",instance=\"a:9100\"}}");
            let exported = vm.export(&selector).await;
            exported.values().flatten().find(|(t, _)| *t == spike_ms).map(|(_, v)| *v)
        }
    };
    let score = wait_for("anomaly_score at the spike in VictoriaMetrics", Duration::from_secs(60), || {
        at_spike("anomaly_score")
    })
    .await;
    assert!(score > 1.0, "anomaly_score at the spike: {score}");
    let expected = at_spike("anomaly_expected").await.expect("anomaly_expected at the spike");
    let (lower, upper) = (at_spike("anomaly_lower").await.unwrap(), at_spike("anomaly_upper").await.unwrap());
    assert!((0.09..0.12).contains(&expected), "expected {expected}");
    assert!(lower <= expected && expected <= upper && upper < 5.0, "band [{lower}, {upper}]");
    let labels = vm.export(&format!("anomaly_score{{for=\"{METRIC}\"}}")).await.into_keys().next().unwrap();
    let names: Vec<&str> = labels.keys().map(String::as_str).collect();
    assert_eq!(names, ["__name__", "for", "instance", "job"], "source labels plus for, nothing else");
    let quiet = vm.export(&format!("anomaly_score{{for=\"{METRIC}\"}}")).await;
    let before: Vec<f64> = quiet.values().flatten().filter(|(t, _)| *t < spike_ms).map(|(_, v)| *v).collect();
    assert!(before.len() > 200, "every scored sample has its score: {}", before.len());

    // The anomaly API lists it for its tenant, and only for it.
    let query = format!(
        "/api/v1/anomalies?match[]={}&start={}&end={}",
        urlencode(&format!("{METRIC}{{job=\"api\"}}")),
        (spike_ms - 60_000) / 1000,
        urlencode(&rfc3339_seconds(now_ms + 60_000)),
    );
    let listed = wait_for("the spike in /api/v1/anomalies", Duration::from_secs(30), || {
        let url = vigil.url(&query);
        async move {
            let v = get_json(&url, Some(TENANT)).await;
            v["data"].as_array().filter(|d| !d.is_empty()).cloned()
        }
    })
    .await;
    assert_eq!(listed.len(), 1, "one event for one spike: {listed:?}");
    let a = &listed[0];
    assert_eq!(a["labels"]["__name__"], METRIC);
    assert_eq!(a["labels"]["instance"], "a:9100");
    assert_eq!(a["timestamp"], rfc3339_millis(spike_ms), "{a}");
    assert!(a["score"].as_f64().unwrap() > 1.0, "{a}");
    // VictoriaMetrics keeps 12 significant digits.
    let same = |field: &str, stored: f64| {
        let listed = a[field].as_f64().unwrap();
        assert!(
            (listed - stored).abs() <= 1e-9 * stored.abs().max(1.0),
            "{field}: API {listed}, VictoriaMetrics {stored}"
        );
    };
    same("score", score);
    same("expected", expected);
    same("lower", lower);
    same("upper", upper);
    assert!(["P0", "P1", "P2", "P3"].contains(&a["severity"].as_str().unwrap()), "{a}");
    assert!(a["detectors"].as_object().is_some_and(|d| !d.is_empty()), "{a}");
    let other = get_json(&vigil.url(&query), None).await;
    assert_eq!(other["data"], serde_json::json!([]), "the default tenant sees nothing of team-e2e");
    let high = get_json(&vigil.url(&format!("{query}&min_score=1e12")), Some(TENANT)).await;
    assert_eq!(high["data"], serde_json::json!([]));

    // A forecast of the series from its newest sample on.
    let url = vigil.url(&format!("/api/v1/forecast?match[]={METRIC}&horizon=1h&step=5m"));
    let forecast = get_json(&url, Some(TENANT)).await;
    assert_eq!(forecast["data"].as_array().map(Vec::len), Some(1), "{forecast}");
    assert_eq!(forecast["data"][0]["points"].as_array().map(Vec::len), Some(12), "{forecast}");
    let r = get(&vigil.url("/api/v1/anomalies?start=soon")).await.unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains(r#"invalid parameter \"start\""#), "{}", r.text());

    let m = vigil.metrics().await;
    assert!(metric_sum(&m, "vigil_detect_samples_scored_total", &[]) >= 200.0, "{m}");
    assert_eq!(metric_sum(&m, "vigil_detect_anomalies_total", &[]), 1.0);
    assert_eq!(metric_sum(&m, "vigil_detect_series", &[]), 1.0, "anomaly_* are never scored");
    assert_eq!(metric_sum(&m, "vigil_detect_writeback_dropped_samples_total", &[]), 0.0);
}

fn rfc3339_millis(ms: i64) -> String {
    rfc3339(ms, true)
}

fn rfc3339_seconds(ms: i64) -> String {
    rfc3339(ms, false)
}

/// UTC `YYYY-MM-DDTHH:MM:SS[.mmm]Z`, computed here so the test does not share the API's formatter.
fn rfc3339(ms: i64, millis: bool) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, frac) = (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000);
    if millis {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{frac:03}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

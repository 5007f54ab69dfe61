//! Remote write 1.0 and 2.0 requests built here → the `vigil` binary → real VictoriaMetrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use support::*;
use vigil_proto::{prometheus as v1, prometheus_v2 as v2};

fn snappy(raw: &[u8]) -> Bytes {
    Bytes::from(snap::raw::Encoder::new().compress_vec(raw).expect("snappy"))
}

fn labels(pairs: &[(&str, &str)]) -> Vec<v1::Label> {
    pairs.iter().map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() }).collect()
}

const V1_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];
const V2_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "2.0.0"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_and_v2_fixtures_reach_victoriametrics() {
    let dir = TempDir::new("fixtures");
    let vm = VictoriaMetrics::start(&dir.0).await;
    let vigil = Vigil::start(&dir.0, &["--forward-victoriametrics".into(), vm.write_url()]).await;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64 - 60_000;

    // 1.0: two series, three samples each, an exemplar with a trace id, metadata.
    let v1_req = v1::WriteRequest {
        timeseries: vec![
            v1::TimeSeries {
                labels: labels(&[("__name__", "fixture_requests_total"), ("job", "api"), ("path", "/a")]),
                samples: (0..3).map(|i| v1::Sample { value: 10.0 + i as f64, timestamp: now + i * 1000 }).collect(),
                exemplars: vec![v1::Exemplar {
                    labels: labels(&[("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]),
                    value: 1.0,
                    timestamp: now,
                }],
                ..Default::default()
            },
            v1::TimeSeries {
                labels: labels(&[("__name__", "fixture_requests_total"), ("job", "api"), ("path", "/b")]),
                samples: (0..3).map(|i| v1::Sample { value: 0.25 * i as f64, timestamp: now + i * 1000 }).collect(),
                ..Default::default()
            },
        ],
        metadata: vec![v1::MetricMetadata {
            r#type: 1,
            metric_family_name: "fixture_requests_total".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    let r = request("POST", &vigil.url("/api/v1/write"), &V1_HEADERS, snappy(&v1_req.encode_to_vec()))
        .await
        .expect("v1 post");
    assert_eq!(r.status, 204, "{}", r.text());

    // 2.0: symbols table, one series with samples and an exemplar.
    let symbols: Vec<String> =
        ["", "__name__", "fixture_latency_seconds", "job", "db", "trace_id", "0af7651916cd43dd8448eb211c80319c"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    let v2_req = v2::Request {
        symbols,
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2, 3, 4],
            samples: (0..4)
                .map(|i| v2::Sample { value: 0.5 + i as f64, timestamp: now + i * 1000, start_timestamp: 0 })
                .collect(),
            exemplars: vec![v2::Exemplar { labels_refs: vec![5, 6], value: 0.7, timestamp: now + 1000 }],
            metadata: Some(v2::Metadata { r#type: 2, help_ref: 0, unit_ref: 0 }),
            ..Default::default()
        }],
    };
    let r = request("POST", &vigil.url("/api/v1/write"), &V2_HEADERS, snappy(&v2_req.encode_to_vec()))
        .await
        .expect("v2 post");
    assert_eq!(r.status, 204, "{}", r.text());
    let header = |n: &str| r.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("X-Prometheus-Remote-Write-Samples-Written").as_deref(), Some("4"));
    assert_eq!(header("X-Prometheus-Remote-Write-Histograms-Written").as_deref(), Some("0"));
    assert_eq!(header("X-Prometheus-Remote-Write-Exemplars-Written").as_deref(), Some("1"));

    // A malformed request between them is refused and the server stays up.
    let r = request("POST", &vigil.url("/api/v1/write"), &V1_HEADERS, Bytes::from_static(b"not snappy"))
        .await
        .expect("bad post");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("snappy"), "{}", r.text());

    assert_eq!(vigil.wait_forwarded(Duration::from_secs(30), 1).await, 10.0);
    let m = vigil.metrics().await;
    assert_eq!(metric_sum(&m, "vigil_ingest_exemplars_total", &[]), 2.0);
    assert_eq!(metric_sum(&m, "vigil_forward_exemplars_total", &[]), 2.0);

    let want: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = [
        (
            vec![("__name__", "fixture_requests_total"), ("job", "api"), ("path", "/a")],
            (0..3).map(|i| (now + i * 1000, 10.0 + i as f64)).collect(),
        ),
        (
            vec![("__name__", "fixture_requests_total"), ("job", "api"), ("path", "/b")],
            (0..3).map(|i| (now + i * 1000, 0.25 * i as f64)).collect(),
        ),
        (
            vec![("__name__", "fixture_latency_seconds"), ("job", "db")],
            (0..4).map(|i| (now + i * 1000, 0.5 + i as f64)).collect::<Vec<_>>(),
        ),
    ]
    .into_iter()
    .map(|(l, s)| (l.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(), s))
    .collect();
    let got = wait_for("VictoriaMetrics to hold the fixture series", Duration::from_secs(30), || async {
        let got = vm.export("{__name__=~\"fixture_.*\"}").await;
        (got == want).then_some(got)
    })
    .await;
    assert_eq!(got.len(), 3);
}

/// `X-Scope-OrgID` on remote write and OTLP keeps tenants apart, and single-node VictoriaMetrics gets each
/// tenant as a label through a `{tenant}` URL template (`extra_label`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_reach_victoriametrics_apart() {
    let dir = TempDir::new("tenants");
    let vm = VictoriaMetrics::start(&dir.0).await;
    let url = format!("{}?extra_label=vigil_tenant={{tenant}}", vm.write_url());
    let vigil = Vigil::start(&dir.0, &["--forward-victoriametrics".into(), url]).await;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64 - 60_000;

    let one_series = |value: f64| {
        let req = v1::WriteRequest {
            timeseries: vec![v1::TimeSeries {
                labels: labels(&[("__name__", "tenant_fixture"), ("job", "rw")]),
                samples: vec![v1::Sample { value, timestamp: now }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        snappy(&req.encode_to_vec())
    };
    for (tenant, value) in [(None, 1.0), (Some("team-a"), 2.0)] {
        let mut headers = V1_HEADERS.to_vec();
        headers.extend(tenant.map(|t| ("X-Scope-OrgID", t)));
        let r = request("POST", &vigil.url("/api/v1/write"), &headers, one_series(value)).await.expect("post");
        assert_eq!(r.status, 204, "{}", r.text());
    }
    let bad = [V1_HEADERS.as_slice(), &[("X-Scope-OrgID", "a/b")]].concat();
    let r = request("POST", &vigil.url("/api/v1/write"), &bad, one_series(9.0)).await.expect("post");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("X-Scope-OrgID"), "{}", r.text());

    let otlp = serde_json::json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "otlp"}}]},
        "scopeMetrics": [{"metrics": [{"name": "tenant_fixture", "gauge": {"dataPoints": [
            {"timeUnixNano": format!("{}", now * 1_000_000), "asDouble": 3.0}
        ]}}]}]
    }]});
    let headers = [("Content-Type", "application/json"), ("X-Scope-OrgID", "team-b")];
    let r = request("POST", &vigil.url("/v1/metrics"), &headers, Bytes::from(otlp.to_string())).await.expect("post");
    assert_eq!(r.status, 200, "{}", r.text());

    let want: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = [
        (vec![("job", "rw"), ("vigil_tenant", "anonymous")], 1.0),
        (vec![("job", "rw"), ("vigil_tenant", "team-a")], 2.0),
        (vec![("job", "otlp"), ("vigil_tenant", "team-b")], 3.0),
    ]
    .into_iter()
    .map(|(l, v)| {
        let mut labels: BTreeMap<String, String> = l.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        labels.insert("__name__".into(), "tenant_fixture".into());
        (labels, vec![(now, v)])
    })
    .collect();
    wait_for("VictoriaMetrics to hold one series per tenant", Duration::from_secs(30), || async {
        let got = vm.export("{__name__=\"tenant_fixture\"}").await;
        (got == want).then_some(())
    })
    .await;
}

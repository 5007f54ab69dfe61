//! The OpenTelemetry Python SDK → Vigil (OTLP/HTTP and gRPC) → real VictoriaMetrics: names and labels per
//! the OpenTelemetry-to-Prometheus compatibility rules; and the SDK's exemplars → Vigil's trace view.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use support::*;

/// The last value VictoriaMetrics holds for the one series matching `selector`, with its labels.
async fn only_series(vm: &VictoriaMetrics, selector: &str) -> (std::collections::BTreeMap<String, String>, f64) {
    let got = wait_for(selector, Duration::from_secs(30), || async {
        let e = vm.export(selector).await;
        (e.len() == 1).then_some(e)
    })
    .await;
    let (labels, samples) = got.into_iter().next().expect("one series");
    (labels, samples.last().expect("a sample").1)
}

fn require_python_sdk() {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http, opentelemetry.exporter.otlp.proto.grpc",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the OpenTelemetry Python SDK is missing: python3 -m pip install opentelemetry-sdk \
         opentelemetry-exporter-otlp-proto-http opentelemetry-exporter-otlp-proto-grpc (scripts/test.sh does this)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_metrics_over_http_reach_victoriametrics_with_prometheus_names() {
    sdk_metrics_reach_victoriametrics(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_metrics_over_grpc_reach_victoriametrics_with_prometheus_names() {
    sdk_metrics_reach_victoriametrics(true).await;
}

async fn sdk_metrics_reach_victoriametrics(grpc: bool) {
    require_python_sdk();
    let dir = TempDir::new("otlp-sdk");
    let vm = VictoriaMetrics::start(&dir.0).await;
    let vigil = Vigil::start(&dir.0, &["--forward-victoriametrics".into(), vm.write_url()]).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp/send_metrics.py");
    let (endpoint, transport) =
        if grpc { (format!("127.0.0.1:{}", vigil.grpc_port), "grpc") } else { (vigil.url("/v1/metrics"), "http") };
    let out =
        tokio::task::spawn_blocking(move || Command::new("python3").arg(script).arg(endpoint).arg(transport).output())
            .await
            .expect("join")
            .expect("run python3");
    assert!(
        out.status.success(),
        "SDK export failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ids = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (trace_id, span_id) = ids.split_once(' ').expect("the script prints the trace and span id");
    vigil.wait_forwarded(Duration::from_secs(30), 1).await;
    let m = vigil.metrics().await;
    let protocol = if grpc { "otlp_grpc" } else { "otlp_http" };
    assert!(metric_sum(&m, "vigil_ingest_samples_total", &[protocol]) > 0.0, "nothing arrived over {protocol}");

    let (labels, value) = only_series(&vm, "http_requests_total{http_method=\"GET\"}").await;
    assert_eq!(value, 5.0);
    assert_eq!(labels.get("job").map(String::as_str), Some("shop/checkout"));
    assert_eq!(labels.get("instance").map(String::as_str), Some("checkout-1"));
    assert_eq!(labels.get("otel_scope_name").map(String::as_str), Some("vigil.e2e"));
    assert_eq!(labels.get("otel_scope_version").map(String::as_str), Some("1.2.3"));
    assert!(!labels.contains_key("deployment_environment"), "resource attributes go to target_info: {labels:?}");
    assert_eq!(only_series(&vm, "http_requests_total{http_method=\"POST\"}").await.1, 7.0);

    // Histogram: cumulative buckets, sum and count, unit suffix before the type suffix.
    assert_eq!(only_series(&vm, "http_server_duration_milliseconds_count").await.1, 4.0);
    assert_eq!(only_series(&vm, "http_server_duration_milliseconds_sum").await.1, 783.0);
    assert_eq!(only_series(&vm, "http_server_duration_milliseconds_bucket{le=\"5\"}").await.1, 1.0);
    assert_eq!(only_series(&vm, "http_server_duration_milliseconds_bucket{le=\"50\"}").await.1, 3.0);
    assert_eq!(only_series(&vm, "http_server_duration_milliseconds_bucket{le=\"+Inf\"}").await.1, 4.0);

    // A non-monotonic sum is a gauge: no `_total`.
    assert_eq!(only_series(&vm, "queue_size_bytes").await.1, 70.0);

    // Resource attributes other than the identifying ones land on target_info.
    let (labels, value) = only_series(&vm, "target_info").await;
    assert_eq!(value, 1.0);
    assert_eq!(labels.get("deployment_environment").map(String::as_str), Some("test"));
    assert_eq!(labels.get("job").map(String::as_str), Some("shop/checkout"));

    // The 700 ms request was recorded inside a span: the SDK sent it as an exemplar of its bucket, and Vigil's
    // trace view lists that series with the exemplar's value and span.
    let path = format!("/api/v1/traces/{trace_id}");
    let series = wait_for("the exemplar in the trace view", Duration::from_secs(15), || async {
        let r = request("GET", &vigil.url(&path), &[], Bytes::new()).await.ok()?;
        let body: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        (r.status == 200).then(|| body["data"]["series"].as_array().cloned()).flatten()
    })
    .await;
    assert_eq!(series.len(), 1, "{series:?}");
    let s = &series[0];
    assert_eq!(s["labels"]["__name__"], "http_server_duration_milliseconds_bucket", "{s}");
    assert_eq!(s["labels"]["le"], "750", "the exemplar hangs on the bucket its value falls in: {s}");
    assert_eq!(s["labels"]["job"], "shop/checkout", "{s}");
    assert_eq!((s["value"].as_f64(), s["span_id"].as_str()), (Some(700.0), Some(span_id)), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_example_is_accepted_and_bad_requests_get_otlp_answers() {
    let dir = TempDir::new("otlp-json");
    let vigil = Vigil::start(&dir.0, &[]).await;
    let url = vigil.url("/v1/metrics");
    let example = include_str!("../../ingest/src/otlp/metrics/testdata/metrics.json");

    let r = request("POST", &url, &[("Content-Type", "application/json")], Bytes::from_static(example.as_bytes()))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
    let m = vigil.metrics().await;
    assert!(metric_sum(&m, "vigil_ingest_samples_total", &["otlp_http"]) > 0.0);

    // Unknown content type: 415 naming the supported ones.
    let r = request("POST", &url, &[("Content-Type", "text/plain")], Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(r.status, 415);
    assert!(r.text().contains("application/x-protobuf"), "{}", r.text());

    // Broken JSON: 400 with a google.rpc.Status in JSON.
    let r =
        request("POST", &url, &[("Content-Type", "application/json")], Bytes::from_static(b"{\"resourceMetrics\": ["))
            .await
            .unwrap();
    assert_eq!(r.status, 400);
    let status: serde_json::Value = serde_json::from_slice(&r.body).expect("google.rpc.Status as JSON");
    assert_eq!(status["code"], 3);

    // Broken protobuf: 400 with a protobuf google.rpc.Status.
    let r = request("POST", &url, &[("Content-Type", "application/x-protobuf")], Bytes::from_static(b"\x0a\xff\xff"))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.headers.get("content-type").unwrap(), "application/x-protobuf");

    // A gzip bomb stops at the decompressed-size limit: 413.
    let bomb = {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 80 << 20]).unwrap();
        enc.finish().unwrap()
    };
    let r =
        request("POST", &url, &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")], Bytes::from(bomb))
            .await
            .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("limits.max_decompressed_bytes"));

    // Still up.
    let r = request("POST", &url, &[("Content-Type", "application/json")], Bytes::from_static(b"{}")).await.unwrap();
    assert_eq!(r.status, 200);
}

//! The OpenTelemetry Python SDK sends a nested trace and correlated logs to the `vigil` binary over OTLP/HTTP
//! and OTLP/gRPC; stand-in Loki and Tempo receivers decode what Vigil forwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use support::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (stream labels, line, structured metadata) of every line the Loki stand-in got, once there are `at_least`;
/// every push must carry the default tenant.
async fn loki_lines(
    loki: &stubs::Received<vigil_proto::loki::PushRequest>,
    at_least: usize,
) -> Vec<(String, String, BTreeMap<String, String>)> {
    wait_for("Loki to receive the log lines", Duration::from_secs(30), || async {
        let mut lines = Vec::new();
        for (tenant, req) in loki.requests.lock().unwrap().iter() {
            assert_eq!(tenant.as_deref(), Some("anonymous"), "the default tenant is sent on");
            for stream in &req.streams {
                for e in &stream.entries {
                    let md = e.structured_metadata.iter().map(|p| (p.name.clone(), p.value.clone())).collect();
                    lines.push((stream.labels.clone(), e.line.clone(), md));
                }
            }
        }
        (lines.len() >= at_least).then_some(lines)
    })
    .await
}

async fn sdk_logs_and_traces_reach_loki_and_tempo(transport: &str) {
    let dir = TempDir::new(&format!("logs-traces-{transport}"));
    let (loki, loki_url) = stubs::loki().await;
    let (tempo, tempo_url) = stubs::tempo().await;
    let vigil = Vigil::start(&dir.0, &["--forward-loki".into(), loki_url, "--forward-tempo".into(), tempo_url]).await;

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp/send_logs_traces.py");
    let endpoint = if transport == "grpc" {
        format!("127.0.0.1:{}", vigil.grpc_port)
    } else {
        format!("http://127.0.0.1:{}", vigil.http_port)
    };
    let t = transport.to_owned();
    let out = tokio::task::spawn_blocking(move || Command::new("python3").arg(script).arg(t).arg(endpoint).output())
        .await
        .unwrap()
        .expect("run python3 (scripts/test.sh installs the OpenTelemetry SDK)");
    assert!(out.status.success(), "SDK export failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let sent: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the script prints what it sent");

    // Tempo: the same spans, with the same parent/child links, under the sender's resource.
    let want_spans: BTreeMap<String, (String, Option<String>, String)> = sent["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["span_id"].as_str().unwrap().to_owned(),
                (
                    s["trace_id"].as_str().unwrap().to_owned(),
                    s["parent_span_id"].as_str().map(str::to_owned),
                    s["name"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let got_spans = wait_for("Tempo to receive every span", Duration::from_secs(30), || async {
        let mut got = BTreeMap::new();
        for (tenant, req) in tempo.requests.lock().unwrap().iter() {
            assert_eq!(tenant.as_deref(), Some("anonymous"), "the default tenant is sent on");
            for rs in &req.resource_spans {
                let service =
                    rs.resource.as_ref().and_then(|r| r.attributes.iter().find(|a| a.key == "service.name")).cloned();
                assert!(format!("{service:?}").contains("frontend"), "resource kept: {service:?}");
                for ss in &rs.scope_spans {
                    for span in &ss.spans {
                        let parent = (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id));
                        got.insert(hex(&span.span_id), (hex(&span.trace_id), parent, span.name.clone()));
                    }
                }
            }
        }
        (got.len() >= want_spans.len()).then_some(got)
    })
    .await;
    assert_eq!(got_spans, want_spans);

    // Loki: one line per record, stream labels from the resource and the level, trace ids as structured metadata.
    let lines = loki_lines(&loki, 2).await;
    for want in sent["logs"].as_array().unwrap() {
        let body = want["body"].as_str().unwrap();
        let (labels, _, md) =
            lines.iter().find(|(_, line, _)| line == body).unwrap_or_else(|| panic!("no line {body:?} in {lines:?}"));
        assert!(labels.contains("service_name=\"frontend\""), "{labels}");
        assert!(labels.contains("deployment_environment=\"test\""), "{labels}");
        assert!(labels.contains(&format!("level=\"{}\"", want["level"].as_str().unwrap())), "{labels}");
        assert_eq!(md.get("trace_id").map(String::as_str), want["trace_id"].as_str(), "{md:?}");
        assert_eq!(md.get("span_id").map(String::as_str), want["span_id"].as_str(), "{md:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_logs_and_traces_over_http_reach_loki_and_tempo() {
    sdk_logs_and_traces_reach_loki_and_tempo("http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_logs_and_traces_over_grpc_reach_loki_and_tempo() {
    sdk_logs_and_traces_reach_loki_and_tempo("grpc").await;
}

/// The OTLP/JSON log examples shipped with the OpenTelemetry protocol reach Loki: the string body as the
/// line, a structured (kvlist) body as JSON, the example's trace and span ids (upper-case hex in the file)
/// as lower-case structured metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_log_examples_reach_loki() {
    let dir = TempDir::new("logs-examples");
    let (loki, loki_url) = stubs::loki().await;
    let vigil = Vigil::start(&dir.0, &["--forward-loki".into(), loki_url]).await;
    for example in [
        include_str!("../../ingest/src/otlp/logs/testdata/logs.json"),
        include_str!("../../ingest/src/otlp/logs/testdata/events.json"),
    ] {
        let r = request(
            "POST",
            &vigil.url("/v1/logs"),
            &[("Content-Type", "application/json")],
            bytes::Bytes::from_static(example.as_bytes()),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!r.text().contains("partialSuccess"), "nothing may be rejected: {}", r.text());
    }
    let lines = loki_lines(&loki, 2).await;
    let (labels, _, md) = lines.iter().find(|(_, line, _)| line == "Example log record").expect("the logs.json record");
    assert!(labels.contains("service_name=\"my.service\""), "{labels}");
    assert_eq!(md.get("trace_id").map(String::as_str), Some("5b8efff798038103d269b633813fc60c"));
    assert_eq!(md.get("span_id").map(String::as_str), Some("eee19b7ec3c1b174"));
    let (_, event, _) =
        lines.iter().find(|(_, line, _)| line.contains("guidgenerator")).expect("the events.json record");
    let body: serde_json::Value = serde_json::from_str(event).expect("a structured body is sent as JSON");
    assert_eq!(body["title"], "Free Online GUID Generator");
}

//! The `vigil` command line: `check-config`, and `serve` on embedded defaults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use support::*;

fn vigil() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
}

#[test]
fn check_config_accepts_the_example_and_lists_every_problem() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/vigil.example.yaml");
    let out = vigil().args(["check-config", example]).output().expect("run vigil");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));

    let dir = TempDir::new("cli");
    let bad = dir.0.join("bad.yaml");
    std::fs::write(&bad, "server:\n  http_listen: nowhere\nlimits:\n  max_body_bytes: 0\nforward:\n  victoriametrics:\n    - url: https://vm/api/v1/write\n").expect("write");
    let out = vigil().args(["check-config", bad.to_str().expect("utf8 path")]).output().expect("run vigil");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in ["server.http_listen", "limits.max_body_bytes", "https is not supported"] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    let typo = dir.0.join("typo.yaml");
    std::fs::write(&typo, "bufer:\n  max_bytes: 1\n").expect("write");
    let out = vigil().args(["check-config", typo.to_str().expect("utf8 path")]).output().expect("run vigil");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bufer"), "an unknown key must be named");
}

#[test]
fn check_rules_names_the_rule_and_key_of_every_problem_and_check_config_reads_the_rule_file() {
    let dir = TempDir::new("cli-rules");
    let good = dir.0.join("good.yaml");
    std::fs::write(&good, "rules:\n- alert: A\n  anomaly: {match: '{job=\"api\"}', for: 1m}\n").expect("write");
    let out = vigil().args(["check-rules", good.to_str().expect("utf8 path")]).output().expect("run vigil");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok, 1 rules"));

    let bad = dir.0.join("bad.yaml");
    std::fs::write(
        &bad,
        "rules:\n- alert: A\n  threshold: {expr: 'rate(x[5m]', op: '>', value: 1}\n- alert: B\n  composite: {all: [Nope]}\n",
    )
    .expect("write");
    let out = vigil().args(["check-rules", bad.to_str().expect("utf8 path")]).output().expect("run vigil");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in
        ["bad.yaml", "rules[0] (alert \"A\"): threshold.expr", "rules[1] (alert \"B\"): composite names \"Nope\""]
    {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    let yaml = dir.0.join("yaml.yaml");
    std::fs::write(&yaml, "rules:\n  - alert: [\n").expect("write");
    let out = vigil().args(["check-rules", yaml.to_str().expect("utf8 path")]).output().expect("run vigil");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"), "a YAML error says where");

    let config = dir.0.join("vigil.yaml");
    std::fs::write(&config, format!("alerting:\n  rules_file: {}\n", bad.display())).expect("write");
    let out = vigil().args(["check-config", config.to_str().expect("utf8 path")]).output().expect("run vigil");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("composite names"), "check-config checks the rule file too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_on_defaults_and_keeps_writes_without_a_forwarder() {
    let dir = TempDir::new("defaults");
    let vigil = Vigil::start(&dir.0, &[]).await;
    assert_eq!(get(&vigil.url("/health/live")).await.expect("live").status, 200);
    let ready = get(&vigil.url("/health/ready")).await.expect("ready");
    let body: serde_json::Value = serde_json::from_slice(&ready.body).expect("ready is JSON");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["backends"].as_array().map(Vec::len), Some(0));
    assert_eq!(body["wal"][0]["signal"], "metrics", "{body}");
    assert_eq!(body["wal"][0]["refusing"], serde_json::Value::Null, "{body}");

    // A valid write is accepted and counted; metrics are in the text format.
    use prost::Message;
    use vigil_proto::prometheus::{Label, MetricMetadata, Sample, TimeSeries, WriteRequest};
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![Label { name: "__name__".into(), value: "x".into() }],
            samples: vec![Sample { value: 1.0, timestamp: 1 }],
            ..Default::default()
        }],
        metadata: vec![MetricMetadata {
            r#type: 2,
            metric_family_name: "x".into(),
            help: "An x.".into(),
            unit: "".into(),
        }],
    };
    let body = Bytes::from(snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).expect("snappy"));
    let r = request(
        "POST",
        &vigil.url("/api/v1/write"),
        &[("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy")],
        body,
    )
    .await
    .expect("post");
    assert_eq!(r.status, 204, "{}", r.text());
    let m = vigil.metrics().await;
    assert_eq!(metric_sum(&m, "vigil_ingest_samples_total", &[]), 1.0);
    assert_eq!(metric_sum(&m, "vigil_active_series", &[]), 1.0);
    assert_eq!(metric_sum(&m, "vigil_metadata_families", &[]), 1.0);
    assert_eq!(metric_sum(&m, "vigil_metadata_dropped_updates", &[]), 0.0);
    assert!(metric_sum(&m, "vigil_buffer_bytes", &[]) > 0.0);
    assert!(dir.0.join("vigil-data").is_dir(), "the data directory is created");

    // SIGTERM: a clean, prompt exit.
    let mut proc = vigil.proc;
    let started = std::time::Instant::now();
    proc.terminate(Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(5), "shutdown took {:?}", started.elapsed());
}

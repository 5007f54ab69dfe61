#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;
use vigil_detect::events::Severity;
use vigil_detect::incidents::RootCause;
use vigil_detect::traces::Sources;
use vigil_detect::{CorrelateConfig, CorrelateInputs, CorrelateMetrics, Correlator};
use vigil_ingest::buffer::spans::SpanRow;
use vigil_ingest::buffer::{BufferConfig, LogsBuffer, MetricsBuffer, SpansBuffer};
use vigil_ingest::series::{SeriesRegistry, SeriesRegistryConfig};

use super::*;

fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn list_parameters() {
    let p = list_params(&pairs(&[
        ("start", "2023-11-14T22:13:20Z"),
        ("end", "1700000060"),
        ("status", "open"),
        ("limit", "7"),
    ]))
    .unwrap();
    assert_eq!(
        p,
        ListParams {
            start_ms: Some(1_700_000_000_000),
            end_ms: Some(1_700_000_060_000),
            status: Some(Status::Open),
            limit: 7
        }
    );
    assert_eq!(
        list_params(&[]).unwrap(),
        ListParams { start_ms: None, end_ms: None, status: None, limit: MAX_INCIDENTS }
    );
    let err = |q: &[(&str, &str)]| list_params(&pairs(q)).unwrap_err().to_string();
    assert!(err(&[("start", "soon")]).contains(r#"invalid parameter "start""#));
    assert!(err(&[("start", "20"), ("end", "10")]).contains(r#""end""#));
    assert!(err(&[("status", "closed")]).contains(r#"invalid parameter "status": must be open or resolved"#));
    assert!(err(&[("limit", "100000")]).contains(r#""limit""#));
}

#[test]
fn an_incident_in_json() {
    let i = Incident {
        id: "0018bcfe5680ab12".into(),
        tenant: "t".into(),
        title: "db: error ratio up; 2 more services affected".into(),
        severity: Severity::P1,
        status: Status::Resolved,
        opened_at_ms: 1_700_000_000_123,
        resolved_at_ms: Some(1_700_000_300_000),
        started_at_ms: 1_699_999_990_000,
        last_signal_ms: 1_700_000_100_000,
        root_cause: Some(RootCause { service: "db".into(), confidence: 0.99, reason: "cascade".into() }),
        services: vec!["api".into(), "db".into()],
        evidence: json!({"trace_ids": ["ab"]}),
        timeline: json!([]),
    };
    assert_eq!(
        incident_json(&i),
        json!({
            "id": "0018bcfe5680ab12",
            "title": "db: error ratio up; 2 more services affected",
            "severity": "P1",
            "status": "resolved",
            "opened_at": "2023-11-14T22:13:20.123Z",
            "resolved_at": "2023-11-14T22:18:20.000Z",
            "started_at": "2023-11-14T22:13:10.000Z",
            "last_signal_at": "2023-11-14T22:15:00.000Z",
            "root_cause": {"service": "db", "confidence": 0.99, "reason": "cascade"},
            "services": ["api", "db"],
            "evidence": {"trace_ids": ["ab"]},
            "timeline": [],
        })
    );
    let open = Incident { status: Status::Open, resolved_at_ms: None, root_cause: None, ..i };
    let j = incident_json(&open);
    assert_eq!((j["resolved_at"].clone(), j["root_cause"].clone()), (Value::Null, Value::Null));
}

async fn get(api: Arc<CorrelateApi>, uri: &str, tenant: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::get(uri);
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = correlate_router(api).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn errors_and_correlation_off() {
    let api = Arc::new(CorrelateApi { correlate: None, default_tenant: "anonymous".into() });
    let (status, body) = get(Arc::clone(&api), "/api/v1/traces/xyz", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!((body["status"].as_str(), body["errorType"].as_str()), (Some("error"), Some("bad_data")));
    assert_eq!(body["error"], r#"invalid trace id "xyz": a trace id has 32 hexadecimal characters, got 3"#);
    let long = "z".repeat(5000);
    let (status, body) = get(Arc::clone(&api), &format!("/api/v1/traces/{long}"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().len() < 200, "a long id is not echoed whole");
    let zero = "0".repeat(32);
    let (status, body) = get(Arc::clone(&api), &format!("/api/v1/traces/{zero}"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("all-zero"));
    let (status, body) = get(Arc::clone(&api), "/api/v1/incidents?start=x", None).await;
    assert_eq!((status, body["errorType"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_data")));
    let (status, body) = get(Arc::clone(&api), "/api/v1/incidents", Some("bad tenant")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("X-Scope-OrgID"));
    // Off: lists are empty with a warning; single items are not found, saying why.
    let (status, body) = get(Arc::clone(&api), "/api/v1/incidents", None).await;
    assert_eq!((status, body["data"].clone()), (StatusCode::OK, json!([])));
    assert!(body["warnings"][0].as_str().unwrap().contains("correlate.enabled"));
    let (status, body) = get(Arc::clone(&api), "/api/v1/service-graph", None).await;
    assert_eq!((status, body["data"].clone()), (StatusCode::OK, json!({"nodes": [], "edges": []})));
    let (status, body) = get(Arc::clone(&api), "/api/v1/incidents/abc", None).await;
    assert_eq!((status, body["errorType"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, _) = get(api, &format!("/api/v1/traces/{}", "ab".repeat(16)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn span(tenant: &str, span: u64, parent: u64, service: &str, kind: i32, error: bool) -> SpanRow {
    SpanRow {
        tenant: Arc::from(tenant),
        trace_id: "5b8efff798038103d269b633813fc60c".into(),
        span_id: format!("{span:016x}"),
        parent_span_id: (parent != 0).then(|| format!("{parent:016x}")),
        service: Some(Arc::from(service)),
        name: format!("GET /{service}"),
        kind,
        start_unix_nano: 1_700_000_000_000_000_000 + i64::try_from(span).unwrap() * 1_000_000,
        duration_ns: 20_000_000,
        status_code: if error { 2 } else { 0 },
        status_message: None,
        attributes: r#"{"http.route":"/x"}"#.into(),
        span: vec![0],
        resource_scope: Arc::from(&b"r"[..]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_correlation_answers_traces_and_the_graph_per_tenant() {
    let cfg =
        BufferConfig { shards: 2, batch_rows: 1000, max_bytes: 16 << 20, seal_interval: Duration::from_secs(3600) };
    let sources = Sources {
        spans: SpansBuffer::new(cfg.clone()),
        logs: LogsBuffer::new(cfg.clone()),
        metrics: MetricsBuffer::new(cfg),
        registry: Arc::new(SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous")),
    };
    let inputs = CorrelateInputs {
        sources: sources.clone(),
        detect: None,
        metrics: CorrelateMetrics::default(),
        write_back: None,
        replaying: false,
    };
    let correlator = Correlator::start(&CorrelateConfig::default(), inputs).unwrap();
    let api = Arc::new(CorrelateApi { correlate: Some(correlator.handle()), default_tenant: "anonymous".into() });
    let mut staged = sources.spans.staged_rows();
    for r in [
        span("team-a", 1, 0, "web", 2, true),
        span("team-a", 2, 1, "web", 3, true),
        span("team-a", 3, 2, "db", 2, true),
    ] {
        staged.push(r);
    }
    sources.spans.append(&staged).unwrap();
    sources.spans.seal_all();
    let uri = "/api/v1/traces/5B8EFFF798038103D269B633813FC60C";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = get(Arc::clone(&api), uri, Some("team-a")).await;
        if status == StatusCode::OK {
            break body;
        }
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(std::time::Instant::now() < deadline, "the trace never showed up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let d = &body["data"];
    assert_eq!(d["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(d["spans"].as_array().unwrap().len(), 3);
    assert_eq!(d["spans"][2]["service"], "db");
    assert_eq!(d["spans"][2]["kind"], "SPAN_KIND_SERVER");
    assert_eq!(d["spans"][2]["error"], true);
    assert_eq!(d["spans"][2]["status"], "STATUS_CODE_ERROR");
    assert_eq!(d["spans"][0]["attributes"]["http.route"], "/x");
    assert_eq!(d["spans"][0]["start"], "2023-11-14T22:13:20.001Z");
    assert_eq!(d["error_origins"], json!(["db"]));
    // The same id is nobody else's trace.
    let (status, body) = get(Arc::clone(&api), uri, Some("team-b")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("not found"), "{body}");
    let (_, g) = get(Arc::clone(&api), "/api/v1/service-graph", Some("team-a")).await;
    let edges = g["data"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{g}");
    assert_eq!((edges[0]["source"].as_str(), edges[0]["target"].as_str()), (Some("web"), Some("db")));
    assert_eq!((edges[0]["id"].as_str(), edges[0]["failed_total"].as_u64()), (Some("web->db"), Some(1)));
    let nodes: Vec<&str> = g["data"]["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["db", "web"]);
    let (_, g) = get(Arc::clone(&api), "/api/v1/service-graph", Some("team-b")).await;
    assert_eq!(g["data"]["edges"], json!([]));
    let (status, body) = get(api, "/api/v1/incidents", Some("team-a")).await;
    assert_eq!((status, body["data"].clone()), (StatusCode::OK, json!([])), "no anomaly, no incident");
    sources.spans.close();
    sources.logs.close();
    sources.metrics.close();
    correlator.stop().await;
}

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

fn pairs(query: &[(&str, &str)]) -> Vec<(String, String)> {
    query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn anomalies_parameters() {
    let p = anomalies_params(&pairs(&[
        ("match[]", r#"latency{job="api"}"#),
        ("match[]", r#"{__name__=~"errors_.+"}"#),
        ("start", "2023-11-14T22:13:20Z"),
        ("end", "1700000060.5"),
        ("min_score", "2"),
        ("limit", "5"),
    ]))
    .unwrap();
    assert_eq!(p.selectors.len(), 2);
    assert_eq!(
        (p.start_ms, p.end_ms, p.min_score, p.limit),
        (Some(1_700_000_000_000), Some(1_700_000_060_500), 2.0, 5)
    );
    let all = anomalies_params(&[]).unwrap();
    assert!(all.selectors.is_empty() && all.start_ms.is_none() && all.end_ms.is_none());
    assert_eq!((all.min_score, all.limit), (0.0, MAX_EVENTS));

    let err = |q: &[(&str, &str)]| anomalies_params(&pairs(q)).unwrap_err().to_string();
    assert_eq!(err(&[("start", "soon")]), r#"invalid parameter "start": cannot parse "soon" to a valid timestamp"#);
    assert!(err(&[("start", "20"), ("end", "10")]).contains(r#""end": end timestamp must not be before start"#));
    assert!(err(&[("match[]", "up{job=}")]).starts_with(r#"invalid parameter "match[]": parse error at char 8"#));
    assert!(err(&[("min_score", "x")]).contains(r#""min_score""#));
    assert!(err(&[("limit", "0")]).contains(r#""limit""#));
}

#[test]
fn forecast_parameters() {
    let p = forecast_params(&pairs(&[("match[]", "up")])).unwrap();
    assert_eq!((p.horizon_ms, p.step_ms, p.limit), (DEFAULT_HORIZON_MS, DEFAULT_STEP_MS, DEFAULT_FORECAST_SERIES));
    let p = forecast_params(&pairs(&[("match[]", "up"), ("horizon", "31d")])).unwrap();
    assert!(p.horizon_ms / p.step_ms <= MAX_POINTS, "the default step grows with the horizon");
    let p = forecast_params(&pairs(&[("match[]", "up"), ("horizon", "2h"), ("step", "60"), ("limit", "3")])).unwrap();
    assert_eq!((p.horizon_ms, p.step_ms, p.limit), (7_200_000, 60_000, 3));

    let err = |q: &[(&str, &str)]| forecast_params(&pairs(q)).unwrap_err().to_string();
    assert_eq!(err(&[("horizon", "1h")]), "no match[] parameter provided");
    assert!(err(&[("match[]", "up"), ("horizon", "0s")]).contains(r#""horizon""#));
    assert!(err(&[("match[]", "up"), ("horizon", "40d")]).contains("31d"));
    assert!(err(&[("match[]", "up"), ("step", "0")]).contains(r#""step": zero or negative"#));
    assert!(err(&[("match[]", "up"), ("horizon", "24h"), ("step", "1s")]).contains("11000 points"));
}

#[test]
fn a_forecast_answer_names_its_model() {
    use vigil_detect::ForecastPoint;
    use vigil_detect::forecast::ForecastModel;
    let point = ForecastPoint { timestamp_ms: 1_700_000_300_000, expected: 10.0, lower: 8.0, upper: 12.5 };
    for (model, name) in [(ForecastModel::MstlEts, "mstl_ets"), (ForecastModel::Profile, "profile")] {
        let f = SeriesForecast { labels: [("__name__".into(), "up".into())].into(), model, points: vec![point] };
        let json = serde_json::to_value(ForecastJson::from(f)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "labels": {"__name__": "up"},
                "model": name,
                "points": [{"timestamp": "2023-11-14T22:18:20.000Z", "expected": 10.0, "lower": 8.0, "upper": 12.5}],
            })
        );
    }
}

async fn get(api: Arc<AnomalyApi>, uri: &str, tenant: Option<&str>) -> (StatusCode, serde_json::Value) {
    let mut req = Request::get(uri);
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = anomalies_router(api).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn errors_are_prometheus_shaped_and_name_the_parameter() {
    let api = Arc::new(AnomalyApi { detect: None, default_tenant: "anonymous".into() });
    let (status, body) = get(Arc::clone(&api), "/api/v1/anomalies?start=never", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    assert!(body["error"].as_str().unwrap().contains(r#"invalid parameter "start""#), "{body}");
    let (status, body) = get(Arc::clone(&api), "/api/v1/anomalies", Some("bad tenant")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("X-Scope-OrgID"), "{body}");
    let (status, body) = get(Arc::clone(&api), "/api/v1/forecast?horizon=1h", None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("no match[] parameter provided")));
    let (status, body) = get(api, "/api/v1/anomalies?match%5B%5D=up%7B", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().starts_with(r#"invalid parameter "match[]""#), "{body}");
}

#[tokio::test]
async fn detection_off_answers_empty_with_a_warning() {
    let api = Arc::new(AnomalyApi { detect: None, default_tenant: "anonymous".into() });
    let (status, body) = get(Arc::clone(&api), "/api/v1/anomalies?match[]=up", Some("team-a")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"], serde_json::json!([]));
    assert!(body["warnings"][0].as_str().unwrap().contains("detect.enabled"));
    let (status, body) = get(api, "/api/v1/forecast?match[]=up&horizon=1h", None).await;
    assert_eq!((status, &body["data"]), (StatusCode::OK, &serde_json::json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_engine_answers_for_the_tenant() {
    use vigil_ingest::buffer::{BufferConfig, MetricsBuffer};
    use vigil_ingest::series::{SeriesRegistry, SeriesRegistryConfig};
    let buffer = MetricsBuffer::new(BufferConfig { shards: 1, ..BufferConfig::default() });
    let inputs = vigil_detect::EngineInputs {
        buffer: Arc::clone(&buffer),
        registry: Arc::new(SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous")),
        metrics: vigil_detect::DetectMetrics::default(),
        write_back: None,
        replaying: false,
    };
    let engine = vigil_detect::Engine::start(&vigil_detect::DetectConfig::default(), inputs).unwrap();
    let api = Arc::new(AnomalyApi { detect: Some(engine.handle()), default_tenant: "anonymous".into() });
    let (status, body) = get(Arc::clone(&api), "/api/v1/anomalies?min_score=1&start=0", None).await;
    assert_eq!((status, &body["data"]), (StatusCode::OK, &serde_json::json!([])), "{body}");
    assert!(body.get("warnings").is_none());
    let (status, body) = get(api, "/api/v1/forecast?match[]=up", Some("team-a")).await;
    assert_eq!((status, &body["data"]), (StatusCode::OK, &serde_json::json!([])), "{body}");
    buffer.close();
    engine.join().await;
}

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn parse(content_type: Option<&str>, body: &str, uri_query: Option<&str>) -> Result<Request, String> {
    parse_request(content_type, body.as_bytes(), uri_query).map_err(|e| {
        let r = e.into_response();
        format!("{} {:?}", r.status().as_u16(), r.headers().get(header::CONTENT_TYPE))
    })
}

#[test]
fn requests_in_every_shape() {
    let want = |limit| Request { query: "SELECT 1".into(), limit };
    assert_eq!(parse(Some("application/json"), r#"{"query":"SELECT 1"}"#, None).unwrap(), want(MAX_ROWS));
    assert_eq!(
        parse(Some("application/json; charset=utf-8"), r#"{"query":"SELECT 1","limit":5}"#, None).unwrap(),
        want(5)
    );
    assert_eq!(parse(Some("application/x-www-form-urlencoded"), "query=SELECT+1&limit=7", None).unwrap(), want(7));
    assert_eq!(parse(Some("text/plain"), "SELECT 1", Some("limit=3")).unwrap(), want(3));
    assert_eq!(parse(None, "SELECT 1", None).unwrap(), want(MAX_ROWS));
    // Refusals: 400 for what is malformed, 415 for another content type.
    assert!(parse(Some("application/json"), r#"{"sql":"SELECT 1"}"#, None).unwrap_err().starts_with("400"));
    assert!(parse(Some("application/json"), r#"{"query":"SELECT 1","limit":0}"#, None).unwrap_err().starts_with("400"));
    assert!(parse(Some("text/plain"), "SELECT 1", Some("limit=10001")).unwrap_err().starts_with("400"));
    assert!(parse(Some("text/plain"), "  ", None).unwrap_err().starts_with("400"));
    assert!(parse(Some("application/x-protobuf"), "SELECT 1", None).unwrap_err().starts_with("415"));
}

#[cfg(not(feature = "sql"))]
#[tokio::test]
async fn without_the_feature_the_route_says_so() {
    use axum::http::Request as HttpRequest;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    use vigil_ingest::buffer::BufferConfig;

    let cfg = BufferConfig::default();
    let api = SqlApi::new(None, None, LogsBuffer::new(cfg.clone()), SpansBuffer::new(cfg), "anonymous".into());
    let req = HttpRequest::post("/api/v1/sql").body(Body::from("SELECT 1")).unwrap();
    let resp = sql_router(Arc::new(api)).oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["errorType"], "unavailable");
    assert!(body["error"].as_str().unwrap().contains("`sql` cargo feature"));
}

#[cfg(feature = "sql")]
mod with_sql;

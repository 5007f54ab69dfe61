//! Requests shaped as Grafana's Prometheus data source sends them (form-encoded POSTs for queries, start/end
//! as Unix seconds, `match[]` for series), answered in Prometheus' exact JSON, checked against hand-computed
//! answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;
use vigil_ingest::own_series::{OwnSeries, OwnSeriesSink};

use super::*;
use crate::own_series::{OwnSeriesConfig, OwnSeriesMetrics};

const T0: i64 = 1_700_000_000_000;
const FORM: &str = "application/x-www-form-urlencoded";

fn series(name: &str, labels: &[(&str, &str)], samples: Vec<(i64, f64)>) -> OwnSeries {
    let mut l = vec![("__name__".to_owned(), name.to_owned())];
    l.extend(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    OwnSeries { labels: l, samples }
}

/// Scores every minute from T0 to T0 + 10 min, a spike at 5 min; a service-graph counter; another tenant.
fn api() -> Router {
    let store = OwnSeriesStore::with_clock(OwnSeriesConfig::default(), OwnSeriesMetrics::default(), || T0 + 3_600_000);
    let minutes = |f: &dyn Fn(i64) -> f64| (0..=10).map(|m| (T0 + m * 60_000, f(m))).collect::<Vec<_>>();
    store.append(
        "anonymous",
        vec![
            series(
                "anomaly_score",
                &[("for", "latency"), ("job", "api")],
                minutes(&|m| if m == 5 { 9.0 } else { 0.5 }),
            ),
            series("anomaly_score", &[("for", "errors"), ("job", "api")], minutes(&|_| 1.0)),
            series("anomaly_expected", &[("for", "latency"), ("job", "api")], minutes(&|_| 0.2)),
            series(
                "traces_service_graph_request_total",
                &[("client", "web"), ("server", "api")],
                minutes(&|m| 120.0 * m as f64),
            ),
        ],
    );
    store.append("team-b", vec![series("anomaly_score", &[("for", "cpu")], minutes(&|_| 3.0))]);
    prom_api_router(Arc::new(PromApi::new(Arc::new(store), "anonymous".into())))
}

async fn send(app: &Router, method: &str, uri: &str, form: Option<&str>, tenant: Option<&str>) -> (u16, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if form.is_some() {
        req = req.header("content-type", FORM);
    }
    if let Some(t) = tenant {
        req = req.header("x-scope-orgid", t);
    }
    let body = form.map_or_else(Body::empty, |f| Body::from(f.to_owned()));
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn ok(app: &Router, method: &str, uri: &str, form: Option<&str>) -> String {
    let (status, body) = send(app, method, uri, form, None).await;
    assert_eq!(status, 200, "{uri} {form:?}: {body}");
    body
}

/// The body of a 400 `bad_data` answer's `error`.
async fn bad(app: &Router, method: &str, uri: &str, form: Option<&str>) -> String {
    let (status, body) = send(app, method, uri, form, None).await;
    assert_eq!(status, 400, "{uri} {form:?}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["status"].as_str(), v["errorType"].as_str()), (Some("error"), Some("bad_data")), "{body}");
    v["error"].as_str().unwrap().to_owned()
}

fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("q", s)]).unwrap().trim_start_matches("q=").to_owned()
}

#[tokio::test]
async fn a_grafana_range_query_posted_as_a_form() {
    let app = api();
    let form = format!(
        "query={}&start=1700000000&end=1700000600&step=300",
        enc(r#"max_over_time(anomaly_score{for="latency"}[5m])"#)
    );
    // At 0 s: (−300, 0] holds 0.5; at 300: (0, 300] holds the spike; at 600: (300, 600] no longer does.
    assert_eq!(
        ok(&app, "POST", "/api/v1/query_range", Some(&form)).await,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"for":"latency","job":"api"},"values":[[1700000000,"0.5"],[1700000300,"9"],[1700000600,"0.5"]]}]}}"#
    );
    // The same as GET with a duration step, and a fractional start: steps at .5 s.
    let uri = format!(
        "/api/v1/query_range?query={}&start=1700000000.5&end=1700000120.5&step=1m",
        enc(r#"anomaly_score{for="errors"}"#)
    );
    assert_eq!(
        ok(&app, "GET", &uri, None).await,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"anomaly_score","for":"errors","job":"api"},"values":[[1700000000.500,"1"],[1700000060.500,"1"],[1700000120.500,"1"]]}]}}"#
    );
}

#[tokio::test]
async fn grafana_instant_queries_health_check_and_aggregations() {
    let app = api();
    // Grafana's data-source health check.
    assert_eq!(
        ok(&app, "POST", "/api/v1/query", Some("query=1%2B1&time=1700000000.5")).await,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.500,"2"]}}"#
    );
    // 9 (latency's spike) + 1 (errors).
    let form = format!("query={}&time=1700000300", enc("sum by (job) (anomaly_score)"));
    assert_eq!(
        ok(&app, "POST", "/api/v1/query", Some(&form)).await,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"api"},"value":[1700000300,"10"]}]}}"#
    );
    // 120 per minute. (0, 600] holds the samples from 60 s on: 1080 over 540 s, extrapolated by the 60 s to
    // the start (under 1.1 × the interval; the zero point is as far): 1080 × 600/540 / 600 s = 2 per second.
    let uri = format!("/api/v1/query?query={}&time=1700000600", enc("rate(traces_service_graph_request_total[10m])"));
    assert_eq!(
        ok(&app, "GET", &uri, None).await,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"client":"web","server":"api"},"value":[1700000600,"2"]}]}}"#
    );
    // A string literal.
    assert_eq!(
        ok(&app, "POST", "/api/v1/query", Some("query=%22hi%22&time=1700000000")).await,
        r#"{"status":"success","data":{"resultType":"string","result":[1700000000,"hi"]}}"#
    );
}

#[tokio::test]
async fn series_labels_and_label_values_as_the_query_editor_asks() {
    let app = api();
    let range = "start=1700000000&end=1700000600";
    assert_eq!(
        ok(&app, "GET", &format!("/api/v1/labels?{range}"), None).await,
        r#"{"status":"success","data":["__name__","client","for","job","server"]}"#
    );
    assert_eq!(
        ok(&app, "GET", &format!("/api/v1/series?match%5B%5D=anomaly_score&{range}"), None).await,
        r#"{"status":"success","data":[{"__name__":"anomaly_score","for":"errors","job":"api"},{"__name__":"anomaly_score","for":"latency","job":"api"}]}"#
    );
    assert_eq!(
        ok(&app, "GET", &format!("/api/v1/label/__name__/values?{range}"), None).await,
        r#"{"status":"success","data":["anomaly_expected","anomaly_score","traces_service_graph_request_total"]}"#
    );
    let uri = format!("/api/v1/label/for/values?match[]={}", enc(r#"{__name__=~"anomaly_.*", for!="errors"}"#));
    assert_eq!(ok(&app, "GET", &uri, None).await, r#"{"status":"success","data":["latency"]}"#);
    // POSTed labels with match[] (Grafana 11 may), and a limit.
    assert_eq!(
        ok(&app, "POST", "/api/v1/labels", Some("match%5B%5D=traces_service_graph_request_total&limit=2")).await,
        r#"{"status":"success","data":["__name__","client"],"warnings":["results truncated due to limit"]}"#
    );
    // Outside the samples' time: nothing.
    assert_eq!(
        ok(&app, "GET", "/api/v1/series?match[]=anomaly_score&start=1600000000&end=1600000600", None).await,
        r#"{"status":"success","data":[]}"#
    );
    let buildinfo: serde_json::Value =
        serde_json::from_str(&ok(&app, "GET", "/api/v1/status/buildinfo", None).await).unwrap();
    assert_eq!(buildinfo["data"]["version"], PROMETHEUS_API_VERSION);
    assert_eq!(ok(&app, "GET", "/api/v1/metadata", None).await, r#"{"status":"success","data":{}}"#);
}

#[tokio::test]
async fn each_tenant_sees_its_own_series() {
    let app = api();
    let (status, body) = send(&app, "GET", "/api/v1/label/__name__/values", None, Some("team-b")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"success","data":["anomaly_score"]}"#));
    let (status, body) =
        send(&app, "POST", "/api/v1/query", Some("query=anomaly_score&time=1700000600"), Some("team-b")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"anomaly_score","for":"cpu"},"value":[1700000600,"3"]}]}}"#
    );
    let (status, body) = send(&app, "GET", "/api/v1/labels", None, Some("bad/tenant")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("X-Scope-OrgID"), "{body}");
}

#[tokio::test]
async fn bad_requests_get_400_naming_the_problem() {
    let app = api();
    let e = bad(&app, "POST", "/api/v1/query", Some("query=sum(anomaly_score")).await;
    assert!(e.starts_with(r#"invalid parameter "query": "#), "{e}");
    let form = format!("query={}", enc(r#"label_replace(anomaly_score, "a", "$1", "for", "(.*)")"#));
    let e = bad(&app, "POST", "/api/v1/query", Some(&form)).await;
    assert!(e.contains(r#"the function "label_replace" is not supported"#), "{e}");
    let e = bad(&app, "POST", "/api/v1/query_range", Some("query=up&start=1700000000&end=1700000600&step=0.05")).await;
    assert!(e.starts_with("exceeded maximum resolution of 11,000 points"), "{e}");
    let e = bad(&app, "POST", "/api/v1/query_range", Some("query=up&end=1700000600&step=15")).await;
    assert!(e.starts_with(r#"invalid parameter "start""#), "{e}");
    let e = bad(&app, "POST", "/api/v1/query_range", Some("query=up&start=1700000600&end=1700000000&step=15")).await;
    assert!(e.contains("end timestamp must not be before start time"), "{e}");
    let e = bad(&app, "POST", "/api/v1/query_range", Some("query=up&start=1700000000&end=1700000600&step=0")).await;
    assert!(e.starts_with(r#"invalid parameter "step": zero or negative"#), "{e}");
    let e = bad(&app, "POST", "/api/v1/query_range", Some("query=up%5B5m%5D&start=1&end=2&step=1")).await;
    assert!(e.contains("range vector"), "{e}");
    assert_eq!(bad(&app, "GET", "/api/v1/series", None).await, "no match[] parameter provided");
    let e = bad(&app, "GET", "/api/v1/series?match[]=rate(x%5B5m%5D)", None).await;
    assert!(e.starts_with(r#"invalid parameter "match[]""#), "{e}");
    let long = format!("match%5B%5D=x{{a=%22{}%22}}", "y".repeat(20_000));
    let e = bad(&app, "POST", "/api/v1/series", Some(&long)).await;
    assert!(e.contains("longer than 16384 bytes"), "{e}");
    assert_eq!(bad(&app, "GET", "/api/v1/label/1abc/values", None).await, r#"invalid label name: "1abc""#);
    let e = bad(&app, "GET", "/api/v1/query?query=up&time=soon", None).await;
    assert!(e.contains(r#""time""#), "{e}");
}

#[tokio::test]
async fn evaluation_errors_are_422_execution() {
    let app = api();
    // One element per metric name (anomaly_score, anomaly_expected); abs() drops the names: {job="api"} twice.
    let form = format!("query={}&time=1700000300", enc("abs(sum by (job, __name__) ({job=\"api\"}))"));
    let (status, body) = send(&app, "POST", "/api/v1/query", Some(&form), None).await;
    assert_eq!(status, 422, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errorType"], "execution");
    assert!(v["error"].as_str().unwrap().contains("same labelset"), "{body}");
}

//! The Prometheus HTTP API subset Grafana's Prometheus data source uses, over Vigil's own series
//! ([`OwnSeriesStore`]: anomaly scores, span RED metrics, incident counts), per tenant (`X-Scope-OrgID`):
//!
//! - `GET|POST /api/v1/query` (`query`, `time`), `GET|POST /api/v1/query_range` (`query`, `start`, `end`,
//!   `step`): PromQL as [`crate::promql`] evaluates it;
//! - `GET|POST /api/v1/series` (`match[]`, `start`, `end`, `limit`), `GET|POST /api/v1/labels` and
//!   `GET /api/v1/label/{name}/values` (`match[]`, `start`, `end`, `limit`);
//! - `GET /api/v1/status/buildinfo` (Grafana reads the version), `GET /api/v1/metadata` (none kept) and
//!   `GET|POST /api/v1/query_exemplars` (none kept), so Grafana's probes get answers rather than 404s.
//!
//! Parameters come from the query string or, for POST, an `application/x-www-form-urlencoded` body (which
//! Grafana sends by default), the body's first; answers are Prometheus' JSON. Refusals: 400 `bad_data`
//! (parameters, parse errors, what the subset does not evaluate), 422 `execution` (evaluation errors and
//! limits), 503 `timeout`.

mod json;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;

use crate::own_series::{Budget, Labels, OwnSeriesStore};
use crate::params::{ParamError, error_response as error, param, parse_duration, parse_limit, parse_time, tenant};
use crate::promql::{self, QueryError};

/// A form body larger than this is refused (Grafana's are a query and three numbers).
const MAX_FORM_BYTES: usize = 1 << 20;
/// Points per series of a range query, at most (Prometheus' limit).
const MAX_POINTS: i64 = 11_000;
/// Series one query may read.
const MAX_QUERY_SERIES: usize = 20_000;
/// Samples one query may copy out of the store (16 bytes each), and points it may return.
const MAX_QUERY_SAMPLES: usize = 5_000_000;
/// Queries evaluated at once; more wait. Bounds the memory queries take to a few times the above.
const MAX_CONCURRENT_QUERIES: usize = 4;
/// Prometheus' default `query.timeout`; a request's `timeout` may only shorten it.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_LOOKBACK_MS: i64 = 5 * 60_000;
/// Entries `/api/v1/series`, `/labels` and `/label/{name}/values` return at most (`limit`'s maximum).
const MAX_ENTRIES: usize = 100_000;
/// The Prometheus version whose API this subset follows, for clients that pick features by it.
const PROMETHEUS_API_VERSION: &str = "2.53.0";

/// What the Prometheus API reads.
#[derive(Debug)]
pub struct PromApi {
    store: Arc<OwnSeriesStore>,
    default_tenant: String,
    queries: Semaphore,
}

impl PromApi {
    pub fn new(store: Arc<OwnSeriesStore>, default_tenant: String) -> Self {
        Self { store, default_tenant, queries: Semaphore::new(MAX_CONCURRENT_QUERIES) }
    }
}

/// Routes of the Prometheus API subset.
pub fn prom_api_router(api: Arc<PromApi>) -> Router {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/query_exemplars", get(exemplars).post(exemplars))
        .with_state(api)
}

type Pairs = Vec<(String, String)>;

/// The request's parameters: a POST's form body first, then the query string (Go's `FormValue` order).
async fn form(method: &Method, headers: &HeaderMap, uri: &Uri, body: Body) -> Result<Pairs, ParamError> {
    let bad = |e: serde_urlencoded::de::Error| ParamError::BadData(format!("invalid form: {e}"));
    let mut pairs: Pairs = Vec::new();
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if method == Method::POST && is_form {
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| ParamError::BadData(format!("request body larger than {MAX_FORM_BYTES} bytes")))?;
        pairs = serde_urlencoded::from_bytes(&bytes).map_err(bad)?;
    }
    if let Some(q) = uri.query() {
        pairs.extend(serde_urlencoded::from_str::<Pairs>(q).map_err(bad)?);
    }
    Ok(pairs)
}

fn query_error(e: &QueryError) -> Response {
    match e {
        QueryError::Parse(m) => {
            error(StatusCode::BAD_REQUEST, "bad_data", &format!("invalid parameter \"query\": {m}"))
        }
        QueryError::Unsupported(m) => error(StatusCode::BAD_REQUEST, "bad_data", m),
        QueryError::Execution(_) | QueryError::Budget(_) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, "execution", &e.to_string())
        }
        QueryError::Timeout => error(StatusCode::SERVICE_UNAVAILABLE, "timeout", &e.to_string()),
    }
}

/// What query and query_range share: the query, the lookback, the limits.
struct Common {
    query: String,
    limits: promql::Limits,
}

fn common(pairs: &Pairs) -> Result<Common, ParamError> {
    let query = param(pairs, "query").unwrap_or_default().to_owned();
    let lookback_ms = match param(pairs, "lookback_delta") {
        Some(v) => parse_duration("lookback_delta", v)?,
        None => DEFAULT_LOOKBACK_MS,
    };
    if lookback_ms <= 0 {
        return Err(ParamError::invalid("lookback_delta", "must be positive"));
    }
    let timeout = match param(pairs, "timeout") {
        Some(v) => Duration::from_millis(parse_duration("timeout", v)?.unsigned_abs()).min(MAX_TIMEOUT),
        None => MAX_TIMEOUT,
    };
    let budget = Budget { series: MAX_QUERY_SERIES, samples: MAX_QUERY_SAMPLES };
    Ok(Common { query, limits: promql::Limits { lookback_ms, budget, deadline: Instant::now() + timeout } })
}

/// Runs an evaluation off the runtime's threads, at most [`MAX_CONCURRENT_QUERIES`] at once.
async fn evaluate<T: Send + 'static>(
    api: &PromApi,
    f: impl FnOnce() -> Result<T, QueryError> + Send + 'static,
) -> Result<T, Response> {
    let _permit = api
        .queries
        .acquire()
        .await
        .map_err(|_| error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "shutting down"))?;
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(query_error(&e)),
        Err(e) => {
            tracing::error!(error = %e, "A PromQL evaluation failed. This is a bug.");
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"))
        }
    }
}

/// The request's tenant and parameters, or the answer refusing them.
async fn read(
    api: &PromApi,
    method: &Method,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
) -> Result<(Arc<str>, Pairs), Response> {
    let pairs = form(method, headers, uri, body).await.map_err(IntoResponse::into_response)?;
    let tenant = tenant(headers, &api.default_tenant).map_err(IntoResponse::into_response)?;
    Ok((tenant, pairs))
}

async fn query(State(api): State<Arc<PromApi>>, method: Method, headers: HeaderMap, uri: Uri, body: Body) -> Response {
    let (tenant, pairs) = match read(&api, &method, &headers, &uri, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let parsed = common(&pairs).and_then(|c| {
        let t = param(&pairs, "time").map(|t| parse_time("time", t)).transpose()?;
        Ok((c, t.unwrap_or_else(|| api.store.now_ms())))
    });
    let (c, t_ms) = match parsed {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let store = Arc::clone(&api.store);
    let result = evaluate(&api, move || promql::instant(&store, &tenant, &c.query, t_ms, c.limits)).await;
    match result {
        Ok(value) => {
            let mut data = String::new();
            json::write_value(&mut data, &value, t_ms);
            json::success(&data, &[])
        }
        Err(r) => r,
    }
}

fn range_params(pairs: &Pairs) -> Result<promql::Span, ParamError> {
    let start_ms = parse_time("start", param(pairs, "start").unwrap_or_default())?;
    let end_ms = parse_time("end", param(pairs, "end").unwrap_or_default())?;
    if end_ms < start_ms {
        return Err(ParamError::invalid("end", "end timestamp must not be before start time"));
    }
    let step_ms = parse_duration("step", param(pairs, "step").unwrap_or_default())?;
    if step_ms <= 0 {
        return Err(ParamError::invalid(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if end_ms.saturating_sub(start_ms) / step_ms > MAX_POINTS {
        return Err(ParamError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                .into(),
        ));
    }
    Ok(promql::Span { start_ms, end_ms, step_ms })
}

async fn query_range(
    State(api): State<Arc<PromApi>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let (tenant, pairs) = match read(&api, &method, &headers, &uri, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (c, span) = match range_params(&pairs).and_then(|span| Ok((common(&pairs)?, span))) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let store = Arc::clone(&api.store);
    let result = evaluate(&api, move || promql::range(&store, &tenant, &c.query, span, c.limits)).await;
    match result {
        Ok(matrix) => {
            let mut data = String::new();
            json::write_matrix(&mut data, &matrix);
            json::success(&data, &[])
        }
        Err(r) => r,
    }
}

/// `match[]`, `start`, `end` and `limit` of the metadata endpoints.
struct Selection {
    selectors: Vec<promql_parser::parser::VectorSelector>,
    from_ms: i64,
    to_ms: i64,
    limit: usize,
}

fn selection(pairs: &Pairs) -> Result<Selection, ParamError> {
    let mut selectors = Vec::new();
    for (_, text) in pairs.iter().filter(|(k, _)| k == "match[]") {
        if text.len() > promql::MAX_QUERY_BYTES {
            return Err(ParamError::invalid("match[]", format!("longer than {} bytes", promql::MAX_QUERY_BYTES)));
        }
        match promql_parser::parser::parse(text) {
            Ok(promql_parser::parser::Expr::VectorSelector(vs)) if vs.offset.is_none() && vs.at.is_none() => {
                selectors.push(vs);
            }
            Ok(_) => return Err(ParamError::invalid("match[]", format!("{text:?} is not a series selector"))),
            Err(e) => return Err(ParamError::invalid("match[]", e)),
        }
    }
    let from_ms = param(pairs, "start").map(|t| parse_time("start", t)).transpose()?.unwrap_or(i64::MIN);
    let to_ms = param(pairs, "end").map(|t| parse_time("end", t)).transpose()?.unwrap_or(i64::MAX);
    let limit = param(pairs, "limit").map(|v| parse_limit("limit", v, MAX_ENTRIES)).transpose()?;
    Ok(Selection { selectors, from_ms, to_ms, limit: limit.unwrap_or(MAX_ENTRIES) })
}

/// Label sets of the tenant's series that any selector selects (all series when there is none).
fn matching_series(store: &OwnSeriesStore, tenant: &str, s: &Selection) -> Vec<Arc<Labels>> {
    let matches = |labels: &Labels| {
        s.selectors.is_empty() || s.selectors.iter().any(|vs| promql::selects(vs.name.as_deref(), &vs.matchers, labels))
    };
    store.series(tenant, &matches, (s.from_ms, s.to_ms))
}

/// Truncates a sorted answer to `limit`, with Prometheus' warning.
fn limited<T>(mut items: Vec<T>, limit: usize) -> (Vec<T>, Vec<String>) {
    if items.len() > limit {
        items.truncate(limit);
        return (items, vec!["results truncated due to limit".to_owned()]);
    }
    (items, Vec::new())
}

async fn series(State(api): State<Arc<PromApi>>, method: Method, headers: HeaderMap, uri: Uri, body: Body) -> Response {
    let (tenant, pairs) = match read(&api, &method, &headers, &uri, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let s = match selection(&pairs) {
        Ok(s) if s.selectors.is_empty() => {
            return ParamError::BadData("no match[] parameter provided".into()).into_response();
        }
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mut found = matching_series(&api.store, &tenant, &s);
    found.sort();
    let (found, warnings) = limited(found, s.limit);
    let mut data = String::new();
    json::write_list(&mut data, &found, |out, labels| json::write_labels(out, labels));
    json::success(&data, &warnings)
}

fn string_list(items: &[String], warnings: &[String]) -> Response {
    let mut data = String::new();
    json::write_list(&mut data, items, |out, item| json::write_str(out, item));
    json::success(&data, warnings)
}

async fn labels(State(api): State<Arc<PromApi>>, method: Method, headers: HeaderMap, uri: Uri, body: Body) -> Response {
    let (tenant, pairs) = match read(&api, &method, &headers, &uri, body).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let s = match selection(&pairs) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let names: std::collections::BTreeSet<String> =
        matching_series(&api.store, &tenant, &s).iter().flat_map(|l| l.keys().cloned()).collect();
    let (names, warnings) = limited(names.into_iter().collect(), s.limit);
    string_list(&names, &warnings)
}

/// Prometheus' legacy label-name rule (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn label_values(
    State(api): State<Arc<PromApi>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let (tenant, pairs) = match read(&api, &Method::GET, &headers, &uri, Body::empty()).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !valid_label_name(&name) {
        return ParamError::BadData(format!("invalid label name: {name:?}")).into_response();
    }
    let s = match selection(&pairs) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let values: std::collections::BTreeSet<String> =
        matching_series(&api.store, &tenant, &s).iter().filter_map(|l| l.get(&name).cloned()).collect();
    let (values, warnings) = limited(values.into_iter().collect(), s.limit);
    string_list(&values, &warnings)
}

async fn buildinfo() -> Response {
    let data = serde_json::json!({
        "version": PROMETHEUS_API_VERSION,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "application": format!("Vigil {}", env!("CARGO_PKG_VERSION")),
    });
    json::success(&data.to_string(), &[])
}

async fn metadata() -> Response {
    json::success("{}", &[])
}

async fn exemplars(
    State(api): State<Arc<PromApi>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    match read(&api, &method, &headers, &uri, body).await {
        Ok(_) => json::success("[]", &[]),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests;

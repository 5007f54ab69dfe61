//! The anomaly API, in the shape of the Prometheus HTTP API:
//!
//! - `GET /api/v1/anomalies?match[]=<selector>&start=&end=&min_score=&limit=`: the anomaly events of the
//!   request's tenant (`X-Scope-OrgID`, as ingest reads it) whose series any `match[]` selects (none: all),
//!   overlapping `[start, end]`, with a peak score of at least `min_score`; oldest peak first.
//! - `GET /api/v1/forecast?match[]=<selector>&horizon=24h&step=5m&limit=`: for each scored series of the
//!   tenant that a `match[]` selects, the expected value and 95 % band from its newest sample on, and the
//!   model that made them (`mstl_ets`: augurs' MSTL + ETS over the series' hourly history; `profile`: the
//!   detector's seasonal profile, while that history is under two days; `ets`: daily seasonality off).
//!
//! Errors are 400 with `{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": …"}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use vigil_detect::DetectHandle;
use vigil_detect::engine::{ForecastQuery, SeriesForecast};
use vigil_detect::events::{Anomaly, EventQuery};
use vigil_detect::selector::Selector;

use crate::params::{
    ParamError, error_response, param, parse_duration, parse_float, parse_limit, parse_time, rfc3339, tenant,
};

/// Most events one answer carries (`limit`'s default and maximum).
const MAX_EVENTS: usize = 10_000;
/// Series one forecast answers for at most (`limit`'s maximum; the default is [`DEFAULT_FORECAST_SERIES`]).
const MAX_FORECAST_SERIES: usize = 1000;
const DEFAULT_FORECAST_SERIES: usize = 100;
/// Points per series, as Prometheus bounds a range query's resolution.
const MAX_POINTS: i64 = 11_000;
const DEFAULT_HORIZON_MS: i64 = 24 * 3_600_000;
const DEFAULT_STEP_MS: i64 = 5 * 60_000;
const MAX_HORIZON_MS: i64 = 31 * 24 * 3_600_000;

/// What the anomaly API reads.
#[derive(Debug)]
pub struct AnomalyApi {
    /// The running engine; `None` when detection is off (`detect.enabled: false`): answers are empty.
    pub detect: Option<DetectHandle>,
    /// The tenant of requests without `X-Scope-OrgID` (`tenancy.default_tenant`).
    pub default_tenant: String,
}

/// Routes for `/api/v1/anomalies` and `/api/v1/forecast`.
pub fn anomalies_router(api: Arc<AnomalyApi>) -> Router {
    Router::new().route("/api/v1/anomalies", get(anomalies)).route("/api/v1/forecast", get(forecast)).with_state(api)
}

type Params = Result<Query<Vec<(String, String)>>, QueryRejection>;

#[derive(Debug)]
struct AnomaliesParams {
    selectors: Vec<Selector>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    min_score: f64,
    limit: usize,
}

#[derive(Debug)]
struct ForecastParams {
    selectors: Vec<Selector>,
    horizon_ms: i64,
    step_ms: i64,
    limit: usize,
}

/// Every `match[]`, parsed.
fn selectors(pairs: &[(String, String)]) -> Result<Vec<Selector>, ParamError> {
    pairs
        .iter()
        .filter(|(k, _)| k == "match[]")
        .map(|(_, v)| Selector::parse(v).map_err(|e| ParamError::invalid("match[]", e.to_string())))
        .collect()
}

fn anomalies_params(pairs: &[(String, String)]) -> Result<AnomaliesParams, ParamError> {
    let start_ms = param(pairs, "start").map(|t| parse_time("start", t)).transpose()?;
    let end_ms = param(pairs, "end").map(|t| parse_time("end", t)).transpose()?;
    if let (Some(s), Some(e)) = (start_ms, end_ms)
        && e < s
    {
        return Err(ParamError::invalid("end", "end timestamp must not be before start time"));
    }
    Ok(AnomaliesParams {
        selectors: selectors(pairs)?,
        start_ms,
        end_ms,
        min_score: param(pairs, "min_score").map(|v| parse_float("min_score", v)).transpose()?.unwrap_or(0.0),
        limit: param(pairs, "limit").map(|v| parse_limit("limit", v, MAX_EVENTS)).transpose()?.unwrap_or(MAX_EVENTS),
    })
}

fn forecast_params(pairs: &[(String, String)]) -> Result<ForecastParams, ParamError> {
    let selectors = selectors(pairs)?;
    if selectors.is_empty() {
        return Err(ParamError::BadData("no match[] parameter provided".into()));
    }
    let horizon_ms = param(pairs, "horizon").map(|v| parse_duration("horizon", v)).transpose()?;
    let horizon_ms = horizon_ms.unwrap_or(DEFAULT_HORIZON_MS);
    if !(1..=MAX_HORIZON_MS).contains(&horizon_ms) {
        return Err(ParamError::invalid("horizon", "must be more than 0 and at most 31d"));
    }
    let step_ms = match param(pairs, "step") {
        Some(v) => parse_duration("step", v)?,
        // At least 5 minutes, coarser when the horizon would need more points than allowed.
        None => DEFAULT_STEP_MS.max((horizon_ms + MAX_POINTS - 1) / MAX_POINTS),
    };
    if step_ms <= 0 {
        return Err(ParamError::invalid("step", "zero or negative query resolution step widths are not accepted"));
    }
    if horizon_ms / step_ms > MAX_POINTS {
        return Err(ParamError::invalid(
            "step",
            format!("exceeded maximum resolution of {MAX_POINTS} points per series; try a larger step"),
        ));
    }
    let limit = param(pairs, "limit").map(|v| parse_limit("limit", v, MAX_FORECAST_SERIES)).transpose()?;
    Ok(ForecastParams { selectors, horizon_ms, step_ms, limit: limit.unwrap_or(DEFAULT_FORECAST_SERIES) })
}

fn pairs(params: Params) -> Result<Vec<(String, String)>, ParamError> {
    params.map(|Query(p)| p).map_err(|e| ParamError::BadData(format!("invalid query string: {e}")))
}

#[derive(Serialize)]
struct Success<T> {
    status: &'static str,
    data: Vec<T>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

fn success<T: Serialize>(data: Vec<T>, warnings: Vec<String>) -> Response {
    (StatusCode::OK, Json(Success { status: "success", data, warnings })).into_response()
}

const DISABLED: &str = "anomaly detection is off (`detect.enabled: false`)";

#[derive(Serialize)]
struct AnomalyJson {
    labels: BTreeMap<String, String>,
    /// The peak: the event's most anomalous sample.
    timestamp: String,
    value: f64,
    score: f64,
    expected: f64,
    lower: f64,
    upper: f64,
    severity: &'static str,
    detectors: BTreeMap<&'static str, f32>,
    start: String,
    end: String,
    open: bool,
}

impl From<Anomaly> for AnomalyJson {
    fn from(a: Anomaly) -> Self {
        Self {
            labels: a.labels,
            timestamp: rfc3339(a.peak_ms),
            value: a.value,
            score: a.score,
            expected: a.expected,
            lower: a.lower,
            upper: a.upper,
            severity: a.severity.as_str(),
            detectors: a.detectors.into_iter().collect(),
            start: rfc3339(a.start_ms),
            end: rfc3339(a.end_ms),
            open: a.open,
        }
    }
}

async fn anomalies(State(api): State<Arc<AnomalyApi>>, headers: HeaderMap, params: Params) -> Response {
    let parsed = pairs(params)
        .and_then(|p| anomalies_params(&p))
        .and_then(|p| tenant(&headers, &api.default_tenant).map(|t| (p, t)));
    let (p, tenant) = match parsed {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let Some(detect) = api.detect.clone() else { return success::<AnomalyJson>(Vec::new(), vec![DISABLED.into()]) };
    // Reading the table parses every candidate's labels: keep it off the runtime's threads.
    let read = tokio::task::spawn_blocking(move || {
        let q = EventQuery {
            tenant: &tenant,
            selectors: &p.selectors,
            start_ms: p.start_ms,
            end_ms: p.end_ms,
            min_score: p.min_score,
            limit: p.limit,
        };
        let (events, matched) = detect.anomalies(&q);
        let mut warnings = Vec::new();
        if matched > events.len() {
            warnings.push(format!("{matched} events matched; only the latest {} are returned (limit)", events.len()));
        }
        (events.into_iter().map(AnomalyJson::from).collect::<Vec<_>>(), warnings)
    });
    match read.await {
        Ok((data, warnings)) => success(data, warnings),
        Err(e) => internal(e),
    }
}

#[derive(Serialize)]
struct ForecastJson {
    labels: BTreeMap<String, String>,
    model: &'static str,
    points: Vec<PointJson>,
}

#[derive(Serialize)]
struct PointJson {
    timestamp: String,
    expected: f64,
    lower: f64,
    upper: f64,
}

impl From<SeriesForecast> for ForecastJson {
    fn from(f: SeriesForecast) -> Self {
        let points = f
            .points
            .into_iter()
            .map(|p| PointJson {
                timestamp: rfc3339(p.timestamp_ms),
                expected: p.expected,
                lower: p.lower,
                upper: p.upper,
            })
            .collect();
        Self { labels: f.labels, model: f.model.as_str(), points }
    }
}

async fn forecast(State(api): State<Arc<AnomalyApi>>, headers: HeaderMap, params: Params) -> Response {
    let parsed = pairs(params)
        .and_then(|p| forecast_params(&p))
        .and_then(|p| tenant(&headers, &api.default_tenant).map(|t| (p, t)));
    let (p, tenant) = match parsed {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let Some(detect) = api.detect.clone() else { return success::<ForecastJson>(Vec::new(), vec![DISABLED.into()]) };
    let read = tokio::task::spawn_blocking(move || {
        let q = ForecastQuery {
            tenant: &tenant,
            selectors: &p.selectors,
            horizon_ms: p.horizon_ms,
            step_ms: p.step_ms,
            max_series: p.limit,
        };
        let (series, truncated) = detect.forecast(&q);
        let warnings = if truncated {
            vec![format!("more than {} series matched; only {} returned (limit)", p.limit, p.limit)]
        } else {
            Vec::new()
        };
        (series.into_iter().map(ForecastJson::from).collect::<Vec<_>>(), warnings)
    });
    match read.await {
        Ok((data, warnings)) => success(data, warnings),
        Err(e) => internal(e),
    }
}

fn internal(e: tokio::task::JoinError) -> Response {
    tracing::error!(error = %e, "An anomaly API request failed. This is a bug.");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
}

#[cfg(test)]
mod tests;

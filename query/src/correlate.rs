//! The incident, trace and service-graph API, per tenant (`X-Scope-OrgID`, as ingest reads it):
//!
//! - `GET /api/v1/incidents?start=&end=&status=&limit=`: incidents whose life (first signal or opening, to
//!   resolution or now) overlaps `[start, end]` (RFC 3339 or Unix seconds), oldest opening first.
//! - `GET /api/v1/incidents/{id}`: one incident (an id merged into another answers with that one).
//! - `GET /api/v1/traces/{trace_id}`: the spans, log lines and exemplar samples Vigil holds for a trace.
//! - `GET /api/v1/service-graph`: nodes and edges, with fields Grafana's node graph reads (`id`, `title`,
//!   `mainstat`, `secondarystat`, `source`, `target`).
//!
//! Answers are `{"status":"success","data":…}`; errors `{"status":"error","errorType":…,"error":…}`: 400
//! `bad_data` for a malformed parameter or trace id, 404 `not_found` for an unknown incident or trace.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use vigil_detect::CorrelateHandle;
use vigil_detect::incidents::{Incident, IncidentQuery, Status};
use vigil_detect::traces::{GraphView, TraceView, parse_trace_id};

use crate::params::{ParamError, parse_limit, parse_time, rfc3339};

/// Most incidents one answer carries (`limit`'s default and maximum).
const MAX_INCIDENTS: usize = 1000;
/// Characters of a malformed trace id or incident id quoted back in an error.
const ECHO: usize = 64;

/// What the API reads.
#[derive(Debug)]
pub struct CorrelateApi {
    /// The running correlation; `None` when it is off (`correlate.enabled: false`).
    pub correlate: Option<CorrelateHandle>,
    /// The tenant of requests without `X-Scope-OrgID` (`tenancy.default_tenant`).
    pub default_tenant: String,
}

/// Routes for `/api/v1/incidents`, `/api/v1/incidents/{id}`, `/api/v1/traces/{trace_id}` and
/// `/api/v1/service-graph`.
pub fn correlate_router(api: Arc<CorrelateApi>) -> Router {
    Router::new()
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/traces/{trace_id}", get(trace))
        .route("/api/v1/service-graph", get(service_graph))
        .with_state(api)
}

const DISABLED: &str = "correlation is off (`correlate.enabled: false`)";

fn tenant(headers: &HeaderMap, default: &str) -> Result<Arc<str>, ParamError> {
    let header = headers.get(vigil_ingest::tenant::HEADER).map(|v| v.as_bytes());
    vigil_ingest::tenant::tenant_of(header, default)
        .map_err(|e| ParamError::BadData(format!("invalid X-Scope-OrgID: {e}")))
}

fn quote(text: &str) -> String {
    let cut: String = text.chars().take(ECHO).collect();
    if cut.len() < text.len() { format!("{cut:?}…") } else { format!("{cut:?}") }
}

fn not_found(what: String) -> Response {
    let body = json!({"status": "error", "errorType": "not_found", "error": what});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn success(data: Value, warnings: Vec<String>) -> Response {
    let mut body = json!({"status": "success", "data": data});
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    (StatusCode::OK, Json(body)).into_response()
}

fn internal(e: tokio::task::JoinError) -> Response {
    tracing::error!(error = %e, "An incident API request failed. This is a bug.");
    let body = json!({"status": "error", "errorType": "internal", "error": "internal error"});
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

#[derive(Debug, PartialEq)]
struct ListParams {
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    status: Option<Status>,
    limit: usize,
}

fn list_params(pairs: &[(String, String)]) -> Result<ListParams, ParamError> {
    let param = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let start_ms = param("start").map(|t| parse_time("start", t)).transpose()?;
    let end_ms = param("end").map(|t| parse_time("end", t)).transpose()?;
    if let (Some(s), Some(e)) = (start_ms, end_ms)
        && e < s
    {
        return Err(ParamError::invalid("end", "end timestamp must not be before start time"));
    }
    let status = match param("status") {
        None | Some("") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| ParamError::invalid("status", "must be open or resolved"))?),
    };
    let limit = param("limit").map(|v| parse_limit("limit", v, MAX_INCIDENTS)).transpose()?.unwrap_or(MAX_INCIDENTS);
    Ok(ListParams { start_ms, end_ms, status, limit })
}

/// An incident as the API shows it: the model's fields with times in RFC 3339.
pub(crate) fn incident_json(i: &Incident) -> Value {
    json!({
        "id": i.id,
        "title": i.title,
        "severity": i.severity.as_str(),
        "status": i.status.as_str(),
        "opened_at": rfc3339(i.opened_at_ms),
        "resolved_at": i.resolved_at_ms.map(rfc3339),
        "started_at": rfc3339(i.started_at_ms),
        "last_signal_at": rfc3339(i.last_signal_ms),
        "root_cause": i.root_cause.as_ref().map(|r| json!({
            "service": r.service,
            "confidence": r.confidence,
            "reason": r.reason,
        })),
        "services": i.services,
        "evidence": i.evidence,
        "timeline": i.timeline,
    })
}

async fn incidents(
    State(api): State<Arc<CorrelateApi>>,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let parsed = params
        .map_err(|e| ParamError::BadData(format!("invalid query string: {e}")))
        .and_then(|Query(p)| list_params(&p))
        .and_then(|p| tenant(&headers, &api.default_tenant).map(|t| (p, t)));
    let (p, tenant) = match parsed {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let Some(handle) = api.correlate.clone() else { return success(json!([]), vec![DISABLED.into()]) };
    let read = tokio::task::spawn_blocking(move || {
        let q =
            IncidentQuery { tenant: &tenant, start_ms: p.start_ms, end_ms: p.end_ms, status: p.status, limit: p.limit };
        let (list, matched) = handle.incidents(&q);
        let mut warnings = Vec::new();
        if matched > list.len() {
            warnings.push(format!("{matched} incidents matched; only the latest {} are returned (limit)", list.len()));
        }
        (Value::Array(list.iter().map(incident_json).collect()), warnings)
    });
    match read.await {
        Ok((data, warnings)) => success(data, warnings),
        Err(e) => internal(e),
    }
}

async fn incident(State(api): State<Arc<CorrelateApi>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let tenant = match tenant(&headers, &api.default_tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Some(handle) = api.correlate.clone() else { return not_found(format!("incident {}: {DISABLED}", quote(&id))) };
    let read = tokio::task::spawn_blocking(move || handle.incident(&tenant, &id).ok_or(id));
    match read.await {
        Ok(Ok(i)) => success(incident_json(&i), Vec::new()),
        Ok(Err(id)) => not_found(format!("incident {} not found", quote(&id))),
        Err(e) => internal(e),
    }
}

#[derive(Serialize)]
struct SpanJson {
    span_id: String,
    parent_span_id: Option<String>,
    service: Option<String>,
    name: String,
    kind: &'static str,
    start: String,
    start_unix_nano: i64,
    duration_ms: f64,
    status: &'static str,
    status_message: Option<String>,
    attributes: Value,
    error: bool,
    slow: bool,
}

/// A trace as the API shows it.
pub(crate) fn trace_json(v: TraceView) -> Value {
    let spans: Vec<SpanJson> = v
        .spans
        .into_iter()
        .map(|s| SpanJson {
            span_id: s.span_id,
            parent_span_id: s.parent_span_id,
            service: s.service,
            name: s.name,
            kind: s.kind,
            start: rfc3339(s.start_ns.div_euclid(1_000_000)),
            start_unix_nano: s.start_ns,
            duration_ms: s.duration_ns as f64 / 1e6,
            status: s.status,
            status_message: s.status_message,
            attributes: serde_json::from_str(&s.attributes).unwrap_or(Value::Null),
            error: s.error,
            slow: s.slow,
        })
        .collect();
    let logs: Vec<Value> = v
        .logs
        .into_iter()
        .map(|l| {
            json!({
                "timestamp": rfc3339(l.timestamp_ns.div_euclid(1_000_000)),
                "timestamp_unix_nano": l.timestamp_ns,
                "service": l.service,
                "severity": l.severity,
                "body": l.body,
                "trace_id": v.trace_id,
                "span_id": l.span_id,
                "labels": l.labels,
            })
        })
        .collect();
    let series: Vec<Value> = v
        .series
        .into_iter()
        .map(|s| json!({"labels": s.labels, "timestamp": rfc3339(s.timestamp_ms), "value": s.value, "span_id": s.span_id}))
        .collect();
    json!({
        "trace_id": v.trace_id,
        "services": v.services,
        "error_origins": v.error_origins,
        "slow_origins": v.slow_origins,
        "spans": spans,
        "logs": logs,
        "series": series,
        "truncated": v.truncated,
    })
}

async fn trace(State(api): State<Arc<CorrelateApi>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let tenant = match tenant(&headers, &api.default_tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let trace_id = match parse_trace_id(&id) {
        Ok(t) => t,
        Err(e) => return ParamError::BadData(format!("invalid trace id {}: {e}", quote(&id))).into_response(),
    };
    let Some(handle) = api.correlate.clone() else { return not_found(format!("trace {id}: {DISABLED}")) };
    let read = tokio::task::spawn_blocking(move || handle.trace(&tenant, &trace_id));
    match read.await {
        Ok(Some(v)) => success(trace_json(v), Vec::new()),
        Ok(None) => not_found(format!(
            "trace {} not found: Vigil holds the spans, log lines and exemplars of its buffers' recent window only",
            id.to_ascii_lowercase()
        )),
        Err(e) => internal(e),
    }
}

/// The graph, with the field names Grafana's node graph panel reads besides Vigil's own.
pub(crate) fn graph_json(g: &GraphView) -> Value {
    let nodes: Vec<Value> = g
        .nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.service,
                "title": n.service,
                "mainstat": n.requests_per_second,
                "secondarystat": n.error_ratio,
                "requests_per_second": n.requests_per_second,
                "error_ratio": n.error_ratio,
                "callers": n.callers,
                "callees": n.callees,
            })
        })
        .collect();
    let edges: Vec<Value> = g
        .edges
        .iter()
        .map(|e| {
            json!({
                "id": format!("{}->{}", e.client, e.server),
                "source": e.client,
                "target": e.server,
                "mainstat": e.requests_per_second,
                "secondarystat": e.error_ratio,
                "requests_total": e.requests_total,
                "failed_total": e.failed_total,
                "requests_per_second": e.requests_per_second,
                "error_ratio": e.error_ratio,
                "latency_p50_seconds": e.latency_p50_seconds,
                "latency_p95_seconds": e.latency_p95_seconds,
                "last_call": (e.last_call_ms != i64::MIN).then(|| rfc3339(e.last_call_ms)),
            })
        })
        .collect();
    json!({"nodes": nodes, "edges": edges})
}

async fn service_graph(State(api): State<Arc<CorrelateApi>>, headers: HeaderMap) -> Response {
    let tenant = match tenant(&headers, &api.default_tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Some(handle) = api.correlate.clone() else {
        return success(json!({"nodes": [], "edges": []}), vec![DISABLED.into()]);
    };
    match tokio::task::spawn_blocking(move || handle.service_graph(&tenant)).await {
        Ok(g) => success(graph_json(&g), Vec::new()),
        Err(e) => internal(e),
    }
}

#[cfg(test)]
mod tests;

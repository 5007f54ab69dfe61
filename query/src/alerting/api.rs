//! `GET /api/v1/rules` and `GET /api/v1/alerts` in Prometheus' format (what Grafana's Prometheus data source
//! reads), per tenant. Each rule also lists `notifications`: the grouped alerts as Alertmanager is told
//! them (`firing`, `inhibited` with why, or `resolved`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::AlertingHandle;
use super::evaluator::{Evaluator, query_text};
use crate::params::{rfc3339, tenant};

/// What the routes read: the running rules, or `None` when alerting is off.
#[derive(Debug)]
pub struct AlertingApi {
    pub alerting: Option<Arc<AlertingHandle>>,
    pub default_tenant: String,
}

pub fn alerting_router(api: Arc<AlertingApi>) -> Router {
    Router::new().route("/api/v1/rules", get(rules)).route("/api/v1/alerts", get(alerts)).with_state(api)
}

fn success(data: Value) -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "success", "data": data}))).into_response()
}

async fn rules(State(api): State<Arc<AlertingApi>>, headers: HeaderMap) -> Response {
    let tenant = match tenant(&headers, &api.default_tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Some(handle) = &api.alerting else { return success(json!({"groups": []})) };
    let shared = &handle.shared;
    let evaluator = shared.evaluator.lock();
    let rules: Vec<Value> = (0..evaluator.set.rules.len()).map(|i| rule_json(&evaluator, i, &tenant)).collect();
    let file = shared
        .config
        .rules_file
        .as_ref()
        .map_or_else(|| "<embedded default rules>".to_owned(), |p| p.display().to_string());
    let mut group = json!({
        "name": "vigil",
        "file": file,
        "interval": shared.config.evaluation_interval.as_secs_f64(),
        "rules": rules,
    });
    if let Some(e) = shared.reload_error.lock().as_ref() {
        group["lastReloadError"] = json!(e);
    }
    success(json!({"groups": [group]}))
}

async fn alerts(State(api): State<Arc<AlertingApi>>, headers: HeaderMap) -> Response {
    let tenant = match tenant(&headers, &api.default_tenant) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Some(handle) = &api.alerting else { return success(json!({"alerts": []})) };
    let evaluator = handle.shared.evaluator.lock();
    let alerts: Vec<Value> = (0..evaluator.set.rules.len()).flat_map(|i| alerts_json(&evaluator, i, &tenant)).collect();
    success(json!({"alerts": alerts}))
}

fn alerts_json(e: &Evaluator, i: usize, tenant: &str) -> Vec<Value> {
    let rule = &e.set.rules[i];
    let Some(instances) = e.instances[i].get(tenant) else { return Vec::new() };
    instances
        .by_labels
        .iter()
        .map(|(series, inst)| {
            let mut labels = series.clone();
            labels.extend(rule.labels.clone());
            labels.insert("alertname".into(), rule.name.clone());
            json!({
                "labels": labels,
                "annotations": rule.annotations,
                "state": inst.state(),
                "activeAt": rfc3339(inst.active_since_ms),
                "value": format!("{:e}", inst.value),
            })
        })
        .collect()
}

fn rule_json(e: &Evaluator, i: usize, tenant: &str) -> Value {
    let rule = &e.set.rules[i];
    let alerts = alerts_json(e, i, tenant);
    let state = if alerts.iter().any(|a| a["state"] == "firing") {
        "firing"
    } else if alerts.is_empty() {
        "inactive"
    } else {
        "pending"
    };
    let health = e.health[i].get(tenant);
    let notifications: Vec<Value> = e
        .groups
        .get(&(tenant.to_owned(), rule.name.clone()))
        .into_iter()
        .flat_map(|g| g.values())
        .map(|g| {
            json!({
                "labels": g.labels,
                "state": g.state(),
                "inhibitedBy": g.inhibited_by,
                "series": g.members.len(),
                "startsAt": rfc3339(g.starts_at_ms),
                "resolvedAt": g.resolved_at_ms.map(rfc3339),
            })
        })
        .collect();
    json!({
        "name": rule.name,
        "kind": rule.condition.kind(),
        "query": query_text(&rule.condition, &e.set),
        "duration": rule.for_ms as f64 / 1000.0,
        "labels": rule.labels,
        "annotations": rule.annotations,
        "alerts": alerts,
        "notifications": notifications,
        "health": match health {
            None => "unknown",
            Some(h) if h.last_error.is_some() => "err",
            Some(_) => "ok",
        },
        "lastError": health.and_then(|h| h.last_error.clone()).unwrap_or_default(),
        "evaluationTime": health.map_or(0.0, |h| h.seconds),
        "lastEvaluation": health.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), |h| rfc3339(h.last_evaluation_ms)),
        "type": "alerting",
        "state": state,
    })
}

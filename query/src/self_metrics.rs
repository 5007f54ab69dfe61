//! `/metrics`: Vigil's own metrics in the Prometheus/OpenMetrics text format.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

/// The registry every stage registered into, plus a hook that refreshes gauges computed from state.
pub struct SelfMetrics {
    pub registry: Registry,
    pub before_scrape: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for SelfMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfMetrics").finish_non_exhaustive()
    }
}

pub(crate) fn router(state: Arc<SelfMetrics>) -> Router {
    Router::new().route("/metrics", get(metrics)).with_state(state)
}

async fn metrics(State(state): State<Arc<SelfMetrics>>) -> Response {
    (state.before_scrape)();
    let mut out = String::with_capacity(16 * 1024);
    match prometheus_client::encoding::text::encode(&mut out, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], out)
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}\n")).into_response(),
    }
}

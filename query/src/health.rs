//! `/health/live` and `/health/ready`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use vigil_ingest::buffer::MetricsBuffer;

/// One configured backend as readiness reports it.
#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    pub kind: &'static str,
    /// Redacted URL.
    pub url: String,
}

#[derive(Debug)]
pub struct ReadinessState {
    pub started: Instant,
    pub ready: AtomicBool,
    pub buffer: Arc<MetricsBuffer>,
    pub backends: Vec<BackendStatus>,
}

impl ReadinessState {
    pub fn new(buffer: Arc<MetricsBuffer>, backends: Vec<BackendStatus>) -> Self {
        Self { started: Instant::now(), ready: AtomicBool::new(false), buffer, backends }
    }
}

#[derive(Serialize)]
struct Readiness<'a> {
    status: &'static str,
    uptime_seconds: f64,
    buffer: BufferReport,
    backends: &'a [BackendStatus],
}

#[derive(Serialize)]
struct BufferReport {
    used_bytes: u64,
    max_bytes: u64,
    saturated: bool,
}

pub(crate) fn router(state: Arc<ReadinessState>) -> Router {
    Router::new().route("/health/live", get(|| async { "ok\n" })).route("/health/ready", get(ready)).with_state(state)
}

/// Ready once start-up is done and the buffer is not saturated. A backend being down does not make Vigil
/// unready: it keeps buffering for it (and says so once delivery state is tracked, issue 4).
async fn ready(State(state): State<Arc<ReadinessState>>) -> Response {
    let used = state.buffer.used_bytes();
    let max = state.buffer.config().max_bytes;
    // Saturated: less than 5 % left, so writes are about to get 429.
    let saturated = used.saturating_mul(100) >= max.saturating_mul(95);
    let started = state.ready.load(Ordering::Relaxed);
    let (status, code) = match (started, saturated) {
        (false, _) => ("starting", StatusCode::SERVICE_UNAVAILABLE),
        (true, true) => ("saturated", StatusCode::SERVICE_UNAVAILABLE),
        (true, false) => ("ready", StatusCode::OK),
    };
    let body = Readiness {
        status,
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        buffer: BufferReport { used_bytes: used, max_bytes: max, saturated },
        backends: &state.backends,
    };
    (code, Json(body)).into_response()
}

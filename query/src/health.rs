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
use vigil_ingest::wal::{Consumer, Wal};

/// One configured backend as readiness reports it.
#[derive(Debug, Clone)]
pub struct BackendStatus {
    pub kind: &'static str,
    /// Redacted URL.
    pub url: String,
    /// Its position in its write-ahead log, for backends fed from one.
    pub consumer: Option<Consumer>,
}

#[derive(Debug)]
pub struct ReadinessState {
    pub started: Instant,
    pub ready: AtomicBool,
    pub buffer: Arc<MetricsBuffer>,
    pub wals: Vec<Arc<Wal>>,
    pub backends: Vec<BackendStatus>,
}

impl ReadinessState {
    pub fn new(buffer: Arc<MetricsBuffer>, wals: Vec<Arc<Wal>>, backends: Vec<BackendStatus>) -> Self {
        Self { started: Instant::now(), ready: AtomicBool::new(false), buffer, wals, backends }
    }
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    uptime_seconds: f64,
    wal: Vec<WalReport>,
    buffer: BufferReport,
    backends: Vec<BackendReport>,
}

#[derive(Serialize)]
struct WalReport {
    signal: &'static str,
    disk_bytes: u64,
    /// Why new writes are refused right now (`wal.max_bytes` or a forwarder's `queue.max_bytes`), if they are.
    refusing: Option<String>,
    /// Why the log cannot be written at all, if so.
    failure: Option<String>,
    dropped_bytes: u64,
    damaged_bytes_skipped: u64,
}

#[derive(Serialize)]
struct BackendReport {
    kind: &'static str,
    url: String,
    /// Bytes of log acknowledged but not yet delivered to this backend.
    queue_bytes: Option<u64>,
}

/// The detection window (informational: it evicts its oldest data when full, which is normal).
#[derive(Serialize)]
struct BufferReport {
    used_bytes: u64,
    max_bytes: u64,
}

pub(crate) fn router(state: Arc<ReadinessState>) -> Router {
    Router::new().route("/health/live", get(|| async { "ok\n" })).route("/health/ready", get(ready)).with_state(state)
}

/// Ready once start-up (including log replay) is done and every log takes writes. A backend being down
/// does not make Vigil unready — it keeps the data for it, and `queue_bytes` shows how much — until that
/// backend's queue reaches `queue.max_bytes` and writes are refused ("saturated").
async fn ready(State(state): State<Arc<ReadinessState>>) -> Response {
    let wal: Vec<WalReport> = state
        .wals
        .iter()
        .map(|w| WalReport {
            signal: w.signal(),
            disk_bytes: w.disk_bytes(),
            refusing: w.full_reason(),
            failure: w.failure(),
            dropped_bytes: w.dropped_bytes(),
            damaged_bytes_skipped: w.skipped_bytes(),
        })
        .collect();
    let started = state.ready.load(Ordering::Relaxed);
    let failed = wal.iter().any(|w| w.failure.is_some());
    let saturated = wal.iter().any(|w| w.refusing.is_some());
    let (status, code) = match (started, failed, saturated) {
        (false, _, _) => ("starting", StatusCode::SERVICE_UNAVAILABLE),
        (true, true, _) => ("failed", StatusCode::SERVICE_UNAVAILABLE),
        (true, false, true) => ("saturated", StatusCode::SERVICE_UNAVAILABLE),
        (true, false, false) => ("ready", StatusCode::OK),
    };
    let body = Readiness {
        status,
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        wal,
        buffer: BufferReport { used_bytes: state.buffer.used_bytes(), max_bytes: state.buffer.config().max_bytes },
        backends: state
            .backends
            .iter()
            .map(|b| BackendReport {
                kind: b.kind,
                url: b.url.clone(),
                queue_bytes: b.consumer.as_ref().map(Consumer::lag_bytes),
            })
            .collect(),
    };
    (code, Json(body)).into_response()
}

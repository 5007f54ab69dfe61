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
use vigil_forward::breaker::{BreakerState, TargetHealth, TargetReport};
use vigil_ingest::buffer::MetricsBuffer;
use vigil_ingest::wal::{Consumer, Wal};

/// One configured backend as readiness reports it.
#[derive(Debug, Clone)]
pub struct BackendStatus {
    pub kind: &'static str,
    /// `replicate` or `failover`.
    pub mode: &'static str,
    /// Redacted URL (of the primary).
    pub url: String,
    /// Its position in its write-ahead log, for backends fed from one.
    pub consumer: Option<Consumer>,
    /// Each URL's breaker and recent history (the primary first).
    pub targets: Vec<Arc<TargetHealth>>,
}

/// What start-up replay put back into one buffer.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub signal: &'static str,
    pub records: u64,
    /// Samples, lines or spans.
    pub rows: u64,
    pub skipped: u64,
}

#[derive(Debug, Default, Serialize)]
struct ReplayProgress {
    done: bool,
    seconds: Option<f64>,
    logs: Vec<ReplayReport>,
}

#[derive(Debug)]
pub struct ReadinessState {
    pub started: Instant,
    /// Start-up is done (replay included) and Vigil has not begun to stop.
    pub ready: AtomicBool,
    pub buffer: Arc<MetricsBuffer>,
    pub wals: Vec<Arc<Wal>>,
    pub backends: Vec<BackendStatus>,
    replay: parking_lot::Mutex<ReplayProgress>,
}

impl ReadinessState {
    pub fn new(buffer: Arc<MetricsBuffer>, wals: Vec<Arc<Wal>>, backends: Vec<BackendStatus>) -> Self {
        let replay = parking_lot::Mutex::new(ReplayProgress::default());
        Self { started: Instant::now(), ready: AtomicBool::new(false), buffer, wals, backends, replay }
    }

    /// Start-up replay finished: from now on Vigil is ready (unless a log refuses writes).
    pub fn replay_done(&self, logs: Vec<ReplayReport>, seconds: f64) {
        *self.replay.lock() = ReplayProgress { done: true, seconds: Some(seconds), logs };
        self.ready.store(true, Ordering::Release);
    }

    /// Stopping: not ready any more.
    pub fn stopping(&self) {
        self.ready.store(false, Ordering::Release);
    }
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    uptime_seconds: f64,
    /// Start-up replay of the logs into the buffers ("starting" until done).
    replay: serde_json::Value,
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
    mode: &'static str,
    url: String,
    /// `up_to_date`, `delivering`, `retrying` (the last attempt failed) or `down` (every URL's breaker
    /// is open).
    state: &'static str,
    /// Bytes of log acknowledged but not yet delivered to this backend.
    queue_bytes: Option<u64>,
    /// Seconds since the oldest record not yet delivered was written; `None` when up to date.
    oldest_undelivered_seconds: Option<f64>,
    targets: Vec<TargetReport>,
}

impl BackendReport {
    fn of(b: &BackendStatus) -> Self {
        let queue_bytes = b.consumer.as_ref().map(Consumer::lag_bytes);
        let targets: Vec<TargetReport> = b.targets.iter().map(|t| t.report()).collect();
        let state = if !targets.is_empty() && targets.iter().all(|t| t.breaker == BreakerState::Open) {
            "down"
        } else if queue_bytes.unwrap_or(0) == 0 {
            "up_to_date"
        } else if targets.iter().find(|t| t.breaker != BreakerState::Open).is_some_and(|t| t.consecutive_failures > 0) {
            "retrying"
        } else {
            "delivering"
        };
        Self {
            kind: b.kind,
            mode: b.mode,
            url: b.url.clone(),
            state,
            queue_bytes,
            oldest_undelivered_seconds: b
                .consumer
                .as_ref()
                .and_then(Consumer::oldest_undelivered_age)
                .map(|d| d.as_secs_f64()),
            targets,
        }
    }
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
    let started = state.ready.load(Ordering::Acquire);
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
        replay: serde_json::to_value(&*state.replay.lock()).unwrap_or_default(),
        wal,
        buffer: BufferReport { used_bytes: state.buffer.used_bytes(), max_bytes: state.buffer.config().max_bytes },
        backends: state.backends.iter().map(BackendReport::of).collect(),
    };
    (code, Json(body)).into_response()
}

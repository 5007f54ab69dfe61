//! Vigil's HTTP query surface: liveness, readiness and Vigil's own metrics.
//!
//! The anomaly API ([`anomalies_router`]: `/api/v1/anomalies`, `/api/v1/forecast`) reads the detection
//! engine; the Prometheus-compatible subset grows here (issue 6).

mod anomalies;
mod health;
mod params;
mod self_metrics;

use std::sync::Arc;

use axum::Router;

pub use anomalies::{AnomalyApi, anomalies_router};
pub use health::{BackendStatus, ReadinessState, ReplayReport};
pub use self_metrics::SelfMetrics;

/// Routes for `/health/live`, `/health/ready` and `/metrics`.
pub fn router(readiness: Arc<ReadinessState>, metrics: Arc<SelfMetrics>) -> Router {
    health::router(readiness).merge(self_metrics::router(metrics))
}

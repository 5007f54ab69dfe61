//! Vigil's HTTP query surface: liveness, readiness and Vigil's own metrics.
//!
//! The anomaly query API and the Prometheus-compatible subset grow here (issues 5 and 6).

mod health;
mod self_metrics;

use std::sync::Arc;

use axum::Router;

pub use health::{BackendStatus, ReadinessState, ReplayReport};
pub use self_metrics::SelfMetrics;

/// Routes for `/health/live`, `/health/ready` and `/metrics`.
pub fn router(readiness: Arc<ReadinessState>, metrics: Arc<SelfMetrics>) -> Router {
    health::router(readiness).merge(self_metrics::router(metrics))
}

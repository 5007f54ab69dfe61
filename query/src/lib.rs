//! Vigil's HTTP query surface: liveness, readiness and Vigil's own metrics.
//!
//! The anomaly API ([`anomalies_router`]: `/api/v1/anomalies`, `/api/v1/forecast`) reads the detection
//! engine; the Prometheus API subset ([`prom_api_router`]: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`, …) evaluates PromQL ([`promql`]) over
//! Vigil's own series ([`OwnSeriesStore`]); the incident API ([`correlate_router`]: `/api/v1/incidents`,
//! `/api/v1/traces/{trace_id}`, `/api/v1/service-graph`) reads correlation; the SQL API ([`sql_router`]:
//! `POST /api/v1/sql`, the `sql` feature) runs polars' SQL over the anomalies, incidents, logs and spans tables.

pub mod alerting;
mod anomalies;
mod correlate;
mod health;
mod own_series;
mod params;
mod prom_api;
mod promql;
mod self_metrics;
pub mod sql;

use std::sync::Arc;

use axum::Router;

pub use anomalies::{AnomalyApi, anomalies_router};
pub use correlate::{CorrelateApi, correlate_router};
pub use health::{BackendStatus, ReadinessState, ReplayReport};
pub use own_series::{
    KeepSet, KeepSnapshot, KeptSamples, OwnSeriesConfig, OwnSeriesMetrics, OwnSeriesStore, SampleRows,
};
pub use prom_api::{PromApi, prom_api_router};
pub use self_metrics::SelfMetrics;
pub use sql::{SqlApi, sql_router};

/// Routes for `/health/live`, `/health/ready` and `/metrics`.
pub fn router(readiness: Arc<ReadinessState>, metrics: Arc<SelfMetrics>) -> Router {
    health::router(readiness).merge(self_metrics::router(metrics))
}

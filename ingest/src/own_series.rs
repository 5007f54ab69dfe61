//! Series Vigil computes itself — anomaly scores, span RED metrics, incident counts — on their way to the
//! store behind Vigil's Prometheus API (`/api/v1/query` and friends).
//!
//! A stage that produces such series gets an `Arc<dyn OwnSeriesSink>` from the binary's wiring and calls
//! [`OwnSeriesSink::append`]; it never learns where they are kept. The trait lives here, below `detect` and
//! `query`, so any stage can produce and `query` can keep them without an arrow pointing up.

use std::sync::Arc;

/// New samples of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnSeries {
    /// Label pairs with `__name__` among them, in any order; empty values mean "no such label".
    pub labels: Vec<(String, String)>,
    /// `(milliseconds since the Unix epoch, value)`, oldest first.
    pub samples: Vec<(i64, f64)>,
}

/// Where own series go. Implementations never block for long (callers are stages' hot loops) and never
/// fail: what they cannot keep, they count.
pub trait OwnSeriesSink: Send + Sync + std::fmt::Debug {
    /// Adds `series` to the tenant's own series.
    fn append(&self, tenant: &str, series: Vec<OwnSeries>);
}

/// A sink that keeps nothing (the Prometheus API turned off, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardOwnSeries;

impl OwnSeriesSink for DiscardOwnSeries {
    fn append(&self, _tenant: &str, _series: Vec<OwnSeries>) {}
}

/// Shared handle to a sink.
pub type OwnSeriesHandle = Arc<dyn OwnSeriesSink>;

//! `detect.iforest`: the online group isolation forests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::iforest::MAX_SAMPLE_SIZE;

/// Most trees per forest: past a few hundred the scores stop changing and refits only get slower.
pub(crate) const MAX_TREES: usize = 1000;
/// Most rows kept per group for training (each is six `f64`s).
pub(crate) const MAX_RESERVOIR_ROWS: usize = 1 << 16;

/// How the group isolation forests are trained and scored.
///
/// ```yaml
/// detect:
///   iforest: { group_by: [job, service_name, service], refit_interval: 10m, min_rows: 512 }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IforestConfig {
    /// Score samples with their group's isolation forest (its contribution is `iforest`).
    pub enabled: bool,
    /// Series of one tenant whose values of these labels are all equal form a group and share one forest;
    /// a missing label counts as empty, so `[job, service_name, service]` groups by service where there is
    /// one and by job alone where there is none.
    pub group_by: Vec<String>,
    /// A group's forest is refitted once its newest sample is this much (sample time) newer than the rows of
    /// the last fit.
    #[serde(with = "humantime_serde")]
    pub refit_interval: Duration,
    /// Feature rows a group needs before its first fit (none of its samples are scored by the forest
    /// before).
    pub min_rows: usize,
    /// Training rows kept per group: a uniform sample, weighted towards the rows since the last refit.
    pub reservoir_rows: usize,
    /// Trees per forest (the paper's 100).
    pub trees: usize,
    /// Rows each tree is grown on, ψ (the paper's 256).
    pub sample_size: usize,
    /// Seed of the forests and the reservoirs: the same data and seed give the same scores.
    pub seed: u64,
    /// Most groups with a forest, all tenants together (each costs about 0.6 MiB at the defaults). Series
    /// of groups beyond it are scored without the forest, counted in
    /// `vigil_detect_iforest_groups_dropped_total`.
    pub max_groups: usize,
}

impl Default for IforestConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            group_by: vec!["job".into(), "service_name".into(), "service".into()],
            refit_interval: Duration::from_secs(600),
            min_rows: 512,
            reservoir_rows: 2048,
            trees: 100,
            sample_size: 256,
            seed: 0,
            max_groups: 256,
        }
    }
}

impl IforestConfig {
    /// Every problem, each naming its key under `detect.iforest`.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.group_by.iter().any(|l| l.trim().is_empty()) {
            p.push("detect.iforest.group_by: label names must not be empty".into());
        }
        if self.refit_interval.is_zero() {
            p.push("detect.iforest.refit_interval must be > 0".into());
        }
        if !(1..=MAX_TREES).contains(&self.trees) {
            p.push(format!("detect.iforest.trees must be 1 to {MAX_TREES}, got {}", self.trees));
        }
        if !(2..=MAX_SAMPLE_SIZE).contains(&self.sample_size) {
            p.push(format!("detect.iforest.sample_size must be 2 to {MAX_SAMPLE_SIZE}, got {}", self.sample_size));
        }
        if !(2..=MAX_RESERVOIR_ROWS).contains(&self.reservoir_rows) {
            p.push(format!(
                "detect.iforest.reservoir_rows must be 2 to {MAX_RESERVOIR_ROWS}, got {}",
                self.reservoir_rows
            ));
        }
        if self.min_rows < 2 || self.min_rows > self.reservoir_rows {
            p.push(format!(
                "detect.iforest.min_rows must be 2 to detect.iforest.reservoir_rows ({}), got {}",
                self.reservoir_rows, self.min_rows
            ));
        }
        if self.max_groups == 0 {
            p.push("detect.iforest.max_groups must be > 0".into());
        }
        p
    }
}

//! How one series is scored: the knobs a rule of `detect.rules` sets (see `crate::config`).

use serde::{Deserialize, Serialize};

/// Which side of the expected value counts as anomalous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
    #[default]
    Both,
}

impl Direction {
    /// Keeps only the side of a signed deviation this direction watches.
    pub fn clip(self, signed: f64) -> f64 {
        match self {
            Direction::Up => signed.max(0.0),
            Direction::Down => (-signed).max(0.0),
            Direction::Both => signed.abs(),
        }
    }
}

/// The statistical detectors a series runs. All on by default; the ensemble takes the strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorSet {
    /// Robust level: deviation from a streaming median in units of a streaming MAD.
    pub level: bool,
    /// EWMA mean and variance.
    pub ewma: bool,
    /// Deviation from the daily/weekly profile.
    pub seasonal: bool,
    /// Level shifts and changepoints (two-sided CUSUM).
    pub shift: bool,
    /// Rate of change: a step far larger than the usual step.
    pub rate: bool,
}

impl Default for DetectorSet {
    fn default() -> Self {
        Self { level: true, ewma: true, seasonal: true, shift: true, rate: true }
    }
}

/// Daily and weekly seasonal profiles. The weekly profile corrects the daily one, so it needs `daily`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Seasonality {
    pub daily: bool,
    pub weekly: bool,
}

impl Default for Seasonality {
    fn default() -> Self {
        Self { daily: true, weekly: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub detectors: DetectorSet,
    /// Scales every band: 1 is the default, 2 flags deviations half as large, 0.5 only ones twice as large.
    pub sensitivity: f64,
    pub direction: Direction,
    /// Absolute deviations smaller than this are never anomalous (tiny wiggles on near-zero series).
    pub min_deviation: f64,
    /// Samples a series must have before it is scored.
    pub min_history: u32,
    pub seasonality: Seasonality,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            detectors: DetectorSet::default(),
            sensitivity: 1.0,
            direction: Direction::Both,
            min_deviation: 0.0,
            min_history: 30,
            seasonality: Seasonality::default(),
        }
    }
}

impl Settings {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.sensitivity.is_finite() && self.sensitivity > 0.0) {
            return Err(format!("sensitivity must be a positive number, got {}", self.sensitivity));
        }
        if !(self.min_deviation.is_finite() && self.min_deviation >= 0.0) {
            return Err(format!("min_deviation must be >= 0, got {}", self.min_deviation));
        }
        Ok(())
    }
}

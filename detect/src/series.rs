//! One series' detectors and their ensemble: a sample in, a [`Verdict`] out, in bounded state.

use crate::settings::Settings;
use crate::verdict::{Contributions, ForecastPoint, Verdict};

/// The streaming state of one series. Feed it samples in time order with [`SeriesDetector::observe`].
#[derive(Debug, Clone)]
pub struct SeriesDetector {
    seen: u32,
    mean: f64,
    var: f64,
}

impl SeriesDetector {
    pub fn new(_settings: &Settings) -> Self {
        Self { seen: 0, mean: 0.0, var: 0.0 }
    }

    /// Scores `value` at `timestamp_ms` against what came before it, then learns from it. `None` while the
    /// series has less than `settings.min_history` samples.
    pub fn observe(&mut self, settings: &Settings, _timestamp_ms: i64, value: f64) -> Option<Verdict> {
        if !value.is_finite() {
            return None;
        }
        self.seen = self.seen.saturating_add(1);
        if self.seen == 1 {
            self.mean = value;
            return None;
        }
        let sd = self.var.sqrt().max(settings.min_deviation).max(1e-9);
        let band = 3.0 * sd / settings.sensitivity;
        let deviation = settings.direction.clip(value - self.mean);
        let score = deviation / band;
        let verdict = Verdict {
            score,
            expected: self.mean,
            lower: self.mean - band,
            upper: self.mean + band,
            contributions: Contributions { ewma: score as f32, ..Contributions::default() },
        };
        let alpha = 0.05;
        let diff = value - self.mean;
        self.mean += alpha * diff;
        self.var = (1.0 - alpha) * (self.var + alpha * diff * diff);
        (self.seen > settings.min_history).then_some(verdict)
    }

    /// The next `steps` values after `from_ms`, `step_ms` apart, with a confidence band (`predict_trend`).
    /// Empty while the series has too little history to say anything.
    pub fn forecast(&self, from_ms: i64, step_ms: i64, steps: usize) -> Vec<ForecastPoint> {
        if self.seen < 2 {
            return Vec::new();
        }
        let band = 3.0 * self.var.sqrt();
        (1..=steps as i64)
            .map(|i| ForecastPoint {
                timestamp_ms: from_ms.saturating_add(step_ms.saturating_mul(i)),
                expected: self.mean,
                lower: self.mean - band,
                upper: self.mean + band,
            })
            .collect()
    }
}

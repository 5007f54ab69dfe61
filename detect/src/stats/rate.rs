//! Rate of change: a step between consecutive samples far larger than the series' usual step.

/// Gaussian σ of a step per unit of mean absolute step.
const SIGMA_PER_MAD: f64 = 1.253;
const CLIP: f64 = 3.0;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StepScale {
    /// Mean absolute step (clipped), per sample.
    mad: f64,
}

impl StepScale {
    pub(crate) fn sigma(&self, floor: f64) -> f64 {
        (self.mad * SIGMA_PER_MAD).max(floor)
    }

    /// The step `delta` in units of the usual step.
    pub(crate) fn z(&self, delta: f64, floor: f64) -> f64 {
        delta / self.sigma(floor)
    }

    /// Learns the `n`-th step `delta` (plain running mean for the first few: no scale to clip by yet).
    pub(crate) fn update(&mut self, delta: f64, n: u32, beta: f64, floor: f64) {
        if n <= super::robust::WARM_SAMPLES {
            self.mad += beta.max(1.0 / f64::from(n.max(1))) * (delta.abs() - self.mad);
            return;
        }
        let s = self.sigma(floor);
        self.mad += beta * (delta.abs().min(CLIP * s) - self.mad);
    }
}

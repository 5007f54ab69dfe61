//! A robust streaming level: a Huber M-estimator of location with a matching scale.
//!
//! A sample moves the level by at most `clip` scales, so one outlier barely moves it (a median's
//! robustness), while a genuine level shift is adopted within a few dozen samples — and at once when the
//! shift detector ([`super::shift`]) fires and calls [`RobustLevel::reset`]. The scale is a clipped mean
//! absolute deviation (≈ 0.8 σ for Gaussian noise), which is zero on a flat series: callers give a floor.

/// Scale units a single sample may pull the level.
const CLIP: f64 = 2.0;
/// Scale units a single sample may add to the scale: wider than the level's clip, as clipping at 2 σ
/// underestimates a Gaussian σ by 4 % (and a heavier tail by more).
const SCALE_CLIP: f64 = 3.0;
/// Gaussian σ per unit of mean absolute deviation.
const SIGMA_PER_MAD: f64 = 1.253;
/// Samples learnt as plain running means before clipping starts.
pub(crate) const WARM_SAMPLES: u32 = 10;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RobustLevel {
    pub(crate) level: f64,
    /// Mean absolute deviation from the level (clipped).
    pub(crate) mad: f64,
}

impl RobustLevel {
    pub(crate) fn start(x: f64) -> Self {
        Self { level: x, mad: 0.0 }
    }

    /// σ-equivalent scale, at least `floor`.
    pub(crate) fn sigma(&self, floor: f64) -> f64 {
        (self.mad * SIGMA_PER_MAD).max(floor)
    }

    pub(crate) fn z(&self, x: f64, floor: f64) -> f64 {
        (x - self.level) / self.sigma(floor)
    }

    /// Learns `x`, the `n`-th sample. `alpha` is the level's weight, `beta` the scale's; `floor` keeps the
    /// clip from being zero. The first samples are plain running means: there is no scale to clip by yet.
    pub(crate) fn update(&mut self, x: f64, n: u32, alpha: f64, beta: f64, floor: f64) {
        let warm = 1.0 / f64::from(n.max(1));
        let r = x - self.level;
        if n <= WARM_SAMPLES {
            self.level += alpha.max(warm) * r;
            self.mad += beta.max(warm) * (r.abs() - self.mad);
            return;
        }
        let s = self.sigma(floor);
        self.level += alpha * r.clamp(-CLIP * s, CLIP * s);
        self.mad += beta * (r.abs().min(SCALE_CLIP * s) - self.mad);
    }

    /// Adopts a new level after a detected shift, keeping the scale.
    pub(crate) fn reset(&mut self, level: f64) {
        self.level = level;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outlier_barely_moves_the_level() {
        let mut r = RobustLevel::start(10.0);
        for i in 0..500 {
            r.update(10.0 + if i % 2 == 0 { 0.5 } else { -0.5 }, i + 2, 0.05, 0.02, 1e-9);
        }
        let before = r.level;
        r.update(1e6, 1000, 0.05, 0.02, 1e-9);
        assert!((r.level - before).abs() < 0.2, "{} -> {}", before, r.level);
    }

    #[test]
    fn a_flat_series_has_zero_scale_and_uses_the_floor() {
        let mut r = RobustLevel::start(3.0);
        for i in 0..100 {
            r.update(3.0, i + 2, 0.05, 0.02, 1e-9);
        }
        assert_eq!(r.mad, 0.0);
        assert_eq!(r.sigma(0.25), 0.25);
        assert_eq!(r.z(3.0, 0.25), 0.0);
    }
}

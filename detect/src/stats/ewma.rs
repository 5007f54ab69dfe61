//! Exponentially weighted mean and variance (West's incremental form).

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ewma {
    pub(crate) mean: f64,
    pub(crate) var: f64,
}

impl Ewma {
    pub(crate) fn start(x: f64) -> Self {
        Self { mean: x, var: 0.0 }
    }

    pub(crate) fn sd(&self) -> f64 {
        self.var.sqrt()
    }

    /// Deviation of `x` from the mean, in standard deviations (at least `floor` wide).
    pub(crate) fn z(&self, x: f64, floor: f64) -> f64 {
        (x - self.mean) / self.sd().max(floor)
    }

    pub(crate) fn update(&mut self, x: f64, alpha: f64) {
        let diff = x - self.mean;
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_the_mean_and_variance_of_a_stationary_stream() {
        let mut e = Ewma::start(0.0);
        // Alternating ±1: mean 0, variance 1.
        for i in 0..10_000 {
            e.update(if i % 2 == 0 { 1.0 } else { -1.0 }, 0.01);
        }
        assert!(e.mean.abs() < 0.02, "{e:?}");
        assert!((e.var - 1.0).abs() < 0.05, "{e:?}");
    }
}

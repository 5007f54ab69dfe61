//! A series' summary over one peers interval: mean, deviation and roughness of its values, kept as running
//! sums (36 bytes) and taken (and reset) at each comparison.

/// Running moments of the values since the last comparison (Welford's update: no cancellation on series
/// with a large level and small noise).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Window {
    n: u32,
    mean: f64,
    m2: f64,
    /// Sum of |x − previous x| within the window.
    steps: f64,
    last: f64,
}

/// Mean, standard deviation and mean absolute step of one window.
pub(crate) type Summary = [f64; 3];

impl Window {
    pub(crate) fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.n > 0 {
            self.steps += (x - self.last).abs();
        }
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / f64::from(self.n);
        self.m2 += d * (x - self.mean);
        self.last = x;
    }

    /// The summary when the window has at least `min` samples; the window starts afresh either way.
    pub(crate) fn take(&mut self, min: u32) -> Option<Summary> {
        let w = std::mem::take(self);
        (w.n >= min.max(2)).then(|| {
            let n = f64::from(w.n);
            [w.mean, (w.m2 / n).max(0.0).sqrt(), w.steps / (n - 1.0)]
        })
    }
}

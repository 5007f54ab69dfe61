//! From the ensemble's raw deviation to an alerting score that means the same on every series.
//!
//! A deviation of 5 σ is rare on a well-modelled series and routine on a heavy-tailed one. Like NAB's
//! anomaly likelihood, the raw score is judged against its own history: the log-compressed raw score is
//! standardised against a running mean and variance of itself, which include the series' routine outliers
//! (winsorising them made every routine spike an alert: −40 points on NAB's development subset). Repeats of
//! an ongoing anomaly are then suppressed: a sample keeps its score only if it beats the decaying peak of
//! the recent ones, so whatever threshold alerts are cut at, an episode fires at its first crossing.

/// Weight of a sample in the long-run distribution of raw scores (about 200 samples of memory).
const LONG_ALPHA: f64 = 0.005;
/// Standard deviations (of the log raw score) that make an alert at 1.
const SPIKE_Z: f64 = 6.0;
/// Per-sample decay of the recent peak: halves in about 70 samples.
const PEAK_DECAY: f64 = 0.99;
/// What is left of a sample's score when it does not beat the recent peak.
const REPEAT_FACTOR: f64 = 0.2;
/// Smallest standard deviation of the log raw score (a perfectly modelled series has none).
const MIN_SD: f64 = 0.01;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Calibrator {
    n: u32,
    mean: f64,
    var: f64,
    peak: f64,
}

impl Calibrator {
    /// The alerting score of a sample whose raw ensemble score is `raw`; then learns it.
    pub(crate) fn step(&mut self, raw: f64) -> f64 {
        let u = raw.max(0.0).ln_1p();
        self.n = self.n.saturating_add(1);
        if self.n == 1 {
            self.mean = u;
        }
        let sd = self.var.sqrt().max(MIN_SD);
        let unusual = ((u - self.mean) / sd / SPIKE_Z).max(0.0);
        let alert = if unusual > self.peak { unusual } else { unusual * REPEAT_FACTOR };
        self.peak = unusual.max(self.peak * PEAK_DECAY);
        let alpha = LONG_ALPHA.max(1.0 / f64::from(self.n));
        let diff = u - self.mean;
        self.mean += alpha * diff;
        self.var = (1.0 - alpha) * (self.var + alpha * diff * diff);
        alert
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ongoing_anomaly_alerts_once() {
        let mut c = Calibrator::default();
        for i in 0..1000 {
            c.step(0.2 + 0.05 * f64::from(i % 3));
        }
        let first = c.step(5.0);
        assert!(first > 1.0, "{first}");
        for _ in 0..20 {
            let again = c.step(5.0);
            assert!(again < first * 0.5, "{again} vs {first}");
        }
    }

    #[test]
    fn routine_spikes_stop_alerting() {
        let mut c = Calibrator::default();
        let mut last = 0.0;
        for i in 0..3000 {
            let s = c.step(if i % 20 == 0 { 5.0 } else { 0.2 });
            if i % 20 == 0 {
                last = s;
            }
        }
        assert!(last < 1.0, "{last}");
    }
}

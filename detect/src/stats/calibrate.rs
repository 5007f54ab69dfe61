//! From the ensemble's raw deviation to an alerting score that means the same on every series.
//!
//! A deviation of 5 σ is rare on a well-modelled series and routine on a heavy-tailed one. Like NAB's
//! anomaly likelihood, the raw score is judged against its own history: the log-compressed raw score is
//! standardised against a running mean and variance of itself, which include the series' routine outliers
//! (winsorising them made every routine spike an alert: −40 points on NAB's development subset). Repeats of
//! an ongoing anomaly are then suppressed: a sample keeps its score only if it beats the decaying peak of
//! the recent ones, so whatever threshold alerts are cut at, an episode fires at its first crossing.
//!
//! Two more rules keep the alert on the ensemble's scale. A sample no detector calls anomalous (raw score
//! below 1) keeps only raw² of its alert: on a quiet, well-modelled series a sub-threshold wiggle is unusual
//! without being anomalous. And once an alert comes near the line, the alerts of the next few dozen samples
//! are damped a little (a refractory period), so an episode that escalates is reported as it starts, not
//! again at each step.

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
/// Below a raw score of 1 the alert is multiplied by raw to this power: the false alarms it removes are the
/// sub-threshold wiggles of clean artificial series and machine temperature noise (ablation in
/// `benches/README.md`).
const SUB_THRESHOLD_POWER: i32 = 2;
/// An alert at or above this starts a refractory period of `REFRACTORY_SAMPLES` samples, in which every
/// alert is multiplied by `REFRACTORY_FACTOR`. Mild on purpose: a quiet period that cut alerts to a fifth
/// for 30–300 samples cost the synthetic corpora their second anomalies (`benches/README.md`).
const REFRACTORY_AT: f64 = 0.8;
const REFRACTORY_SAMPLES: u32 = 50;
const REFRACTORY_FACTOR: f64 = 0.8;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Calibrator {
    n: u32,
    mean: f64,
    var: f64,
    peak: f64,
    /// Samples left in the refractory period.
    refractory: u32,
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
        let mut alert = if unusual > self.peak { unusual } else { unusual * REPEAT_FACTOR };
        if raw < 1.0 {
            alert *= raw.max(0.0).powi(SUB_THRESHOLD_POWER);
        }
        if self.refractory > 0 {
            self.refractory -= 1;
            alert *= REFRACTORY_FACTOR;
        } else if alert >= REFRACTORY_AT {
            self.refractory = REFRACTORY_SAMPLES;
        }
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

    /// A calibrator that has seen `n` raw scores of a quiet, well-modelled series (0.05–0.15).
    fn quiet(n: usize) -> Calibrator {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut c = Calibrator::default();
        for _ in 0..n {
            c.step(0.05 + 0.1 * rng.f64());
        }
        c
    }

    #[test]
    fn a_sub_threshold_wiggle_on_a_quiet_series_does_not_alert_and_an_anomaly_does() {
        // 0.4 is far out for this series (about 1.4 times the spike threshold) but no detector calls it
        // anomalous.
        let wiggle = quiet(1000).step(0.4);
        assert!(wiggle < 0.5, "{wiggle}");
        let anomaly = quiet(1000).step(3.0);
        assert!(anomaly > 5.0, "{anomaly}");
    }

    #[test]
    fn an_alert_near_the_line_damps_the_next_samples_a_little() {
        let mut c = quiet(1000);
        assert!(c.step(3.0) >= REFRACTORY_AT);
        for _ in 0..10 {
            c.step(0.1);
        }
        // The same history without the refractory period.
        let mut free = c;
        free.refractory = 0;
        let (damped, undamped) = (c.step(40.0), free.step(40.0));
        assert!(undamped > 1.0 && (damped - REFRACTORY_FACTOR * undamped).abs() < 1e-12, "{damped} vs {undamped}");
        // Over after `REFRACTORY_SAMPLES`.
        for _ in 0..REFRACTORY_SAMPLES {
            c.step(0.1);
        }
        let mut free = c;
        free.refractory = 0;
        assert_eq!(c.step(8.0).to_bits(), free.step(8.0).to_bits());
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

//! Per-sample features for the group isolation forests (`crate::iforest::online`), from what the engine
//! already has for each sample: the value, its verdict (expected value and band) and a short ring of the
//! series' own recent residuals.
//!
//! Every feature is scale-free — residuals and steps are measured in units of the sample's own half band —
//! so the series of one group (bytes, seconds, requests per second alike) can share one model. Each is
//! squashed with sign(x)·ln(1 + |x|): the forest draws its split values uniformly between a node's min and
//! max, so one huge training value would otherwise leave the bulk of the rows undivided.
//!
//! A row is [`OWN`] per-series features followed by [`GROUP`] features about the series' group at the same
//! time (filled in by the group, see `crate::iforest::online`).

use crate::settings::Settings;
use crate::verdict::Verdict;

/// Residuals kept per series for the rolling mean and deviation: enough to see a run of same-signed
/// residuals or a burst of variance, small enough to forget it within a few samples.
pub(crate) const WINDOW: usize = 8;

/// The series' own features: residual, step, and the rolling mean, deviation and roughness (mean absolute
/// step) of the residual.
pub(crate) const OWN: usize = 5;
/// How the series moves with its group: its rolling mean residual times the group's share of deviating
/// samples, and times the group's mean residual (see [`Own::row`]).
pub(crate) const GROUP: usize = 2;
/// Values per row.
pub(crate) const FEATURES: usize = OWN + GROUP;

/// A sample deviates (for the group context) when its residual is beyond this share of its half band.
/// The band is where the statistical ensemble calls a sample anomalous, so this is "clearly off, though
/// not anomalous alone".
pub(crate) const DEVIATING: f64 = 0.4;

/// The per-series state the features need: 64 bytes.
#[derive(Debug, Clone)]
pub(crate) struct FeatureState {
    prev_raw: f64,
    prev_ms: i64,
    /// The previous sample as the detector scored it (the raw value, or a counter's rate).
    prev_x: f64,
    /// Recent residuals in band units, a ring.
    resid: [f32; WINDOW],
    next: u8,
    filled: u8,
    /// > 0: the detector scores this series' raw values; < 0: its rate (a counter). See `scored_value`.
    vote: i8,
    started: bool,
}

impl Default for FeatureState {
    fn default() -> Self {
        Self {
            prev_raw: 0.0,
            prev_ms: i64::MIN,
            prev_x: 0.0,
            resid: [0.0; WINDOW],
            next: 0,
            filled: 0,
            vote: 0,
            started: false,
        }
    }
}

/// One sample's own features, before squashing, and its signed residual.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Own {
    /// (value − expected) / half band, signed.
    pub(crate) resid: f64,
    pub(crate) delta: f64,
    pub(crate) mean: f64,
    pub(crate) std: f64,
    /// Mean absolute step between consecutive residuals of the ring: an oscillation has a deviation like a
    /// burst of noise but far larger steps.
    pub(crate) rough: f64,
    /// The value the detector scored (raw, or a counter's rate): what peer summaries are made of.
    pub(crate) x: f64,
}

impl Own {
    /// The row: own features, then the group context (share of the group's recent samples deviating, in
    /// [0, 1], and their mean residual) as it bears on this series.
    ///
    /// The context enters multiplied by the series' own rolling mean residual: the rolling mean alone stays
    /// ordinary for a drift of a few σ (the statistical detectors follow a level within a few samples), and
    /// the context alone would be the same for every series of the group — calm ones included — when part
    /// of it moves. Their product is near 0 for a calm series in a moving group and for a series moving
    /// alone, and large only for a series moving *with* its group; the signed product with the group mean
    /// says whether it moves the same way.
    pub(crate) fn row(&self, group_share: f64, group_mean: f64) -> [f64; FEATURES] {
        [
            squash(self.resid),
            squash(self.delta),
            squash(self.mean),
            self.std.ln_1p(),
            self.rough.ln_1p(),
            squash(group_share * self.mean.abs()),
            squash(group_mean * self.mean),
        ]
    }
}

/// sign(x)·ln(1 + |x|): monotone, ~x near 0, logarithmic in the tails.
pub(crate) fn squash(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

impl FeatureState {
    /// The features of a scored sample, or `None` while the residual ring is filling (the first
    /// [`WINDOW`] verdicts) or when the verdict has no usable band.
    pub(crate) fn observe(&mut self, settings: &Settings, timestamp_ms: i64, raw: f64, v: &Verdict) -> Option<Own> {
        let half = 0.5 * (v.upper - v.lower);
        let usable = half.is_finite() && half > 0.0 && v.expected.is_finite();
        if !self.started || !usable || timestamp_ms <= self.prev_ms {
            self.started = true;
            self.prev_raw = raw;
            self.prev_ms = timestamp_ms;
            self.prev_x = raw;
            return None;
        }
        let x = self.scored_value(settings, timestamp_ms, raw, v, half);
        let mut resid = (x - v.expected) / half;
        // Tiny absolute wiggles are not deviations (`min_deviation`), for the forest either.
        if (x - v.expected).abs() < settings.min_deviation {
            resid = 0.0;
        }
        let delta = (x - self.prev_x) / half;
        self.prev_raw = raw;
        self.prev_ms = timestamp_ms;
        self.prev_x = x;
        self.resid[usize::from(self.next)] = resid as f32;
        self.next = (self.next + 1) % WINDOW as u8;
        self.filled = self.filled.saturating_add(1).min(WINDOW as u8);
        if usize::from(self.filled) < WINDOW || !resid.is_finite() || !delta.is_finite() {
            return None;
        }
        let mean = self.resid.iter().map(|&r| f64::from(r)).sum::<f64>() / WINDOW as f64;
        let var = self.resid.iter().map(|&r| (f64::from(r) - mean).powi(2)).sum::<f64>() / WINDOW as f64;
        // Ring order does not matter for the mean and deviation; the steps follow it from the oldest.
        let oldest = usize::from(self.next);
        let rough = (1..WINDOW)
            .map(|i| f64::from(self.resid[(oldest + i) % WINDOW] - self.resid[(oldest + i - 1) % WINDOW]).abs())
            .sum::<f64>()
            / (WINDOW - 1) as f64;
        Some(Own { resid, delta, mean, std: var.sqrt(), rough, x })
    }

    /// The value the detector scored: the raw value for a gauge, the per-second rate for a counter. The
    /// detector decides which a series is and does not say, so it is read off the verdict: its level
    /// contribution is the residual of the scored value in band units (times the sensitivity, as the
    /// direction clips it), which the raw value matches for a gauge and the rate for a counter. A vote
    /// over recent samples keeps one odd sample from flipping it. (A public "is this a counter" on
    /// `SeriesDetector` would replace this guess.)
    fn scored_value(&mut self, settings: &Settings, timestamp_ms: i64, raw: f64, v: &Verdict, half: f64) -> f64 {
        let dt_s = (timestamp_ms - self.prev_ms) as f64 / 1000.0;
        // A drop is a counter reset, read as the detector reads it.
        let rate = if raw >= self.prev_raw { (raw - self.prev_raw) / dt_s } else { raw / dt_s };
        let level = f64::from(v.contributions.level) * settings.sensitivity;
        let miss = |x: f64| (settings.direction.clip((x - v.expected) / half) - level).abs();
        let raw_fits = miss(raw) <= miss(rate);
        self.vote = if raw_fits { self.vote.saturating_add(1).min(4) } else { self.vote.saturating_sub(1).max(-4) };
        if self.vote >= 0 { raw } else { rate }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::series::SeriesDetector;

    const STEP: i64 = 15_000;

    /// Runs a detector and the features over `values`; the features of every sample that has them.
    fn run(values: &[f64]) -> Vec<Option<Own>> {
        let settings = Settings::default();
        let mut d = SeriesDetector::new(&settings);
        let mut f = FeatureState::default();
        values
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let ts = i as i64 * STEP;
                let v = d.observe(&settings, ts, x)?;
                f.observe(&settings, ts, x, &v)
            })
            .collect()
    }

    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..n).map(|_| 100.0 + rng.f64() - 0.5).collect()
    }

    #[test]
    fn features_are_scale_free() {
        let a = run(&noise(400, 1));
        let scaled: Vec<f64> = noise(400, 1).iter().map(|x| x * 1000.0 + 5.0).collect();
        let b = run(&scaled);
        let (mut compared, mut worst) = (0, 0.0f64);
        for (a, b) in a.iter().zip(&b) {
            if let (Some(a), Some(b)) = (a, b) {
                compared += 1;
                let pairs =
                    [(a.resid, b.resid), (a.delta, b.delta), (a.mean, b.mean), (a.std, b.std), (a.rough, b.rough)];
                for (x, y) in pairs {
                    worst = worst.max((x - y).abs());
                }
            }
        }
        assert!(compared > 300, "{compared}");
        assert!(worst < 1e-3, "features moved by {worst} under a change of unit");
    }

    #[test]
    fn the_ring_fills_before_features_come_and_a_run_of_residuals_shows_in_the_mean() {
        let mut values = noise(400, 2);
        let first = run(&values).iter().position(Option::is_some).unwrap();
        let settings = Settings::default();
        assert_eq!(first, settings.min_history as usize + WINDOW, "one sample starts the state, then the ring fills");
        for v in &mut values[380..] {
            *v += 0.6;
        }
        let out = run(&values);
        let before = out[379].unwrap();
        let after = out[387].unwrap();
        assert!(before.mean.abs() < 0.2, "{before:?}");
        assert!(after.mean > 0.3 && after.resid > 0.3, "{after:?}");
    }

    #[test]
    fn an_oscillation_shows_in_the_step_and_the_deviation_not_the_mean() {
        let mut values = noise(400, 3);
        for (i, v) in values[370..].iter_mut().enumerate() {
            *v += if i % 2 == 0 { 0.8 } else { -0.8 };
        }
        let out = run(&values);
        let calm = out[360].unwrap();
        let osc = out[380].unwrap();
        assert!(osc.std > 2.5 * calm.std, "{calm:?} vs {osc:?}");
        assert!(osc.rough > 2.0 * osc.std && calm.rough < 2.0 * calm.std, "{calm:?} vs {osc:?}");
        assert!(osc.delta.abs() > 3.0 * calm.delta.abs().max(0.1), "{calm:?} vs {osc:?}");
        assert!(osc.mean.abs() < 0.2, "{osc:?}");
    }

    #[test]
    fn a_counter_is_featured_on_its_rate() {
        let mut rng = fastrand::Rng::with_seed(4);
        let mut total = 0.0;
        let values: Vec<f64> = (0..600)
            .map(|_| {
                total += 150.0 + 10.0 * (rng.f64() - 0.5);
                total
            })
            .collect();
        let out = run(&values);
        let last = out.iter().rev().flatten().next().unwrap();
        // 150 per 15 s step: 10 per second; residuals of ordinary noise.
        assert!((last.x - 10.0).abs() < 1.0, "{last:?}");
        assert!(out.iter().flatten().skip(10).all(|o| o.resid.abs() < 2.0), "rate residuals stay small");
    }

    #[test]
    fn squash_is_odd_monotone_and_logarithmic() {
        assert_eq!(squash(0.0), 0.0);
        assert_eq!(squash(-3.0), -squash(3.0));
        assert!(squash(1e12) < 30.0 && squash(2.0) > squash(1.0));
    }
}

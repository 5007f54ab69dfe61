#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::history::BUCKET_MS;
use super::model::DAY;
use super::*;
use crate::settings::{Seasonality, Settings};

const FIVE_MIN: i64 = 300_000;
/// 2024-01-01T00:00:00Z.
const START: i64 = 1_704_067_200_000;
/// The synthetic series' trend, per day.
const TREND: f64 = 6.0;
const NOISE_SD: f64 = 2.0;

fn gauss(rng: &mut fastrand::Rng) -> f64 {
    let (u, v) = (rng.f64().max(1e-12), rng.f64());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Level 100 rising by [`TREND`] a day, a daily cycle of ±20, without noise.
fn truth(t: i64) -> f64 {
    let days = (t - START) as f64 / 86_400_000.0;
    100.0 + TREND * days + 20.0 * (std::f64::consts::TAU * days.fract()).sin()
}

/// `days` of five-minute samples of [`truth`] plus noise into a history; the time of the last sample.
fn fill(history: &mut History, rng: &mut fastrand::Rng, days: i64) -> i64 {
    let settings = Settings::default();
    let n = days * 288;
    for i in 0..n {
        let t = START + i * FIVE_MIN;
        history.observe(&settings, t, truth(t) + NOISE_SD * gauss(rng));
    }
    START + (n - 1) * FIVE_MIN
}

/// Ten days of a daily cycle on a linear trend (the ring keeps the last seven): the next 24 hours follow
/// both, and the band holds about 95 % of the noisy continuation.
#[test]
fn the_24h_forecast_follows_the_cycle_and_the_trend_and_its_band_covers_the_continuation() {
    let (mut covered, mut total) = (0, 0);
    for seed in 1..=3 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut history = History::default();
        let last = fill(&mut history, &mut rng, 10);
        let snapshot = history.snapshot().unwrap();
        let (model, points) = fit(&snapshot, Seasonality::default(), last, FIVE_MIN, 288).unwrap();
        assert_eq!(model, ForecastModel::MstlEts);
        assert_eq!(points.len(), 288);
        assert_eq!(points[0].timestamp_ms, last + FIVE_MIN);
        let errors: Vec<f64> = points.iter().map(|p| p.expected - truth(p.timestamp_ms)).collect();
        let mean_abs = errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64;
        let max_abs = errors.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        assert!(mean_abs < 1.0 && max_abs < 2.5, "seed {seed}: mean |error| {mean_abs}, max {max_abs}");
        // The trend: tomorrow's mean is TREND above today's, which a forecast without the trend would miss
        // by all of it.
        let tomorrow = points.iter().map(|p| p.expected).sum::<f64>() / 288.0;
        let today = (0..288).map(|i| truth(last - i * FIVE_MIN)).sum::<f64>() / 288.0;
        assert!((tomorrow - today - TREND).abs() < 1.0, "seed {seed}: rose {} in a day", tomorrow - today);
        // The cycle: the forecast swings as far as the truth does over the day (±20 on the trend).
        let swing = |v: &mut dyn Iterator<Item = f64>| {
            let (lo, hi) = v.fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(x), h.max(x)));
            hi - lo
        };
        let (forecast_swing, true_swing) =
            (swing(&mut points.iter().map(|p| p.expected)), swing(&mut points.iter().map(|p| truth(p.timestamp_ms))));
        assert!(true_swing > 30.0 && (forecast_swing - true_swing).abs() < 2.0, "{forecast_swing} vs {true_swing}");
        for p in &points {
            assert!(p.lower < p.expected && p.expected < p.upper, "{p:?}");
            let sample = truth(p.timestamp_ms) + NOISE_SD * gauss(&mut rng);
            covered += usize::from((p.lower..=p.upper).contains(&sample));
            total += 1;
        }
    }
    let coverage = covered as f64 / total as f64;
    assert!((0.92..=0.99).contains(&coverage), "the 95 % band held {coverage:.3} of {total} samples");
}

#[test]
fn less_than_two_days_is_left_to_the_profile() {
    let mut rng = fastrand::Rng::with_seed(4);
    let mut history = History::default();
    // 47 hours: 46 closed hours, the 47th still open.
    let last = START + (47 * 12 - 1) * FIVE_MIN;
    let settings = Settings::default();
    for i in 0..47 * 12 {
        let t = START + i * FIVE_MIN;
        history.observe(&settings, t, truth(t) + gauss(&mut rng));
    }
    let snapshot = history.snapshot().unwrap();
    assert_eq!(snapshot.values.len(), 46);
    assert_eq!(
        fit(&snapshot, Seasonality::default(), last, FIVE_MIN, 12),
        Err(ModelError::TooShort { have: 46, need: 2 * DAY })
    );
    // Two more days and the decomposition takes over.
    for i in 47 * 12..96 * 12 {
        let t = START + i * FIVE_MIN;
        history.observe(&settings, t, truth(t) + gauss(&mut rng));
    }
    let last = START + (96 * 12 - 1) * FIVE_MIN;
    let (model, _) = fit(&history.snapshot().unwrap(), Seasonality::default(), last, FIVE_MIN, 12).unwrap();
    assert_eq!(model, ForecastModel::MstlEts);
}

#[test]
fn a_counter_is_forecast_as_its_rate() {
    let settings = Settings::default();
    let mut history = History::default();
    let mut total = 0.0;
    let mut last = 0;
    // Three days every 30 s of a rate that follows the daily cycle (50 ± 20 per second), reset daily.
    for i in 0..3 * 2880 {
        let t = START + i * 30_000;
        let days = (t - START) as f64 / 86_400_000.0;
        let rate = 50.0 + 20.0 * (std::f64::consts::TAU * days.fract()).sin();
        total = if i % 2880 == 2000 { 0.0 } else { total + rate * 30.0 };
        history.observe(&settings, t, total);
        last = t;
    }
    let snapshot = history.snapshot().unwrap();
    assert!(history.is_counter());
    let (_, points) = fit(&snapshot, Seasonality::default(), last, BUCKET_MS, 24).unwrap();
    for p in &points {
        let days = (p.timestamp_ms - START) as f64 / 86_400_000.0;
        let rate = 50.0 + 20.0 * (std::f64::consts::TAU * days.fract()).sin();
        // Hourly means of a sine lag its samples by half an hour at most: within a few per second.
        assert!((p.expected - rate).abs() < 2.0, "{p:?} vs rate {rate}");
    }
}

//! Fitting the forecast: augurs' MSTL over the hourly history, its deseasonalised series modelled by ETS.

use std::panic::{AssertUnwindSafe, catch_unwind};

use augurs::ets::AutoETS;
use augurs::mstl::MSTLModel;
use augurs::{Fit, Forecast, Predict};

use super::ForecastModel;
use super::history::{BUCKET_MS, Snapshot};
use crate::settings::Seasonality;
use crate::verdict::ForecastPoint;

/// Buckets per day and per week.
pub(crate) const DAY: usize = (86_400_000 / BUCKET_MS) as usize;
pub(crate) const WEEK: usize = 7 * DAY;
/// Confidence level of the band: the profile's fallback band is ±2σ, about the same.
pub(crate) const LEVEL: f64 = 0.95;
/// The standard normal quantile at (1 + LEVEL) / 2.
const Z: f64 = 1.959_963_984_540_054;
/// More gaps than this share of the history and the decomposition would mostly fit interpolation.
const MAX_GAP_SHARE: f64 = 0.25;
/// A history whose last hour is older than this before the forecast's start is out of date.
const MAX_STALE_BUCKETS: i64 = DAY as i64;
/// ETS for the deseasonalised series: additive error, trend chosen by AIC among none, additive and damped
/// (the deseasonalised series is level plus remainder, so additive error fits it; the multiplicative
/// variants of augurs-ets simulate their intervals with an unseeded random generator).
const TREND_SPEC: &str = "AZN";

#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum ModelError {
    #[error("{have} hours of history, the decomposition needs {need}")]
    TooShort { have: usize, need: usize },
    #[error("{gaps} of {len} hours have no sample")]
    TooSparse { gaps: usize, len: usize },
    #[error("the history ends {0} hours before the forecast starts")]
    Stale(i64),
    #[error("fitting: {0}")]
    Fit(String),
    #[error("the model panicked")]
    Panicked,
    #[error("the model's forecast is not finite")]
    NotFinite,
}

/// Which seasonal periods (in buckets) to decompose `len` buckets of history into: the daily one when
/// enabled, the weekly one too once two weeks are there (one week of a weekly pattern is one sample of it).
pub(crate) fn periods(seasonality: Seasonality, len: usize) -> Vec<usize> {
    let mut periods = Vec::new();
    if seasonality.daily {
        periods.push(DAY);
        if seasonality.weekly && len >= 2 * WEEK {
            periods.push(WEEK);
        }
    }
    periods
}

/// The forecast at `steps` points `step_ms` apart after `from_ms`, from `history`.
///
/// The model sees hourly means; a point between two hours is interpolated between their forecasts, and its
/// band is widened by the spread of single samples around their hour's mean (the band is for a sample,
/// not for an hourly mean).
pub(crate) fn forecast(
    history: &Snapshot,
    seasonality: Seasonality,
    from_ms: i64,
    step_ms: i64,
    steps: usize,
) -> Result<(ForecastModel, Vec<ForecastPoint>), ModelError> {
    let need = 2 * DAY;
    if history.values.len() < need {
        return Err(ModelError::TooShort { have: history.values.len(), need });
    }
    let stale = from_ms.div_euclid(BUCKET_MS) - history.last_bucket;
    if stale > MAX_STALE_BUCKETS {
        return Err(ModelError::Stale(stale));
    }
    let y = interpolate_gaps(&history.values)?;
    // Position of a time in buckets after the centre of the last one (bucket k ahead sits at k).
    let last_centre = history.last_bucket * BUCKET_MS + BUCKET_MS / 2;
    let position = |t: i64| (t - last_centre) as f64 / BUCKET_MS as f64;
    let end = from_ms.saturating_add(step_ms.saturating_mul(steps as i64));
    let horizon = position(end).ceil().max(1.0) as usize;
    let periods = periods(seasonality, y.len());
    let model = if periods.is_empty() { ForecastModel::Ets } else { ForecastModel::MstlEts };
    // augurs-ets has `todo!()`/`unimplemented!()` for some model classes: a forecast must never take a
    // query (or the process) down with it, so a panic is a failed fit and the profile answers instead.
    let fitted = catch_unwind(AssertUnwindSafe(|| fit_predict(&y, periods, horizon)));
    let hourly = fitted.map_err(|_| ModelError::Panicked)??;
    let intervals = hourly.intervals.as_ref().ok_or_else(|| ModelError::Fit("no prediction intervals".into()))?;
    let at = |series: &[f64], p: f64| -> f64 {
        // Forecast k (0-based) is for position k + 1; before position 1 the first one holds.
        let p = (p - 1.0).clamp(0.0, (series.len() - 1) as f64);
        let (i, frac) = (p.floor() as usize, p.fract());
        let next = series.get(i + 1).copied().unwrap_or(series[i]);
        series[i] + frac * (next - series[i])
    };
    let spread = Z * history.spread_sd;
    let points: Vec<ForecastPoint> = (1..=steps as i64)
        .map(|i| {
            let t = from_ms.saturating_add(step_ms.saturating_mul(i));
            let p = position(t);
            let expected = at(&hourly.point, p);
            let below = (expected - at(&intervals.lower, p)).max(0.0);
            let above = (at(&intervals.upper, p) - expected).max(0.0);
            ForecastPoint {
                timestamp_ms: t,
                expected,
                lower: expected - below.hypot(spread),
                upper: expected + above.hypot(spread),
            }
        })
        .collect();
    if points.iter().any(|p| !(p.expected.is_finite() && p.lower.is_finite() && p.upper.is_finite())) {
        return Err(ModelError::NotFinite);
    }
    Ok((model, points))
}

/// MSTL with the ETS trend model when there are seasonal periods, ETS alone otherwise.
fn fit_predict(y: &[f64], periods: Vec<usize>, horizon: usize) -> Result<Forecast, ModelError> {
    let ets = AutoETS::new(1, TREND_SPEC).map_err(|e| ModelError::Fit(e.to_string()))?;
    if periods.is_empty() {
        let fitted = ets.fit(y).map_err(|e| ModelError::Fit(e.to_string()))?;
        return fitted.predict(horizon, LEVEL).map_err(|e| ModelError::Fit(e.to_string()));
    }
    let fitted = MSTLModel::new(periods, ets.into_trend_model()).fit(y).map_err(|e| ModelError::Fit(e.to_string()))?;
    fitted.predict(horizon, LEVEL).map_err(|e| ModelError::Fit(e.to_string()))
}

/// The history with each gap filled in linearly between its neighbours (a snapshot never starts or ends
/// with a gap).
fn interpolate_gaps(values: &[f64]) -> Result<Vec<f64>, ModelError> {
    let gaps = values.iter().filter(|v| v.is_nan()).count();
    if gaps as f64 > MAX_GAP_SHARE * values.len() as f64 {
        return Err(ModelError::TooSparse { gaps, len: values.len() });
    }
    let mut y = values.to_vec();
    let mut last_known: Option<usize> = None;
    for i in 0..y.len() {
        if y[i].is_nan() {
            continue;
        }
        if let Some(k) = last_known
            && i > k + 1
        {
            let (a, b) = (y[k], y[i]);
            for (j, slot) in y.iter_mut().enumerate().take(i).skip(k + 1) {
                *slot = a + (b - a) * (j - k) as f64 / (i - k) as f64;
            }
        }
        last_known = Some(i);
    }
    // Defensive: a leading or trailing gap (not produced by the history) takes its nearest value.
    let first = y.iter().copied().find(|v| !v.is_nan()).ok_or(ModelError::TooSparse { gaps, len: values.len() })?;
    let mut fill = first;
    for v in &mut y {
        if v.is_nan() {
            *v = fill;
        } else {
            fill = *v;
        }
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn snapshot(values: Vec<f64>, spread_sd: f64) -> Snapshot {
        Snapshot { values, last_bucket: 1_000_000, spread_sd }
    }

    #[test]
    fn gaps_are_interpolated_and_too_many_refused() {
        let nan = f64::NAN;
        let filled = interpolate_gaps(&[1.0, nan, nan, 4.0, 5.0, nan, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]).unwrap();
        assert_eq!(filled, (1..=12).map(f64::from).collect::<Vec<_>>());
        assert_eq!(
            interpolate_gaps(&[1.0, nan, nan, 4.0]),
            Err(ModelError::TooSparse { gaps: 2, len: 4 }),
            "half of it missing"
        );
    }

    #[test]
    fn periods_follow_the_settings_and_the_history_length() {
        let on = Seasonality::default();
        assert_eq!(periods(on, 3 * DAY), [DAY]);
        assert_eq!(periods(on, 2 * WEEK), [DAY, WEEK]);
        assert_eq!(periods(Seasonality { daily: true, weekly: false }, 3 * WEEK), [DAY]);
        assert!(periods(Seasonality { daily: false, weekly: true }, 3 * WEEK).is_empty());
    }

    #[test]
    fn too_short_or_stale_history_is_refused() {
        let s = snapshot(vec![1.0; 2 * DAY - 1], 0.0);
        let from = (s.last_bucket + 1) * BUCKET_MS;
        assert_eq!(
            forecast(&s, Seasonality::default(), from, 300_000, 12),
            Err(ModelError::TooShort { have: 2 * DAY - 1, need: 2 * DAY })
        );
        let s = snapshot((0..3 * DAY).map(|i| (i % 7) as f64).collect(), 0.0);
        let from = (s.last_bucket + 30) * BUCKET_MS;
        assert_eq!(forecast(&s, Seasonality::default(), from, 300_000, 12), Err(ModelError::Stale(30)));
    }

    /// Three weeks of hourly means with a daily cycle and a weekend dip: with two weeks or more, the weekly
    /// period is decomposed too and the forecast of a weekend day has the dip; daily alone cannot know it.
    #[test]
    fn with_two_weeks_of_history_the_weekly_pattern_is_forecast() {
        let mut rng = fastrand::Rng::with_seed(11);
        // Bucket 0 is a Monday 00:00 (hour numbers count from the Unix epoch, a Thursday: 96 hours later).
        let first = 96 + 7 * 24 * 2800;
        let truth = |b: i64| {
            let hour = b % 24;
            let weekend = (b / 24 + 3) % 7 >= 5;
            50.0 + 10.0 * (std::f64::consts::TAU * hour as f64 / 24.0).sin() - if weekend { 15.0 } else { 0.0 }
        };
        // Through Friday 23:00 of the third week: the next day is a Saturday.
        let n = 3 * WEEK - 2 * DAY;
        let values: Vec<f64> = (0..n as i64).map(|i| truth(first + i) + 0.5 * (rng.f64() - 0.5)).collect();
        let s = Snapshot { values, last_bucket: first + n as i64 - 1, spread_sd: 0.0 };
        // From the centre of the last hour, an hour apart: each point is one hour's forecast.
        let from = s.last_bucket * BUCKET_MS + BUCKET_MS / 2;
        let (model, points) = forecast(&s, Seasonality::default(), from, BUCKET_MS, 24).unwrap();
        assert_eq!(model, ForecastModel::MstlEts);
        for p in &points {
            let b = p.timestamp_ms.div_euclid(BUCKET_MS);
            assert!((p.expected - truth(b)).abs() < 2.5, "{p:?} vs {}", truth(b));
        }
        // Daily only: the Saturday is forecast like the weekdays, about 15 too high.
        let daily = Seasonality { daily: true, weekly: false };
        let (_, points) = forecast(&s, daily, from, BUCKET_MS, 24).unwrap();
        let mean_error: f64 =
            points.iter().map(|p| p.expected - truth(p.timestamp_ms.div_euclid(BUCKET_MS))).sum::<f64>() / 24.0;
        assert!(mean_error > 5.0, "daily-only error {mean_error}");
    }

    #[test]
    fn without_daily_seasonality_ets_alone_forecasts_the_level() {
        let s = snapshot((0..3 * DAY).map(|i| 20.0 + if i % 2 == 0 { 0.5 } else { -0.5 }).collect(), 0.0);
        let from = (s.last_bucket + 1) * BUCKET_MS;
        let off = Seasonality { daily: false, weekly: false };
        let (model, points) = forecast(&s, off, from, 300_000, 24).unwrap();
        assert_eq!(model, ForecastModel::Ets);
        assert!(points.iter().all(|p| (p.expected - 20.0).abs() < 1.0 && p.lower < p.expected), "{points:?}");
    }
}

//! Labelled synthetic series in NAB's format (`timestamp,value` CSV files plus a `combined_windows.json` of
//! anomaly windows), to develop and check detectors on kinds of anomaly rather than on particular files.
//!
//! Every series is a level plus daily and weekly seasonality plus Gaussian noise, sampled at a fixed
//! interval, with one kind of anomaly injected at random places past NAB's probationary 15 %. Labels follow
//! NAB's convention: each anomaly is a window centred on it, of 10 % of the series' length divided by the
//! number of anomalies. Series that must stay quiet are included too: clean seasonal noise, gaps (missing
//! samples are not anomalies) and counters with resets (a reset to zero is how Prometheus counters restart,
//! not an anomaly).

use std::time::{Duration, SystemTime};

/// What is injected into a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One sample far above the expected value.
    Spike,
    /// One sample far below.
    Dip,
    /// The level moves and stays.
    LevelShift,
    /// The slope changes from then on.
    TrendChange,
    /// The noise grows several-fold for a while.
    VarianceChange,
    /// The daily cycle shifts by a quarter of a day from then on.
    SeasonalityBreak,
    /// No anomaly: seasonal noise only (false positives are all a detector can score here).
    Clean,
    /// No anomaly: samples missing in stretches.
    Gaps,
    /// No anomaly in the rate: a counter that restarts from zero now and then.
    CounterResets,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Spike,
        Kind::Dip,
        Kind::LevelShift,
        Kind::TrendChange,
        Kind::VarianceChange,
        Kind::SeasonalityBreak,
        Kind::Clean,
        Kind::Gaps,
        Kind::CounterResets,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Spike => "spike",
            Kind::Dip => "dip",
            Kind::LevelShift => "level_shift",
            Kind::TrendChange => "trend_change",
            Kind::VarianceChange => "variance_change",
            Kind::SeasonalityBreak => "seasonality_break",
            Kind::Clean => "clean",
            Kind::Gaps => "gaps",
            Kind::CounterResets => "counter_resets",
        }
    }

    fn anomalies(self) -> usize {
        match self {
            Kind::Spike | Kind::Dip => 3,
            Kind::LevelShift | Kind::TrendChange | Kind::SeasonalityBreak => 1,
            Kind::VarianceChange => 2,
            Kind::Clean | Kind::Gaps | Kind::CounterResets => 0,
        }
    }
}

/// How a series is shaped.
#[derive(Debug, Clone)]
pub struct Shape {
    pub start: SystemTime,
    pub interval: Duration,
    pub points: usize,
    pub level: f64,
    /// Amplitudes of the daily and weekly cycles, as fractions of the level.
    pub daily: f64,
    pub weekly: f64,
    /// Noise standard deviation, as a fraction of the level.
    pub noise: f64,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            // 2024-01-01T00:00:00Z.
            start: SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200),
            interval: Duration::from_secs(300),
            points: 4032, // 14 days
            level: 100.0,
            daily: 0.3,
            weekly: 0.1,
            noise: 0.03,
        }
    }
}

/// One generated series.
#[derive(Debug, Clone)]
pub struct Series {
    pub kind: Kind,
    /// `(unix seconds, value)`, in time order (with holes for [`Kind::Gaps`]).
    pub samples: Vec<(u64, f64)>,
    /// Anomaly windows, `[start, end]` in unix seconds, inclusive.
    pub windows: Vec<(u64, u64)>,
    /// The sample index each anomaly starts at.
    pub anomaly_at: Vec<usize>,
}

/// Box–Muller: one standard normal draw.
fn gaussian(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Generates one series of `kind` from `seed` (the same seed gives the same series).
pub fn generate(kind: Kind, shape: &Shape, seed: u64) -> Series {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = shape.points.max(100);
    let step = shape.interval.as_secs().max(1);
    let start = shape.start.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let day = 86_400.0 / step as f64;
    let probation = n * 15 / 100;
    // Anomalies spread over the scored part, apart from each other and from the end.
    let k = kind.anomalies();
    let mut anomaly_at: Vec<usize> = (0..k)
        .map(|i| {
            let span = (n - probation - n / 20) / k.max(1);
            probation + i * span + span / 4 + rng.usize(0..(span / 2).max(1))
        })
        .collect();
    anomaly_at.sort_unstable();
    let scale = shape.level;
    let mut counter = 0.0;
    let mut samples = Vec::with_capacity(n);
    for t in 0..n {
        let phase_shift = match kind {
            Kind::SeasonalityBreak if anomaly_at.first().is_some_and(|&a| t >= a) => day / 4.0,
            _ => 0.0,
        };
        let tf = t as f64 + phase_shift;
        let mut noise = shape.noise * scale * gaussian(&mut rng);
        let mut value = scale
            + shape.daily * scale * (std::f64::consts::TAU * tf / day).sin()
            + shape.weekly * scale * (std::f64::consts::TAU * t as f64 / (7.0 * day)).sin();
        for &a in &anomaly_at {
            match kind {
                Kind::Spike if t == a => value += 8.0 * shape.noise * scale + 0.5 * scale,
                Kind::Dip if t == a => value -= 8.0 * shape.noise * scale + 0.5 * scale,
                Kind::LevelShift if t >= a => value += 0.6 * scale,
                Kind::TrendChange if t >= a => value += 0.004 * scale * (t - a) as f64,
                Kind::VarianceChange if t >= a && t < a + (day as usize / 4).max(5) => noise *= 6.0,
                _ => {}
            }
        }
        value += noise;
        let ts = start + t as u64 * step;
        match kind {
            // Holes of one to three hours, a few per week; nothing is labelled.
            Kind::Gaps if t > probation && (t / 288) % 3 == 1 && t % 288 < 12 + (t / 288) % 24 => continue,
            Kind::CounterResets => {
                // The counter counts `value` per interval; it restarts every 2.5 days on average.
                if rng.usize(0..(day as usize * 5 / 2).max(2)) == 0 {
                    counter = 0.0;
                }
                counter += value.max(0.0);
                samples.push((ts, counter.round()));
            }
            _ => samples.push((ts, value)),
        }
    }
    let width = (n / 10).checked_div(k).map_or(0, |w| w.max(1));
    let windows = anomaly_at
        .iter()
        .map(|&a| {
            let from = a.saturating_sub(width / 2);
            let to = (a + width / 2).min(n - 1);
            (start + from as u64 * step, start + to as u64 * step)
        })
        .collect();
    Series { kind, samples, windows, anomaly_at }
}

/// NAB's timestamp form, `2024-01-01 00:05:00` (UTC).
pub fn nab_time(unix: u64) -> String {
    let rfc = humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(unix)).to_string();
    rfc.trim_end_matches('Z').replacen('T', " ", 1)
}

/// The CSV file of a series.
pub fn csv(series: &Series) -> String {
    let mut out = String::from("timestamp,value\n");
    for (t, v) in &series.samples {
        out.push_str(&format!("{},{}\n", nab_time(*t), round(*v)));
    }
    out
}

/// Six significant decimals are plenty and keep committed samples small.
fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// NAB's window list for a series: `[["2024-01-05 10:00:00.000000", "…"], …]`.
pub fn windows_json(series: &Series) -> serde_json::Value {
    serde_json::Value::Array(
        series
            .windows
            .iter()
            .map(|(a, b)| serde_json::json!([format!("{}.000000", nab_time(*a)), format!("{}.000000", nab_time(*b))]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_series_and_windows_hold_the_anomalies() {
        let shape = Shape::default();
        for kind in Kind::ALL {
            let a = generate(kind, &shape, 7);
            let b = generate(kind, &shape, 7);
            assert_eq!(csv(&a), csv(&b), "{kind:?}");
            assert_eq!(a.windows.len(), kind.anomalies());
            let probation_end = a.samples[0].0 + (shape.points as u64 * 15 / 100) * 300;
            for (&at, &(from, to)) in a.anomaly_at.iter().zip(&a.windows) {
                let ts = a.samples[0].0 + at as u64 * 300;
                assert!(from <= ts && ts <= to, "{kind:?}: anomaly at {ts} outside [{from}, {to}]");
                assert!(ts > probation_end, "{kind:?}: anomalies are scored, not in the probation");
            }
        }
    }

    #[test]
    fn a_spike_stands_out_and_clean_series_do_not() {
        let shape = Shape::default();
        let spike = generate(Kind::Spike, &shape, 1);
        let at = spike.anomaly_at[0];
        let around: f64 = (at - 5..at).map(|i| spike.samples[i].1).sum::<f64>() / 5.0;
        assert!(spike.samples[at].1 - around > 40.0, "{} vs {around}", spike.samples[at].1);
        let gaps = generate(Kind::Gaps, &shape, 1);
        assert!(gaps.samples.len() < shape.points, "gaps remove samples");
        assert!(gaps.samples.windows(2).all(|w| w[0].0 < w[1].0));
        let counter = generate(Kind::CounterResets, &shape, 1);
        let resets = counter.samples.windows(2).filter(|w| w[1].1 < w[0].1).count();
        assert!(resets >= 2, "{resets} resets");
    }

    #[test]
    fn times_are_written_as_nab_writes_them() {
        assert_eq!(nab_time(1_704_067_500), "2024-01-01 00:05:00");
        let s = generate(Kind::LevelShift, &Shape::default(), 3);
        let w = windows_json(&s);
        assert!(w[0][0].as_str().is_some_and(|t| t.ends_with(".000000") && t.starts_with("2024-01-")), "{w}");
    }
}

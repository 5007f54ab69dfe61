//! Seasonal baselines: a daily profile (96 quarter-hour buckets) of the series' values, and a weekly
//! correction to it (168 hour buckets), learnt by exponential smoothing per bucket.
//!
//! This is the streaming counterpart of a seasonal decomposition: O(1) per sample and about 1 KiB per series,
//! where MSTL needs the whole history (the forecast, `SeriesDetector::forecast`, builds on the same profile).
//! The daily profile holds absolute values, so what is learnt one day does not depend on a level that was
//! still settling; a shifted level is re-learnt within a few periods. It is only
//! trusted once it has seen a whole day and explains the series clearly better than a plain level, both
//! lately and over the last few days ([`Seasonal::fits`], with hysteresis).

const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;
pub(crate) const DAILY_BUCKETS: usize = 96;
pub(crate) const WEEKLY_BUCKETS: usize = 168;
const NOISE_BUCKETS: usize = 24;
/// How far the residual scale of one hour may sit above the profile's overall residual scale. Never below:
/// on evenly noisy series the hourly estimates scatter, and the quieter-looking hours then raised false
/// alarms (−4 to −10 points on synthetic sets).
const NOISE_RANGE: (f64, f64) = (1.0, 3.0);
/// Weight one period's samples of a bucket get together: the profile follows a changed pattern in a few
/// periods, and one odd day moves it by a quarter.
const PERIOD_WEIGHT: f64 = 0.25;
const CLIP: f64 = 3.0;
const SIGMA_PER_MAD: f64 = 1.253;
/// Residual scale (as a fraction of the plain level's) under which the profile is trusted, and over which
/// it stops being trusted.
const FITS_BELOW: f64 = 0.6;
const FAILS_ABOVE: f64 = 0.85;
/// The settled residuals learn at this fraction of the recent ones' pace (about three days of memory at
/// 5-minute samples, five at hourly ones), and as a plain running mean over the profile's life while that is
/// shorter; its first day, before the profile can be read, counts as no better than the plain level. The
/// profile is trusted only when both are under `FITS_BELOW`: judged on the last half day alone, a borderline
/// daily pattern was trusted and dropped again and again, and each drop was reported as a broken pattern
/// (22 times on NAB's hourly ambient temperature series; ablation in `benches/README.md`).
const SETTLED_PACE: f64 = 0.15;

#[derive(Debug, Clone)]
pub(crate) struct Seasonal {
    daily: [f32; DAILY_BUCKETS],
    weekly: [f32; WEEKLY_BUCKETS],
    /// Sum and count of the filled daily buckets: their mean is the level the offsets are taken from.
    daily_sum: f64,
    /// At most `DAILY_BUCKETS`: a u16 packs beside `n` and the flags (the state budget is 2 KiB).
    daily_filled: u16,
    /// A plain level over about a day, the reference the profile must beat.
    base: f64,
    /// Mean absolute residual of the profile and of the plain level.
    mad: f64,
    base_mad: f64,
    /// The same over a longer memory (`SETTLED_PACE`).
    /// f32: the two f64 would have taken the state over its 2 KiB budget.
    settled_mad: f32,
    settled_base_mad: f32,
    first_ms: i64,
    n: u32,
    fitting: bool,
    /// Mean absolute residuals of the profile read stepwise and interpolated.
    step_mad: f64,
    interp_mad: f64,
    /// Mean absolute residual of the profile by hour of the day: many series are noisier by day.
    noise: [f32; NOISE_BUCKETS],
    noise_weight: f64,
    /// `seasonality.weekly` of the series' settings.
    weekly_enabled: bool,
    /// Per-sample smoothing weights for the usual interval they were computed for.
    weights_for: f64,
    daily_weight: f64,
    weekly_weight: f64,
}

/// Where a timestamp falls in the two profiles and the hourly noise profile.
#[derive(Debug, Clone, Copy)]
struct Buckets {
    day: usize,
    week: usize,
    hour: usize,
}

impl Buckets {
    fn of(timestamp_ms: i64) -> Self {
        let in_day = timestamp_ms.rem_euclid(DAY_MS);
        let in_week = timestamp_ms.rem_euclid(WEEK_MS);
        Self {
            day: (in_day / (DAY_MS / DAILY_BUCKETS as i64)) as usize % DAILY_BUCKETS,
            week: (in_week / (WEEK_MS / WEEKLY_BUCKETS as i64)) as usize % WEEKLY_BUCKETS,
            hour: (in_day / (DAY_MS / NOISE_BUCKETS as i64)) as usize % NOISE_BUCKETS,
        }
    }
}

/// The profile at one moment, read two ways: ramps are followed by interpolating between bucket centres,
/// square waves by reading the bucket alone.
#[derive(Debug, Clone, Copy)]
struct Readings {
    stepwise: f64,
    interpolated: f64,
}

impl Seasonal {
    /// A profile starting at `x`; `weekly` says whether the weekly correction is used.
    pub(crate) fn new(x: f64, timestamp_ms: i64, weekly: bool) -> Self {
        Self {
            daily: [f32::NAN; DAILY_BUCKETS],
            weekly: [f32::NAN; WEEKLY_BUCKETS],
            daily_sum: 0.0,
            daily_filled: 0,
            base: x,
            mad: 0.0,
            base_mad: 0.0,
            settled_mad: 0.0,
            settled_base_mad: 0.0,
            first_ms: timestamp_ms,
            n: 1,
            fitting: false,
            step_mad: 0.0,
            interp_mad: 0.0,
            noise: [f32::NAN; NOISE_BUCKETS],
            noise_weight: 0.0,
            weekly_enabled: weekly,
            weights_for: 0.0,
            daily_weight: 0.0,
            weekly_weight: 0.0,
        }
    }

    fn weekly_on(&self, now_ms: i64) -> bool {
        self.weekly_enabled && now_ms - self.first_ms >= WEEK_MS + DAY_MS
    }

    /// The profile's prediction at `timestamp_ms`, once it has a full day behind it.
    pub(crate) fn expected(&self, timestamp_ms: i64) -> Option<f64> {
        self.readings(timestamp_ms).map(|r| self.choose(r))
    }

    /// Of the profile's two readings, the one that has been closer to the series.
    fn choose(&self, r: Readings) -> f64 {
        if self.interp_mad < self.step_mad { r.interpolated } else { r.stepwise }
    }

    /// The profile at `timestamp_ms` read stepwise and interpolated, once it has a full day behind it.
    fn readings(&self, timestamp_ms: i64) -> Option<Readings> {
        if timestamp_ms - self.first_ms < DAY_MS {
            return None;
        }
        let b = Buckets::of(timestamp_ms);
        let d = self.daily[b.day];
        if d.is_nan() {
            return None;
        }
        // Between bucket centres the profile is interpolated: a ramp inside a bucket is not a deviation.
        let bucket_ms = DAY_MS / DAILY_BUCKETS as i64;
        let pos = (timestamp_ms.rem_euclid(bucket_ms) as f64 / bucket_ms as f64) - 0.5;
        let other = if pos >= 0.0 { (b.day + 1) % DAILY_BUCKETS } else { (b.day + DAILY_BUCKETS - 1) % DAILY_BUCKETS };
        let o = self.daily[other];
        let d = f64::from(d);
        let between = if o.is_nan() { d } else { d + pos.abs() * (f64::from(o) - d) };
        let w = self.weekly[b.week];
        let weekly = if self.weekly_on(timestamp_ms) && !w.is_nan() { f64::from(w) } else { 0.0 };
        Some(Readings { stepwise: d + weekly, interpolated: between + weekly })
    }

    /// The profile's offset from its mean at `timestamp_ms`: what deseasonalising subtracts.
    pub(crate) fn offset(&self, timestamp_ms: i64) -> Option<f64> {
        let mean = self.daily_sum / f64::from(self.daily_filled.max(1));
        self.expected(timestamp_ms).map(|e| e - mean)
    }

    /// How much noisier than usual the profile's residuals are at this hour of the day (1 when unknown).
    pub(crate) fn noise_factor(&self, timestamp_ms: i64) -> f64 {
        let n = self.noise[Buckets::of(timestamp_ms).hour];
        if n.is_nan() || self.mad <= 0.0 {
            return 1.0;
        }
        (f64::from(n) / self.mad).clamp(NOISE_RANGE.0, NOISE_RANGE.1)
    }

    pub(crate) fn sigma(&self, floor: f64) -> f64 {
        (self.mad * SIGMA_PER_MAD).max(floor)
    }

    /// The profile explains the series: its residuals are well under those of a plain level.
    pub(crate) fn fits(&self) -> bool {
        self.fitting
    }

    /// Learns `x` at `timestamp_ms`; `interval_ms` is the series' usual sample interval.
    pub(crate) fn update(&mut self, x: f64, timestamp_ms: i64, interval_ms: f64, floor: f64) {
        let interval = interval_ms.max(1.0);
        self.n = self.n.saturating_add(1);
        let slow = (interval / DAY_MS as f64 * 2.0).min(0.05);
        let rb = (x - self.base).abs();
        let b = Buckets::of(timestamp_ms);
        match self.readings(timestamp_ms) {
            Some(readings) => {
                self.step_mad += slow * ((x - readings.stepwise).abs() - self.step_mad);
                self.interp_mad += slow * ((x - readings.interpolated).abs() - self.interp_mad);
                let expected = self.choose(readings);
                let s = self.sigma(floor);
                let r = (x - expected).abs().min(CLIP * s * NOISE_RANGE.1);
                let n = &mut self.noise[b.hour];
                *n = if n.is_nan() {
                    r as f32
                } else {
                    (f64::from(*n) + self.noise_weight * (r - f64::from(*n))) as f32
                };
                let residual = (x - expected).abs().min(CLIP * s);
                self.mad += slow * (residual - self.mad);
                self.base_mad += slow * (rb - self.base_mad);
                let settled = (slow * SETTLED_PACE).max(1.0 / f64::from(self.n));
                self.settled_mad += (settled * (residual - f64::from(self.settled_mad))) as f32;
                self.settled_base_mad += (settled * (rb - f64::from(self.settled_base_mad))) as f32;
                let ratio = self.mad / self.base_mad.max(f64::MIN_POSITIVE);
                let settled_ratio =
                    f64::from(self.settled_mad) / f64::from(self.settled_base_mad).max(f64::MIN_POSITIVE);
                // Dropped as soon as it fails lately (the pattern broke); trusted only once it has fitted for days.
                if self.fitting && ratio > FAILS_ABOVE {
                    self.fitting = false;
                } else if !self.fitting
                    && ratio.max(settled_ratio) < FITS_BELOW
                    && timestamp_ms - self.first_ms >= DAY_MS + DAY_MS / 4
                {
                    self.fitting = true;
                }
            }
            None => {
                self.base_mad += slow.max(1.0 / f64::from(self.n)) * (rb - self.base_mad);
                self.mad = self.base_mad;
                self.settled_base_mad = self.base_mad as f32;
                self.settled_mad = self.base_mad as f32;
            }
        }
        self.base += (interval / DAY_MS as f64).max(1.0 / f64::from(self.n)) * (x - self.base);
        if self.weights_for != interval {
            self.weights_for = interval;
            self.daily_weight = per_sample_weight(interval, DAY_MS as f64 / DAILY_BUCKETS as f64);
            self.weekly_weight = per_sample_weight(interval, WEEK_MS as f64 / WEEKLY_BUCKETS as f64);
            self.noise_weight = per_sample_weight(interval, DAY_MS as f64 / NOISE_BUCKETS as f64) / 2.0;
        }
        let d = &mut self.daily[b.day];
        let old = *d;
        *d = if old.is_nan() { x as f32 } else { (f64::from(old) + self.daily_weight * (x - f64::from(old))) as f32 };
        if old.is_nan() {
            self.daily_filled += 1;
            self.daily_sum += f64::from(*d);
        } else {
            self.daily_sum += f64::from(*d) - f64::from(old);
        }
        let daily_now = f64::from(*d);
        // The weekly correction learns what the daily profile misses on this day of the week; it is only
        // meaningful once the daily profile has settled, and only used after a week.
        if timestamp_ms - self.first_ms >= DAY_MS {
            let target = x - daily_now;
            let w = &mut self.weekly[b.week];
            *w = if w.is_nan() {
                target as f32
            } else {
                (f64::from(*w) + self.weekly_weight * (target - f64::from(*w))) as f32
            };
        }
    }
}

/// The per-sample smoothing weight so that one period's samples in a bucket (`bucket_ms / interval` of
/// them) weigh `PERIOD_WEIGHT` together.
fn per_sample_weight(interval_ms: f64, bucket_ms: f64) -> f64 {
    let samples = (bucket_ms / interval_ms).max(1.0);
    1.0 - (1.0 - PERIOD_WEIGHT).powf(1.0 / samples)
}

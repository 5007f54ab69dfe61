//! The forecast's memory of one series: hourly means over the last week, 16 bits each.
//!
//! The engine feeds every scored sample to [`History::observe`] (O(1), no allocation once the ring
//! exists); the forecast reads a [`Snapshot`] of it. A bucket's mean is stored as a 16-bit code on an affine
//! scale shared by the ring (`lo + code · step`), re-fitted to the ring's own range whenever a new mean
//! falls outside it: 1/65 534 of the range is far below any series' hour-to-hour noise, at a quarter of the
//! bytes of `f64`. Hours without a sample are kept as gaps (filled in by interpolation when fitting), so the
//! ring's positions stay evenly spaced in time, as MSTL needs.
//!
//! Counters are kept as their per-second rate, as the detector scores them: a series that only rose
//! during its first `min_history` samples is one (the detector's rule; it does not say which it decided),
//! and a drop is a reset.

use crate::settings::Settings;

/// One bucket: an hour. The daily period is then 24 buckets; finer buckets would buy detail the forecast's
/// horizons (hours to days) do not need, at the cost of days of history.
pub(crate) const BUCKET_MS: i64 = 3_600_000;
/// Buckets kept: one week. With the detector's state this keeps a series under 2 KiB.
pub(crate) const CAPACITY: usize = 168;
/// The code of an hour without a sample.
const MISSING: u16 = u16::MAX;
/// Largest code of a value: codes `0..=LEVELS` span the scale.
const LEVELS: f64 = 65_534.0;
/// Buckets whose within-hour spread the pooled spread remembers (about two days).
const SPREAD_MEMORY: f64 = 48.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The first `min_history` samples: has every step so far been ≥ 0, and has any been > 0?
    Warming {
        seen: u32,
        monotonic: bool,
        rose: bool,
    },
    Gauge,
    Counter,
}

/// Per-series state: the hour being filled (inline) and the ring of closed hours (allocated when the first
/// hour closes, so series that live less than an hour do not pay for it).
#[derive(Debug, Clone)]
pub(crate) struct History {
    kind: Kind,
    last_ms: i64,
    last_raw: f64,
    /// The open hour: its number (`timestamp / BUCKET_MS`), and the running mean and sum of squared
    /// deviations (Welford) of its `open_n` samples.
    open_bucket: i64,
    open_mean: f64,
    open_m2: f64,
    open_n: u32,
    ring: Option<Box<Ring>>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            kind: Kind::Warming { seen: 0, monotonic: true, rose: false },
            last_ms: i64::MIN,
            last_raw: 0.0,
            open_bucket: 0,
            open_mean: 0.0,
            open_m2: 0.0,
            open_n: 0,
            ring: None,
        }
    }
}

/// The closed hours, oldest first from `start`, wrapping.
#[derive(Debug, Clone)]
struct Ring {
    codes: [u16; CAPACITY],
    start: u16,
    len: u16,
    /// Hour number of the newest code.
    last_bucket: i64,
    lo: f64,
    step: f64,
    /// Pooled variance of samples around their hour's mean, over hours with two samples or more.
    spread_var: f64,
    spread_n: u32,
}

/// What the forecast fits: the ring decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    /// Hourly means, oldest first; `NaN` for an hour without a sample. Never starts or ends with one.
    pub(crate) values: Vec<f64>,
    /// Hour number of the last value.
    pub(crate) last_bucket: i64,
    /// Standard deviation of one sample around its hour's mean: what a sample adds to the uncertainty of
    /// its hour's forecast mean.
    pub(crate) spread_sd: f64,
}

impl History {
    /// The series was found to be a counter: its hours are kept as per-second rates.
    #[cfg(test)]
    pub(crate) fn is_counter(&self) -> bool {
        self.kind == Kind::Counter
    }

    /// Heap bytes held (the ring), besides `size_of::<History>()`.
    #[cfg(test)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ring.as_ref().map_or(0, |_| size_of::<Ring>())
    }

    /// Takes a sample in time order (the engine has already dropped out-of-order and non-finite ones).
    pub(crate) fn observe(&mut self, settings: &Settings, timestamp_ms: i64, raw: f64) {
        if !raw.is_finite() || timestamp_ms <= self.last_ms {
            return;
        }
        let first = self.last_ms == i64::MIN;
        let (prev_ms, prev_raw) = (self.last_ms, self.last_raw);
        self.last_ms = timestamp_ms;
        self.last_raw = raw;
        match self.kind {
            Kind::Warming { seen, monotonic, rose } => {
                let (monotonic, rose) =
                    if first { (true, false) } else { (monotonic && raw >= prev_raw, rose || raw > prev_raw) };
                let seen = seen.saturating_add(1);
                self.add(timestamp_ms, raw);
                if seen >= settings.min_history {
                    if monotonic && rose {
                        // A counter: what was kept are raw totals, not rates. Start again on rates.
                        self.kind = Kind::Counter;
                        self.open_n = 0;
                        self.ring = None;
                    } else {
                        self.kind = Kind::Gauge;
                    }
                } else {
                    self.kind = Kind::Warming { seen, monotonic, rose };
                }
            }
            Kind::Gauge => self.add(timestamp_ms, raw),
            Kind::Counter => {
                let increase = if raw >= prev_raw { raw - prev_raw } else { raw };
                let rate = increase / ((timestamp_ms - prev_ms) as f64 / 1000.0);
                self.add(timestamp_ms, rate);
            }
        }
    }

    fn add(&mut self, timestamp_ms: i64, x: f64) {
        let bucket = timestamp_ms.div_euclid(BUCKET_MS);
        if self.open_n > 0 && bucket != self.open_bucket {
            self.close();
        }
        if self.open_n == 0 {
            self.open_bucket = bucket;
            self.open_mean = 0.0;
            self.open_m2 = 0.0;
        }
        self.open_n += 1;
        let d = x - self.open_mean;
        self.open_mean += d / f64::from(self.open_n);
        self.open_m2 += d * (x - self.open_mean);
    }

    fn close(&mut self) {
        let var = (self.open_n >= 2).then(|| self.open_m2 / f64::from(self.open_n - 1));
        let (bucket, mean) = (self.open_bucket, self.open_mean);
        self.open_n = 0;
        self.ring.get_or_insert_with(|| Box::new(Ring::new())).push(bucket, mean, var);
    }

    /// The closed hours, or `None` before the first hour has closed.
    pub(crate) fn snapshot(&self) -> Option<Snapshot> {
        let ring = self.ring.as_deref()?;
        if ring.len == 0 {
            return None;
        }
        Some(Snapshot {
            values: ring.iter().collect(),
            last_bucket: ring.last_bucket,
            spread_sd: ring.spread_var.max(0.0).sqrt(),
        })
    }
}

impl Ring {
    fn new() -> Self {
        Self {
            codes: [MISSING; CAPACITY],
            start: 0,
            len: 0,
            last_bucket: 0,
            lo: 0.0,
            step: 0.0,
            spread_var: 0.0,
            spread_n: 0,
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        self.len = 0;
    }

    fn decode(&self, code: u16) -> f64 {
        if code == MISSING { f64::NAN } else { self.lo + f64::from(code) * self.step }
    }

    /// The means, oldest first (`NaN` for a gap).
    fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        (0..usize::from(self.len)).map(|i| self.decode(self.codes[(usize::from(self.start) + i) % CAPACITY]))
    }

    fn push_code(&mut self, code: u16) {
        let end = (usize::from(self.start) + usize::from(self.len)) % CAPACITY;
        self.codes[end] = code;
        if usize::from(self.len) == CAPACITY {
            self.start = ((usize::from(self.start) + 1) % CAPACITY) as u16;
        } else {
            self.len += 1;
        }
    }

    /// Appends the mean of hour `bucket` (after the newest one), with the hours between as gaps.
    fn push(&mut self, bucket: i64, mean: f64, var: Option<f64>) {
        if self.len > 0 {
            let gap = bucket - self.last_bucket - 1;
            if gap >= CAPACITY as i64 || gap < 0 {
                // Nothing kept is within a week of it (or the clock went back): start again.
                self.clear();
            } else {
                for _ in 0..gap {
                    self.push_code(MISSING);
                }
            }
        }
        let code = self.encode(mean);
        self.push_code(code);
        self.last_bucket = bucket;
        if let Some(v) = var.filter(|v| v.is_finite()) {
            self.spread_n = self.spread_n.saturating_add(1);
            let w = (1.0 / f64::from(self.spread_n)).max(1.0 / SPREAD_MEMORY);
            self.spread_var += w * (v - self.spread_var);
        }
    }

    /// The code of `x`, re-fitting the scale first when `x` is outside it. A value the scale cannot hold
    /// (a range beyond `f64`) is kept as a gap.
    fn encode(&mut self, x: f64) -> u16 {
        let hi = self.lo + LEVELS * self.step;
        let empty = self.iter().all(f64::is_nan);
        if empty || !(self.lo..=hi).contains(&x) {
            self.rescale(x);
        }
        let code = ((x - self.lo) / self.step).round();
        if code.is_finite() && (0.0..=LEVELS).contains(&code) { code as u16 } else { MISSING }
    }

    /// A new scale over the kept means and `x`, with a quarter of their range spare on each side (so a
    /// slowly rising series does not re-fit every hour); the kept codes are re-encoded on it.
    fn rescale(&mut self, x: f64) {
        let kept: Vec<f64> = self.iter().collect();
        let (min, max) = kept.iter().filter(|v| !v.is_nan()).fold((x, x), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let magnitude = min.abs().max(max.abs());
        // A flat series still needs a scale: a millionth of its magnitude (or a tiny absolute one at 0).
        let margin = (0.25 * (max - min)).max(1e-6 * magnitude).max(1e-12);
        let (lo, step) = (min - margin, (max - min + 2.0 * margin) / LEVELS);
        if !(lo.is_finite() && step.is_finite() && step > 0.0) {
            return;
        }
        self.lo = lo;
        self.step = step;
        let (start, len) = (usize::from(self.start), usize::from(self.len));
        for (i, v) in kept.into_iter().enumerate() {
            let code = if v.is_nan() { MISSING } else { ((v - lo) / step).round().clamp(0.0, LEVELS) as u16 };
            self.codes[(start + i) % CAPACITY] = code;
        }
        debug_assert_eq!(len, usize::from(self.len));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const START: i64 = 1_704_067_200_000;
    const FIVE_MIN: i64 = 300_000;

    fn gauge() -> Settings {
        Settings { min_history: 1, ..Settings::default() }
    }

    /// One sample per hour, at 10 minutes past, `value(hour)`.
    fn hourly(h: &mut History, hours: std::ops::Range<i64>, value: impl Fn(i64) -> f64) {
        let s = gauge();
        for hour in hours {
            h.observe(&s, START + hour * BUCKET_MS + 600_000, value(hour));
        }
    }

    #[test]
    fn the_state_is_compact() {
        // Part of the engine's 2 KiB per series (`engine/tests.rs` checks the whole): inline, and the ring.
        assert!(size_of::<History>() <= 64, "{}", size_of::<History>());
        assert!(size_of::<Ring>() <= 2 * CAPACITY + 48, "{}", size_of::<Ring>());
    }

    #[test]
    fn hourly_means_and_the_spread_within_an_hour() {
        let mut h = History::default();
        let s = gauge();
        // Hour 0: 1, 2, 3 (mean 2, variance 1); hour 1: 10, 14 (mean 12, variance 8); hour 2 still open.
        for (ms, v) in [(0, 1.0), (FIVE_MIN, 2.0), (2 * FIVE_MIN, 3.0), (BUCKET_MS, 10.0), (BUCKET_MS + 1, 14.0)] {
            h.observe(&s, START + ms, v);
        }
        h.observe(&s, START + 2 * BUCKET_MS, 99.0);
        let snap = h.snapshot().unwrap();
        assert_eq!(snap.values.len(), 2);
        assert!((snap.values[0] - 2.0).abs() < 1e-3 && (snap.values[1] - 12.0).abs() < 1e-3, "{snap:?}");
        assert_eq!(snap.last_bucket, START / BUCKET_MS + 1);
        // The pooled variance: 1, then halfway to 8 (second hour of two).
        assert!((snap.spread_sd - 4.5f64.sqrt()).abs() < 1e-9, "{snap:?}");
        assert!(!h.is_counter());
    }

    #[test]
    fn the_ring_wraps_keeping_the_newest_week_in_order() {
        let mut h = History::default();
        let n = CAPACITY as i64 * 2 + 37;
        hourly(&mut h, 0..n + 1, |hour| hour as f64);
        let snap = h.snapshot().unwrap();
        assert_eq!(snap.values.len(), CAPACITY);
        assert_eq!(snap.last_bucket, START / BUCKET_MS + n - 1);
        // Re-fits as the series rose rounded each kept value again: within two of the final scale's steps.
        let step = h.ring.as_ref().unwrap().step;
        assert!(step < 1.0, "{step}");
        for (i, v) in snap.values.iter().enumerate() {
            let want = (n - CAPACITY as i64 + i as i64) as f64;
            assert!((v - want).abs() <= 2.0 * step, "position {i}: {v} for {want}");
        }
    }

    #[test]
    fn hours_without_samples_are_gaps_and_a_long_silence_starts_over() {
        let mut h = History::default();
        let s = gauge();
        hourly(&mut h, 0..3, |_| 5.0);
        // Nothing in hours 3..=5, then hours 6 and 7 (7 stays open).
        hourly(&mut h, 6..8, |_| 7.0);
        let v = h.snapshot().unwrap().values;
        assert_eq!(v.len(), 7);
        assert!(v[3..6].iter().all(|x| x.is_nan()) && v[..3].iter().chain(&v[6..]).all(|x| !x.is_nan()), "{v:?}");
        // Eight days of silence: the week kept is all older than a week, so it is dropped.
        h.observe(&s, START + (8 + 8 * 24) * BUCKET_MS, 1.0);
        h.observe(&s, START + (9 + 8 * 24) * BUCKET_MS, 1.0);
        let snap = h.snapshot().unwrap();
        assert_eq!(snap.values.len(), 1, "{snap:?}");
        assert!((snap.values[0] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn the_scale_refits_without_losing_what_was_kept() {
        let mut h = History::default();
        // Small values first, then a level 1000 times larger, then a negative excursion.
        let value = |hour: i64| match hour {
            0..24 => 1.0 + 0.01 * hour as f64,
            24..48 => 1000.0 + hour as f64,
            _ => -500.0,
        };
        hourly(&mut h, 0..51, value);
        let snap = h.snapshot().unwrap();
        let range = 1047.0 + 500.0;
        for (hour, v) in snap.values.iter().enumerate() {
            let want = value(hour as i64);
            // Each re-fit rounds once more: a few steps of the widest scale at most.
            assert!((v - want).abs() <= 4.0 * range * 1.5 / LEVELS, "hour {hour}: {v} for {want}");
        }
        // The small values kept their resolution until the big ones came: still ordered.
        assert!(snap.values[..24].windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_flat_series_is_kept_exactly_enough() {
        let mut h = History::default();
        hourly(&mut h, 0..31, |_| 0.0);
        let v = h.snapshot().unwrap().values;
        assert!(v.len() == 30 && v.iter().all(|x| x.abs() < 1e-9), "{v:?}");
        // Then a step: the scale re-fits to [0, 42.5], and both levels are within half a step of it.
        hourly(&mut h, 31..40, |_| 42.5);
        let v = h.snapshot().unwrap().values;
        let half_step = 0.5 * h.ring.as_ref().unwrap().step;
        assert!(half_step < 1e-3);
        assert!(v[..31].iter().all(|x| x.abs() <= half_step) && v[31..].iter().all(|x| (x - 42.5).abs() <= half_step));
    }

    #[test]
    fn counters_are_kept_as_rates_with_resets() {
        let mut h = History::default();
        let s = Settings::default();
        // 10 per second, sampled every 15 s; reset to 0 after two hours.
        let mut total = 0.0;
        for i in 0..(4 * 240) {
            total = if i == 2 * 240 { 150.0 } else { total + 150.0 };
            h.observe(&s, START + i * 15_000, total);
        }
        let snap = h.snapshot().unwrap();
        assert!(h.is_counter());
        assert_eq!(snap.values.len(), 3);
        // The reset's sample is read as 150 counted since zero: its rate is 10/s like the rest.
        assert!(snap.values.iter().all(|r| (r - 10.0).abs() < 1e-3), "{snap:?}");
        // A gauge that happens to rise for a while is not a counter.
        let mut g = History::default();
        for i in 0..(3 * 240) {
            g.observe(&s, START + i * 15_000, if i % 20 == 19 { 0.0 } else { i as f64 });
        }
        assert!(g.snapshot().is_some() && !g.is_counter());
    }
}

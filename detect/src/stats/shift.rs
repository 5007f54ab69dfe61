//! Level shifts: a two-sided CUSUM (Page 1954) over standardised residuals.
//!
//! Small deviations that persist on one side add up until they cross `H`; isolated ones decay by the
//! allowance `K` per sample. When a side crosses, the mean of the samples since it started climbing is the
//! new level — which the robust level then adopts, so it recovers from a shift at once instead of creeping.

/// Allowance per sample, in σ: shifts smaller than about 2 K are not chased.
const K: f64 = 0.75;
/// Decision interval, in σ.
pub(crate) const H: f64 = 10.0;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Cusum {
    up: f64,
    down: f64,
    up_sum: f64,
    up_n: u32,
    down_sum: f64,
    down_n: u32,
}

/// What one sample did to the CUSUM.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShiftStep {
    /// The larger side's statistic, signed (+ up, − down), in units of `H`.
    pub(crate) signed: f64,
    /// A side crossed `H`: the new level.
    pub(crate) new_level: Option<f64>,
}

impl Cusum {
    /// Adds a sample `x` whose standardised residual against the current level is `z`.
    pub(crate) fn step(&mut self, x: f64, z: f64) -> ShiftStep {
        // Clip single samples so one huge spike is a spike, not a shift.
        let z = z.clamp(-2.0 * H / 3.0, 2.0 * H / 3.0);
        self.up = (self.up + z - K).max(0.0);
        if self.up > 0.0 {
            self.up_sum += x;
            self.up_n += 1;
        } else {
            self.up_sum = 0.0;
            self.up_n = 0;
        }
        self.down = (self.down - z - K).max(0.0);
        if self.down > 0.0 {
            self.down_sum += x;
            self.down_n += 1;
        } else {
            self.down_sum = 0.0;
            self.down_n = 0;
        }
        let signed = if self.up >= self.down { self.up / H } else { -self.down / H };
        let new_level = if self.up >= H && self.up_n > 0 {
            Some(self.up_sum / f64::from(self.up_n))
        } else if self.down >= H && self.down_n > 0 {
            Some(self.down_sum / f64::from(self.down_n))
        } else {
            None
        };
        if new_level.is_some() {
            *self = Self::default();
        }
        ShiftStep { signed, new_level }
    }

    /// Re-expresses the pending sums after every sample's value moved by `by` (the series is now watched
    /// against a different seasonal offset).
    pub(crate) fn move_by(&mut self, by: f64) {
        self.up_sum += by * f64::from(self.up_n);
        self.down_sum += by * f64::from(self.down_n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sustained_shift_crosses_and_names_the_new_level() {
        let mut c = Cusum::default();
        for _ in 0..100 {
            assert!(c.step(0.0, 0.0).new_level.is_none());
        }
        let mut found = None;
        for i in 0..20 {
            if let Some(level) = c.step(5.0, 5.0).new_level {
                found = Some((i, level));
                break;
            }
        }
        let (at, level) = found.unwrap_or_else(|| panic!("shift not found"));
        assert!(at <= 4, "found after {at} samples");
        assert_eq!(level, 5.0);
    }

    #[test]
    fn one_spike_is_not_a_shift() {
        let mut c = Cusum::default();
        assert!(c.step(100.0, 100.0).new_level.is_none());
        for _ in 0..50 {
            assert!(c.step(0.0, 0.0).new_level.is_none());
        }
    }
}

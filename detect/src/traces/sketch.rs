//! A small mergeable latency sketch: counts in logarithmic buckets, so any quantile comes back within
//! ±2.5 % of the true value (DDSketch's idea, without its collapsing: durations from 1 µs to a day need
//! under 600 buckets, and a window holds only the buckets it saw).

use std::collections::BTreeMap;

/// Bucket growth factor: a value is reported as the middle of its bucket, at most (γ-1)/(γ+1) ≈ 2.4 % off.
const GAMMA: f64 = 1.05;
/// Durations below this (ns) share bucket 0.
const MIN_NS: f64 = 1_000.0;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sketch {
    buckets: BTreeMap<u16, u64>,
    count: u64,
}

impl Sketch {
    pub(crate) fn add(&mut self, duration_ns: i64) {
        let v = duration_ns.max(0) as f64;
        let index =
            if v <= MIN_NS { 0 } else { ((v / MIN_NS).ln() / GAMMA.ln()).ceil().min(f64::from(u16::MAX)) as u16 };
        *self.buckets.entry(index).or_insert(0) += 1;
        self.count += 1;
    }

    pub(crate) fn merge(&mut self, other: &Sketch) {
        for (i, n) in &other.buckets {
            *self.buckets.entry(*i).or_insert(0) += n;
        }
        self.count += other.count;
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0..=1) in nanoseconds; `None` when empty.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        // The rank of the quantile, 1-based, as Prometheus' histogram_quantile counts.
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(value_of(*i));
            }
        }
        self.buckets.keys().next_back().map(|i| value_of(*i))
    }
}

/// The representative value of bucket `i`: the point equally far (relatively) from both bounds.
fn value_of(index: u16) -> f64 {
    if index == 0 {
        return MIN_NS;
    }
    let upper = MIN_NS * GAMMA.powi(i32::from(index));
    2.0 * upper / (1.0 + GAMMA)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn quantiles_are_within_the_relative_error() {
        let mut s = Sketch::default();
        assert_eq!(s.quantile(0.5), None);
        // 1..=1000 ms: the exact p50 is 500 ms, p99 990 ms.
        for ms in 1..=1000i64 {
            s.add(ms * 1_000_000);
        }
        for (q, exact) in [(0.5, 500e6), (0.95, 950e6), (0.99, 990e6), (1.0, 1000e6)] {
            let got = s.quantile(q).unwrap();
            assert!((got - exact).abs() / exact < 0.03, "q{q}: {got} vs {exact}");
        }
        assert_eq!(s.count(), 1000);
    }

    #[test]
    fn merging_equals_adding_everything_to_one() {
        let (mut a, mut b, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
        for i in 0..500i64 {
            let v = 10_000 + i * 7_919 % 1_000_000;
            if i % 3 == 0 {
                a.add(v)
            } else {
                b.add(v)
            }
            all.add(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        // Tiny and negative durations land in the lowest bucket rather than being lost.
        let mut tiny = Sketch::default();
        tiny.add(-5);
        tiny.add(10);
        assert_eq!(tiny.quantile(1.0), Some(MIN_NS));
    }
}

//! PromQL functions, each as Prometheus' `promql/functions.go` computes it (cited where the rule is not
//! obvious), since the parser crate parses calls but evaluates nothing.

use std::collections::HashMap;
use std::sync::Arc;

use super::QueryError;
use super::eval::{Ctx, Sample, Value, drop_name, scalar, vector, window};
use super::plan::{Func, Node, OverTime, Sel};
use crate::own_series::{Labels, METRIC_NAME};

pub(super) fn call(func: Func, args: &[Node], t: i64, ctx: Ctx) -> Result<Value, QueryError> {
    let arg = |i: usize| args.get(i).ok_or_else(|| QueryError::Execution(format!("missing argument {i}")));
    Ok(match func {
        Func::Rate | Func::Irate | Func::Increase | Func::Delta | Func::Idelta | Func::OverTime(_) => {
            let Node::Matrix(sel, range_ms) = arg(0)? else {
                return Err(QueryError::Execution("expected a range vector selector".into()));
            };
            Value::Vector(over_range(func, sel, *range_ms, t))
        }
        Func::HistogramQuantile => {
            let q = scalar(arg(0)?, t, ctx)?;
            Value::Vector(histogram_quantile(q, vector(arg(1)?, t, ctx)?))
        }
        Func::Math(f) => map(vector(arg(0)?, t, ctx)?, f),
        Func::Clamp => {
            let v = vector(arg(0)?, t, ctx)?;
            let (lo, hi) = (scalar(arg(1)?, t, ctx)?, scalar(arg(2)?, t, ctx)?);
            // Prometheus: an empty vector when min > max.
            if lo > hi { Value::Vector(Vec::new()) } else { map(v, |x| x.max(lo).min(hi)) }
        }
        Func::ClampMin => {
            let (v, lo) = (vector(arg(0)?, t, ctx)?, scalar(arg(1)?, t, ctx)?);
            map(v, |x| x.max(lo))
        }
        Func::ClampMax => {
            let (v, hi) = (vector(arg(0)?, t, ctx)?, scalar(arg(1)?, t, ctx)?);
            map(v, |x| x.min(hi))
        }
        Func::Round => {
            let v = vector(arg(0)?, t, ctx)?;
            let to = args.get(1).map(|a| scalar(a, t, ctx)).transpose()?.unwrap_or(1.0);
            // Prometheus rounds half up (`math.Floor(v*inv + 0.5) / inv`), not half away from zero.
            let inverse = 1.0 / to;
            map(v, |x| (x * inverse + 0.5).floor() / inverse)
        }
        Func::Scalar => {
            let v = vector(arg(0)?, t, ctx)?;
            Value::Scalar(if let [one] = v.as_slice() { one.value } else { f64::NAN })
        }
        Func::Vector => Value::Vector(vec![Sample { labels: Arc::default(), value: scalar(arg(0)?, t, ctx)? }]),
        Func::Time => Value::Scalar(t as f64 / 1000.0),
        Func::Sort | Func::SortDesc => {
            let mut v = vector(arg(0)?, t, ctx)?;
            // NaN last either way, as Prometheus sorts.
            v.sort_by(|a, b| {
                let (x, y) = if matches!(func, Func::Sort) { (a.value, b.value) } else { (b.value, a.value) };
                x.is_nan().cmp(&y.is_nan()).then(x.total_cmp(&y))
            });
            Value::Vector(v)
        }
    })
}

fn map(v: Vec<Sample>, f: impl Fn(f64) -> f64) -> Value {
    Value::Vector(v.into_iter().map(|s| Sample { labels: drop_name(&s.labels), value: f(s.value) }).collect())
}

/// A function of a range vector, series by series.
fn over_range(func: Func, sel: &Sel, range_ms: i64, t: i64) -> Vec<Sample> {
    let at = sel.time(t);
    let mut out = Vec::with_capacity(sel.series.len());
    for s in &sel.series {
        let points = window(&s.points, at, range_ms);
        if points.is_empty() {
            continue;
        }
        let value = match func {
            Func::Rate => extrapolated_rate(points, at.saturating_sub(range_ms), at, true, true),
            Func::Increase => extrapolated_rate(points, at.saturating_sub(range_ms), at, true, false),
            Func::Delta => extrapolated_rate(points, at.saturating_sub(range_ms), at, false, false),
            Func::Irate => instant_rate(points, true),
            Func::Idelta => instant_rate(points, false),
            Func::OverTime(o) => Some(over_time(o, points)),
            _ => None,
        };
        if let Some(value) = value {
            // Prometheus 3 keeps the name for last_over_time only.
            let labels = if matches!(func, Func::OverTime(OverTime::Last)) { &s.labels } else { &s.unnamed };
            out.push(Sample { labels: Arc::clone(labels), value });
        }
    }
    out
}

/// `rate`, `increase` and `delta`: Prometheus' `extrapolatedRate`. The change over the samples (with counter
/// resets added back for counters) is extrapolated to the range's edges when the first and last samples are
/// within 110 % of the average interval of them, else by half an average interval; a counter is never
/// extrapolated below zero.
fn extrapolated_rate(
    points: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    counter: bool,
    rate: bool,
) -> Option<f64> {
    let (&(first_t, first_v), &(last_t, last_v)) = (points.first()?, points.last()?);
    if points.len() < 2 {
        return None;
    }
    let mut result = last_v - first_v;
    if counter {
        let mut previous = 0.0;
        for &(_, v) in points {
            if v < previous {
                result += previous;
            }
            previous = v;
        }
    }
    // In floats: a range can reach far enough back (`x[300000000y]`) for the differences to overflow i64.
    let seconds = |from: i64, to: i64| (to as f64 - from as f64) / 1000.0;
    let mut to_start = seconds(range_start, first_t);
    let mut to_end = seconds(last_t, range_end);
    let sampled = seconds(first_t, last_t);
    let average = sampled / (points.len() - 1) as f64;
    let threshold = average * 1.1;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if counter && result > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= seconds(range_start, range_end);
    }
    Some(result * factor)
}

/// `irate` and `idelta`: the last two samples only.
fn instant_rate(points: &[(i64, f64)], rate: bool) -> Option<f64> {
    let [.., (previous_t, previous_v), (last_t, last_v)] = *points else { return None };
    let mut change = last_v - previous_v;
    if rate && last_v < previous_v {
        // A counter reset: the counter restarted from zero.
        change = last_v;
    }
    if !rate {
        return Some(change);
    }
    let seconds = (last_t as f64 - previous_t as f64) / 1000.0;
    (seconds > 0.0).then(|| change / seconds)
}

/// Kahan-Babuška summation, as Prometheus sums (`kahanSumInc`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct KahanSum {
    sum: f64,
    compensation: f64,
}

impl KahanSum {
    pub(super) fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if t.is_infinite() {
            self.compensation = 0.0;
        } else if self.sum.abs() >= v.abs() {
            self.compensation += (self.sum - t) + v;
        } else {
            self.compensation += (v - t) + self.sum;
        }
        self.sum = t;
    }

    pub(super) fn value(self) -> f64 {
        self.sum + self.compensation
    }
}

/// The Kahan-Babuška sum of `values`.
pub(super) fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let mut sum = KahanSum::default();
    values.for_each(|v| sum.add(v));
    sum.value()
}

/// The largest of `values`; NaN loses to any number, as in Prometheus (NaN when there are none).
pub(super) fn max_of(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(f64::NAN, |m, v| if v > m || m.is_nan() { v } else { m })
}

/// The smallest of `values`; NaN loses to any number, as in Prometheus (NaN when there are none).
pub(super) fn min_of(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(f64::NAN, |m, v| if v < m || m.is_nan() { v } else { m })
}

/// Population variance, by Welford's method as Prometheus computes `stdvar_over_time` and `stdvar`.
pub(super) fn variance(values: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut m2) = (0.0, 0.0, 0.0);
    for v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        m2 += delta * (v - mean);
    }
    m2 / count
}

fn over_time(o: OverTime, points: &[(i64, f64)]) -> f64 {
    let values = points.iter().map(|&(_, v)| v);
    match o {
        OverTime::Count => points.len() as f64,
        OverTime::Last => points.last().map_or(f64::NAN, |&(_, v)| v),
        OverTime::Sum => kahan_sum(values),
        OverTime::Avg => kahan_sum(values) / points.len() as f64,
        OverTime::Max => max_of(values),
        OverTime::Min => min_of(values),
        OverTime::Stdvar => variance(values),
        OverTime::Stddev => variance(values).sqrt(),
    }
}

/// `histogram_quantile` over classic histograms: the `_bucket` samples grouped by their labels without `le`
/// (and `__name__`), each group's quantile by Prometheus' `BucketQuantile`. Samples without a parsable `le`
/// are left out, as Prometheus leaves them out (with a warning).
fn histogram_quantile(q: f64, v: Vec<Sample>) -> Vec<Sample> {
    let mut groups: HashMap<Labels, Vec<(f64, f64)>> = HashMap::new();
    for s in v {
        let Some(le) = s.labels.get("le").and_then(|le| parse_le(le)) else { continue };
        let mut key = (*s.labels).clone();
        key.remove("le");
        key.remove(METRIC_NAME);
        groups.entry(key).or_default().push((le, s.value));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| Sample { labels: Arc::new(labels), value: bucket_quantile(q, buckets) })
        .collect()
}

/// `le` as Prometheus parses it (Go's ParseFloat: `+Inf`, `Inf`, `inf`, …).
fn parse_le(text: &str) -> Option<f64> {
    match text.trim_start_matches('+').to_ascii_lowercase().as_str() {
        "inf" | "infinity" => Some(f64::INFINITY),
        _ => text.parse().ok(),
    }
}

/// Prometheus' `BucketQuantile`: buckets `(upper bound, cumulative count)`.
pub(super) fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Same upper bound twice (two series with different other labels, or a sum that kept them): add up.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (le, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += count,
            _ => merged.push((le, count)),
        }
    }
    // Counts must not fall with the bound (they can, slightly, when a rate is taken of each bucket alone).
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        max = max.max(b.1);
        b.1 = max;
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|&(_, count)| count < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

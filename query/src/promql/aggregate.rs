//! Aggregation operators (`sum by (…) (…)` and friends), as Prometheus' `aggregation` computes them.

use std::collections::HashMap;
use std::sync::Arc;

use super::QueryError;
use super::eval::{Ctx, Sample, Value, project, scalar, vector};
use super::functions::{kahan_sum, max_of, min_of, variance};
use super::plan::{AggOp, Aggregate};
use crate::own_series::Labels;

pub(super) fn aggregate(a: &Aggregate, t: i64, ctx: Ctx) -> Result<Value, QueryError> {
    let param = a.param.as_ref().map(|p| scalar(p, t, ctx)).transpose()?;
    let input = vector(&a.expr, t, ctx)?;
    // Groups in order of first appearance.
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<Sample>)> = Vec::new();
    for s in input {
        // Only the `by` labels, or all but the `without` labels and the name.
        let key = project(&s.labels, &a.labels, !a.without);
        match index.get(&key) {
            Some(&i) => groups[i].1.push(s),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![s]));
            }
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (key, samples) in groups {
        match a.op {
            AggOp::Topk | AggOp::Bottomk => out.extend(top(a.op, param.unwrap_or(f64::NAN), samples)),
            op => {
                let value = reduce(op, param.unwrap_or(f64::NAN), samples.iter().map(|s| s.value));
                out.push(Sample { labels: Arc::new(key), value });
            }
        }
    }
    Ok(Value::Vector(out))
}

/// `topk`/`bottomk` of one group: its `k` largest (smallest) samples, labels untouched, in that order. NaN
/// ranks below every number for both, as in Prometheus.
fn top(op: AggOp, k: f64, mut samples: Vec<Sample>) -> Vec<Sample> {
    if k.is_nan() || k < 1.0 {
        return Vec::new();
    }
    let k = if k >= samples.len() as f64 { samples.len() } else { k as usize };
    samples.sort_by(|a, b| {
        let (x, y) = (a.value, b.value);
        let nan = x.is_nan().cmp(&y.is_nan());
        nan.then(if op == AggOp::Topk { y.total_cmp(&x) } else { x.total_cmp(&y) })
    });
    samples.truncate(k);
    samples
}

fn reduce(op: AggOp, param: f64, values: impl Iterator<Item = f64> + Clone) -> f64 {
    let count = values.clone().count() as f64;
    match op {
        AggOp::Sum => kahan_sum(values),
        AggOp::Avg => kahan_sum(values) / count,
        AggOp::Count => count,
        AggOp::Group => 1.0,
        AggOp::Max => max_of(values),
        AggOp::Min => min_of(values),
        AggOp::Stdvar => variance(values),
        AggOp::Stddev => variance(values).sqrt(),
        AggOp::Quantile => quantile(param, values.collect()),
        AggOp::Topk | AggOp::Bottomk => f64::NAN,
    }
}

/// Prometheus' `quantile` aggregation: linear interpolation between the closest ranks.
fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

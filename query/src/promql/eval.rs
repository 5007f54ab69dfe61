//! Evaluating a compiled expression at one time, as Prometheus' engine evaluates each step of a query.

use std::sync::Arc;

use super::QueryError;
use super::plan::{Func, Node, Sel};
use crate::own_series::{Labels, METRIC_NAME};

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) labels: Arc<Labels>,
    pub(crate) value: f64,
}

/// One series of a range vector: its points, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RangeSeries {
    pub(crate) labels: Arc<Labels>,
    pub(crate) points: Vec<(i64, f64)>,
}

/// The value of an expression at one time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
    /// Only a range selector evaluates to this (the top of an instant query, or a function's argument).
    Matrix(Vec<RangeSeries>),
    Str(String),
}

/// Settings of one evaluation.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ctx {
    /// How far back an instant selector looks for a series' latest sample (Prometheus' 5 m by default).
    pub(super) lookback_ms: i64,
}

/// The points of `points` in `(t - range, t]` (Prometheus 3's left-open range).
pub(super) fn window(points: &[(i64, f64)], t: i64, range_ms: i64) -> &[(i64, f64)] {
    let lo = points.partition_point(|&(ts, _)| ts <= t.saturating_sub(range_ms));
    let hi = points.partition_point(|&(ts, _)| ts <= t);
    &points[lo..hi.max(lo)]
}

fn instant(sel: &Sel, t: i64, ctx: Ctx) -> Vec<Sample> {
    let at = sel.time(t);
    sel.series
        .iter()
        .filter_map(|s| {
            let &(_, value) = window(&s.points, at, ctx.lookback_ms).last()?;
            Some(Sample { labels: Arc::clone(&s.labels), value })
        })
        .collect()
}

fn range(sel: &Sel, t: i64, range_ms: i64) -> Vec<RangeSeries> {
    let at = sel.time(t);
    sel.series
        .iter()
        .filter_map(|s| {
            let points = window(&s.points, at, range_ms);
            (!points.is_empty()).then(|| RangeSeries { labels: Arc::clone(&s.labels), points: points.to_vec() })
        })
        .collect()
}

pub(super) fn eval(node: &Node, t: i64, ctx: Ctx) -> Result<Value, QueryError> {
    Ok(match node {
        Node::Number(v) => Value::Scalar(*v),
        Node::Str(s) => Value::Str(s.clone()),
        Node::Vector(sel) => Value::Vector(instant(sel, t, ctx)),
        Node::Matrix(sel, range_ms) => Value::Matrix(range(sel, t, *range_ms)),
        Node::Neg(inner) => match eval(inner, t, ctx)? {
            Value::Scalar(v) => Value::Scalar(-v),
            Value::Vector(v) => {
                Value::Vector(v.into_iter().map(|s| Sample { labels: drop_name(&s.labels), value: -s.value }).collect())
            }
            other => return Err(type_error("unary minus", &other)),
        },
        Node::Call(func, args) => super::functions::call(*func, args, t, ctx)?,
        Node::Aggregate(a) => super::aggregate::aggregate(a, t, ctx)?,
        Node::Binary(b) => super::binary::binary(b, t, ctx)?,
    })
}

pub(super) fn scalar(node: &Node, t: i64, ctx: Ctx) -> Result<f64, QueryError> {
    match eval(node, t, ctx)? {
        Value::Scalar(v) => Ok(v),
        other => Err(type_error("a scalar argument", &other)),
    }
}

pub(super) fn vector(node: &Node, t: i64, ctx: Ctx) -> Result<Vec<Sample>, QueryError> {
    match eval(node, t, ctx)? {
        Value::Vector(v) => Ok(v),
        other => Err(type_error("an instant vector argument", &other)),
    }
}

/// The parser checks types; this is for what it lets through that the evaluator still cannot take.
pub(super) fn type_error(what: &str, got: &Value) -> QueryError {
    QueryError::Execution(format!("{what} cannot be a {}", got.kind()))
}

impl Value {
    /// The value's type as Prometheus names it in errors.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::Vector(_) => "instant vector",
            Value::Matrix(_) => "range vector",
            Value::Str(_) => "string",
        }
    }
}

/// The labels without `__name__` (shared when there was none).
pub(super) fn drop_name(labels: &Arc<Labels>) -> Arc<Labels> {
    if labels.contains_key(METRIC_NAME) { Arc::new(super::plan::without_name(labels)) } else { Arc::clone(labels) }
}

/// The labels a grouping or a vector match reads: only `listed` (`by`, `on`), or all but `listed` and the
/// name (`without`, `ignoring`).
pub(super) fn project(labels: &Labels, listed: &[String], only_listed: bool) -> Labels {
    labels
        .iter()
        .filter(|(k, _)| if only_listed { listed.contains(k) } else { *k != METRIC_NAME && !listed.contains(k) })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Whether the expression's top keeps its own order (Prometheus returns these instant vectors unsorted).
pub(super) fn keeps_order(node: &Node) -> bool {
    match node {
        Node::Call(Func::Sort | Func::SortDesc, _) => true,
        Node::Aggregate(a) => matches!(a.op, super::plan::AggOp::Topk | super::plan::AggOp::Bottomk),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_left_open() {
        let p = [(10, 1.0), (20, 2.0), (30, 3.0)];
        assert_eq!(window(&p, 30, 20), &p[1..]);
        assert_eq!(window(&p, 29, 20), &p[..2]);
        assert_eq!(window(&p, 30, 10), &p[2..]);
        assert_eq!(window(&p, 9, 100), &[] as &[(i64, f64)]);
        assert_eq!(window(&p, 100, 70), &[] as &[(i64, f64)]);
        assert_eq!(window(&p, 100, 71), &p[2..]);
    }
}

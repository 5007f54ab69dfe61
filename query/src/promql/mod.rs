//! PromQL over Vigil's own series.
//!
//! Parsing is `promql-parser`'s (GreptimeDB's, the Prometheus grammar); it evaluates nothing, so the
//! evaluator is here, for the subset Grafana dashboards over Vigil's series need: instant and range
//! selectors with every matcher, `offset` and `@`; `rate`, `irate`, `increase`, `delta`, `idelta`;
//! `{avg,min,max,sum,count,last,stddev,stdvar}_over_time`; `histogram_quantile` over `_bucket` series; the
//! aggregations `sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`, `topk`, `bottomk`, `quantile`
//! with `by`/`without`; arithmetic, comparison (with `bool`) and set operators between scalars and vectors,
//! with `on`/`ignoring` and `group_left`/`group_right`; a few element-wise functions (`abs`, `clamp*`,
//! `round`, …), `scalar`, `vector`, `time`, `sort`, `sort_desc`. Anything else (subqueries, `label_replace`,
//! …) is refused with an error naming it.
//!
//! Semantics are Prometheus 3's: a 5-minute lookback for instant selectors, left-open ranges `(t - r, t]`,
//! `rate` extrapolated to the range's edges, a range query evaluated at `start + k·step`. Staleness markers
//! are not modelled (Vigil's own series have none).

mod aggregate;
mod binary;
mod eval;
mod functions;
mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use promql_parser::parser::Expr;
use promql_parser::parser::value::ValueType;

pub(crate) use eval::{RangeSeries, Sample, Value};
pub(crate) use plan::selects;

use crate::own_series::{Budget, BudgetError, Labels, OwnSeriesStore};

/// Why a query failed; [`QueryError::kind`] is Prometheus' `errorType`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum QueryError {
    #[error("{0}")]
    Parse(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Execution(String),
    #[error("{0}")]
    Budget(#[from] BudgetError),
    #[error("query timed out in query execution")]
    Timeout,
}

/// Bounds and settings of one query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) lookback_ms: i64,
    /// Series and samples a query may copy out of the store, and points it may return.
    pub(crate) budget: Budget,
    pub(crate) deadline: Instant,
}

/// Longest query text taken. Parsing and evaluating recurse over the expression, so its size bounds the
/// stack they need (Grafana's queries are far shorter).
pub(crate) const MAX_QUERY_BYTES: usize = 16 << 10;
/// Deepest expression evaluated (nested calls, operators, parentheses).
const MAX_DEPTH: usize = 256;

/// Parses `query`; a parse error reads as Prometheus' (`invalid parameter "query": …` is added by the API).
fn parse(query: &str) -> Result<Expr, QueryError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(QueryError::Parse(format!("query is {} bytes, more than {MAX_QUERY_BYTES}", query.len())));
    }
    let expr = promql_parser::parser::parse(query).map_err(QueryError::Parse)?;
    if depth(&expr) > MAX_DEPTH {
        return Err(QueryError::Unsupported(format!("an expression nested more than {MAX_DEPTH} levels deep")));
    }
    Ok(expr)
}

/// How deeply the expression nests, counted without recursion (the evaluator's recursion is what it bounds).
fn depth(expr: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(expr, 1)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        match e {
            Expr::Aggregate(a) => {
                stack.push((&a.expr, d + 1));
                if let Some(p) = &a.param {
                    stack.push((p, d + 1));
                }
            }
            Expr::Unary(u) => stack.push((&u.expr, d + 1)),
            Expr::Binary(b) => stack.extend([(&*b.lhs, d + 1), (&*b.rhs, d + 1)]),
            Expr::Paren(p) => stack.push((&p.expr, d + 1)),
            Expr::Subquery(q) => stack.push((&q.expr, d + 1)),
            Expr::Call(c) => stack.extend(c.args.args.iter().map(|a| (&**a, d + 1))),
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_)
            | Expr::Extension(_) => {}
        }
    }
    deepest
}

/// Evaluates `query` at `t_ms` (an instant query). Vectors come sorted by labels, unless the expression
/// orders them itself (`sort`, `topk`, …).
pub(crate) fn instant(
    store: &OwnSeriesStore,
    tenant: &str,
    query: &str,
    t_ms: i64,
    limits: Limits,
) -> Result<Value, QueryError> {
    let expr = parse(query)?;
    let mut loader = plan::Loader {
        store,
        tenant,
        start_ms: t_ms,
        end_ms: t_ms,
        lookback_ms: limits.lookback_ms,
        budget: limits.budget,
    };
    let node = loader.compile(&expr)?;
    let mut value = eval::eval(&node, t_ms, eval::Ctx { lookback_ms: limits.lookback_ms })?;
    match &mut value {
        Value::Vector(v) => {
            check_unique(v)?;
            if !eval::keeps_order(&node) {
                v.sort_by(|a, b| a.labels.cmp(&b.labels));
            }
        }
        Value::Matrix(m) => m.sort_by(|a, b| a.labels.cmp(&b.labels)),
        Value::Scalar(_) | Value::Str(_) => {}
    }
    Ok(value)
}

/// Whether `query` parses and yields a vector or scalar (what an alert condition needs); the error reads as
/// a query's would.
pub(crate) fn check(query: &str) -> Result<(), QueryError> {
    let expr = parse(query)?;
    match expr.value_type() {
        ValueType::Vector | ValueType::Scalar => Ok(()),
        other => Err(QueryError::Parse(format!("expected an instant vector or scalar expression, got a {other}"))),
    }
}

/// The latest sample (within the lookback) of every series `selector` selects at `t_ms`, as an instant
/// selector reads it; no offset or `@` (alert rules refuse them).
pub(crate) fn select_latest(
    store: &OwnSeriesStore,
    tenant: &str,
    selector: &promql_parser::parser::VectorSelector,
    t_ms: i64,
    lookback_ms: i64,
) -> Vec<Sample> {
    let matches = |labels: &crate::own_series::Labels| selects(selector.name.as_deref(), &selector.matchers, labels);
    store
        .latest(tenant, &matches, (t_ms.saturating_sub(lookback_ms), t_ms))
        .into_iter()
        .map(|(labels, value)| Sample { labels, value })
        .collect()
}

/// A range query's time span.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Span {
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) step_ms: i64,
}

/// Evaluates `query` at `start`, `start + step`, … up to `end`: one series per label set, sorted by labels;
/// a scalar expression gives one series without labels.
pub(crate) fn range(
    store: &OwnSeriesStore,
    tenant: &str,
    query: &str,
    span: Span,
    limits: Limits,
) -> Result<Vec<RangeSeries>, QueryError> {
    let expr = parse(query)?;
    let kind = expr.value_type();
    if !matches!(kind, ValueType::Scalar | ValueType::Vector) {
        return Err(QueryError::Parse(format!(
            "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
            if kind == ValueType::Matrix { "range vector".to_owned() } else { kind.to_string() }
        )));
    }
    let mut loader = plan::Loader {
        store,
        tenant,
        start_ms: span.start_ms,
        end_ms: span.end_ms,
        lookback_ms: limits.lookback_ms,
        budget: limits.budget,
    };
    let node = loader.compile(&expr)?;
    let ctx = eval::Ctx { lookback_ms: limits.lookback_ms };
    let mut points_left = limits.budget.samples;
    let mut series: HashMap<Arc<Labels>, Vec<(i64, f64)>> = HashMap::new();
    let mut t = span.start_ms;
    while t <= span.end_ms {
        if Instant::now() > limits.deadline {
            return Err(QueryError::Timeout);
        }
        let samples = match eval::eval(&node, t, ctx)? {
            Value::Scalar(v) => vec![Sample { labels: Arc::default(), value: v }],
            Value::Vector(v) => {
                check_unique(&v)?;
                v
            }
            other => return Err(eval::type_error("the result of a range query", &other)),
        };
        points_left = points_left
            .checked_sub(samples.len())
            .ok_or(QueryError::Budget(BudgetError::Samples(limits.budget.samples)))?;
        for s in samples {
            series.entry(s.labels).or_default().push((t, s.value));
        }
        t = match t.checked_add(span.step_ms) {
            Some(next) => next,
            None => break,
        };
    }
    let mut out: Vec<RangeSeries> = series.into_iter().map(|(labels, points)| RangeSeries { labels, points }).collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(out)
}

/// Prometheus refuses a vector with two elements of one label set (e.g. `rate(a[5m]) or rate(b[5m])`, once
/// the names are gone).
fn check_unique(v: &[Sample]) -> Result<(), QueryError> {
    let mut seen = std::collections::HashSet::with_capacity(v.len());
    if v.iter().all(|s| seen.insert(&s.labels)) {
        Ok(())
    } else {
        Err(QueryError::Execution("vector cannot contain metrics with the same labelset".into()))
    }
}

#[cfg(test)]
mod tests;

//! Binary operators: scalar–scalar, vector–scalar and vector–vector (one-to-one, `group_left`/`group_right`,
//! and the set operators), with Prometheus' matching and result-label rules (`VectorBinop`, `resultMetric`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::QueryError;
use super::eval::{Ctx, Sample, Value, drop_name, eval, project, type_error};
use super::plan::{BinOp, Binary, Card};
use crate::own_series::{Labels, METRIC_NAME};

pub(super) fn binary(b: &Binary, t: i64, ctx: Ctx) -> Result<Value, QueryError> {
    let (lhs, rhs) = (eval(&b.lhs, t, ctx)?, eval(&b.rhs, t, ctx)?);
    Ok(match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            let (v, keep) = apply(b.op, l, r);
            Value::Scalar(if b.op.is_comparison() { f64::from(u8::from(keep)) } else { v })
        }
        (Value::Vector(l), Value::Scalar(r)) => Value::Vector(vector_scalar(b, l, r, false)),
        (Value::Scalar(l), Value::Vector(r)) => Value::Vector(vector_scalar(b, r, l, true)),
        (Value::Vector(l), Value::Vector(r)) if b.op.is_set() => Value::Vector(set(b, l, r)),
        (Value::Vector(l), Value::Vector(r)) => Value::Vector(vector_vector(b, l, r)?),
        (Value::Vector(_) | Value::Scalar(_), other) | (other, _) => {
            return Err(type_error("an operand of a binary operator", &other));
        }
    })
}

/// The result of `l op r`, and for comparisons whether it holds (the value is then `l`).
fn apply(op: BinOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinOp::Add => (l + r, true),
        BinOp::Sub => (l - r, true),
        BinOp::Mul => (l * r, true),
        BinOp::Div => (l / r, true),
        // Rust's `%` on floats is C's fmod, as Go's math.Mod.
        BinOp::Mod => (l % r, true),
        BinOp::Pow => (l.powf(r), true),
        BinOp::Atan2 => (l.atan2(r), true),
        BinOp::Eq => (l, l == r),
        BinOp::Ne => (l, l != r),
        BinOp::Gt => (l, l > r),
        BinOp::Lt => (l, l < r),
        BinOp::Ge => (l, l >= r),
        BinOp::Le => (l, l <= r),
        BinOp::And | BinOp::Or | BinOp::Unless => (f64::NAN, false),
    }
}

fn drops_name(b: &Binary) -> bool {
    !b.op.is_comparison() || b.return_bool
}

fn vector_scalar(b: &Binary, v: Vec<Sample>, s: f64, scalar_left: bool) -> Vec<Sample> {
    let mut out = Vec::with_capacity(v.len());
    for sample in v {
        let (l, r) = if scalar_left { (s, sample.value) } else { (sample.value, s) };
        let (mut value, mut keep) = apply(b.op, l, r);
        // A comparison keeps the vector's value, whichever side it is on.
        if b.op.is_comparison() {
            value = sample.value;
        }
        if b.return_bool {
            value = f64::from(u8::from(keep));
            keep = true;
        }
        if keep {
            let labels = if drops_name(b) { drop_name(&sample.labels) } else { sample.labels };
            out.push(Sample { labels, value });
        }
    }
    out
}

/// The labels two series are matched on: `on` keeps the listed labels, `ignoring` drops them and the name.
fn signature(labels: &Labels, b: &Binary) -> Labels {
    project(labels, &b.labels, b.on)
}

fn set(b: &Binary, lhs: Vec<Sample>, rhs: Vec<Sample>) -> Vec<Sample> {
    let right: HashSet<Labels> = rhs.iter().map(|s| signature(&s.labels, b)).collect();
    match b.op {
        BinOp::And => lhs.into_iter().filter(|s| right.contains(&signature(&s.labels, b))).collect(),
        BinOp::Unless => lhs.into_iter().filter(|s| !right.contains(&signature(&s.labels, b))).collect(),
        _ => {
            let left: HashSet<Labels> = lhs.iter().map(|s| signature(&s.labels, b)).collect();
            let mut out = lhs;
            out.extend(rhs.into_iter().filter(|s| !left.contains(&signature(&s.labels, b))));
            out
        }
    }
}

/// The result's labels, from the "many" side's (the left side's for one-to-one).
fn result_labels(many: &Arc<Labels>, one: &Labels, b: &Binary) -> Arc<Labels> {
    let mut labels = (**many).clone();
    if drops_name(b) {
        labels.remove(METRIC_NAME);
    }
    match &b.card {
        Card::OneToOne if b.on => labels.retain(|k, _| b.labels.contains(k)),
        Card::OneToOne => labels.retain(|k, _| !b.labels.contains(k)),
        Card::ManyToOne(include) | Card::OneToMany(include) => {
            for name in include {
                match one.get(name) {
                    Some(v) => labels.insert(name.clone(), v.clone()),
                    None => labels.remove(name),
                };
            }
        }
        Card::ManyToMany => {}
    }
    Arc::new(labels)
}

fn show(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn vector_vector(b: &Binary, lhs: Vec<Sample>, rhs: Vec<Sample>) -> Result<Vec<Sample>, QueryError> {
    let swapped = matches!(b.card, Card::OneToMany(_));
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let one_side = if swapped { "left" } else { "right" };
    let mut ones: HashMap<Labels, Sample> = HashMap::with_capacity(one.len());
    for s in one {
        let sig = signature(&s.labels, b);
        if let Some(first) = ones.get(&sig) {
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {} on the {one_side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                show(&sig),
                show(&first.labels),
                show(&s.labels)
            )));
        }
        ones.insert(sig, s);
    }
    let mut matched: HashMap<Labels, HashSet<Arc<Labels>>> = HashMap::new();
    let mut out = Vec::new();
    for m in many {
        let sig = signature(&m.labels, b);
        let Some(o) = ones.get(&sig) else { continue };
        let (l, r) = if swapped { (o.value, m.value) } else { (m.value, o.value) };
        let (mut value, mut keep) = apply(b.op, l, r);
        if b.return_bool {
            value = f64::from(u8::from(keep));
            keep = true;
        }
        if !keep {
            continue;
        }
        let labels = result_labels(&m.labels, &o.labels, b);
        let inserted = matched.entry(sig).or_default();
        if b.card == Card::OneToOne {
            if !inserted.is_empty() {
                return Err(QueryError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
        } else if inserted.contains(&labels) {
            return Err(QueryError::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        inserted.insert(Arc::clone(&labels));
        out.push(Sample { labels, value });
    }
    Ok(out)
}

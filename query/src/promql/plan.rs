//! From `promql-parser`'s AST to what the evaluator runs: every construct checked against the subset Vigil
//! evaluates (anything else is refused naming it), and every selector's samples copied out of the store
//! for the whole query window at once.

use std::sync::Arc;
use std::time::Duration;

use promql_parser::label::Matchers;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_AVG, T_BOTTOMK, T_COUNT, T_DIV, T_EQLC, T_GROUP, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE,
    T_LUNLESS, T_MAX, T_MIN, T_MOD, T_MUL, T_NEQ, T_POW, T_QUANTILE, T_STDDEV, T_STDVAR, T_SUB, T_SUM, T_TOPK,
};
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};

use super::QueryError;
use crate::own_series::{Budget, Labels, METRIC_NAME, OwnSeriesStore};

/// A node of the evaluated expression.
#[derive(Debug)]
pub(super) enum Node {
    Number(f64),
    Str(String),
    /// An instant vector selector.
    Vector(Sel),
    /// A range vector selector and its range in milliseconds.
    Matrix(Sel, i64),
    Call(Func, Vec<Node>),
    Aggregate(Box<Aggregate>),
    Binary(Box<Binary>),
    Neg(Box<Node>),
}

/// A selector's series, loaded.
#[derive(Debug)]
pub(super) struct Sel {
    offset_ms: i64,
    at_ms: Option<i64>,
    pub(super) series: Vec<Loaded>,
}

impl Sel {
    /// The time the selector reads at when the query is evaluated at `t`.
    pub(super) fn time(&self, t: i64) -> i64 {
        self.at_ms.unwrap_or(t).saturating_sub(self.offset_ms)
    }
}

#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) labels: Arc<Labels>,
    /// The labels without `__name__`, as most functions and operators return them (made once, not per step).
    pub(super) unnamed: Arc<Labels>,
    pub(super) points: Vec<(i64, f64)>,
}

/// The functions Vigil evaluates.
#[derive(Debug, Clone, Copy)]
pub(super) enum Func {
    Rate,
    Irate,
    Increase,
    Delta,
    Idelta,
    OverTime(OverTime),
    HistogramQuantile,
    /// Element-wise on an instant vector, dropping `__name__`.
    Math(fn(f64) -> f64),
    Clamp,
    ClampMin,
    ClampMax,
    Round,
    Scalar,
    Vector,
    Time,
    Sort,
    SortDesc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OverTime {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Last,
    Stddev,
    Stdvar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    Quantile,
}

#[derive(Debug)]
pub(super) struct Aggregate {
    pub(super) op: AggOp,
    pub(super) param: Option<Node>,
    /// `without (...)` if true, else `by (...)` (no clause: `by ()`).
    pub(super) without: bool,
    pub(super) labels: Vec<String>,
    pub(super) expr: Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl BinOp {
    pub(super) fn is_comparison(self) -> bool {
        matches!(self, Self::Eq | Self::Ne | Self::Gt | Self::Lt | Self::Ge | Self::Le)
    }

    pub(super) fn is_set(self) -> bool {
        matches!(self, Self::And | Self::Or | Self::Unless)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Card {
    OneToOne,
    /// `group_left(labels)`: many series on the left to one on the right.
    ManyToOne(Vec<String>),
    /// `group_right(labels)`.
    OneToMany(Vec<String>),
    ManyToMany,
}

#[derive(Debug)]
pub(super) struct Binary {
    pub(super) op: BinOp,
    pub(super) lhs: Node,
    pub(super) rhs: Node,
    pub(super) card: Card,
    /// `on (labels)` if true, else `ignoring (labels)` (no clause: `ignoring ()`).
    pub(super) on: bool,
    pub(super) labels: Vec<String>,
    pub(super) return_bool: bool,
}

/// What compiling reads from: the store, the query's time span and its budget.
pub(super) struct Loader<'a> {
    pub(super) store: &'a OwnSeriesStore,
    pub(super) tenant: &'a str,
    pub(super) start_ms: i64,
    pub(super) end_ms: i64,
    pub(super) lookback_ms: i64,
    pub(super) budget: Budget,
}

fn unsupported(what: impl std::fmt::Display) -> QueryError {
    QueryError::Unsupported(format!("{what} is not supported by Vigil's PromQL subset"))
}

fn millis(d: &Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn system_time_ms(t: &std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => millis(&d),
        Err(e) => -millis(&e.duration()),
    }
}

/// Whether a series' labels satisfy a selector (a missing label reads as "", as in Prometheus).
pub(crate) fn selects(name: Option<&str>, matchers: &Matchers, labels: &Labels) -> bool {
    let value = |n: &str| labels.get(n).map_or("", String::as_str);
    if name.is_some_and(|n| value(METRIC_NAME) != n) {
        return false;
    }
    let all = |ms: &[promql_parser::label::Matcher]| ms.iter().all(|m| m.is_match(value(&m.name)));
    all(&matchers.matchers) && (matchers.or_matchers.is_empty() || matchers.or_matchers.iter().any(|g| all(g)))
}

pub(super) fn without_name(labels: &Labels) -> Labels {
    let mut l = labels.clone();
    l.remove(METRIC_NAME);
    l
}

impl Loader<'_> {
    pub(super) fn compile(&mut self, expr: &Expr) -> Result<Node, QueryError> {
        Ok(match expr {
            Expr::NumberLiteral(n) => Node::Number(n.val),
            Expr::StringLiteral(s) => Node::Str(s.val.clone()),
            Expr::Paren(p) => self.compile(&p.expr)?,
            Expr::Unary(u) => Node::Neg(Box::new(self.compile(&u.expr)?)),
            Expr::VectorSelector(vs) => Node::Vector(self.load(vs, self.lookback_ms)?),
            Expr::MatrixSelector(ms) => {
                let range = millis(&ms.range);
                Node::Matrix(self.load(&ms.vs, range)?, range)
            }
            Expr::Subquery(_) => return Err(unsupported("a subquery")),
            Expr::Extension(_) => return Err(unsupported("an extension expression")),
            Expr::Call(call) => {
                let func = function(call.func.name)?;
                let args = call.args.args.iter().map(|a| self.compile(a)).collect::<Result<_, _>>()?;
                Node::Call(func, args)
            }
            Expr::Aggregate(a) => Node::Aggregate(Box::new(self.aggregate(a)?)),
            Expr::Binary(b) => Node::Binary(Box::new(self.binary(b)?)),
        })
    }

    fn load(&mut self, vs: &VectorSelector, window_ms: i64) -> Result<Sel, QueryError> {
        let offset_ms = match &vs.offset {
            None => 0,
            Some(Offset::Pos(d)) => millis(d),
            Some(Offset::Neg(d)) => -millis(d),
        };
        let at_ms = match &vs.at {
            None => None,
            Some(AtModifier::Start) => Some(self.start_ms),
            Some(AtModifier::End) => Some(self.end_ms),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        };
        let (first, last) = at_ms.map_or((self.start_ms, self.end_ms), |at| (at, at));
        // Samples in (first - window, last], after the offset.
        let from = first.saturating_sub(offset_ms).saturating_sub(window_ms).saturating_add(1);
        let to = last.saturating_sub(offset_ms);
        let name = vs.name.as_deref();
        let matches = |labels: &Labels| selects(name, &vs.matchers, labels);
        let selected = self.store.select(self.tenant, &matches, (from, to), &mut self.budget)?;
        let series = selected
            .into_iter()
            .map(|s| Loaded { unnamed: Arc::new(without_name(&s.labels)), labels: s.labels, points: s.samples })
            .collect();
        Ok(Sel { offset_ms, at_ms, series })
    }

    fn aggregate(&mut self, a: &AggregateExpr) -> Result<Aggregate, QueryError> {
        let op = match a.op.id() {
            T_SUM => AggOp::Sum,
            T_AVG => AggOp::Avg,
            T_MIN => AggOp::Min,
            T_MAX => AggOp::Max,
            T_COUNT => AggOp::Count,
            T_GROUP => AggOp::Group,
            T_STDDEV => AggOp::Stddev,
            T_STDVAR => AggOp::Stdvar,
            T_TOPK => AggOp::Topk,
            T_BOTTOMK => AggOp::Bottomk,
            T_QUANTILE => AggOp::Quantile,
            _ => return Err(unsupported(format_args!("the aggregation {:?}", a.op.to_string()))),
        };
        let (without, labels) = match &a.modifier {
            None => (false, Vec::new()),
            Some(LabelModifier::Include(l)) => (false, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (true, l.labels.clone()),
        };
        let param = a.param.as_ref().map(|p| self.compile(p)).transpose()?;
        Ok(Aggregate { op, param, without, labels, expr: self.compile(&a.expr)? })
    }

    fn binary(&mut self, b: &BinaryExpr) -> Result<Binary, QueryError> {
        let op = match b.op.id() {
            T_ADD => BinOp::Add,
            T_SUB => BinOp::Sub,
            T_MUL => BinOp::Mul,
            T_DIV => BinOp::Div,
            T_MOD => BinOp::Mod,
            T_POW => BinOp::Pow,
            T_ATAN2 => BinOp::Atan2,
            T_EQLC => BinOp::Eq,
            T_NEQ => BinOp::Ne,
            T_GTR => BinOp::Gt,
            T_LSS => BinOp::Lt,
            T_GTE => BinOp::Ge,
            T_LTE => BinOp::Le,
            T_LAND => BinOp::And,
            T_LOR => BinOp::Or,
            T_LUNLESS => BinOp::Unless,
            _ => return Err(unsupported(format_args!("the operator {:?}", b.op.to_string()))),
        };
        let (mut card, mut on, mut labels, mut return_bool) = (Card::OneToOne, false, Vec::new(), false);
        if let Some(m) = &b.modifier {
            if m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some() {
                return Err(unsupported("fill() in vector matching"));
            }
            card = match &m.card {
                VectorMatchCardinality::OneToOne => Card::OneToOne,
                VectorMatchCardinality::ManyToOne(l) => Card::ManyToOne(l.labels.clone()),
                VectorMatchCardinality::OneToMany(l) => Card::OneToMany(l.labels.clone()),
                VectorMatchCardinality::ManyToMany => Card::ManyToMany,
            };
            if let Some(modifier) = &m.matching {
                on = modifier.is_include();
                labels = modifier.labels().labels.clone();
            }
            return_bool = m.return_bool;
        }
        if op.is_set() {
            card = Card::ManyToMany;
        }
        Ok(Binary { op, lhs: self.compile(&b.lhs)?, rhs: self.compile(&b.rhs)?, card, on, labels, return_bool })
    }
}

fn function(name: &str) -> Result<Func, QueryError> {
    Ok(match name {
        "rate" => Func::Rate,
        "irate" => Func::Irate,
        "increase" => Func::Increase,
        "delta" => Func::Delta,
        "idelta" => Func::Idelta,
        "avg_over_time" => Func::OverTime(OverTime::Avg),
        "min_over_time" => Func::OverTime(OverTime::Min),
        "max_over_time" => Func::OverTime(OverTime::Max),
        "sum_over_time" => Func::OverTime(OverTime::Sum),
        "count_over_time" => Func::OverTime(OverTime::Count),
        "last_over_time" => Func::OverTime(OverTime::Last),
        "stddev_over_time" => Func::OverTime(OverTime::Stddev),
        "stdvar_over_time" => Func::OverTime(OverTime::Stdvar),
        "histogram_quantile" => Func::HistogramQuantile,
        "abs" => Func::Math(f64::abs),
        "ceil" => Func::Math(f64::ceil),
        "floor" => Func::Math(f64::floor),
        "exp" => Func::Math(f64::exp),
        "ln" => Func::Math(f64::ln),
        "log2" => Func::Math(f64::log2),
        "log10" => Func::Math(f64::log10),
        "sqrt" => Func::Math(f64::sqrt),
        "sgn" => Func::Math(sgn),
        "clamp" => Func::Clamp,
        "clamp_min" => Func::ClampMin,
        "clamp_max" => Func::ClampMax,
        "round" => Func::Round,
        "scalar" => Func::Scalar,
        "vector" => Func::Vector,
        "time" => Func::Time,
        "sort" => Func::Sort,
        "sort_desc" => Func::SortDesc,
        other => return Err(unsupported(format_args!("the function {other:?}"))),
    })
}

/// Prometheus' `sgn`: the sign, 0 for 0 and NaN for NaN (Rust's `signum` gives ±1 for ±0).
fn sgn(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        v
    }
}

//! The rule file: its YAML shape, and validation into [`RuleSet`] with errors that name the rule and key.
//!
//! ```yaml
//! rules:
//!   - alert: HighErrorRatio
//!     threshold: {expr: 'traces_spanmetrics_error_ratio', op: '>', value: 0.05, for: 30s}
//!   - alert: LatencyAnomaly
//!     anomaly: {match: '{__name__="traces_spanmetrics_latency_seconds"}', min_score: 1, for: 10s}
//!   - alert: ServiceDegraded
//!     composite: {all: [HighErrorRatio, LatencyAnomaly], on: [service]}
//!     labels: {severity: page}
//!     annotations: {summary: '{{ $labels.service }} is degraded'}
//! inhibit_rules:
//!   - source_matchers: ['alertname="NodeDown"']
//!     target_matchers: ['severity!="page"']
//!     equal: [node]
//! ```
//!
//! `threshold.expr` is PromQL over Vigil's own series (what `/api/v1/query` answers), which include the
//! ingested series its selectors read ([`RuleSet::keep_selectors`]); `anomaly.match` selects
//! source series by their own labels (`__name__` is the scored metric), read from their `anomaly_score`
//! series. A composite fires on the firing state of the rules it names, matched on its `on` labels.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher, Matchers};
use promql_parser::parser::{Expr, VectorSelector};
use serde::Deserialize;

use crate::own_series::{KeepSelector, rule_selectors};
use crate::prom_api::valid_label_name;
use crate::promql;

/// Longest rule file read.
pub(crate) const MAX_RULE_FILE_BYTES: usize = 1 << 20;
/// Most rules in one file.
const MAX_RULES: usize = 1000;
/// `group_by: ['...']`: no grouping, every alerting series is its own alert (Alertmanager's spelling).
pub(crate) const NO_GROUPING: &str = "...";

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rules: Vec<RuleDoc>,
    #[serde(default)]
    inhibit_rules: Vec<InhibitDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    alert: String,
    threshold: Option<ThresholdDoc>,
    anomaly: Option<AnomalyDoc>,
    composite: Option<CompositeDoc>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    /// Labels whose values make one alert of the rule's alerting series; the settings' default if absent.
    group_by: Option<Vec<String>>,
    /// `false`: evaluated (for composites and the API) but never sent to Alertmanager.
    #[serde(default = "yes")]
    send: bool,
    /// Only these tenants' series; every tenant if absent.
    tenants: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdDoc {
    expr: String,
    op: String,
    value: f64,
    #[serde(default, rename = "for", with = "humantime_serde")]
    for_: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnomalyDoc {
    #[serde(rename = "match")]
    selector: String,
    #[serde(default = "one")]
    min_score: f64,
    #[serde(default, rename = "for", with = "humantime_serde")]
    for_: Option<Duration>,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompositeDoc {
    all: Option<Vec<String>>,
    any: Option<Vec<String>>,
    #[serde(default)]
    on: Vec<String>,
    #[serde(default, rename = "for", with = "humantime_serde")]
    for_: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InhibitDoc {
    #[serde(default)]
    source_matchers: Vec<String>,
    #[serde(default)]
    target_matchers: Vec<String>,
    #[serde(default)]
    equal: Vec<String>,
}

/// A comparison of a threshold rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "<" => Self::Lt,
            "<=" => Self::Le,
            "==" => Self::Eq,
            "!=" => Self::Ne,
            _ => return None,
        })
    }

    pub(crate) fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Self::Gt => a > b,
            Self::Ge => a >= b,
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Eq => a == b,
            Self::Ne => a != b,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }
}

/// What makes a rule's series alert.
#[derive(Debug, Clone)]
pub(crate) enum Condition {
    Threshold {
        expr: String,
        op: Op,
        value: f64,
    },
    /// `selector` reads `anomaly_score` series (the source metric name matched on `for`);
    /// `source_selector` is the selector as written, for the engine's anomaly events.
    Anomaly {
        selector: Box<VectorSelector>,
        source_selector: Box<VectorSelector>,
        source: String,
        min_score: f64,
    },
    /// Indexes of the rules named, all earlier in [`RuleSet::rules`] (evaluation order).
    Composite {
        all: bool,
        of: Vec<usize>,
        on: Vec<String>,
    },
}

impl Condition {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Threshold { .. } => "threshold",
            Self::Anomaly { .. } => "anomaly",
            Self::Composite { .. } => "composite",
        }
    }
}

/// One validated rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) name: String,
    pub(crate) condition: Condition,
    pub(crate) for_ms: i64,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
    /// `None`: no grouping.
    pub(crate) group_by: Option<Vec<String>>,
    pub(crate) send: bool,
    pub(crate) tenants: Option<Vec<String>>,
    /// The rule as written, to tell a changed rule from an unchanged one across reloads.
    pub(crate) fingerprint: String,
}

impl Rule {
    pub(crate) fn applies_to(&self, tenant: &str) -> bool {
        self.tenants.as_ref().is_none_or(|t| t.iter().any(|x| x == tenant))
    }
}

/// An Alertmanager-style inhibition: a firing source alert silences target alerts with equal `equal` labels.
#[derive(Debug, Clone)]
pub(crate) struct InhibitRule {
    pub(crate) source: Matchers,
    pub(crate) target: Matchers,
    pub(crate) equal: Vec<String>,
}

/// A validated rule file, rules in evaluation order (a composite after the rules it names).
#[derive(Debug, Clone, Default)]
pub(crate) struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) inhibit: Vec<InhibitRule>,
}

impl RuleSet {
    /// The series selectors inside the threshold rules' `expr`: the ingested series they read, which the
    /// own-series store keeps (`own_series::KeepSet`).
    pub(crate) fn keep_selectors(&self) -> Vec<KeepSelector> {
        let threshold = |r: &Rule| match &r.condition {
            Condition::Threshold { expr, .. } => rule_selectors(expr, r.tenants.as_deref()),
            Condition::Anomaly { .. } | Condition::Composite { .. } => Vec::new(),
        };
        self.rules.iter().flat_map(threshold).collect()
    }
}

/// The rules Vigil runs with no rule file: one anomaly alert per service (or cluster) with anomalous series
/// for a minute, so a fresh install alerts on what the engine finds.
pub(crate) const DEFAULT_RULES: &str = r#"
rules:
  - alert: VigilAnomaly
    anomaly: {match: '{__name__=~".+"}', min_score: 1, for: 1m}
    labels: {source: vigil}
    annotations:
      summary: 'Vigil scores series as anomalous (highest score {{ $value }})'
"#;

/// Parses and validates a rule file; every problem found is listed, each naming its rule and key.
pub(crate) fn parse(text: &str, default_group_by: &[String]) -> Result<RuleSet, Vec<String>> {
    if text.len() > MAX_RULE_FILE_BYTES {
        return Err(vec![format!("the rule file is {} bytes, more than {MAX_RULE_FILE_BYTES}", text.len())]);
    }
    let file: RuleFile = if text.trim().is_empty() {
        RuleFile { rules: Vec::new(), inhibit_rules: Vec::new() }
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| vec![e.to_string()])?
    };
    let mut errors = Vec::new();
    if file.rules.len() > MAX_RULES {
        errors.push(format!("{} rules, more than {MAX_RULES}", file.rules.len()));
    }
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, r) in file.rules.iter().enumerate() {
        if let Some(first) = by_name.insert(r.alert.as_str(), i) {
            errors.push(format!("rules[{i}]: alert name {:?} is already used by rules[{first}]", r.alert));
        }
    }
    let order = match evaluation_order(&file.rules, &by_name) {
        Ok(order) => order,
        Err(e) => {
            errors.push(e);
            (0..file.rules.len()).collect()
        }
    };
    let position: HashMap<usize, usize> = order.iter().enumerate().map(|(at, &i)| (i, at)).collect();
    let mut rules = Vec::with_capacity(file.rules.len());
    for &i in &order {
        let doc = &file.rules[i];
        let at = format!("rules[{i}] (alert {:?})", doc.alert);
        match rule(doc, &at, &by_name, &position, default_group_by) {
            Ok(r) => rules.push(r),
            Err(mut e) => errors.append(&mut e),
        }
    }
    let mut inhibit = Vec::new();
    for (i, doc) in file.inhibit_rules.iter().enumerate() {
        let at = format!("inhibit_rules[{i}]");
        let source = matchers(&doc.source_matchers, &format!("{at}.source_matchers"));
        let target = matchers(&doc.target_matchers, &format!("{at}.target_matchers"));
        match (source, target) {
            (Ok(source), Ok(target)) => {
                if source.matchers.is_empty() {
                    errors.push(format!("{at}: source_matchers is empty: every alert would silence others"));
                } else {
                    inhibit.push(InhibitRule { source, target, equal: doc.equal.clone() });
                }
            }
            (s, t) => errors.extend(s.err().into_iter().chain(t.err())),
        }
    }
    if errors.is_empty() { Ok(RuleSet { rules, inhibit }) } else { Err(errors) }
}

/// The rules' indexes with every composite after the rules it names; an error names a cycle.
fn evaluation_order(rules: &[RuleDoc], by_name: &HashMap<&str, usize>) -> Result<Vec<usize>, String> {
    // 0 unvisited, 1 on the current path, 2 placed.
    let mut mark = vec![0u8; rules.len()];
    let mut order = Vec::with_capacity(rules.len());
    for start in 0..rules.len() {
        let mut stack = vec![(start, 0usize)];
        while let Some(&mut (i, ref mut next)) = stack.last_mut() {
            if *next == 0 {
                if mark[i] == 2 {
                    stack.pop();
                    continue;
                }
                mark[i] = 1;
            }
            let children = rules[i].composite.as_ref().map(composite_names).unwrap_or_default();
            if let Some(child) = children.get(*next) {
                *next += 1;
                let Some(&j) = by_name.get(child.as_str()) else { continue };
                match mark[j] {
                    0 => stack.push((j, 0)),
                    1 => {
                        return Err(format!(
                            "rules[{i}] (alert {:?}): composite rules form a cycle through {child:?}",
                            rules[i].alert
                        ));
                    }
                    _ => {}
                }
            } else {
                mark[i] = 2;
                order.push(i);
                stack.pop();
            }
        }
    }
    Ok(order)
}

fn composite_names(c: &CompositeDoc) -> Vec<String> {
    c.all.iter().chain(c.any.iter()).flatten().cloned().collect()
}

fn rule(
    doc: &RuleDoc,
    at: &str,
    by_name: &HashMap<&str, usize>,
    position: &HashMap<usize, usize>,
    default_group_by: &[String],
) -> Result<Rule, Vec<String>> {
    let mut errors = Vec::new();
    if !valid_label_value(&doc.alert) || doc.alert.is_empty() {
        errors.push(format!("{at}: alert must be a non-empty name"));
    }
    let kinds = [doc.threshold.is_some(), doc.anomaly.is_some(), doc.composite.is_some()];
    let (condition, for_) = match (&doc.threshold, &doc.anomaly, &doc.composite) {
        _ if kinds.iter().filter(|&&k| k).count() != 1 => {
            errors.push(format!("{at}: needs exactly one of threshold, anomaly or composite"));
            (None, None)
        }
        (Some(t), _, _) => (threshold(t, at).map_err(|e| errors.push(e)).ok(), t.for_),
        (_, Some(a), _) => (anomaly(a, at).map_err(|e| errors.push(e)).ok(), a.for_),
        (_, _, Some(c)) => (composite(c, at, by_name, position).map_err(|e| errors.push(e)).ok(), c.for_),
        (None, None, None) => (None, None),
    };
    for name in doc.labels.keys().chain(doc.annotations.keys()) {
        if !valid_label_name(name) {
            errors.push(format!("{at}: {name:?} is not a valid label or annotation name"));
        }
    }
    if doc.labels.contains_key("alertname") {
        errors.push(format!("{at}: labels.alertname is set from `alert`; leave it out"));
    }
    let group_by = match &doc.group_by {
        Some(g) if g.iter().any(|l| l == NO_GROUPING) => None,
        Some(g) => Some(g.clone()),
        None => Some(default_group_by.to_vec()),
    };
    for l in group_by.iter().flatten() {
        if !valid_label_name(l) {
            errors.push(format!("{at}: group_by {l:?} is not a valid label name"));
        }
    }
    if doc.tenants.as_ref().is_some_and(Vec::is_empty) {
        errors.push(format!("{at}: tenants is empty (leave it out for every tenant)"));
    }
    let (Some(condition), true) = (condition, errors.is_empty()) else { return Err(errors) };
    let for_ms = i64::try_from(for_.unwrap_or_default().as_millis()).unwrap_or(i64::MAX);
    Ok(Rule {
        name: doc.alert.clone(),
        fingerprint: format!("{doc:?}{default_group_by:?}"),
        condition,
        for_ms,
        labels: doc.labels.clone(),
        annotations: doc.annotations.clone(),
        group_by,
        send: doc.send,
        tenants: doc.tenants.clone(),
    })
}

fn threshold(t: &ThresholdDoc, at: &str) -> Result<Condition, String> {
    let op = Op::parse(t.op.trim())
        .ok_or_else(|| format!("{at}: threshold.op must be one of >, >=, <, <=, ==, !=; got {:?}", t.op))?;
    if !t.value.is_finite() {
        return Err(format!("{at}: threshold.value must be a finite number"));
    }
    promql::check(&t.expr).map_err(|e| format!("{at}: threshold.expr: {e}"))?;
    Ok(Condition::Threshold { expr: t.expr.clone(), op, value: t.value })
}

fn anomaly(a: &AnomalyDoc, at: &str) -> Result<Condition, String> {
    if !(a.min_score.is_finite() && a.min_score >= 0.0) {
        return Err(format!("{at}: anomaly.min_score must be a number ≥ 0, got {}", a.min_score));
    }
    let expr = promql_parser::parser::parse(&a.selector).map_err(|e| format!("{at}: anomaly.match: {e}"))?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("{at}: anomaly.match must be a series selector like '{{job=\"api\"}}', not an expression"));
    };
    if vs.offset.is_some() || vs.at.is_some() {
        return Err(format!("{at}: anomaly.match takes no offset or @"));
    }
    Ok(Condition::Anomaly {
        source_selector: Box::new(vs.clone()),
        selector: Box::new(score_selector(vs)),
        source: a.selector.clone(),
        min_score: a.min_score,
    })
}

/// The selector of the `anomaly_score` series of the source series `vs` selects: the metric name moves to
/// `for`, where the engine writes it.
fn score_selector(vs: VectorSelector) -> VectorSelector {
    let rename = |mut m: Matcher| {
        if m.name == crate::own_series::METRIC_NAME {
            m.name = FOR.to_owned();
        }
        m
    };
    let mut matchers: Vec<Matcher> = vs.matchers.matchers.into_iter().map(rename).collect();
    if let Some(name) = vs.name {
        matchers.push(Matcher::new(MatchOp::Equal, FOR, &name));
    }
    let or_matchers =
        vs.matchers.or_matchers.into_iter().map(|group| group.into_iter().map(rename).collect()).collect();
    VectorSelector {
        name: Some(SCORE.to_owned()),
        matchers: Matchers { matchers, or_matchers },
        offset: None,
        at: None,
    }
}

/// The engine's score series and the label naming its source metric.
pub(crate) const SCORE: &str = "anomaly_score";
pub(crate) const FOR: &str = "for";

fn composite(
    c: &CompositeDoc,
    at: &str,
    by_name: &HashMap<&str, usize>,
    position: &HashMap<usize, usize>,
) -> Result<Condition, String> {
    let (all, names) = match (&c.all, &c.any) {
        (Some(names), None) => (true, names),
        (None, Some(names)) => (false, names),
        _ => return Err(format!("{at}: composite needs exactly one of all or any")),
    };
    if names.is_empty() {
        return Err(format!("{at}: composite.{} names no rules", if all { "all" } else { "any" }));
    }
    let mut of = Vec::with_capacity(names.len());
    for n in names {
        let i = by_name.get(n.as_str()).ok_or_else(|| format!("{at}: composite names {n:?}, which is no rule here"))?;
        of.push(position.get(i).copied().unwrap_or_default());
    }
    let unique: HashSet<&usize> = of.iter().collect();
    if unique.len() != of.len() {
        return Err(format!("{at}: composite names a rule twice"));
    }
    for l in &c.on {
        if !valid_label_name(l) {
            return Err(format!("{at}: composite.on {l:?} is not a valid label name"));
        }
    }
    Ok(Condition::Composite { all, of, on: c.on.clone() })
}

/// Alertmanager-style matcher strings (`name="value"`, `name=~"re"`, …), each read by the PromQL parser (so
/// regexes are anchored as in Alertmanager). A selector needs one matcher that does not match the empty
/// string; Alertmanager's lists need not, so each is parsed beside a placeholder that satisfies the rule.
fn matchers(list: &[String], at: &str) -> Result<Matchers, String> {
    const PLACEHOLDER: &str = "__vigil_placeholder__";
    let mut out = Vec::with_capacity(list.len());
    for text in list {
        match promql_parser::parser::parse(&format!("{{{PLACEHOLDER}=\"x\",{text}}}")) {
            Ok(Expr::VectorSelector(vs)) if vs.name.is_none() && vs.matchers.or_matchers.is_empty() => {
                let mut parsed: Vec<Matcher> =
                    vs.matchers.matchers.into_iter().filter(|m| m.name != PLACEHOLDER).collect();
                if parsed.len() != 1 {
                    return Err(format!("{at}: {text:?} is not one matcher like 'name=\"value\"'"));
                }
                out.append(&mut parsed);
            }
            Ok(_) => return Err(format!("{at}: {text:?} is not one matcher like 'name=\"value\"'")),
            Err(e) => return Err(format!("{at}: {text:?}: {e}")),
        }
    }
    Ok(Matchers::new(out))
}

fn valid_label_value(value: &str) -> bool {
    !value.chars().any(char::is_control)
}

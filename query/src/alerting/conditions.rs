//! One rule's condition at one time, for one tenant: the label sets it holds for, with their values.
//!
//! Thresholds and anomaly matches read the own-series store through the PromQL evaluator (the same answers
//! `/api/v1/query` gives); composites read the firing state of the rules they name.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use vigil_detect::events::Anomaly;

use super::rules::{Condition, FOR, Rule};
use super::state::Instances;
use crate::own_series::{Budget, Labels, METRIC_NAME, OwnSeriesStore};
use crate::promql::{self, Limits, Value};

/// Bounds of one rule's evaluation: as an API query's, with a shorter deadline (rules run back to back).
const MAX_SERIES: usize = 50_000;
const MAX_SAMPLES: usize = 5_000_000;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Prometheus' lookback: a series whose latest sample is older no longer counts.
const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Where a condition reads from.
pub(crate) struct Inputs<'a> {
    pub(crate) store: &'a OwnSeriesStore,
    pub(crate) tenant: &'a str,
    pub(crate) now_ms: i64,
    /// Every rule's instances so far this evaluation (rules run in order: a composite's rules come first).
    pub(crate) earlier: &'a [Instances],
    /// The tenant's anomaly events that are still open (the engine's, with their source series' labels).
    pub(crate) open_anomalies: &'a [Anomaly],
}

/// The label sets `rule`'s condition holds for now, with their values.
pub(crate) fn evaluate(rule: &Rule, inputs: &Inputs<'_>) -> Result<BTreeMap<Labels, f64>, String> {
    let limits = Limits {
        lookback_ms: LOOKBACK_MS,
        budget: Budget { series: MAX_SERIES, samples: MAX_SAMPLES },
        deadline: Instant::now() + TIMEOUT,
    };
    let mut out = BTreeMap::new();
    match &rule.condition {
        Condition::Threshold { expr, op, value } => {
            match promql::instant(inputs.store, inputs.tenant, expr, inputs.now_ms, limits)
                .map_err(|e| e.to_string())?
            {
                Value::Scalar(v) => {
                    if op.holds(v, *value) {
                        out.insert(Labels::new(), v);
                    }
                }
                Value::Vector(samples) => {
                    for s in samples.into_iter().filter(|s| op.holds(s.value, *value)) {
                        let mut labels = (*s.labels).clone();
                        labels.remove(METRIC_NAME);
                        out.insert(labels, s.value);
                    }
                }
                other => return Err(format!("threshold.expr gives a {}, not a vector or scalar", other.kind())),
            }
        }
        Condition::Anomaly { selector, source_selector, min_score, .. } => {
            // A series alerts while its newest score is high, or while the engine holds an anomaly of it open
            // whose peak is: scores arrive in bursts (a remote-write batch, a span window), and the newest of a
            // burst may be back under the bar while the anomaly goes on.
            let samples = promql::select_latest(inputs.store, inputs.tenant, selector, inputs.now_ms, LOOKBACK_MS);
            let mut hold = |mut labels: Labels, score: f64| {
                labels.remove(METRIC_NAME);
                // Several scored series may differ only in their name (kept in `for`): keep the highest.
                let v = out.entry(labels).or_insert(score);
                *v = v.max(score);
            };
            for s in samples.into_iter().filter(|s| s.value >= *min_score) {
                hold((*s.labels).clone(), s.value);
            }
            let recent = inputs.now_ms.saturating_sub(LOOKBACK_MS);
            for a in inputs.open_anomalies.iter().filter(|a| a.open && a.score >= *min_score && a.end_ms > recent) {
                if promql::selects(source_selector.name.as_deref(), &source_selector.matchers, &a.labels) {
                    let mut labels = a.labels.clone();
                    if let Some(name) = labels.remove(METRIC_NAME) {
                        labels.insert(FOR.to_owned(), name);
                    }
                    hold(labels, a.score);
                }
            }
        }
        Condition::Composite { all, of, on } => {
            let project = |labels: &Labels| -> Labels {
                on.iter().filter_map(|l| labels.get(l).map(|v| (l.clone(), v.clone()))).collect()
            };
            let mut per_child: Vec<BTreeMap<Labels, f64>> = Vec::with_capacity(of.len());
            for &i in of {
                let mut keys: BTreeMap<Labels, f64> = BTreeMap::new();
                for (labels, instance) in inputs.earlier.get(i).into_iter().flat_map(|x| x.firing()) {
                    let v = keys.entry(project(labels)).or_insert(instance.value);
                    *v = v.max(instance.value);
                }
                per_child.push(keys);
            }
            let mut union: BTreeMap<Labels, f64> = BTreeMap::new();
            for keys in &per_child {
                for (k, &v) in keys {
                    let at = union.entry(k.clone()).or_insert(v);
                    *at = at.max(v);
                }
            }
            for (k, v) in union {
                if !*all || per_child.iter().all(|keys| keys.contains_key(&k)) {
                    out.insert(k, v);
                }
            }
        }
    }
    Ok(out)
}

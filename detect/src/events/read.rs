//! Reading the events table for the query API: filter on the plain columns first, then parse the labels of
//! what is left and apply the selectors.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;

use super::Severity;
use super::table::{Columns, DETECTORS};
use crate::selector::Selector;

/// Which events to read.
#[derive(Debug, Clone)]
pub struct EventQuery<'a> {
    /// Only this tenant's events.
    pub tenant: &'a str,
    /// An event is read when any selector matches its series; none: every series.
    pub selectors: &'a [Selector],
    /// Only events overlapping `[start_ms, end_ms]` (either end open when `None`).
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Only events whose peak score is at least this.
    pub min_score: f64,
    /// At most this many, the most recent ones.
    pub limit: usize,
}

/// One event as the query API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub labels: BTreeMap<String, String>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The peak sample: its time, value, score, expected value, band and per-detector scores.
    pub peak_ms: i64,
    pub value: f64,
    pub score: f64,
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub detectors: Vec<(&'static str, f32)>,
    pub severity: Severity,
    pub open: bool,
}

/// The events of `batches` that `q` selects, oldest peak first, and how many matched before `q.limit`.
pub(crate) fn read(batches: &[RecordBatch], q: &EventQuery<'_>) -> (Vec<Anomaly>, usize) {
    let mut out = Vec::new();
    for batch in batches {
        read_batch(batch, q, &mut out);
    }
    out.sort_by_key(|a| (a.peak_ms, a.start_ms));
    let matched = out.len();
    if matched > q.limit {
        out.drain(..matched - q.limit);
    }
    (out, matched)
}

fn read_batch(batch: &RecordBatch, q: &EventQuery<'_>, out: &mut Vec<Anomaly>) -> Option<()> {
    let c = Columns::of(batch)?;
    for i in 0..batch.num_rows() {
        let (s, e) = (c.start.value(i), c.end.value(i));
        if c.tenant.value(i) != q.tenant
            || c.score.value(i) < q.min_score
            || q.start_ms.is_some_and(|from| e < from)
            || q.end_ms.is_some_and(|to| s > to)
        {
            continue;
        }
        let Ok(labels) = serde_json::from_str::<BTreeMap<String, String>>(c.labels.value(i)) else { continue };
        let selected = q.selectors.is_empty()
            || q.selectors.iter().any(|sel| sel.matches(|name| labels.get(name).map(String::as_str)));
        if !selected {
            continue;
        }
        out.push(Anomaly {
            labels,
            start_ms: s,
            end_ms: e,
            peak_ms: c.peak_at.value(i),
            value: c.value.value(i),
            score: c.score.value(i),
            expected: c.expected.value(i),
            lower: c.lower.value(i),
            upper: c.upper.value(i),
            detectors: DETECTORS.iter().zip(&c.detectors).map(|(name, d)| (*name, d.value(i))).collect(),
            severity: Severity::parse(c.severity.value(i)).unwrap_or(Severity::P3),
            open: c.open.value(i),
        });
    }
    Some(())
}

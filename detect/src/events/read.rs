//! Reading the events for the query API: filter on the plain columns first, then on the labels' text, then
//! parse the labels of what is left and apply the selectors. The closed events are read in their Arrow
//! chunks, the open ones (and the closed ones not yet chunked) as they are: nothing is built to be read.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;

use arrow_array::RecordBatch;
use vigil_ingest::series::IdHasher;

use super::table::{Columns, DETECTORS};
use super::{Event, Severity};
use crate::selector::{MatchOp, Matcher, Selector};

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
#[cfg(test)]
pub(crate) fn read(batches: &[RecordBatch], q: &EventQuery<'_>) -> (Vec<Anomaly>, usize) {
    let mut filter = Filter::new(q);
    let mut out = Vec::new();
    for batch in batches {
        filter.batch(batch, &mut out);
    }
    finish(out, q.limit)
}

/// `out` oldest peak first (stable: rows of one peak and start keep the table's order), cut to the most
/// recent `limit`, and how many there were.
pub(crate) fn finish(mut out: Vec<Anomaly>, limit: usize) -> (Vec<Anomaly>, usize) {
    out.sort_by_key(|a| (a.peak_ms, a.start_ms));
    let matched = out.len();
    if matched > limit {
        out.drain(..matched - limit);
    }
    (out, matched)
}

/// A query's filters, in order of cost: the plain fields (tenant, time, score); then, when there are
/// selectors, a text test on the labels' JSON that every selected series passes (see [`Filter::may_select`]);
/// then the selectors on the parsed labels, whose outcome is remembered per series for the rest of the read
/// (a series' events all carry the same labels).
pub(crate) struct Filter<'q> {
    q: &'q EventQuery<'q>,
    /// Per selector, the `"name":"value"` text of each of its `name="value"` matchers (non-empty value),
    /// as `serde_json` writes it.
    needles: Vec<Vec<String>>,
    /// Series id → its labels when selected, `None` when not (or when they do not parse).
    seen: HashMap<u64, Option<BTreeMap<String, String>>, BuildHasherDefault<IdHasher>>,
}

impl<'q> Filter<'q> {
    pub(crate) fn new(q: &'q EventQuery<'q>) -> Self {
        let needle = |m: &Matcher| {
            let (name, value) = (serde_json::to_string(&m.name).ok()?, serde_json::to_string(&m.value).ok()?);
            Some(format!("{name}:{value}"))
        };
        let needles = q
            .selectors
            .iter()
            .map(|s| s.matchers().iter().filter(|m| m.op == MatchOp::Equal && !m.value.is_empty()))
            .map(|ms| ms.filter_map(needle).collect())
            .collect();
        Self { q, needles, seen: HashMap::default() }
    }

    fn plain(&self, tenant: &str, start_ms: i64, end_ms: i64, score: f64) -> bool {
        let q = self.q;
        let skip = tenant != q.tenant
            || score < q.min_score
            || q.start_ms.is_some_and(|from| end_ms < from)
            || q.end_ms.is_some_and(|to| start_ms > to);
        !skip
    }

    /// False only when no selector can select a series with these labels (the JSON object `describe` in the
    /// engine writes with `serde_json`, so a label `name="value"` appears as that exact text): cheaper
    /// than parsing them, and most events of a busy engine are not asked for.
    fn may_select(&self, labels: &str) -> bool {
        self.q.selectors.is_empty() || self.needles.iter().any(|all| all.iter().all(|n| labels.contains(n.as_str())))
    }

    /// Whether `e` passes the plain filters and the text test: the events worth copying out of the engine.
    pub(crate) fn keeps(&self, e: &Event) -> bool {
        self.plain(&e.tenant, e.start_ms, e.end_ms, e.peak.score) && self.may_select(&e.labels)
    }

    /// The labels of series `id` (its JSON `labels`) when a selector selects it.
    fn selected(&mut self, id: u64, labels: &str) -> Option<BTreeMap<String, String>> {
        if let Some(known) = self.seen.get(&id) {
            return known.clone();
        }
        let parsed = self.may_select(labels).then(|| serde_json::from_str::<BTreeMap<String, String>>(labels).ok());
        let selected = parsed.flatten().filter(|l| {
            let q = self.q;
            q.selectors.is_empty() || q.selectors.iter().any(|sel| sel.matches(|name| l.get(name).map(String::as_str)))
        });
        self.seen.insert(id, selected.clone());
        selected
    }

    /// `e` as the API returns it, when the query selects it.
    pub(crate) fn event(&mut self, e: &Event) -> Option<Anomaly> {
        if !self.plain(&e.tenant, e.start_ms, e.end_ms, e.peak.score) {
            return None;
        }
        let labels = self.selected(e.series_id, &e.labels)?;
        let p = &e.peak;
        Some(Anomaly {
            labels,
            start_ms: e.start_ms,
            end_ms: e.end_ms,
            peak_ms: p.timestamp_ms,
            value: p.value,
            score: p.score,
            expected: p.expected,
            lower: p.lower,
            upper: p.upper,
            detectors: p.contributions.iter().collect(),
            severity: e.severity(),
            open: e.open,
        })
    }

    /// The rows of an events batch the query selects, into `out`.
    pub(crate) fn batch(&mut self, batch: &RecordBatch, out: &mut Vec<Anomaly>) -> Option<()> {
        let c = Columns::of(batch)?;
        for i in 0..batch.num_rows() {
            let (s, e) = (c.start.value(i), c.end.value(i));
            if !self.plain(c.tenant.value(i), s, e, c.score.value(i)) {
                continue;
            }
            let Some(labels) = self.selected(c.series_id.value(i), c.labels.value(i)) else { continue };
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
}

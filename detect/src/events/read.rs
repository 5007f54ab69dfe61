//! Reading the events for the query API: filter on the plain columns first, then on the labels' text, then
//! parse the labels of what is left and apply the selectors; only the events within the limit are then
//! built into answers. The closed events are read in their Arrow chunks, the open ones (and the closed ones
//! not yet chunked) as they are: nothing is built to be read.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasherDefault;

use arrow_array::RecordBatch;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
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
    Filter::new(q).read(batches, &[])
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
    /// Series id → its labels when selected, `None` when not or when they do not parse (without selectors:
    /// an empty map for labels that parse, which are parsed again only for the events returned).
    seen: HashMap<u64, Option<BTreeMap<String, String>>, BuildHasherDefault<IdHasher>>,
}

/// An event that matched, until the limit is applied: where it is and what it sorts by.
#[derive(Debug, Clone, Copy)]
struct Match {
    peak_ms: i64,
    start_ms: i64,
    at: At,
}

#[derive(Debug, Clone, Copy)]
enum At {
    /// Batch and row.
    Row(usize, usize),
    /// List and index (of [`Filter::read`]'s `events`).
    Event(usize, usize),
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

    /// Whether series `id` (its JSON `labels`) is selected.
    fn selects(&mut self, id: u64, labels: &str) -> bool {
        if let Some(known) = self.seen.get(&id) {
            return known.is_some();
        }
        let q = self.q;
        let selected = if q.selectors.is_empty() {
            // Nothing to match: only whether the labels parse, without keeping them.
            serde_json::from_str::<LabelsParse>(labels).is_ok().then(BTreeMap::new)
        } else {
            let parsed = self.may_select(labels).then(|| serde_json::from_str::<BTreeMap<String, String>>(labels));
            parsed
                .and_then(Result::ok)
                .filter(|l| q.selectors.iter().any(|sel| sel.matches(|name| l.get(name).map(String::as_str))))
        };
        let known = selected.is_some();
        self.seen.insert(id, selected);
        known
    }

    /// The labels of a selected series, for its answer.
    fn labels(&self, id: u64, labels: &str) -> BTreeMap<String, String> {
        match self.seen.get(&id) {
            Some(Some(l)) if !self.q.selectors.is_empty() => l.clone(),
            _ => serde_json::from_str(labels).unwrap_or_default(),
        }
    }

    /// The events of `batches` (events tables) and of `events` the query selects, oldest peak first (a
    /// stable order: batches, then the lists, each in its order), the most recent `limit` of them, and how
    /// many matched.
    pub(crate) fn read(&mut self, batches: &[RecordBatch], events: &[&[Event]]) -> (Vec<Anomaly>, usize) {
        let columns: Vec<Option<Columns<'_>>> = batches.iter().map(Columns::of).collect();
        let mut matches = Vec::new();
        for (b, c) in columns.iter().enumerate() {
            let Some(c) = c else { continue };
            for i in 0..c.start.len() {
                let (s, e) = (c.start.value(i), c.end.value(i));
                if self.plain(c.tenant.value(i), s, e, c.score.value(i))
                    && self.selects(c.series_id.value(i), c.labels.value(i))
                {
                    matches.push(Match { peak_ms: c.peak_at.value(i), start_ms: s, at: At::Row(b, i) });
                }
            }
        }
        for (l, list) in events.iter().enumerate() {
            for (i, e) in list.iter().enumerate() {
                if self.plain(&e.tenant, e.start_ms, e.end_ms, e.peak.score) && self.selects(e.series_id, &e.labels) {
                    matches.push(Match { peak_ms: e.peak.timestamp_ms, start_ms: e.start_ms, at: At::Event(l, i) });
                }
            }
        }
        matches.sort_by_key(|m| (m.peak_ms, m.start_ms));
        let matched = matches.len();
        let out = matches[matched.saturating_sub(self.q.limit)..]
            .iter()
            .filter_map(|m| match m.at {
                At::Row(b, i) => columns.get(b)?.as_ref().map(|c| self.row(c, i)),
                At::Event(l, i) => events.get(l)?.get(i).map(|e| self.event(e)),
            })
            .collect();
        (out, matched)
    }

    fn event(&self, e: &Event) -> Anomaly {
        let p = &e.peak;
        Anomaly {
            labels: self.labels(e.series_id, &e.labels),
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
        }
    }

    fn row(&self, c: &Columns<'_>, i: usize) -> Anomaly {
        Anomaly {
            labels: self.labels(c.series_id.value(i), c.labels.value(i)),
            start_ms: c.start.value(i),
            end_ms: c.end.value(i),
            peak_ms: c.peak_at.value(i),
            value: c.value.value(i),
            score: c.score.value(i),
            expected: c.expected.value(i),
            lower: c.lower.value(i),
            upper: c.upper.value(i),
            detectors: DETECTORS.iter().zip(&c.detectors).map(|(name, d)| (*name, d.value(i))).collect(),
            severity: Severity::parse(c.severity.value(i)).unwrap_or(Severity::P3),
            open: c.open.value(i),
        }
    }
}

/// Deserializes from what parses as labels (a JSON object of strings) and keeps nothing: whether an event's
/// labels would parse, without building them.
struct LabelsParse;

impl<'de> Deserialize<'de> for LabelsParse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> Visitor<'de> for Object {
            type Value = LabelsParse;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelsParse, A::Error> {
                while map.next_entry::<AnyString, AnyString>()?.is_some() {}
                Ok(LabelsParse)
            }
        }
        d.deserialize_map(Object)
    }
}

/// Any JSON string, not kept.
struct AnyString;

impl<'de> Deserialize<'de> for AnyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = AnyString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<AnyString, E> {
                Ok(AnyString)
            }
        }
        d.deserialize_str(Text)
    }
}

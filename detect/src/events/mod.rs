//! Anomaly events: one per stretch of anomalous samples of a series, not one per sample.
//!
//! A series' score going over 1 opens an event; while the series stays anomalous the event is updated (its
//! end, and its peak: the sample with the highest score, with that sample's expected value, band and
//! per-detector contributions), so an ongoing anomaly is reported once. It closes once `close_after`
//! consecutive samples score ≤ 1. Open events live with their series in the engine's shard
//! ([`EventTracker`]); closed ones go to the Arrow table ([`EventLog`]).

pub(crate) mod chunks;
mod read;
mod severity;
mod table;

use std::collections::HashMap;
use std::sync::Arc;

use crate::verdict::{Contributions, Verdict};

pub(crate) use read::Filter;
#[cfg(test)]
pub(crate) use read::read;
pub use read::{Anomaly, EventQuery};
pub use severity::Severity;
pub(crate) use table::{AddedRow, Closed, Columns, now_ms};
pub use table::{EventLog, schema};

/// The sample of an event with the highest score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    pub timestamp_ms: i64,
    pub value: f64,
    pub score: f64,
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
    pub contributions: Contributions,
}

impl Peak {
    fn new(timestamp_ms: i64, value: f64, v: &Verdict) -> Self {
        Self {
            timestamp_ms,
            value,
            score: v.score,
            expected: v.expected,
            lower: v.lower,
            upper: v.upper,
            contributions: v.contributions,
        }
    }
}

/// One anomaly of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub tenant: Arc<str>,
    pub series_id: u64,
    /// The series' labels as a JSON object.
    pub labels: Arc<str>,
    /// First and last anomalous sample.
    pub start_ms: i64,
    pub end_ms: i64,
    pub peak: Peak,
    /// Still going on: no `close_after` calm samples since.
    pub open: bool,
}

impl Event {
    pub fn severity(&self) -> Severity {
        Severity::of(self.peak.score, self.end_ms.saturating_sub(self.start_ms))
    }
}

#[derive(Debug)]
struct OpenEvent {
    event: Event,
    /// Consecutive samples scoring ≤ 1 since the last anomalous one.
    calm: u8,
}

/// What one verdict did to its series' event.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Step {
    pub(crate) opened: bool,
    pub(crate) closed: Option<Event>,
}

/// The open events of one engine shard, by series id.
#[derive(Debug)]
pub(crate) struct EventTracker {
    open: HashMap<u64, OpenEvent>,
    close_after: u8,
}

impl EventTracker {
    pub(crate) fn new(close_after: u8) -> Self {
        Self { open: HashMap::new(), close_after: close_after.max(1) }
    }

    /// Feeds one scored sample. `describe` gives the series' tenant and labels (JSON), asked for only when
    /// an event opens.
    pub(crate) fn observe(
        &mut self,
        series_id: u64,
        timestamp_ms: i64,
        value: f64,
        verdict: &Verdict,
        describe: impl FnOnce() -> (Arc<str>, Arc<str>),
    ) -> Step {
        let anomalous = verdict.score > 1.0;
        // Most samples are calm and of series with no open event: no map lookup when nothing is open.
        if !anomalous && self.open.is_empty() {
            return Step::default();
        }
        match self.open.get_mut(&series_id) {
            Some(open) if anomalous => {
                open.calm = 0;
                open.event.end_ms = timestamp_ms;
                if verdict.score > open.event.peak.score {
                    open.event.peak = Peak::new(timestamp_ms, value, verdict);
                }
                Step::default()
            }
            Some(open) => {
                open.calm = open.calm.saturating_add(1);
                if open.calm < self.close_after {
                    return Step::default();
                }
                Step { opened: false, closed: self.close(series_id) }
            }
            None if anomalous => {
                let (tenant, labels) = describe();
                let event = Event {
                    tenant,
                    series_id,
                    labels,
                    start_ms: timestamp_ms,
                    end_ms: timestamp_ms,
                    peak: Peak::new(timestamp_ms, value, verdict),
                    open: true,
                };
                self.open.insert(series_id, OpenEvent { event, calm: 0 });
                Step { opened: true, closed: None }
            }
            None => Step::default(),
        }
    }

    /// Closes the open event of each of `series` (series forgotten: no sample will close it).
    pub(crate) fn close_series(&mut self, series: &[u64]) -> Vec<Event> {
        if self.open.is_empty() {
            return Vec::new();
        }
        series.iter().filter_map(|&id| self.close(id)).collect()
    }

    /// The open event of `series_id`, closed and no longer tracked.
    fn close(&mut self, series_id: u64) -> Option<Event> {
        self.open.remove(&series_id).map(|mut o| {
            o.event.open = false;
            o.event
        })
    }

    /// Copies of the events still open.
    pub(crate) fn open_events(&self) -> impl Iterator<Item = &Event> {
        self.open.values().map(|o| &o.event)
    }
}

#[cfg(test)]
mod tests;

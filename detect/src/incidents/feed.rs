//! New and changed anomaly events, read from the engine's events table (closed events in closing order,
//! then the open ones) without re-reading all of it every tick: closed rows are read backwards from the
//! end down to the newest closed row of the previous poll; open rows (few) every time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;

use crate::events::Columns;

/// One event as the correlation reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AnomalyRow {
    pub(crate) tenant: Arc<str>,
    pub(crate) series_id: u64,
    /// The series' labels, a JSON object.
    pub(crate) labels: String,
    pub(crate) start_ms: i64,
    pub(crate) end_ms: i64,
    pub(crate) peak_ms: i64,
    pub(crate) score: f64,
    pub(crate) value: f64,
    pub(crate) expected: f64,
    pub(crate) severity: String,
    pub(crate) open: bool,
}

/// An event's identity: its series and first anomalous sample.
pub(crate) type EventKey = (Arc<str>, u64, i64);

impl AnomalyRow {
    pub(crate) fn key(&self) -> EventKey {
        (Arc::clone(&self.tenant), self.series_id, self.start_ms)
    }
}

/// What a poll last saw of an event.
#[derive(Debug, Clone, Copy)]
struct Seen {
    end_ms: i64,
    open: bool,
    at: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Feed {
    /// The newest closed row of the previous poll.
    tail: Option<EventKey>,
    seen: HashMap<EventKey, Seen>,
}

/// An event's identity, at row `i`.
fn event_key(c: &Columns<'_>, i: usize) -> EventKey {
    (Arc::from(c.tenant.value(i)), c.series_id.value(i), c.start.value(i))
}

fn row(c: &Columns<'_>, i: usize, tenant: Arc<str>) -> AnomalyRow {
    AnomalyRow {
        tenant,
        series_id: c.series_id.value(i),
        labels: c.labels.value(i).to_owned(),
        start_ms: c.start.value(i),
        end_ms: c.end.value(i),
        peak_ms: c.peak_at.value(i),
        score: c.score.value(i),
        value: c.value.value(i),
        expected: c.expected.value(i),
        severity: c.severity.value(i).to_owned(),
        open: c.open.value(i),
    }
}

impl Feed {
    /// The events of `batches` that are new or changed (end or open/closed) since the previous poll.
    /// What was seen is forgotten `forget_after` after its last change.
    pub(crate) fn poll(&mut self, batches: &[RecordBatch], now: Instant, forget_after: Duration) -> Vec<AnomalyRow> {
        let cols: Vec<Columns<'_>> = batches.iter().filter_map(Columns::of).collect();
        if cols.len() < batches.len() {
            tracing::error!("The events table does not have the expected columns. This is a bug.");
        }
        let mut out = Vec::new();
        let mut new_tail = None;
        let mut reached_tail = self.tail.is_none();
        'closed: for c in cols.iter().rev() {
            for i in (0..c.open.len()).rev() {
                if c.open.value(i) {
                    continue;
                }
                let key = event_key(c, i);
                if new_tail.is_none() {
                    new_tail = Some(key.clone());
                }
                if self.tail.as_ref() == Some(&key) {
                    reached_tail = true;
                    break 'closed;
                }
                if let Some(row) = self.changed(c, i, key, now) {
                    out.push(row);
                }
            }
        }
        if !reached_tail {
            // The previous tail was dropped by retention: everything was read, `seen` kept out repeats.
            tracing::debug!("Anomaly feed: the previous newest closed event is gone; read the whole table.");
        }
        if new_tail.is_some() {
            self.tail = new_tail;
        }
        for c in &cols {
            for i in (0..c.open.len()).filter(|&i| c.open.value(i)) {
                let key = event_key(c, i);
                if let Some(row) = self.changed(c, i, key, now) {
                    out.push(row);
                }
            }
        }
        self.seen.retain(|_, s| now.saturating_duration_since(s.at) < forget_after);
        // Oldest first, so an incident's first anomaly is its earliest one.
        out.sort_by_key(|r| (r.start_ms, r.series_id));
        out
    }

    fn changed(&mut self, c: &Columns<'_>, i: usize, key: EventKey, now: Instant) -> Option<AnomalyRow> {
        let (end_ms, open) = (c.end.value(i), c.open.value(i));
        let tenant = Arc::clone(&key.0);
        match self.seen.get_mut(&key) {
            Some(s) if s.end_ms == end_ms && s.open == open => None,
            Some(s) => {
                *s = Seen { end_ms, open, at: now };
                Some(row(c, i, tenant))
            }
            None => {
                self.seen.insert(key, Seen { end_ms, open, at: now });
                Some(row(c, i, tenant))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::EventsConfig;
    use crate::events::{Event, EventLog, Peak};
    use crate::verdict::Contributions;

    fn event(series: u64, start: i64, end: i64, open: bool) -> Event {
        Event {
            tenant: Arc::from("t"),
            series_id: series,
            labels: Arc::from(r#"{"__name__":"m","service":"api"}"#),
            start_ms: start,
            end_ms: end,
            peak: Peak {
                timestamp_ms: start,
                value: 9.0,
                score: 4.0,
                expected: 1.0,
                lower: 0.0,
                upper: 2.0,
                contributions: Contributions::default(),
            },
            open,
        }
    }

    #[test]
    fn only_new_and_changed_events_come_out() {
        let log =
            EventLog::new(&EventsConfig { max_events: 10_000, max_age: Duration::from_secs(1 << 40), close_after: 3 });
        let mut feed = Feed::default();
        let now = Instant::now();
        let forget = Duration::from_secs(600);
        let open = [event(1, 100, 100, true)];
        let got = feed.poll(&log.snapshot(&open), now, forget);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].series_id, got[0].open, got[0].score, got[0].labels.contains("api")), (1, true, 4.0, true));
        assert!(feed.poll(&log.snapshot(&open), now, forget).is_empty(), "nothing changed");
        let open = [event(1, 100, 200, true)];
        assert_eq!(feed.poll(&log.snapshot(&open), now, forget)[0].end_ms, 200, "its end moved");
        // It closes; others close and open meanwhile, more than a chunk of them.
        let mut closed: Vec<Event> = (0..1500).map(|i| event(100 + i, 50, 60, false)).collect();
        closed.push(event(1, 100, 300, false));
        log.extend(closed);
        let open = [event(2, 400, 400, true)];
        let got = feed.poll(&log.snapshot(&open), now, forget);
        assert_eq!(got.len(), 1502);
        assert!(got.iter().any(|r| r.series_id == 1 && !r.open && r.end_ms == 300));
        assert!(feed.poll(&log.snapshot(&open), now, forget).is_empty());
        log.extend([event(3, 500, 510, false)]);
        let got = feed.poll(&log.snapshot(&open), now, forget);
        assert_eq!(got.iter().map(|r| r.series_id).collect::<Vec<_>>(), [3], "read back to the previous tail only");
    }
}

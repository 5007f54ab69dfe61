//! New and changed anomaly events, read from the engine without re-reading its whole events table every
//! tick: of the closed events only those added since the previous poll (the log counts every event it is
//! given, so the newest `added` rows are the new ones), and the open ones (few) as the engine's own copies.
//! Nothing is built for the feed: the closed rows not yet chunked and the open events are typed, and only
//! the newest chunks are read column by column.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::events::{AddedRow, Closed, Columns, Event};

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

    fn of_event(e: &Event) -> Self {
        Self {
            tenant: Arc::clone(&e.tenant),
            series_id: e.series_id,
            labels: e.labels.to_string(),
            start_ms: e.start_ms,
            end_ms: e.end_ms,
            peak_ms: e.peak.timestamp_ms,
            score: e.peak.score,
            value: e.peak.value,
            expected: e.peak.expected,
            severity: e.severity().as_str().to_owned(),
            open: e.open,
        }
    }

    fn of_column(c: &Columns<'_>, i: usize) -> Self {
        Self {
            tenant: Arc::from(c.tenant.value(i)),
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
}

fn key_of(e: &Event) -> EventKey {
    (Arc::clone(&e.tenant), e.series_id, e.start_ms)
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
    /// Closed events the log had been given at the previous poll.
    read: u64,
    seen: HashMap<EventKey, Seen>,
}

impl Feed {
    /// The events that are new or changed (end, or open/closed) since the previous poll: of `closed`, the
    /// rows added since, and those of `open` (read after `closed`'s count was taken, with the ones that
    /// closed meanwhile dropped: `DetectHandle::event_changes`) that are new or whose end moved. What was
    /// seen of an open event is forgotten `forget_after` after its last change.
    pub(crate) fn poll(
        &mut self,
        closed: &Closed,
        open: &[Event],
        now: Instant,
        forget_after: Duration,
    ) -> Vec<AnomalyRow> {
        let mut out = Vec::new();
        // A closed row is read once (rows retention dropped first are gone for the feed too), and a closed
        // event never changes again: it comes out, and what was seen of it while open is let go (so `seen`
        // holds open events only, and its sweep stays short).
        closed.for_each_added_since(self.read, |added| {
            let row = match added {
                AddedRow::Typed(e) => AnomalyRow::of_event(e),
                AddedRow::Chunked(c, i) => AnomalyRow::of_column(c, i),
            };
            self.seen.remove(&row.key());
            out.push(row);
        });
        self.read = closed.pushed();
        for e in open {
            if self.changed(key_of(e), e.end_ms, e.open, now) {
                out.push(AnomalyRow::of_event(e));
            }
        }
        self.seen.retain(|_, s| now.saturating_duration_since(s.at) < forget_after);
        // Oldest first, so an incident's first anomaly is its earliest one.
        out.sort_by_key(|r| (r.start_ms, r.series_id));
        out
    }

    /// Notes what the poll saw of the event `key`; whether that is new or changed.
    fn changed(&mut self, key: EventKey, end_ms: i64, open: bool, now: Instant) -> bool {
        match self.seen.get_mut(&key) {
            Some(s) if s.end_ms == end_ms && s.open == open => false,
            Some(s) => {
                *s = Seen { end_ms, open, at: now };
                true
            }
            None => {
                self.seen.insert(key, Seen { end_ms, open, at: now });
                true
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
        let got = feed.poll(&log.closed(), &open, now, forget);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].series_id, got[0].open, got[0].score, got[0].labels.contains("api")), (1, true, 4.0, true));
        assert!(feed.poll(&log.closed(), &open, now, forget).is_empty(), "nothing changed");
        let open = [event(1, 100, 200, true)];
        assert_eq!(feed.poll(&log.closed(), &open, now, forget)[0].end_ms, 200, "its end moved");
        // It closes; others close and open meanwhile, more than a chunk of them.
        let mut closed: Vec<Event> = (0..1500).map(|i| event(100 + i, 50, 60, false)).collect();
        closed.push(event(1, 100, 300, false));
        log.extend(closed);
        let open = [event(2, 400, 400, true)];
        let got = feed.poll(&log.closed(), &open, now, forget);
        assert_eq!(got.len(), 1502);
        assert!(got.iter().any(|r| r.series_id == 1 && !r.open && r.end_ms == 300));
        assert!(feed.poll(&log.closed(), &open, now, forget).is_empty());
        log.extend([event(3, 500, 510, false)]);
        let got = feed.poll(&log.closed(), &open, now, forget);
        assert_eq!(got.iter().map(|r| r.series_id).collect::<Vec<_>>(), [3], "read back to the previous tail only");
    }

    #[test]
    fn a_row_reads_the_same_from_a_chunk_as_from_the_event() {
        let mut e = event(7, 100, 250, false);
        e.peak.score = 12.5;
        e.peak.timestamp_ms = 180;
        let log = EventLog::new(&EventsConfig::default());
        let batches = log.snapshot(std::slice::from_ref(&e));
        let c = Columns::of(&batches[0]).unwrap();
        assert_eq!(AnomalyRow::of_column(&c, 0), AnomalyRow::of_event(&e));
    }

    #[test]
    fn rows_retention_dropped_before_a_poll_are_skipped() {
        let log =
            EventLog::new(&EventsConfig { max_events: 10, max_age: Duration::from_secs(1 << 40), close_after: 3 });
        let mut feed = Feed::default();
        let (now, forget) = (Instant::now(), Duration::from_secs(600));
        log.extend((0..50).map(|i| event(i, 10 * i as i64, 10 * i as i64 + 5, false)));
        let got = feed.poll(&log.closed(), &[], now, forget);
        assert_eq!(got.iter().map(|r| r.series_id).collect::<Vec<_>>(), (40..50).collect::<Vec<_>>());
        log.extend([event(99, 1000, 1005, false)]);
        let got = feed.poll(&log.closed(), &[], now, forget);
        assert_eq!(got.iter().map(|r| r.series_id).collect::<Vec<_>>(), [99]);
    }
}

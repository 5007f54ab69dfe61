#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::read::read;
use super::table::CHUNK_ROWS;
use super::*;
use crate::config::EventsConfig;
use crate::selector::{MatchOp, Selector};

fn verdict(score: f64) -> Verdict {
    Verdict {
        score,
        alert: score,
        expected: 10.0,
        lower: 8.0,
        upper: 12.0,
        contributions: Contributions { level: score as f32, ..Contributions::default() },
    }
}

fn describe() -> (Arc<str>, Arc<str>) {
    (Arc::from("team-a"), Arc::from(r#"{"__name__":"latency","job":"api"}"#))
}

fn event(tenant: &str, id: u64, end_ms: i64, score: f64) -> Event {
    Event {
        tenant: Arc::from(tenant),
        series_id: id,
        labels: Arc::from(format!(r#"{{"__name__":"m","i":"{id}"}}"#)),
        start_ms: end_ms - 1000,
        end_ms,
        peak: Peak::new(end_ms, 1.0, &verdict(score)),
        open: false,
    }
}

fn query<'a>(tenant: &'a str, selectors: &'a [Selector]) -> EventQuery<'a> {
    EventQuery { tenant, selectors, start_ms: None, end_ms: None, min_score: 0.0, limit: usize::MAX }
}

#[test]
fn one_event_per_anomaly_updated_while_it_lasts_and_closed_after_calm_samples() {
    let mut t = EventTracker::new(3);
    assert_eq!(t.observe(1, 0, 10.0, &verdict(0.5), describe), Step::default());
    let s = t.observe(1, 1000, 30.0, &verdict(2.0), describe);
    assert!(s.opened && s.closed.is_none());
    // Still anomalous: the same event, with a new peak; a calm sample in between does not close it.
    assert_eq!(t.observe(1, 2000, 50.0, &verdict(6.0), describe), Step::default());
    assert_eq!(t.observe(1, 3000, 10.0, &verdict(0.2), describe), Step::default());
    assert_eq!(t.observe(1, 4000, 20.0, &verdict(1.5), || panic!("no second event")), Step::default());
    let open: Vec<_> = t.open_events().cloned().collect();
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].start_ms, open[0].end_ms, open[0].peak.timestamp_ms), (1000, 4000, 2000));
    assert_eq!((open[0].peak.score, open[0].peak.value), (6.0, 50.0));
    assert_eq!(open[0].severity(), Severity::P0);
    assert!(open[0].open);
    // Three calm samples close it.
    for ts in [5000, 6000] {
        assert_eq!(t.observe(1, ts, 10.0, &verdict(0.1), describe), Step::default());
    }
    let closed = t.observe(1, 7000, 10.0, &verdict(0.1), describe).closed.unwrap();
    assert!(!closed.open);
    assert_eq!((closed.start_ms, closed.end_ms), (1000, 4000));
    assert_eq!(t.open_events().count(), 0);
    // A new anomaly afterwards is a new event.
    assert!(t.observe(1, 8000, 30.0, &verdict(3.0), describe).opened);
}

#[test]
fn the_log_keeps_at_most_max_events_and_drops_old_ones() {
    let log = EventLog::new(&EventsConfig { max_events: 2500, max_age: Duration::from_secs(3600), close_after: 3 });
    let now = super::table::now_ms();
    log.extend_at((0..3000).map(|i| event("t", i, now - 1000 + i as i64 / 10, 2.0)), now);
    assert_eq!(log.len(), 2500);
    let batches = log.snapshot(&[]);
    assert!(batches.len() >= 2, "chunked every {CHUNK_ROWS} rows");
    let (all, matched) = read(&batches, &query("t", &[]));
    assert_eq!((all.len(), matched), (2500, 2500));
    assert!(all.iter().all(|a| a.labels["i"].parse::<u64>().unwrap() >= 500), "the oldest went first");
    // An hour later, all of them have aged out.
    log.extend_at([event("t", 9999, now + 3_600_000, 2.0)], now + 3_600_000 + 500);
    assert_eq!(log.len(), 1);
}

#[test]
fn reads_filter_by_tenant_time_score_and_selector() {
    let log = EventLog::new(&EventsConfig::default());
    let now = super::table::now_ms();
    log.extend([event("a", 1, now - 60_000, 2.0), event("a", 2, now - 30_000, 8.0), event("b", 3, now, 9.0)]);
    let mut open = event("a", 4, now, 1.5);
    open.open = true;
    let batches = log.snapshot(std::slice::from_ref(&open));
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
    assert_eq!(batches[0].schema(), schema());

    let (a, _) = read(&batches, &query("a", &[]));
    assert_eq!(a.iter().map(|x| x.labels["i"].as_str()).collect::<Vec<_>>(), ["1", "2", "4"]);
    assert!(a[2].open && !a[0].open);
    assert_eq!(a[1].severity, Severity::P0);
    assert_eq!((a[1].expected, a[1].lower, a[1].upper), (10.0, 8.0, 12.0));
    assert_eq!(a[1].detectors[0], ("level", 8.0));

    let q = EventQuery { min_score: 5.0, ..query("a", &[]) };
    assert_eq!(read(&batches, &q).0.len(), 1);
    let q = EventQuery { start_ms: Some(now - 40_000), end_ms: Some(now - 20_000), ..query("a", &[]) };
    assert_eq!(read(&batches, &q).0[0].labels["i"], "2", "only the event overlapping the range");
    let sel = [Selector::parse(r#"m{i=~"1|4"}"#).unwrap(), Selector::parse(r#"{i="3"}"#).unwrap()];
    assert_eq!(read(&batches, &query("a", &sel)).0.len(), 2, "any selector; tenant b's event stays hidden");
    let q = EventQuery { limit: 1, ..query("a", &[]) };
    let (one, matched) = read(&batches, &q);
    assert_eq!((one[0].labels["i"].as_str(), matched), ("4", 3), "the most recent within the limit");
}

#[test]
fn an_event_closed_while_the_open_ones_are_read_is_read_once_closed() {
    let log = EventLog::new(&EventsConfig::default());
    let now = super::table::now_ms();
    log.extend((0..10).map(|i| event("t", i, now - 5000, 2.0)));
    // A reader notes the count, then copies the open events: 100 and 101 are open then.
    let seen = log.pushed();
    let open_copy = |id| Event { open: true, ..event("t", id, now - 1000, 3.0) };
    let mut open = vec![open_copy(100), open_copy(101), open_copy(102)];
    // Before it takes the table, 100 closes, then CHUNK_ROWS others, then 101: both now in the table, one in
    // a chunk, one among the rows not yet chunked.
    log.extend([Event { end_ms: now, open: false, ..open_copy(100) }]);
    log.extend((0..CHUNK_ROWS as u64).map(|i| event("t", 1000 + i, now, 2.0)));
    log.extend([Event { end_ms: now, open: false, ..open_copy(101) }]);
    let closed = log.closed();
    assert!(!closed.chunks.is_empty(), "100 was chunked");
    closed.drop_closed_twins(&mut open, seen);
    assert_eq!(open.iter().map(|e| e.series_id).collect::<Vec<_>>(), [102], "only the one still open");
    // Events closed before the count are not among the newest: an open event of the same series (a later
    // one, another start) stays.
    let mut later = vec![Event { start_ms: now + 1000, ..open_copy(5) }, open_copy(5)];
    log.closed().drop_closed_twins(&mut later, seen);
    assert_eq!(later.len(), 2);
    let batches = log.closed().into_batches(&open);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 10 + 2 + CHUNK_ROWS + 1);
    assert_eq!(batches, log.snapshot(&open), "the table as snapshot builds it");
}

#[test]
fn events_are_filtered_as_they_are_as_in_the_table() {
    // Label values that JSON escapes: the text test on the labels must not lose them.
    let tricky = [r#"a"b"#, r"back\slash", "new\nline", "tab\t", "ünïcode ✓", "", "x"];
    let now = super::table::now_ms();
    let events: Vec<Event> = tricky
        .iter()
        .enumerate()
        .flat_map(|(i, v)| {
            let labels: std::collections::BTreeMap<&str, &str> = [("__name__", "m"), ("v", v), ("job", "api")].into();
            let labels: Arc<str> = Arc::from(serde_json::to_string(&labels).unwrap());
            let at = now - 10_000 * i as i64;
            let e = |tenant: &str, start_ms, score| Event {
                labels: Arc::clone(&labels),
                start_ms,
                end_ms: start_ms + 500,
                peak: Peak::new(start_ms + 200, 5.0, &verdict(score)),
                open: score > 4.0,
                ..event(tenant, i as u64, 0, 0.0)
            };
            [e("a", at, 2.0), e("a", at - 1000, 5.0), e("b", at, 3.0), e("a", at + 1, f64::NAN)]
        })
        .chain(
            // Labels that do not parse as a label set are never read (the engine writes none).
            [(100, r#"{"v":1}"#), (101, "not json"), (102, r#"{"v":"x","n":null}"#)]
                .map(|(id, text)| Event { labels: Arc::from(text), ..event("a", id, now, 2.0) }),
        )
        .collect();
    let batches = vec![super::table::to_batch_for_tests(&events)];
    let sels = |texts: &[&str]| texts.iter().map(|t| Selector::parse(t).unwrap()).collect::<Vec<_>>();
    let selector_sets = [
        sels(&[]),
        sels(&[r#"m{v="a\"b"}"#]),
        sels(&[r#"{v="back\\slash"}"#, r#"{v="new\nline"}"#]),
        sels(&[r#"m{v="tab\t",job="api"}"#]),
        sels(&[r#"{v="ünïcode ✓"}"#]),
        sels(&[r#"m{v=""}"#]),
        sels(&[r#"m{v!="x",job=~"a.*"}"#]),
        sels(&[r#"m{job="web"}"#]),
    ];
    for sel in &selector_sets {
        let base = query("a", sel);
        let queries = [
            base.clone(),
            EventQuery { min_score: 3.0, ..base.clone() },
            EventQuery { start_ms: Some(now - 25_000), end_ms: Some(now - 5_000), ..base.clone() },
            EventQuery { limit: 2, ..base.clone() },
            EventQuery { tenant: "b", ..base.clone() },
        ];
        for q in &queries {
            let mut filter = Filter::new(q);
            let copied: Vec<Event> = events.iter().filter(|e| filter.keeps(e)).cloned().collect();
            let direct = filter.read(&[], &[&copied]);
            // Debug text: NaN scores are kept alike, and NaN is not equal to itself.
            assert_eq!(format!("{direct:?}"), format!("{:?}", read(&batches, q)), "{q:?}");
            assert_eq!(format!("{direct:?}"), format!("{:?}", naive(&events, q)), "{q:?}");
        }
        let escaped = sel.iter().flat_map(|s| s.matchers()).any(|m| m.name == "v" && m.op == MatchOp::Equal);
        if escaped && !sel.iter().flat_map(|s| s.matchers()).any(|m| m.value.is_empty()) {
            assert_eq!(read(&batches, &base).1, 3 * sel.len(), "each selected series' three events: {sel:?}");
        }
    }
}

/// The query on `events` the plain way: every label set parsed, nothing skipped early.
fn naive(events: &[Event], q: &EventQuery<'_>) -> (Vec<Anomaly>, usize) {
    let mut out: Vec<Anomaly> = events
        .iter()
        .filter(|e| {
            !(&*e.tenant != q.tenant
                || e.peak.score < q.min_score
                || q.start_ms.is_some_and(|from| e.end_ms < from)
                || q.end_ms.is_some_and(|to| e.start_ms > to))
        })
        .filter_map(|e| {
            let labels: std::collections::BTreeMap<String, String> = serde_json::from_str(&e.labels).ok()?;
            let selected =
                q.selectors.is_empty() || q.selectors.iter().any(|s| s.matches(|n| labels.get(n).map(String::as_str)));
            selected.then(|| Anomaly {
                labels,
                start_ms: e.start_ms,
                end_ms: e.end_ms,
                peak_ms: e.peak.timestamp_ms,
                value: e.peak.value,
                score: e.peak.score,
                expected: e.peak.expected,
                lower: e.peak.lower,
                upper: e.peak.upper,
                detectors: e.peak.contributions.iter().collect(),
                severity: e.severity(),
                open: e.open,
            })
        })
        .collect();
    out.sort_by_key(|a| (a.peak_ms, a.start_ms));
    let matched = out.len();
    out.drain(..matched.saturating_sub(q.limit));
    (out, matched)
}

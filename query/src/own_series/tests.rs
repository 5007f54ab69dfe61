#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;

use super::*;

thread_local! {
    /// "Now" for the store under test; each test runs on its own thread.
    static NOW: Cell<i64> = const { Cell::new(1_700_000_000_000) };
}

fn now() -> i64 {
    NOW.with(Cell::get)
}

fn set_now(ms: i64) {
    NOW.with(|n| n.set(ms));
}

fn store(config: OwnSeriesConfig) -> OwnSeriesStore {
    OwnSeriesStore::with_clock(config, OwnSeriesMetrics::default(), now)
}

fn series(name: &str, extra: &[(&str, &str)], samples: &[(i64, f64)]) -> OwnSeries {
    let mut labels = vec![("__name__".to_owned(), name.to_owned())];
    labels.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    OwnSeries { labels, samples: samples.to_vec() }
}

fn all(_: &Labels) -> bool {
    true
}

fn budget() -> Budget {
    Budget { series: 1000, samples: 1_000_000 }
}

fn dropped(s: &OwnSeriesStore, reason: &'static str) -> u64 {
    s.metrics.dropped.get_or_create(&ReasonLabels { reason }).get()
}

#[test]
fn tenants_are_kept_apart_and_windows_are_inclusive() {
    let s = store(OwnSeriesConfig::default());
    let t0 = now() - 60_000;
    s.append("a", vec![series("anomaly_score", &[("for", "latency")], &[(t0, 1.0), (t0 + 15_000, 2.0)])]);
    s.append("b", vec![series("anomaly_score", &[("for", "errors")], &[(t0, 9.0)])]);
    let a = s.select("a", &all, (t0, t0 + 15_000), &mut budget()).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].labels.get("for").map(String::as_str), Some("latency"));
    assert_eq!(a[0].samples, vec![(t0, 1.0), (t0 + 15_000, 2.0)]);
    assert_eq!(s.select("a", &all, (t0 + 1, t0 + 15_000), &mut budget()).unwrap()[0].samples.len(), 1);
    assert!(s.select("a", &all, (t0 + 15_001, now()), &mut budget()).unwrap().is_empty());
    let b = s.series("b", &all, (i64::MIN, i64::MAX));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].get("for").map(String::as_str), Some("errors"));
    assert!(s.series("c", &all, (i64::MIN, i64::MAX)).is_empty());
    assert_eq!(s.len(), (2, 3));
}

#[test]
fn empty_values_are_no_label_and_a_series_needs_a_name() {
    let s = store(OwnSeriesConfig::default());
    let t = now();
    s.append("a", vec![series("m", &[("job", ""), ("x", "1")], &[(t, 1.0)])]);
    s.append("a", vec![OwnSeries { labels: vec![("x".into(), "1".into())], samples: vec![(t, 1.0)] }]);
    let got = s.series("a", &all, (t, t));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].keys().map(String::as_str).collect::<Vec<_>>(), ["__name__", "x"]);
    assert_eq!(dropped(&s, "no_name"), 1);
}

#[test]
fn out_of_order_samples_take_their_place_and_repeats_overwrite() {
    let s = store(OwnSeriesConfig::default());
    let t = now() - 100_000;
    s.append("a", vec![series("m", &[], &[(t + 30, 3.0), (t + 10, 1.0), (t + 20, 2.0), (t + 30, 4.0)])]);
    s.append("a", vec![series("m", &[], &[(t + 10, 5.0)])]);
    let got = s.select("a", &all, (t, t + 100), &mut budget()).unwrap();
    assert_eq!(got[0].samples, vec![(t + 10, 5.0), (t + 20, 2.0), (t + 30, 4.0)]);
    assert_eq!(s.len(), (1, 3));
}

#[test]
fn samples_past_the_retention_are_refused_then_swept() {
    let s = store(OwnSeriesConfig { retention: Duration::from_secs(3600), ..OwnSeriesConfig::default() });
    let start = now();
    s.append("a", vec![series("m", &[], &[(start - 3_600_001, 1.0), (start - 1000, 2.0), (start, 3.0)])]);
    assert_eq!(dropped(&s, "too_old"), 1);
    assert_eq!(s.len(), (1, 2));
    s.append("a", vec![series("old", &[], &[(start - 10, 1.0)])]);
    // An hour and a bit later the first two samples and the series `old` have expired: a read no longer sees
    // them, and the next append (a minute after the last sweep) sweeps them away.
    set_now(start + 3_600_000 + SWEEP_EVERY_MS);
    let seen = s.select("a", &all, (i64::MIN, i64::MAX), &mut budget()).unwrap();
    assert!(seen.is_empty(), "{seen:?}");
    s.append("b", vec![series("m", &[], &[(now(), 1.0)])]);
    assert_eq!(s.len(), (1, 1), "tenant a swept away, b's one sample kept");
    assert!(s.tenants.read().get("a").is_none());
}

#[test]
fn the_series_cap_refuses_new_series_and_counts_their_samples() {
    let s = store(OwnSeriesConfig { max_series: 2, ..OwnSeriesConfig::default() });
    let t = now();
    s.append("a", vec![series("m", &[("i", "1")], &[(t, 1.0)]), series("m", &[("i", "2")], &[(t, 1.0)])]);
    s.append("b", vec![series("m", &[("i", "3")], &[(t - 1, 1.0), (t, 1.0)])]);
    assert_eq!(s.len(), (2, 2));
    assert_eq!(dropped(&s, "series_limit"), 2);
    // Known series still take samples.
    s.append("a", vec![series("m", &[("i", "1")], &[(t + 1, 2.0)])]);
    assert_eq!(s.len(), (2, 3));
}

#[test]
fn at_the_sample_cap_a_series_rolls_over_and_a_new_one_gets_nothing() {
    let s = store(OwnSeriesConfig { max_samples: 3, ..OwnSeriesConfig::default() });
    let t = now() - 1000;
    s.append("a", vec![series("m", &[], &[(t, 1.0), (t + 1, 2.0), (t + 2, 3.0), (t + 3, 4.0)])]);
    let got = s.select("a", &all, (t, now()), &mut budget()).unwrap();
    assert_eq!(got[0].samples, vec![(t + 1, 2.0), (t + 2, 3.0), (t + 3, 4.0)]);
    s.append("a", vec![series("n", &[], &[(t, 1.0)])]);
    assert_eq!(s.series("a", &|l: &Labels| l["__name__"] == "n", (t, now())).len(), 0);
    assert_eq!(s.len().1, 3);
    assert_eq!(dropped(&s, "samples_limit"), 2);
}

#[test]
fn a_query_over_budget_is_refused() {
    let s = store(OwnSeriesConfig::default());
    let t = now() - 1000;
    s.append("a", vec![series("m", &[("i", "1")], &[(t, 1.0), (t + 1, 1.0)]), series("m", &[("i", "2")], &[(t, 1.0)])]);
    let mut small = Budget { series: 10, samples: 2 };
    assert_eq!(s.select("a", &all, (t, now()), &mut small), Err(BudgetError::Samples(small.samples)).map(|()| vec![]));
    let mut one = Budget { series: 1, samples: 10 };
    assert!(matches!(s.select("a", &all, (t, now()), &mut one), Err(BudgetError::Series(_))));
}

#[test]
fn config_defaults_and_problems() {
    OwnSeriesConfig::default().validate().unwrap();
    let bad =
        OwnSeriesConfig { retention: Duration::ZERO, max_series: 0, max_samples: 0, ..OwnSeriesConfig::default() };
    let problems = bad.validate().unwrap_err();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems.iter().all(|p| p.starts_with("own_series.")), "{problems:?}");
}

//! Evaluator tests against answers computed by hand with Prometheus' rules (the computation is spelled out
//! next to each expected value).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use vigil_ingest::own_series::{OwnSeries, OwnSeriesSink};

use super::*;
use crate::own_series::{OwnSeriesConfig, OwnSeriesMetrics};

/// "Now" for the store: well after every sample below.
const NOW: i64 = 1_700_010_000_000;
/// The samples' time origin.
const T0: i64 = 1_700_000_000_000;

fn store() -> OwnSeriesStore {
    OwnSeriesStore::with_clock(OwnSeriesConfig::default(), OwnSeriesMetrics::default(), || NOW)
}

fn add(s: &OwnSeriesStore, labels: &[(&str, &str)], samples: &[(i64, f64)]) {
    let labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let samples = samples.iter().map(|&(secs, v)| (T0 + secs * 1000, v)).collect();
    s.append("t", vec![OwnSeries { labels, samples }]);
}

fn limits() -> Limits {
    Limits {
        lookback_ms: 300_000,
        budget: Budget { series: 1000, samples: 1_000_000 },
        deadline: Instant::now() + Duration::from_secs(30),
    }
}

/// An instant query at `T0 + secs`, as `(labels as "k=v,…", value)`.
fn at(s: &OwnSeriesStore, query: &str, secs: i64) -> Vec<(String, f64)> {
    match instant(s, "t", query, T0 + secs * 1000, limits()).unwrap() {
        Value::Vector(v) => v.into_iter().map(|x| (show(&x.labels), x.value)).collect(),
        Value::Scalar(x) => vec![(String::new(), x)],
        other => panic!("{query}: {other:?}"),
    }
}

fn show(labels: &Labels) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-9 * want.abs().max(1.0)
}

fn assert_one(got: &[(String, f64)], labels: &str, want: f64) {
    assert!(matches!(got, [(l, v)] if l == labels && close(*v, want)), "want {labels} {want}, got {got:?}");
}

#[test]
fn rate_extrapolates_to_the_range_edges_as_prometheus_does() {
    let s = store();
    // Two samples, 15 s apart, late in a 60 s window (0, 60]: at 30 s and 45 s.
    add(&s, &[("__name__", "c"), ("k", "sparse")], &[(30, 100.0), (45, 130.0)]);
    // The first sample is 30 s from the window's start, more than 1.1 × the 15 s average interval: extrapolate
    // half an interval (7.5 s) only; the last is 15 s from the end, under 16.5 s: extrapolate all the way.
    // (The counter's zero point, 15 × 100/30 = 50 s back, is further than 7.5 s and changes nothing.)
    // increase = 30 × (15 + 7.5 + 15) / 15 = 75; rate = 75 / 60 s.
    assert_one(&at(&s, "increase(c[1m])", 60), "k=sparse", 75.0);
    assert_one(&at(&s, "rate(c[1m])", 60), "k=sparse", 1.25);
    // delta does not treat drops as resets and has no zero point: 30 × 37.5 / 15.
    assert_one(&at(&s, "delta(c[1m])", 60), "k=sparse", 75.0);
}

#[test]
fn increase_matches_prometheus_own_test_case() {
    // Prometheus' promql testdata: `load 5m http_requests{path="/foo"} 0 1 2 3 2 3 4`,
    // `eval instant at 30m increase(http_requests[30m])` gives 7. (Under Prometheus 3's left-open range the
    // sample at 0 is out: 3 + the reset's 3 = 6 over 25 min, extrapolated to the zero point 25/6 min
    // before the first sample: 6 × (25 + 25/6) / 25 = 7 again.)
    let s = store();
    let samples: Vec<(i64, f64)> =
        [0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0].iter().enumerate().map(|(i, &v)| (i as i64 * 300, v)).collect();
    add(&s, &[("__name__", "http_requests"), ("path", "/foo")], &samples);
    assert_one(&at(&s, "increase(http_requests[30m])", 1800), "path=/foo", 7.0);
    assert_one(&at(&s, "rate(http_requests[30m])", 1800), "path=/foo", 7.0 / 1800.0);
}

#[test]
fn rate_adds_back_counter_resets_and_stops_at_zero() {
    let s = store();
    add(&s, &[("__name__", "c")], &[(10, 10.0), (20, 20.0), (30, 5.0)]);
    // Window (0, 30]: 5 − 10 + 20 (the reset) = 15 over 20 s; 10 s to the start (under 11 s: extrapolated);
    // the zero point is 20 × 10/15 = 13.3 s back, beyond 10 s. increase = 15 × 30/20 = 22.5, rate = 22.5/30.
    assert_one(&at(&s, "rate(c[30s])", 30), "", 0.75);
    // irate: the last two samples, a reset: 5 / 10 s.
    assert_one(&at(&s, "irate(c[30s])", 30), "", 0.5);
    // idelta: no reset handling.
    assert_one(&at(&s, "idelta(c[30s])", 30), "", -15.0);

    let z = store();
    add(&z, &[("__name__", "c")], &[(20, 1.0), (30, 21.0)]);
    // 20 over 10 s, 20 s to the start of (0, 30] (≥ 11 s: half an interval, 5 s), but the zero point is only
    // 10 × 1/20 = 0.5 s back: increase = 20 × (10 + 0.5) / 10 = 21.
    assert_one(&at(&z, "increase(c[30s])", 30), "", 21.0);
    // One sample in the window: no rate.
    assert!(at(&z, "rate(c[5s])", 30).is_empty());
}

#[test]
fn over_time_functions_and_the_left_open_range() {
    let s = store();
    add(&s, &[("__name__", "anomaly_score"), ("for", "latency")], &[(0, 0.5), (60, 7.0), (120, 1.0), (180, 2.0)]);
    assert_one(&at(&s, "max_over_time(anomaly_score[5m])", 180), "for=latency", 7.0);
    assert_one(&at(&s, "min_over_time(anomaly_score[5m])", 180), "for=latency", 0.5);
    assert_one(&at(&s, "sum_over_time(anomaly_score[5m])", 180), "for=latency", 10.5);
    assert_one(&at(&s, "avg_over_time(anomaly_score[5m])", 180), "for=latency", 10.5 / 4.0);
    assert_one(&at(&s, "count_over_time(anomaly_score[5m])", 180), "for=latency", 4.0);
    // (0, 180] leaves the sample at 0 out.
    assert_one(&at(&s, "count_over_time(anomaly_score[3m])", 180), "for=latency", 3.0);
    // The spike at 60 s is out of (60, 240].
    assert_one(&at(&s, "max_over_time(anomaly_score[3m])", 240), "for=latency", 2.0);
    // last_over_time keeps the name.
    assert_one(&at(&s, "last_over_time(anomaly_score[5m])", 200), "__name__=anomaly_score,for=latency", 2.0);
    // Population variance of 0.5, 7, 1, 2: mean 2.625; squares of deviations sum to 26.6875; / 4.
    assert_one(&at(&s, "stdvar_over_time(anomaly_score[5m])", 180), "for=latency", 26.6875 / 4.0);
}

#[test]
fn instant_selectors_look_back_five_minutes_and_honour_offset_and_matchers() {
    let s = store();
    add(&s, &[("__name__", "m"), ("job", "api"), ("zone", "eu")], &[(0, 1.0), (100, 2.0)]);
    add(&s, &[("__name__", "m"), ("job", "db")], &[(0, 3.0)]);
    assert_eq!(at(&s, "m", 100), [("__name__=m,job=api,zone=eu".into(), 2.0), ("__name__=m,job=db".into(), 3.0)]);
    // 300 s after its last sample a series is gone (the lookback is left-open too).
    assert_eq!(at(&s, "m", 300), [("__name__=m,job=api,zone=eu".into(), 2.0)]);
    assert!(at(&s, "m", 400).is_empty());
    // Offset: read at 50 s, before api's second sample.
    assert_one(&at(&s, "m{job=\"api\"} offset 100s", 150), "__name__=m,job=api,zone=eu", 1.0);
    assert_one(&at(&s, "m{job=\"api\"} offset -50s", 50), "__name__=m,job=api,zone=eu", 2.0);
    assert_one(&at(&s, "m{job!=\"api\"}", 100), "__name__=m,job=db", 3.0);
    assert_one(&at(&s, "m{job=~\"a.*\"}", 100), "__name__=m,job=api,zone=eu", 2.0);
    // Anchored: `a` alone matches nothing.
    assert!(at(&s, "m{job=~\"a\"}", 100).is_empty());
    assert_one(&at(&s, "m{job!~\"a.*\"}", 100), "__name__=m,job=db", 3.0);
    // An absent label reads as "".
    assert_one(&at(&s, "m{zone=\"\"}", 100), "__name__=m,job=db", 3.0);
    assert_one(&at(&s, "{__name__=\"m\", zone!=\"\"}", 100), "__name__=m,job=api,zone=eu", 2.0);
    // `@` pins the time whatever the evaluation time: both series as they were at 0 s.
    assert_eq!(
        at(&s, "m @ 1700000000", 1000),
        [("__name__=m,job=api,zone=eu".into(), 1.0), ("__name__=m,job=db".into(), 3.0)]
    );
}

fn aggregation_store() -> OwnSeriesStore {
    let s = store();
    add(&s, &[("__name__", "a"), ("job", "x"), ("inst", "1")], &[(0, 1.0)]);
    add(&s, &[("__name__", "a"), ("job", "x"), ("inst", "2")], &[(0, 2.0)]);
    add(&s, &[("__name__", "a"), ("job", "y"), ("inst", "3")], &[(0, 4.0)]);
    s
}

#[test]
fn aggregations_by_and_without() {
    let s = aggregation_store();
    assert_eq!(at(&s, "sum by (job) (a)", 0), [("job=x".into(), 3.0), ("job=y".into(), 4.0)]);
    assert_eq!(at(&s, "sum without (inst) (a)", 0), [("job=x".into(), 3.0), ("job=y".into(), 4.0)]);
    assert_eq!(at(&s, "sum(a)", 0), [(String::new(), 7.0)]);
    assert_eq!(at(&s, "avg by (job) (a)", 0), [("job=x".into(), 1.5), ("job=y".into(), 4.0)]);
    assert_eq!(at(&s, "count by (job) (a)", 0), [("job=x".into(), 2.0), ("job=y".into(), 1.0)]);
    assert_eq!(at(&s, "max by (job) (a)", 0), [("job=x".into(), 2.0), ("job=y".into(), 4.0)]);
    assert_eq!(at(&s, "min(a) by (job)", 0), [("job=x".into(), 1.0), ("job=y".into(), 4.0)]);
    assert_eq!(at(&s, "group by (job) (a)", 0), [("job=x".into(), 1.0), ("job=y".into(), 1.0)]);
    // Quantile 0.5 of 1, 2, 4: rank 1, the middle one.
    assert_eq!(at(&s, "quantile(0.5, a)", 0), [(String::new(), 2.0)]);
    // topk keeps the whole label set and orders by value.
    assert_eq!(
        at(&s, "topk(2, a)", 0),
        [("__name__=a,inst=3,job=y".into(), 4.0), ("__name__=a,inst=2,job=x".into(), 2.0)]
    );
    assert_eq!(at(&s, "topk by (job) (1, a)", 0).len(), 2);
    assert_eq!(at(&s, "bottomk(1, a)", 0), [("__name__=a,inst=1,job=x".into(), 1.0)]);
    assert!(at(&s, "topk(0, a)", 0).is_empty());
}

#[test]
fn binary_operators_with_scalars_and_one_to_one_matching() {
    let s = aggregation_store();
    add(&s, &[("__name__", "b"), ("job", "x"), ("inst", "1")], &[(0, 10.0)]);
    add(&s, &[("__name__", "limit"), ("job", "x")], &[(0, 100.0)]);
    assert_eq!(at(&s, "1 + 2 * 3", 0), [(String::new(), 7.0)]);
    assert_eq!(at(&s, "2 ^ 10 % 1000", 0), [(String::new(), 24.0)]);
    assert_one(&at(&s, "a{inst=\"3\"} * 2", 0), "inst=3,job=y", 8.0);
    assert_one(&at(&s, "10 - a{inst=\"3\"}", 0), "inst=3,job=y", 6.0);
    // Comparisons filter and keep the name and the vector's value, on either side.
    assert_eq!(at(&s, "a > 1", 0).len(), 2);
    assert_one(&at(&s, "3 < a", 0), "__name__=a,inst=3,job=y", 4.0);
    assert_eq!(at(&s, "a > bool 1", 0).iter().map(|x| x.1).collect::<Vec<_>>(), [0.0, 1.0, 1.0]);
    // One-to-one on all labels but the name.
    assert_one(&at(&s, "b / a", 0), "inst=1,job=x", 10.0);
    // `on` keeps only the matching labels; group_left takes the "one" side's labels asked for.
    assert_eq!(
        at(&s, "a / on (job) group_left limit", 0),
        [("inst=1,job=x".into(), 0.01), ("inst=2,job=x".into(), 0.02)]
    );
    assert_eq!(at(&s, "a and on (job) limit", 0).len(), 2);
    assert_one(&at(&s, "a unless on (job) limit", 0), "__name__=a,inst=3,job=y", 4.0);
    assert_eq!(at(&s, "b or a", 0).len(), 3, "a{{inst=1}} matches b and is left out");
    assert_one(&at(&s, "-b", 0), "inst=1,job=x", -10.0);
    // Many on the left without group_left is an error, as in Prometheus.
    let e = instant(&s, "t", "a * on (job) limit", T0, limits()).unwrap_err();
    assert!(e.to_string().contains("many-to-one matching must be explicit"), "{e}");
    let e = instant(&s, "t", "limit * on (job) a", T0, limits()).unwrap_err();
    assert!(e.to_string().contains("many-to-many matching not allowed"), "{e}");
}

#[test]
fn histogram_quantile_interpolates_within_the_bucket() {
    let s = store();
    // Cumulative counts growing by these per 10 s, two instances alike: rates in the same proportion.
    for inst in ["1", "2"] {
        for (le, per_step) in [("0.1", 10.0), ("0.5", 60.0), ("1", 90.0), ("+Inf", 100.0)] {
            let samples: Vec<(i64, f64)> = (0..=30).map(|i| (i * 10, per_step * i as f64)).collect();
            add(&s, &[("__name__", "lat_bucket"), ("le", le), ("inst", inst)], &samples);
        }
    }
    // 0.5 × 100 = rank 50, in the (0.1, 0.5] bucket holding 10..60: 0.1 + 0.4 × (50 − 10)/50 = 0.42.
    let q = |phi: &str| at(&s, &format!("histogram_quantile({phi}, sum by (le) (rate(lat_bucket[5m])))"), 300);
    assert_one(&q("0.5"), "", 0.42);
    // rank 75 in (0.5, 1] holding 60..90: 0.5 + 0.5 × 15/30.
    assert_one(&q("0.75"), "", 0.75);
    // rank 99 falls in the +Inf bucket: the highest finite bound.
    assert_one(&q("0.99"), "", 1.0);
    assert!(q("1.5")[0].1.is_infinite());
    // Per instance (grouped by all labels but `le`), on the raw counts.
    let per = at(&s, "histogram_quantile(0.5, lat_bucket)", 300);
    assert_eq!(per.len(), 2);
    assert!(per.iter().all(|(l, v)| l.starts_with("inst=") && close(*v, 0.42)), "{per:?}");
}

#[test]
fn range_queries_step_from_start_and_scalars_have_no_labels() {
    let s = store();
    add(&s, &[("__name__", "g"), ("k", "v")], &[(0, 1.0), (30, 2.0), (90, 3.0)]);
    let span = Span { start_ms: T0, end_ms: T0 + 120_000, step_ms: 45_000 };
    let m = range(&s, "t", "g", span, limits()).unwrap();
    assert_eq!(m.len(), 1);
    // At 0, 45, 90 s (120 s is not on a step): the newest sample at or before each.
    assert_eq!(m[0].points, vec![(T0, 1.0), (T0 + 45_000, 2.0), (T0 + 90_000, 3.0)]);
    assert_eq!(show(&m[0].labels), "__name__=g,k=v");
    let m = range(&s, "t", "time()", span, limits()).unwrap();
    assert!(m[0].labels.is_empty());
    assert_eq!(m[0].points[1], (T0 + 45_000, (T0 + 45_000) as f64 / 1000.0));
    let e = range(&s, "t", "g[5m]", span, limits()).unwrap_err();
    assert!(e.to_string().contains("range vector"), "{e}");
}

#[test]
fn unsupported_and_malformed_queries_are_refused_with_what_is_wrong() {
    let s = store();
    let err = |q: &str| instant(&s, "t", q, T0, limits()).unwrap_err();
    let e = err("label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")");
    assert!(matches!(&e, QueryError::Unsupported(m) if m.contains("\"label_replace\"")), "{e:?}");
    assert!(matches!(err("max_over_time(rate(x[1m])[5m:1m])"), QueryError::Unsupported(m) if m.contains("subquery")));
    assert!(matches!(err("count_values(\"v\", x)"), QueryError::Unsupported(m) if m.contains("count_values")));
    assert!(matches!(err("sum(x"), QueryError::Parse(_)));
    assert!(matches!(err("rate(x)"), QueryError::Parse(m) if m.contains("matrix")));
}

#[test]
fn a_vector_with_one_label_set_twice_and_queries_over_budget_fail() {
    let s = store();
    add(&s, &[("__name__", "a"), ("k", "1")], &[(0, 1.0), (10, 2.0)]);
    add(&s, &[("__name__", "b"), ("k", "1")], &[(0, 1.0), (10, 2.0)]);
    let e = instant(&s, "t", "rate(a[1m]) or rate(b[1m])", T0 + 10_000, limits());
    // `or` drops b's element (its signature is a's), so this one is fine…
    assert!(e.is_ok(), "{e:?}");
    // …but a vector selector over both, with names dropped, has the same label set twice.
    let e = instant(&s, "t", "abs({k=\"1\"})", T0 + 10_000, limits()).unwrap_err();
    assert!(e.to_string().contains("same labelset"), "{e}");
    let tiny = Limits { budget: Budget { series: 10, samples: 3 }, ..limits() };
    let e = instant(&s, "t", "{k=\"1\"}", T0 + 10_000, tiny).unwrap_err();
    assert!(matches!(e, QueryError::Budget(BudgetError::Samples(_))), "{e:?}");
}

#[test]
fn tenants_see_only_their_own_series() {
    let s = store();
    add(&s, &[("__name__", "m")], &[(0, 1.0)]);
    assert!(matches!(instant(&s, "other", "m", T0, limits()), Ok(Value::Vector(v)) if v.is_empty()));
}

#[test]
fn extreme_queries_are_refused_or_answered_never_a_panic() {
    let s = store();
    add(&s, &[("__name__", "c")], &[(0, 1.0), (10, 2.0)]);
    let err = |q: &str| instant(&s, "t", q, T0, limits()).unwrap_err();
    let deep = format!("{}c{}", "(".repeat(300), ")".repeat(300));
    assert!(matches!(err(&deep), QueryError::Unsupported(m) if m.contains("nested more than 256")));
    let long = "1+".repeat(9000) + "1";
    assert!(matches!(err(&long), QueryError::Parse(m) if m.contains("more than 16384")));
    // Ranges and offsets reaching back further than milliseconds in an i64 go.
    let v = instant(&s, "t", "rate(c[100000000y])", T0 + 10_000, limits()).unwrap();
    assert!(matches!(v, Value::Vector(v) if v.len() == 1));
    assert!(instant(&s, "t", "c offset 100000000y", T0, limits()).is_ok());
    let span = Span { start_ms: -9_000_000_000_000_000_000, end_ms: 9_000_000_000_000_000_000, step_ms: 1 << 60 };
    let m = range(&s, "t", "count_over_time(c[100000000y])", span, limits()).unwrap();
    assert!(m.iter().all(|s| s.points.len() <= 16), "{m:?}");
}

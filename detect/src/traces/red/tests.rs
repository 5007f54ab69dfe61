#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use prost::Message;
use vigil_proto::prometheus::WriteRequest;

use super::*;

/// (tenant, name, labels without the name, timestamp, value), sorted.
type Sample = (String, String, BTreeMap<String, String>, i64, f64);

fn decode(bodies: &mut Bodies) -> Vec<Sample> {
    let (out, failed) = bodies.drain();
    assert_eq!(failed, 0);
    let mut samples = Vec::new();
    for wb in out {
        let raw = snap::raw::Decoder::new().decompress_vec(&wb.body).unwrap();
        for ts in WriteRequest::decode(raw.as_slice()).unwrap().timeseries {
            let mut labels: BTreeMap<String, String> = ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
            let name = labels.remove("__name__").unwrap();
            for s in ts.samples {
                samples.push((wb.tenant.to_string(), name.clone(), labels.clone(), s.timestamp, s.value));
            }
        }
    }
    samples.sort_by(|a, b| (a.3, &a.1, &a.2).partial_cmp(&(b.3, &b.1, &b.2)).unwrap());
    samples
}

fn config(step_s: u64, lateness_s: u64) -> RedConfig {
    RedConfig {
        step: Duration::from_secs(step_s),
        lateness: Duration::from_secs(lateness_s),
        idle_after: Duration::from_secs(30),
        quantiles: vec![0.5, 0.99],
        ..RedConfig::default()
    }
}

struct Names {
    tenant: Arc<str>,
    api: Arc<str>,
}

fn names() -> Names {
    Names { tenant: Arc::from("t1"), api: Arc::from("api") }
}

fn span<'a>(n: &'a Names, end_ms: i64, ms: i64, error: bool) -> SpanSample<'a> {
    SpanSample {
        tenant: 0,
        tenant_name: &n.tenant,
        service: 0,
        service_name: &n.api,
        name: "GET /",
        kind: SpanKind::Server,
        root: false,
        end_ms,
        duration_ns: ms * 1_000_000,
        error,
    }
}

const WALL: i64 = 1_000_000_000;

fn named<'s>(samples: &'s [Sample], name: &str) -> Vec<(i64, f64, Option<&'s str>)> {
    samples.iter().filter(|s| s.1 == name).map(|s| (s.3, s.4, s.2.get("quantile").map(String::as_str))).collect()
}

#[test]
fn a_window_is_written_once_a_span_past_its_lateness_arrives() {
    let n = names();
    let mut red = Red::new(&config(10, 5), &SlowConfig::default(), Duration::ZERO);
    let now = Instant::now();
    let mut bodies = Bodies::default();
    // Window [0, 10 s): four spans, one failed; window [10 s, 20 s): two.
    for (end, ms, err) in [(1000, 10, false), (2000, 20, true), (9999, 30, false), (5000, 40, false)] {
        red.add(&span(&n, WALL + end, ms, err), WALL, now).unwrap();
    }
    red.add(&span(&n, WALL + 12_000, 100, false), WALL, now);
    assert!(red.flush(WALL, now, &mut bodies).is_empty(), "nothing complete: the watermark is at 7 s");
    red.add(&span(&n, WALL + 15_000, 100, false), WALL, now);
    let written = red.flush(WALL, now, &mut bodies);
    assert_eq!(written, [(0, WALL + 10_000)], "watermark 10 s: the first window only");
    let s = decode(&mut bodies);
    assert_eq!(named(&s, REQUESTS), [(WALL + 10_000, 0.4, None)], "4 spans in 10 s");
    assert_eq!(named(&s, ERROR_RATIO), [(WALL + 10_000, 0.25, None)]);
    let lat = named(&s, LATENCY);
    assert_eq!(lat.len(), 2);
    assert_eq!(lat[0].2, Some("0.5"));
    assert!((lat[0].1 - 0.020).abs() < 0.001, "p50 of 10/20/30/40 ms is 20 ms: {lat:?}");
    assert!((lat[1].1 - 0.040).abs() < 0.002, "{lat:?}");
    let labels = &s[0].2;
    assert_eq!(labels.get("service").map(String::as_str), Some("api"));
    assert_eq!(labels.get("span_name").map(String::as_str), Some("GET /"));
    assert_eq!(labels.get("span_kind").map(String::as_str), Some("SPAN_KIND_SERVER"));
    assert_eq!(s[0].0, "t1");
    // A span of the written window is late: counted, not written again.
    red.add(&span(&n, WALL + 3000, 10, false), WALL, now);
    assert_eq!(red.counts.late, 1);
}

#[test]
fn a_quiet_tenant_is_flushed_by_the_wall_clock_and_a_silent_operation_gets_zero_rates_for_a_while() {
    let n = names();
    let mut red = Red::new(&config(10, 5), &SlowConfig::default(), Duration::ZERO);
    let now = Instant::now();
    let mut bodies = Bodies::default();
    red.add(&span(&n, WALL + 1000, 10, false), WALL, now);
    assert!(red.flush(WALL + 2000, now, &mut bodies).is_empty());
    // 6 s of silence (> lateness), wall clock at 40 s: the window with the span is complete. The windows
    // after it, where the whole tenant is silent, are not written (the pipeline stopped, not the service).
    let later = now + Duration::from_secs(6);
    let written = red.flush(WALL + 40_000, later, &mut bodies);
    assert_eq!(written.iter().map(|w| w.1 - WALL).collect::<Vec<_>>(), [10_000]);
    let s = decode(&mut bodies);
    assert_eq!(named(&s, REQUESTS), [(WALL + 10_000, 0.1, None)]);
    // Spans of written windows are late; of windows never written (the wall clock passed them empty), not.
    red.add(&span(&n, WALL + 5_000, 10, false), WALL, later);
    red.add(&span(&n, WALL + 25_000, 10, false), WALL, later);
    assert_eq!(red.counts.late, 1);
    // Another operation goes on while "GET /" is silent: "GET /" gets zero rates, for idle_after (30 s).
    let mut red = Red::new(&config(10, 5), &SlowConfig::default(), Duration::ZERO);
    red.add(&span(&n, WALL + 1000, 10, false), WALL, now);
    let mut other = span(&n, 0, 10, false);
    other.name = "POST /";
    for w in 0..6 {
        other.end_ms = WALL + w * 10_000 + 500;
        red.add(&other, WALL, now);
    }
    let written = red.flush(WALL + 100_000, later, &mut bodies);
    assert_eq!(written.len(), 6);
    let s = decode(&mut bodies);
    let get: Vec<_> =
        s.iter().filter(|x| x.1 == REQUESTS && x.2["span_name"] == "GET /").map(|x| (x.3 - WALL, x.4)).collect();
    assert_eq!(get, [(10_000, 0.1), (20_000, 0.0), (30_000, 0.0), (40_000, 0.0)], "zeros for idle_after, then none");
    assert_eq!(named(&s, ERROR_RATIO).len(), 7, "no error ratio without requests");
    // New spans an hour later start windows again from there.
    red.add(&span(&n, WALL + 3_600_500, 10, false), WALL + 3_600_000, later);
    let written = red.flush(WALL + 3_700_000, later + Duration::from_secs(120), &mut bodies);
    assert_eq!(written.first().map(|w| w.1 - WALL), Some(3_610_000));
}

#[test]
fn a_complete_window_is_held_for_spans_still_in_other_shards() {
    let n = names();
    let mut red = Red::new(&config(10, 0), &SlowConfig::default(), Duration::from_secs(1));
    let now = Instant::now();
    let mut bodies = Bodies::default();
    red.add(&span(&n, WALL + 1000, 10, false), WALL, now);
    red.add(&span(&n, WALL + 25_000, 10, false), WALL, now);
    assert!(red.flush(WALL, now, &mut bodies).is_empty(), "complete by the watermark, not yet held");
    // Another shard's batch brings a span of the first window: it is not late.
    let later = now + Duration::from_millis(500);
    red.add(&span(&n, WALL + 2000, 10, false), WALL, later);
    assert!(red.flush(WALL, later, &mut bodies).is_empty());
    let written = red.flush(WALL, now + Duration::from_secs(1), &mut bodies);
    assert_eq!(written, [(0, WALL + 10_000)]);
    assert_eq!(named(&decode(&mut bodies), REQUESTS), [(WALL + 10_000, 0.2, None)], "both spans counted");
    assert_eq!(red.counts.late, 0);
    red.add(&span(&n, WALL + 3000, 10, false), WALL, later);
    assert_eq!(red.counts.late, 1, "once written, the window is closed");
}

#[test]
fn only_requests_are_counted_and_operations_are_capped() {
    let n = names();
    let mut cfg = config(10, 5);
    cfg.max_operations = 2;
    let mut red = Red::new(&cfg, &SlowConfig::default(), Duration::ZERO);
    let now = Instant::now();
    let mut client = span(&n, WALL, 1, false);
    client.kind = SpanKind::Client;
    assert_eq!(red.add(&client, WALL, now), None, "a client span is not a request");
    client.root = true;
    assert!(red.add(&client, WALL, now).is_some(), "a root span is, whatever its kind");
    let mut other = span(&n, WALL, 1, false);
    other.name = "POST /";
    assert!(red.add(&other, WALL, now).is_some());
    other.name = "PUT /";
    assert_eq!(red.add(&other, WALL, now), None);
    assert_eq!((red.operations(), red.counts.over_cap), (2, 1));
    let mut future = span(&n, WALL + 3_600_000, 1, false);
    future.name = "POST /";
    red.add(&future, WALL, now);
    assert_eq!(red.counts.future, 1, "an hour ahead of the wall clock is clock skew");
}

#[test]
fn slow_spans_are_measured_against_the_learnt_median_which_a_fault_does_not_move() {
    let n = names();
    let slow = SlowConfig { factor: 5.0, min_duration: Duration::from_millis(1), min_windows: 3 };
    let mut red = Red::new(&config(10, 0), &slow, Duration::ZERO);
    let now = Instant::now();
    let mut bodies = Bodies::default();
    let mut op = 0;
    for w in 0..4 {
        for i in 0..10 {
            op = red.add(&span(&n, WALL + w * 10_000 + i * 100, 20, false), WALL, now).unwrap();
        }
        assert_eq!(red.is_slow(op, 500_000_000), w >= 3, "only after min_windows windows (window {w})");
        red.add(&span(&n, WALL + (w + 1) * 10_000 + 1, 20, false), WALL, now);
        red.flush(WALL, now, &mut bodies);
    }
    assert!(red.is_slow(op, 500_000_000), "25× the median");
    assert!(!red.is_slow(op, 60_000_000), "3× is within the factor");
    // Windows of slow spans do not become the new normal.
    for w in 5..10 {
        for i in 0..10 {
            red.add(&span(&n, WALL + w * 10_000 + i * 100, 500, false), WALL, now);
        }
        red.add(&span(&n, WALL + (w + 1) * 10_000 + 1, 500, false), WALL, now);
        red.flush(WALL, now, &mut bodies);
    }
    assert!(red.is_slow(op, 500_000_000));
}

#[test]
fn past_512_spans_a_window_reads_its_quantiles_from_a_sketch_of_every_span() {
    let mut w = Window::default();
    let mut all = Sketch::default();
    let mut sorted = Vec::new();
    for i in 0..1000i64 {
        let d = 1_000_000 + (i * 7_919 % 1000) * 10_000;
        w.add(d);
        all.add(d);
        sorted.push(d);
        if i == 99 {
            sorted.sort_unstable();
            let p50 = sorted[49] as f64;
            assert_eq!(w.quantiles([0.5].into_iter()), [Some(p50)], "exact while every span is kept");
        }
    }
    assert_eq!(w.sketch, all);
    assert_eq!(w.quantiles([0.5, 0.99].into_iter()), [all.quantile(0.5), all.quantile(0.99)]);
}

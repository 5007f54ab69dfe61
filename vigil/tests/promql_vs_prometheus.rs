//! Vigil's PromQL against the real Prometheus (Debian's `prometheus`): the same series go into Vigil's
//! own-series store and, by remote write, into Prometheus; the same instant and range queries — selectors,
//! `rate`, `irate`, `increase`, `*_over_time`, `sum by`, `topk`, `histogram_quantile`, binary operators
//! with matching, `offset` — must give the same label sets, timestamps and values through both HTTP APIs.
//!
//! Evaluation times fall 7 s off the 15 s sample grid: Prometheus 2 (Debian's) takes ranges as `[t - r, t]`,
//! Prometheus 3 and Vigil as `(t - r, t]`, which differ only for a sample exactly at `t - r`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;
use support::load::{HEADERS, Rng};
use support::*;
use vigil_ingest::own_series::{OwnSeries, OwnSeriesSink};
use vigil_proto::prometheus as v1;
use vigil_query::{OwnSeriesConfig, OwnSeriesMetrics, OwnSeriesStore, PromApi};

const STEP_MS: i64 = 15_000;
const POINTS: i64 = 120;

type Labels = BTreeMap<String, String>;

/// A number in [0, 1) with six decimals.
fn unit(rng: &mut Rng) -> f64 {
    rng.next(1_000_000) as f64 / 1_000_000.0
}

/// Counters (one with a reset), gauges (one with a gap), and a classic histogram per job.
fn dataset(base: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let ts = |i: i64| base + i * STEP_MS;
    let mut out = Vec::new();
    for (job, instance, start, reset) in [("a", "1", 0.0, false), ("a", "2", 50.0, true), ("b", "1", 1000.0, false)] {
        let mut v = start;
        let samples = (0..POINTS)
            .map(|i| {
                v = if reset && i == 60 { unit(&mut rng) * 3.0 } else { v + (unit(&mut rng) * 10.0).floor() };
                (ts(i), v)
            })
            .collect();
        out.push((labels(&[("__name__", "c_total"), ("job", job), ("instance", instance)]), samples));
        let gauge =
            (0..POINTS).filter(|i| job != "b" || !(40..70).contains(i)).map(|i| (ts(i), unit(&mut rng))).collect();
        out.push((labels(&[("__name__", "g"), ("job", job), ("instance", instance)]), gauge));
    }
    for job in ["a", "b"] {
        let bounds = ["0.1", "0.5", "1", "+Inf"];
        let mut counts = [0.0; 4];
        let mut series: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 4];
        for i in 0..POINTS {
            for _ in 0..5 {
                let x = unit(&mut rng) * if job == "a" { 1.2 } else { 0.6 };
                for (b, le) in [0.1, 0.5, 1.0, f64::INFINITY].iter().enumerate() {
                    if x <= *le {
                        counts[b] += 1.0;
                    }
                }
            }
            for b in 0..4 {
                series[b].push((ts(i), counts[b]));
            }
        }
        for (le, samples) in bounds.iter().zip(series) {
            out.push((labels(&[("__name__", "h_bucket"), ("job", job), ("le", le)]), samples));
        }
    }
    out
}

fn remote_write_body(data: &[(Labels, Vec<(i64, f64)>)]) -> Bytes {
    let timeseries = data
        .iter()
        .map(|(labels, samples)| v1::TimeSeries {
            labels: labels.iter().map(|(k, v)| v1::Label { name: k.clone(), value: v.clone() }).collect(),
            samples: samples.iter().map(|&(timestamp, value)| v1::Sample { value, timestamp }).collect(),
            ..Default::default()
        })
        .collect();
    let raw = v1::WriteRequest { timeseries, metadata: vec![] }.encode_to_vec();
    Bytes::from(snap::raw::Encoder::new().compress_vec(&raw).unwrap())
}

async fn answer(base_url: &str, path: &str, form: &str) -> serde_json::Value {
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let r = request("POST", &format!("{base_url}{path}"), &headers, Bytes::from(form.to_owned())).await.unwrap();
    assert_eq!(r.status, 200, "{base_url}{path} {form}: {}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

/// A result as label set → points (a vector's one point, a scalar's under no labels).
fn points(v: &serde_json::Value) -> (String, BTreeMap<Labels, Vec<(String, String)>>) {
    let kind = v["data"]["resultType"].as_str().unwrap().to_owned();
    let point = |p: &serde_json::Value| (p[0].to_string(), p[1].as_str().unwrap().to_owned());
    let mut out = BTreeMap::new();
    if kind == "scalar" {
        out.insert(Labels::new(), vec![point(&v["data"]["result"])]);
        return (kind, out);
    }
    for s in v["data"]["result"].as_array().unwrap() {
        let labels =
            s["metric"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect();
        let ps = match s.get("values") {
            Some(values) => values.as_array().unwrap().iter().map(point).collect(),
            None => vec![point(&s["value"])],
        };
        out.insert(labels, ps);
    }
    (kind, out)
}

fn same_value(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-12),
        _ => false,
    }
}

fn compare(what: &str, vigil: &serde_json::Value, prometheus: &serde_json::Value) {
    let (vk, vp) = points(vigil);
    let (pk, pp) = points(prometheus);
    assert_eq!(vk, pk, "{what}: result types");
    assert_eq!(vp.keys().collect::<Vec<_>>(), pp.keys().collect::<Vec<_>>(), "{what}: label sets");
    for (labels, want) in &pp {
        let got = &vp[labels];
        assert_eq!(got.len(), want.len(), "{what} {labels:?}: points {got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.0 == w.0 && same_value(&g.1, &w.1), "{what} {labels:?}: Vigil {g:?}, Prometheus {w:?}");
        }
    }
}

const QUERIES: [&str; 40] = [
    "c_total",
    "g",
    "rate(c_total[5m])",
    "irate(c_total[1m])",
    "increase(c_total[10m])",
    "delta(g[5m])",
    "sum by (job) (rate(c_total[5m]))",
    "sum without (instance) (rate(c_total[2m]))",
    "max_over_time(g[5m])",
    "min_over_time(g[3m])",
    "avg_over_time(g[5m])",
    "sum_over_time(g[5m])",
    "count_over_time(g[10m])",
    "avg by (job) (g)",
    "count(g)",
    "topk(2, g)",
    "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
    "histogram_quantile(0.5, rate(h_bucket[5m]))",
    "g > 0.5",
    "g * 2 + 1",
    "c_total / on (job, instance) g",
    "rate(c_total[5m]) / ignoring (instance) group_left sum by (job) (g)",
    "g offset 5m",
    "1 + 1",
    "quantile(0.5, g)",
    "bottomk(1, g)",
    "stddev by (job) (g)",
    "stdvar_over_time(g[5m])",
    "last_over_time(g[5m])",
    "idelta(g[1m])",
    "abs(g - 0.5)",
    "clamp_max(g, 0.5)",
    "round(g, 0.1)",
    "-g",
    "g and on (job) (c_total > 100)",
    "g unless on (job, instance) (g > 0.9)",
    "g or vector(1)",
    "scalar(count(g)) * time()",
    "sgn(g - 0.5) != bool 1",
    "sort_desc(g)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigils_promql_answers_as_prometheus_does() {
    let dir = TempDir::new("promql-vs-prometheus");
    let prom_port = free_port();
    let config = dir.0.join("prometheus.yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n").unwrap();
    let _prom = Proc::spawn(
        "prometheus",
        &require_binary("prometheus"),
        &[
            format!("--config.file={}", config.display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
            format!("--storage.tsdb.path={}", dir.0.join("tsdb").display()),
            "--web.enable-remote-write-receiver".into(),
        ],
        &dir.0,
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_for("prometheus ready", Duration::from_secs(60), || {
        let url = format!("{prom}/-/ready");
        async move { get(&url).await.ok().filter(|r| r.status == 200).map(|_| ()) }
    })
    .await;

    // The last 30 minutes on the 15 s grid.
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let base = (now_ms - 31 * 60_000) / STEP_MS * STEP_MS;
    let data = dataset(base);
    let r = request("POST", &format!("{prom}/api/v1/write"), &HEADERS, remote_write_body(&data)).await.unwrap();
    assert!(r.status / 100 == 2, "Prometheus took the write: {} {}", r.status, r.text());

    let store = Arc::new(OwnSeriesStore::new(OwnSeriesConfig::default(), OwnSeriesMetrics::default()));
    let own = data.iter().map(|(l, s)| OwnSeries { labels: l.clone().into_iter().collect(), samples: s.clone() });
    store.append("anonymous", own.collect());
    let app = vigil_query::prom_api_router(Arc::new(PromApi::new(store, "anonymous".into())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vigil = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, app).into_future());

    let seconds = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let off_grid = |i: i64| base + i * STEP_MS + 7_000;
    for q in QUERIES {
        for t in [off_grid(40), off_grid(65), off_grid(POINTS - 1)] {
            let form = format!("query={}&time={}", urlencode(q), seconds(t));
            let (v, p) = (answer(&vigil, "/api/v1/query", &form).await, answer(&prom, "/api/v1/query", &form).await);
            compare(&format!("{q} at {t}"), &v, &p);
        }
        for step in ["30", "45"] {
            let form = format!(
                "query={}&start={}&end={}&step={step}",
                urlencode(q),
                seconds(off_grid(20)),
                seconds(off_grid(POINTS - 1))
            );
            let (v, p) =
                (answer(&vigil, "/api/v1/query_range", &form).await, answer(&prom, "/api/v1/query_range", &form).await);
            compare(&format!("{q} range step {step}"), &v, &p);
        }
    }
    // The comparison saw data: the counters' rates are there in both.
    let form = format!("query={}&time={}", urlencode("rate(c_total[5m])"), seconds(off_grid(65)));
    assert_eq!(points(&answer(&vigil, "/api/v1/query", &form).await).1.len(), 3);
}

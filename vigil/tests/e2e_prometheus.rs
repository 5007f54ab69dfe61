//! Prometheus → Vigil → VictoriaMetrics with the real servers: every sample Prometheus holds arrives in
//! VictoriaMetrics, series by series, timestamp by timestamp, labels intact.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::*;

type Series = BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>>;

/// Raw samples Prometheus holds for every series, read back through its query API.
async fn prometheus_samples(port: u16) -> Series {
    let url = format!("http://127.0.0.1:{port}/api/v1/query?query={}", urlencode("{__name__=~\".+\"}[1h]"));
    let body = get(&url).await.expect("prometheus query").text();
    let v: serde_json::Value = serde_json::from_str(&body).expect("prometheus answers JSON");
    assert_eq!(v["status"], "success", "{body}");
    let mut out = Series::new();
    for s in v["data"]["result"].as_array().expect("matrix") {
        let labels = s["metric"]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
            .collect();
        let samples = s["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|p| {
                (
                    (p[0].as_f64().unwrap_or(0.0) * 1000.0).round() as i64,
                    p[1].as_str().unwrap_or("").parse::<f64>().unwrap_or(f64::NAN),
                )
            })
            .collect();
        out.insert(labels, samples);
    }
    out
}

/// VictoriaMetrics stores values as decimals with about 15 significant digits, so huge values (e.g.
/// `process_virtual_memory_max_bytes` = 2^64 - 1) come back rounded.
fn same_value(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

/// Every sample Prometheus holds is in VictoriaMetrics at the same timestamp with the same value. The only
/// extra samples allowed are NaN: staleness markers, which Prometheus' query API hides.
fn matches(expected: &[(i64, f64)], arrived: &[(i64, f64)]) -> bool {
    let mut it = arrived.iter();
    for want in expected {
        loop {
            match it.next() {
                Some(got) if got.0 == want.0 && same_value(got.1, want.1) => break,
                Some(got) if got.1.is_nan() => continue,
                _ => return false,
            }
        }
    }
    it.all(|got| got.1.is_nan())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_write_reaches_victoriametrics_exactly() {
    let dir = TempDir::new("prometheus");
    let vm = VictoriaMetrics::start(&dir.0).await;
    let vigil = Vigil::start(&dir.0, &["--forward-victoriametrics".into(), vm.write_url()]).await;

    let prom_bin = require_binary("prometheus");
    let prom_port = free_port();
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{prom_port}']\n\
             remote_write:\n  - url: {}\n    send_exemplars: true\n    queue_config:\n      batch_send_deadline: 1s\n",
            vigil.url("/api/v1/write")
        ),
    )
    .expect("prometheus config");
    let tsdb = dir.0.join("prom-data");
    let args = |cfg: &std::path::Path, port: u16| {
        vec![
            format!("--config.file={}", cfg.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--storage.tsdb.path={}", tsdb.display()),
        ]
    };
    let mut prom = Proc::spawn("prometheus", &prom_bin, &args(&config, prom_port), &dir.0);

    // Let it scrape and send a few rounds, then stop it: on SIGTERM it flushes its remote-write queue.
    wait_for("Vigil to receive at least 5 requests from Prometheus", Duration::from_secs(60), || async {
        let m = vigil.metrics().await;
        (metric_sum(&m, "vigil_ingest_requests_total", &["code=\"204\""]) >= 5.0).then_some(())
    })
    .await;
    prom.terminate(Duration::from_secs(60));
    let accepted = vigil.wait_forwarded(Duration::from_secs(30), 1).await;

    // Restart Prometheus on the same TSDB with neither scraping nor remote write, to read what it holds.
    let idle_config = dir.0.join("idle.yml");
    std::fs::write(&idle_config, "global:\n  scrape_interval: 1h\n").expect("idle config");
    let idle_port = free_port();
    let _idle = Proc::spawn("prometheus-readback", &prom_bin, &args(&idle_config, idle_port), &dir.0);
    wait_for("prometheus read-back ready", Duration::from_secs(60), || async {
        get(&format!("http://127.0.0.1:{idle_port}/-/ready")).await.ok().filter(|r| r.status == 200).map(|_| ())
    })
    .await;
    let expected = prometheus_samples(idle_port).await;
    assert!(expected.len() > 50, "Prometheus scraped too little to prove anything: {} series", expected.len());

    // VictoriaMetrics makes rows searchable about a second after it takes them.
    let mut got = vm.export("{__name__=~\".+\"}").await;
    for _ in 0..50 {
        if got.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        got = vm.export("{__name__=~\".+\"}").await;
    }

    let expected_samples: usize = expected.values().map(Vec::len).sum();
    let mut mismatches = Vec::new();
    for (labels, samples) in &expected {
        // VictoriaMetrics receives plain NaN samples (the rows-inserted check below counts them) but does
        // not store them, so only non-NaN samples can be compared one by one.
        let stored: Vec<(i64, f64)> = samples.iter().copied().filter(|(_, v)| !v.is_nan()).collect();
        let arrived = got.get(labels).cloned().unwrap_or_default();
        if stored.is_empty() {
            continue;
        }
        if !matches(&stored, &arrived) {
            mismatches.push(format!(
                "{labels:?}: prometheus {} samples, victoriametrics {}",
                samples.len(),
                arrived.len()
            ));
        }
    }
    let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} series differ, e.g. {:?}\nvigil log:\n{}",
        mismatches.len(),
        expected.len(),
        &mismatches[..mismatches.len().min(5)],
        vigil.proc.log_tail()
    );
    assert!(extra.is_empty(), "VictoriaMetrics holds series Prometheus never had: {:?}", &extra[..extra.len().min(5)]);
    let inserted = vm.rows_inserted().await;
    assert_eq!(inserted, accepted, "VictoriaMetrics inserted {inserted} rows, Vigil accepted {accepted}");
    assert!(
        accepted as usize >= expected_samples,
        "Vigil accepted {accepted} < {expected_samples} samples Prometheus holds"
    );
    eprintln!("{} series, {} samples from Prometheus, all in VictoriaMetrics", expected.len(), expected_samples);
}

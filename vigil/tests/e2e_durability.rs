//! Nothing acknowledged is lost: SIGKILL under load, a full queue, a damaged log — checked against a real
//! VictoriaMetrics, sample by sample.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use support::load::*;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_sample() {
    let dir = TempDir::new("sigkill");
    let vm = VictoriaMetrics::start(&dir.0).await;
    let forward = ["--forward-victoriametrics".to_string(), vm.write_url()];
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("kill schedule seed: {seed}");
    let mut rng = Rng(seed);
    let acked: Arc<Mutex<Vec<Sent>>> = Arc::default();
    // Two hours back: every timestamp below stays in the past, where VictoriaMetrics takes it.
    let base =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 7_200_000;
    let mut refused = 0u64;
    for round in 0..4u32 {
        let mut vigil = Vigil::start_as(&format!("vigil-{round}"), &dir.0, &forward).await;
        let url = vigil.url("/api/v1/write");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for client in 0..4u32 {
            let (url, stop, acked) = (url.clone(), Arc::clone(&stop), Arc::clone(&acked));
            clients.push(tokio::spawn(async move {
                let mut refused = 0u64;
                for n in 0..200_000i64 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    // Unique timestamps per (round, client, request): every acknowledged sample is distinct.
                    let ts = base + i64::from(round) * 1_000_000 + i64::from(client) * 200_000 + n;
                    let (body, sent) = write_request("durability_sigkill", 50, ts, (ts % 1000) as f64);
                    match support::request("POST", &url, &HEADERS, body).await {
                        Ok(r) if r.status == 204 => acked.lock().extend(sent),
                        Ok(_) => refused += 1,
                        // The connection died with the process: not acknowledged.
                        Err(_) => break,
                    }
                }
                refused
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + rng.next(1200))).await;
        vigil.proc.kill9();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in clients {
            refused += c.await.unwrap();
        }
    }
    let acked = acked.lock().clone();
    assert!(acked.len() > 1000, "the load must have been real: {} samples acknowledged", acked.len());
    // One last start: it resumes delivery from the log.
    let _vigil = Vigil::start_as("vigil-final", &dir.0, &forward).await;
    let want: BTreeSet<_> = acked.iter().map(key).collect();
    let started = Instant::now();
    let missing = wait_for_result(Duration::from_secs(60), || async {
        let got = held(&vm, "durability_sigkill").await;
        let missing: Vec<_> = want.difference(&got).copied().collect();
        missing
    })
    .await;
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged samples never reached VictoriaMetrics (seed {seed}), e.g. {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(5)]
    );
    println!(
        "{} samples acknowledged over 4 SIGKILLs, {refused} requests refused, all in VictoriaMetrics after {:?}",
        want.len(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_with_retry_after_and_keeps_everything_acknowledged() {
    let dir = TempDir::new("fullqueue");
    let vm_port = free_port();
    let config = dir.0.join("vigil.yaml");
    std::fs::write(
        &config,
        format!(
            "wal:\n  segment_bytes: 16384\n  max_bytes: 4194304\nqueue:\n  max_bytes: 65536\nforward:\n  victoriametrics:\n    - url: http://127.0.0.1:{vm_port}/api/v1/write\n      backoff:\n        initial: 50ms\n        max: 500ms\n"
        ),
    )
    .unwrap();
    let vigil = Vigil::start(&dir.0, &["--config".into(), config.display().to_string()]).await;
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 600_000;
    let (acked, refusal) = send(&vigil.url("/api/v1/write"), "durability_full", base, 10_000).await;
    let (status, retry_after, message) = refusal.expect("the queue fills while VictoriaMetrics is down");
    assert_eq!(status, 429, "{message}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(message.contains("queue.max_bytes"), "{message}");
    // OTLP is refused too, with 503 and Retry-After.
    let otlp = serde_json::json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
        {"name": "durability_full_otlp", "gauge": {"dataPoints": [{"timeUnixNano": format!("{}", base * 1_000_000), "asDouble": 1.0}]}}
    ]}]}]});
    let r = support::request(
        "POST",
        &vigil.url("/v1/metrics"),
        &[("Content-Type", "application/json")],
        Bytes::from(otlp.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.headers.get("retry-after").is_some());
    // Readiness says why, and how much the backend is owed.
    let ready = get(&vigil.url("/health/ready")).await.unwrap();
    assert_eq!(ready.status, 503);
    let body: serde_json::Value = serde_json::from_slice(&ready.body).unwrap();
    assert_eq!(body["status"], "saturated", "{body}");
    assert!(body["wal"][0]["refusing"].as_str().unwrap().contains("queue.max_bytes"), "{body}");
    assert!(body["backends"][0]["queue_bytes"].as_u64().unwrap() >= 65536, "{body}");
    let queued = metric_sum(&vigil.metrics().await, "vigil_forward_queue_bytes", &[]);
    assert!(queued > 0.0, "the queue gauge shows what the backend is owed: {queued}");
    // The backend comes up: everything acknowledged arrives, and writes are taken again.
    let vm = VictoriaMetrics::start_on(&dir.0, vm_port).await;
    let want: BTreeSet<_> = acked.iter().map(key).collect();
    let missing = wait_for_result(Duration::from_secs(60), || async {
        let got = held(&vm, "durability_full").await;
        want.difference(&got).copied().collect::<Vec<_>>()
    })
    .await;
    assert!(missing.is_empty(), "{} of {} acknowledged samples missing", missing.len(), want.len());
    let (_, refusal) = send(&vigil.url("/api/v1/write"), "durability_full", base + 100_000, 5).await;
    assert_eq!(refusal, None, "writes are accepted again once the queue drained");
    let ready = get(&vigil.url("/health/ready")).await.unwrap();
    assert_eq!(ready.status, 200, "{}", ready.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_and_corrupted_log_is_repaired_and_the_rest_delivered() {
    let dir = TempDir::new("torn");
    let vm_port = free_port();
    let forward = ["--forward-victoriametrics".to_string(), format!("http://127.0.0.1:{vm_port}/api/v1/write")];
    let config = dir.0.join("vigil.yaml");
    // Detection off: its scores would be written into the same log, and the flipped byte could land in one of
    // them instead of a client's request, depending on when the engine wrote them.
    std::fs::write(&config, "wal:\n  segment_bytes: 16384\ndetect:\n  enabled: false\n").unwrap();
    let args = [forward.to_vec(), vec!["--config".into(), config.display().to_string()]].concat();
    let mut vigil = Vigil::start_as("vigil-before", &dir.0, &args).await;
    let base = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 - 600_000;
    let (acked, refusal) = send(&vigil.url("/api/v1/write"), "durability_torn", base, 100).await;
    assert_eq!(refusal, None);
    vigil.proc.kill9();

    // Damage: cut the newest segment inside its last record, flip a byte in the middle of an older one.
    let wal = dir.0.join("vigil-data/wal/metrics");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg") && std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    let last = segments.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(last).unwrap().set_len(len - 7).unwrap();
    let mut older = std::fs::read(&segments[1]).unwrap();
    let middle = older.len() / 2;
    older[middle] ^= 0x5a;
    std::fs::write(&segments[1], &older).unwrap();

    let vm = VictoriaMetrics::start_on(&dir.0, vm_port).await;
    let vigil = Vigil::start_as("vigil-after", &dir.0, &args).await;
    let want: BTreeSet<_> = acked.iter().map(key).collect();
    // Two records (one request of 50 samples each) are damaged; everything else must arrive.
    let got = wait_for("VictoriaMetrics to hold all but the two damaged requests", Duration::from_secs(60), || async {
        let got = held(&vm, "durability_torn").await;
        (want.difference(&got).count() <= 100 && got.len() >= want.len() - 100).then_some(got)
    })
    .await;
    let missing: BTreeSet<i64> = want.difference(&got).map(|(_, ts, _)| *ts).collect();
    assert_eq!(missing.len(), 2, "exactly the two damaged requests are missing: {missing:?}");
    assert!(missing.contains(&(base + 99)), "the torn one is the last request: {missing:?}");
    let log = std::fs::read_to_string(&vigil.proc.log).unwrap();
    assert!(
        log.contains("Damaged log data found at start-up"),
        "start-up reports the damage:\n{}",
        vigil.proc.log_tail()
    );
    assert!(log.contains("TornTail") && log.contains("Corrupt"), "{}", vigil.proc.log_tail());
}

//! The series the anomaly end-to-end tests score: noise, then one spike, remote-written as a tenant.

use bytes::Bytes;
use prost::Message;
use vigil_proto::prometheus as v1;

use super::load::{HEADERS, Rng};
use super::{Vigil, request};

/// The series' sample interval.
pub const STEP_MS: i64 = 15_000;
/// Samples before the spike.
pub const HISTORY: i64 = 300;

fn body(metric: &str, samples: &[(i64, f64)]) -> Bytes {
    let labels = [("__name__", metric), ("instance", "a:9100"), ("job", "api")]
        .iter()
        .map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() })
        .collect();
    let samples = samples.iter().map(|&(timestamp, value)| v1::Sample { value, timestamp }).collect();
    let series = v1::TimeSeries { labels, samples, ..Default::default() };
    let raw = v1::WriteRequest { timeseries: vec![series], metadata: vec![] }.encode_to_vec();
    Bytes::from(snap::raw::Encoder::new().compress_vec(&raw).unwrap())
}

async fn write(vigil: &Vigil, metric: &str, tenant: &str, samples: &[(i64, f64)]) {
    let mut headers = HEADERS.to_vec();
    headers.push(("X-Scope-OrgID", tenant));
    let r = request("POST", &vigil.url("/api/v1/write"), &headers, body(metric, samples)).await.unwrap();
    assert_eq!(r.status, 204, "{}", r.text());
}

/// Writes `metric{instance="a:9100",job="api"}` as `tenant`: [`HISTORY`] samples of noise around 0.1 (drawn
/// from `seed`), [`STEP_MS`] apart and ending a minute before `now_ms`, then one spike to 5 a step later.
/// Returns the spike's timestamp.
pub async fn write_spike(vigil: &Vigil, metric: &str, tenant: &str, seed: u64, now_ms: i64) -> i64 {
    let first = now_ms - 60_000 - HISTORY * STEP_MS;
    let mut rng = Rng(seed);
    let history: Vec<(i64, f64)> =
        (0..HISTORY).map(|i| (first + i * STEP_MS, 0.1 + rng.next(1000) as f64 / 100_000.0)).collect();
    for chunk in history.chunks(100) {
        write(vigil, metric, tenant, chunk).await;
    }
    let spike_ms = first + HISTORY * STEP_MS;
    write(vigil, metric, tenant, &[(spike_ms, 5.0)]).await;
    spike_ms
}

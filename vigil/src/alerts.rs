//! The alert log: alerts from the rule evaluator, on a bounded channel, into the alerts write-ahead log
//! (`<data dir>/wal/alerts`), from which each `forward.alertmanager` destination delivers them
//! (`vigil_forward::alertmanager`). The log makes alerts survive an Alertmanager outage and a restart; it is
//! never replayed (alerts have no buffer).
//!
//! A batch the log does not take — `wal.max_bytes` or an Alertmanager's `queue.max_bytes` reached under
//! `wal.full_policy: backpressure`, a failed or closed log — is dropped and counted in
//! `vigil_alerts_dropped_total{reason}`, with a warning at most once a minute: the evaluator re-sends firing
//! alerts every evaluation, so the next one carries them again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use vigil_ingest::wal::{Pending, Wal, WalError};
use vigil_proto::alertmanager::AlertBatch;

/// Batches (one tenant's alerts of one evaluation) waiting for the log, at most. Appending waits for the
/// log's sync, so a slow disk fills this and the evaluator's `send` waits (or its `try_send` fails).
const ALERT_QUEUE: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    /// `log_full`, `log_failed`, `log_closed`, `too_large` or `invalid` (a tenant over 255 bytes).
    reason: &'static str,
}

#[derive(Clone, Debug)]
struct AlertLogMetrics {
    logged: Counter,
    dropped: Family<ReasonLabels, Counter>,
}

/// Starts the task that logs every batch sent on the returned channel into `wal`; registers its counters
/// (`vigil_alerts_logged_total`, `vigil_alerts_dropped_total{reason}`) in `registry`. The task ends when
/// every sender is dropped.
pub(crate) fn spawn_alert_log(wal: Arc<Wal>, registry: &mut Registry) -> mpsc::Sender<AlertBatch> {
    let metrics = AlertLogMetrics { logged: Counter::default(), dropped: Family::default() };
    let r = registry.sub_registry_with_prefix("vigil_alerts");
    r.register("logged", "Alerts written to the alerts log for Alertmanager", metrics.logged.clone());
    r.register("dropped", "Alerts the alerts log did not take, by reason", metrics.dropped.clone());
    let (tx, rx) = mpsc::channel(ALERT_QUEUE);
    tokio::spawn(run(rx, wal, metrics));
    tx
}

async fn run(mut batches: mpsc::Receiver<AlertBatch>, wal: Arc<Wal>, metrics: AlertLogMetrics) {
    let mut last_warning: Option<Instant> = None;
    while let Some(batch) = batches.recv().await {
        if batch.alerts.is_empty() {
            continue;
        }
        let alerts = batch.alerts.len() as u64;
        let logged = match append(&wal, &batch) {
            Ok(pending) => pending.durable().await.map_err(|e| (reason(&e), e.to_string())),
            Err(e) => Err(e),
        };
        match logged {
            Ok(_) => {
                metrics.logged.inc_by(alerts);
            }
            Err((reason, error)) => {
                metrics.dropped.get_or_create(&ReasonLabels { reason }).inc_by(alerts);
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    last_warning = Some(Instant::now());
                    tracing::warn!(%error, tenant = %batch.tenant, alerts, "The alerts log did not take alerts; they are dropped (see vigil_alerts_dropped_total).");
                }
            }
        }
    }
}

fn append(wal: &Wal, batch: &AlertBatch) -> Result<Pending, (&'static str, String)> {
    wal.admit().map_err(|e| (reason(&e), e.to_string()))?;
    let record = vigil_ingest::wal::alerts::record(batch).map_err(|e| ("invalid", e.to_string()))?;
    wal.append(record).map_err(|e| (reason(&e), e.to_string()))
}

fn reason(e: &WalError) -> &'static str {
    match e {
        WalError::Full(_) => "log_full",
        WalError::TooLarge { .. } => "too_large",
        WalError::Failed(_) => "log_failed",
        WalError::Closed(_) => "log_closed",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU64;

    use bytes::Bytes;
    use vigil_ingest::wal::{Entry, QueueConfig, WalConfig};
    use vigil_proto::alertmanager::PostableAlert;

    use super::*;

    fn batch(tenant: &str, names: &[&str]) -> AlertBatch {
        let alert = |n: &&str| PostableAlert {
            labels: BTreeMap::from([("alertname".to_owned(), (*n).to_owned())]),
            ..PostableAlert::default()
        };
        AlertBatch { tenant: tenant.into(), alerts: names.iter().map(alert).collect() }
    }

    /// A log in a fresh directory whose byte total (shared with the other logs) starts at `used`.
    fn wal(tag: &str, used: u64) -> (Arc<Wal>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("vigil-alert-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = WalConfig { max_bytes: 1 << 20, ..WalConfig::default() };
        let (wal, _) =
            Wal::open(&dir, "alerts", &config, &QueueConfig::default(), Arc::new(AtomicU64::new(used))).expect("wal");
        (Arc::new(wal), dir)
    }

    fn exposition(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
        text
    }

    async fn wait_until(registry: &Registry, line: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !exposition(registry).lines().any(|l| l == line) {
            assert!(Instant::now() < deadline, "no {line:?} in\n{}", exposition(registry));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn batches_are_logged_as_alerts_records() {
        let (wal, dir) = wal("logged", 0);
        let consumer = wal.consumer("test");
        let mut registry = Registry::default();
        let tx = spawn_alert_log(Arc::clone(&wal), &mut registry);
        tx.send(batch("team-a", &["A", "B"])).await.expect("send");
        tx.send(batch("team-a", &[])).await.expect("send");
        tx.send(batch("team-b", &["C"])).await.expect("send");
        wait_until(&registry, "vigil_alerts_logged_total 3").await;

        let mut records = Vec::new();
        consumer.reader().read(&mut records, 1 << 20).expect("read");
        let entries: Vec<(String, u32)> = records
            .iter()
            .map(|r| Entry::decode(&Bytes::clone(&r.body)).expect("entry"))
            .map(|e| (e.tenant, e.counts[0]))
            .collect();
        assert_eq!(entries, [("team-a".to_owned(), 2), ("team-b".to_owned(), 1)], "empty batches are not logged");
        // Shutting down: the log closed before the evaluator stopped.
        wal.close();
        tx.send(batch("anonymous", &["D"])).await.expect("send");
        wait_until(&registry, "vigil_alerts_dropped_total{reason=\"log_closed\"} 1").await;
        drop(wal);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_full_log_drops_and_counts_without_stopping() {
        // The other logs already hold `wal.max_bytes`.
        let (wal, dir) = wal("full", 1 << 20);
        let mut registry = Registry::default();
        let tx = spawn_alert_log(Arc::clone(&wal), &mut registry);
        for _ in 0..3 {
            tx.send(batch("anonymous", &["A", "B"])).await.expect("the task keeps taking batches");
        }
        wait_until(&registry, "vigil_alerts_dropped_total{reason=\"log_full\"} 6").await;
        assert!(exposition(&registry).contains("vigil_alerts_logged_total 0"));
        drop(wal);
        let _ = std::fs::remove_dir_all(dir);
    }
}

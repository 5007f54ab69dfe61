//! The Alertmanager forwarder against the real Alertmanager (Debian's `prometheus-alertmanager`): alerts
//! logged as the binary's alert log writes them arrive whole, resolve, wait in the log while Alertmanager is
//! down (across a restart), and invalid ones are dropped and counted without holding up the rest.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serde_json::Value;
use vigil_forward::Destination;
use vigil_forward::alertmanager::{self, AlertmanagerConfig, ForwarderHandle};
use vigil_forward::breaker::BreakerConfig;
use vigil_forward::retry::BackoffConfig;
use vigil_forward::telemetry::ForwardMetrics;
use vigil_ingest::wal::{QueueConfig, Wal};
use vigil_proto::alertmanager::{AlertBatch, PostableAlert};

#[path = "support/alertmanager.rs"]
mod am;
mod support;

use am::Alertmanager;

/// Every wait is bounded by this.
const WAIT: Duration = Duration::from_secs(20);
/// A start in the past (Alertmanager keeps it as sent, in milliseconds) and an end after it, also past.
const STARTS_AT: &str = "2026-01-02T03:04:05.678Z";
const ENDED_AT: &str = "2026-01-02T04:00:00.000Z";

/// A forwarder to `url` reading `wal`, with fast flushes, retries and breaker probes; its counters in the
/// returned registry.
fn forwarder(url: &str, wal: &Wal) -> (ForwarderHandle, Registry) {
    let mut registry = Registry::default();
    let metrics = ForwardMetrics::new(&mut registry);
    let config = AlertmanagerConfig {
        flush_interval: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        backoff: BackoffConfig { initial: Duration::from_millis(20), max: Duration::from_millis(200) },
        breaker: BreakerConfig { failure_threshold: 5, open_for: Duration::from_millis(200) },
        ..AlertmanagerConfig::with_url(url)
    };
    let targets = vec![config.target().unwrap()];
    let handle =
        alertmanager::spawn(&config, targets, wal.consumer("alertmanager"), vigil_forward::http::client(), metrics);
    (handle, registry)
}

fn alert(name: &str, labels: &[(&str, &str)]) -> PostableAlert {
    let mut all = BTreeMap::from([("alertname".to_owned(), name.to_owned())]);
    all.extend(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    PostableAlert {
        labels: all,
        annotations: BTreeMap::from([("summary".into(), format!("{name} is \"bad\", really"))]),
        starts_at: Some(STARTS_AT.into()),
        ..PostableAlert::default()
    }
}

/// Logs `alerts` of `tenant` as the alert log task does, and waits until the record is durable.
async fn log(wal: &Wal, tenant: &str, alerts: Vec<PostableAlert>) {
    let record = vigil_ingest::wal::alerts::record(&AlertBatch { tenant: tenant.into(), alerts }).unwrap();
    wal.append(record).unwrap().durable().await.unwrap();
}

/// The sum of the `name` series of the alertmanager backend (`outcome`, if given).
fn metric(registry: &Registry, name: &str, outcome: Option<&str>) -> f64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains("backend=\"alertmanager\""))
        .filter(|l| outcome.is_none_or(|o| l.contains(&format!("outcome=\"{o}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait_metric(registry: &Registry, name: &str, outcome: Option<&str>, at_least: f64) {
    let deadline = std::time::Instant::now() + WAIT;
    while metric(registry, name, outcome) < at_least {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {name} {outcome:?} >= {at_least}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The alertnames Alertmanager holds, sorted.
fn names(alerts: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = alerts.iter().map(|a| am::labels(a)["alertname"].clone()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn logged_alerts_arrive_with_their_labels_annotations_and_start() {
    let server = Alertmanager::start(&am::config(&["alertname"], None, "")).await;
    let (wal, _dir) = support::wal("alerts", &QueueConfig::default());
    let (_handle, registry) = forwarder(&server.alerts_url(), &wal);
    let mut linked = alert("ErrorBudgetBurn", &[("service", "checkout"), ("severity", "page")]);
    linked.generator_url = Some("http://vigil:4318/api/v1/incidents/7".into());
    log(&wal, "anonymous", vec![alert("HighLatency", &[("service", "api")]), linked.clone()]).await;
    log(&wal, "team-b", vec![alert("DiskFull", &[("instance", "db-1:9100")])]).await;

    let held = server.wait_for_alerts("three alerts", WAIT, |a| (a.len() == 3).then(|| a.to_vec())).await;
    assert_eq!(names(&held), ["DiskFull", "ErrorBudgetBurn", "HighLatency"]);
    let burn = held.iter().find(|a| am::labels(a)["alertname"] == "ErrorBudgetBurn").unwrap();
    assert_eq!(am::labels(burn), linked.labels);
    assert_eq!(burn["annotations"]["summary"], "ErrorBudgetBurn is \"bad\", really");
    assert_eq!(burn["startsAt"], STARTS_AT);
    assert_eq!(burn["generatorURL"], "http://vigil:4318/api/v1/incidents/7");
    assert_eq!(burn["status"]["state"], "active");
    // Grouped by alertname, as the route says.
    assert_eq!(server.groups().await.len(), 3);
    wait_metric(&registry, "vigil_forward_samples_total", None, 3.0).await;
    assert_eq!(metric(&registry, "vigil_forward_dropped_samples_total", None), 0.0);
}

#[tokio::test]
async fn a_resolved_alert_leaves_the_active_list() {
    let server = Alertmanager::start(&am::config(&["alertname"], None, "")).await;
    let (wal, _dir) = support::wal("alerts", &QueueConfig::default());
    let (_handle, _registry) = forwarder(&server.alerts_url(), &wal);
    log(&wal, "anonymous", vec![alert("A", &[]), alert("B", &[])]).await;
    server.wait_for_alerts("A and B firing", WAIT, |a| (names(a) == ["A", "B"]).then_some(())).await;

    // Re-sent with an end in the past: resolved now.
    let resolved = PostableAlert { ends_at: Some(ENDED_AT.into()), ..alert("A", &[]) };
    log(&wal, "anonymous", vec![resolved]).await;
    server.wait_for_alerts("A resolved", WAIT, |a| (names(a) == ["B"]).then_some(())).await;
    let groups = server.groups().await;
    let grouped: Vec<String> = groups.iter().flat_map(|g| names(g["alerts"].as_array().unwrap())).collect();
    assert_eq!(grouped, ["B"], "{groups:#?}");
}

#[tokio::test]
async fn alerts_wait_in_the_log_while_alertmanager_is_down_across_a_restart() {
    let port = am::free_port();
    let url = format!("http://127.0.0.1:{port}/api/v2/alerts");
    let (wal, dir) = support::wal("alerts", &QueueConfig::default());
    let (mut first, registry) = forwarder(&url, &wal);
    for i in 0..3 {
        log(&wal, "anonymous", vec![alert(&format!("Early{i}"), &[]), alert(&format!("Early{i}"), &[("n", "2")])])
            .await;
    }
    // Nobody listens: connection errors, retried.
    wait_metric(&registry, "vigil_forward_requests_total", Some("retry"), 3.0).await;
    assert_eq!(metric(&registry, "vigil_forward_samples_total", None), 0.0);

    // Vigil restarts: the forwarder stops mid-retry, the log closes and opens again.
    first.abort();
    first.join().await;
    wal.close();
    drop(wal);
    let wal = support::reopen_wal("alerts", &QueueConfig::default(), &dir);
    let (_second, registry) = forwarder(&url, &wal);
    log(&wal, "anonymous", vec![alert("Late", &[])]).await;
    wait_metric(&registry, "vigil_forward_requests_total", Some("retry"), 1.0).await;

    let server = Alertmanager::start_on(port, &am::config(&["alertname"], None, "")).await;
    let held = server.wait_for_alerts("all seven alerts", WAIT, |a| (a.len() == 7).then(|| a.to_vec())).await;
    assert_eq!(names(&held), ["Early0", "Early0", "Early1", "Early1", "Early2", "Early2", "Late"]);
    wait_metric(&registry, "vigil_forward_samples_total", None, 7.0).await;
    assert_eq!(metric(&registry, "vigil_forward_dropped_samples_total", None), 0.0);
}

#[tokio::test]
async fn invalid_alerts_are_dropped_and_counted_and_later_ones_delivered() {
    let server = Alertmanager::start(&am::config(&["alertname"], None, "")).await;
    let (wal, _dir) = support::wal("alerts", &QueueConfig::default());
    let (handle, registry) = forwarder(&server.alerts_url(), &wal);

    // One alert without labels next to a valid one: Alertmanager keeps the valid one and answers 400.
    let unlabelled = PostableAlert { labels: BTreeMap::new(), ..alert("x", &[]) };
    log(&wal, "anonymous", vec![alert("Good1", &[]), unlabelled]).await;
    wait_metric(&registry, "vigil_forward_dropped_samples_total", None, 1.0).await;
    server.wait_for_alerts("Good1", WAIT, |a| (names(a) == ["Good1"]).then_some(())).await;
    let report = handle.targets[0].report();
    let error = report.last_error.unwrap_or_default();
    assert!(error.contains("HTTP 400") && error.contains("at least one label pair required"), "{error}");

    // A start that is no time: Alertmanager refuses the whole body (nothing taken).
    let bad_time = PostableAlert { starts_at: Some("yesterday".into()), ..alert("BadTime", &[]) };
    log(&wal, "anonymous", vec![bad_time]).await;
    wait_metric(&registry, "vigil_forward_dropped_samples_total", None, 2.0).await;

    // The worker moved on.
    log(&wal, "anonymous", vec![alert("Good2", &[])]).await;
    server.wait_for_alerts("Good1 and Good2", WAIT, |a| (names(a) == ["Good1", "Good2"]).then_some(())).await;
    wait_metric(&registry, "vigil_forward_samples_total", None, 2.0).await;
    assert_eq!(metric(&registry, "vigil_forward_samples_total", None), 2.0);
    assert_eq!(metric(&registry, "vigil_forward_dropped_samples_total", None), 2.0);
    assert_eq!(metric(&registry, "vigil_forward_requests_total", Some("rejected")), 2.0);
    assert_eq!(metric(&registry, "vigil_forward_requests_total", Some("retry")), 0.0);
}

/// The support module's config with a webhook receiver and an inhibition rule, as the rule evaluator's
/// tests use it: an alert on the root cause suppresses the one it explains.
#[tokio::test]
async fn the_support_config_takes_a_webhook_and_inhibit_rules() {
    let inhibit = "inhibit_rules:\n  - source_matchers: ['severity=\"page\"']\n    target_matchers: ['severity=\"ticket\"']\n    equal: [service]\n";
    let server =
        Alertmanager::start(&am::config(&["alertname", "service"], Some("http://127.0.0.1:9/hook"), inhibit)).await;
    let (wal, _dir) = support::wal("alerts", &QueueConfig::default());
    let (_handle, _registry) = forwarder(&server.alerts_url(), &wal);
    let cause = alert("DbDown", &[("service", "db"), ("severity", "page")]);
    let symptom = alert("SlowQueries", &[("service", "db"), ("severity", "ticket")]);
    log(&wal, "anonymous", vec![cause, symptom]).await;
    let state = |a: &[Value], name: &str| {
        a.iter()
            .find(|a| am::labels(a)["alertname"] == name)
            .map(|a| a["status"]["state"].as_str().unwrap_or_default().to_owned())
    };
    server
        .wait_for_alerts("SlowQueries suppressed by DbDown", WAIT, |a| {
            (state(a, "DbDown").as_deref() == Some("active")
                && state(a, "SlowQueries").as_deref() == Some("suppressed"))
            .then_some(())
        })
        .await;
}

//! The scenario harness: every service of four topologies (a shop, a chain, a fan-out, a deep tree) gets
//! each kind of fault (errors, latency, both), each scenario as its own tenant of one running Vigil, a few
//! at a time. For each, the incidents of the tenant after the fault are read back and judged:
//!
//! - **root cause right**: the first incident that involves the faulty service names it as root cause;
//! - **one incident**: exactly one incident involves the faulty service (no duplicates);
//! - **noise**: incidents that do not involve it (false alarms from healthy traffic);
//! - **pre**: incidents already open when the fault is sent (false alarms on the healthy history; the fault
//!   then joins the one on its connected services, so they also count as the fault's incident);
//! - **open delay**: from sending the fault's first data to the incident's `opened_at`;
//! - **alerts**: what the real Alertmanager (Debian's `prometheus-alertmanager`) holds for the tenant once
//!   the fault settled — Vigil's rule `ServiceAnomaly` (an anomaly alert per service, `for: 2s`) grouped and
//!   inhibited by the incident's root cause: right when it is one alert, on the faulty service.
//!
//! Ignored by default (minutes of run time); `benches/incidents_harness.sh` runs it in release mode and
//! prints the table. It fails when root-cause accuracy is below 90 % or the one-incident rate below 95 %
//! (issue 6's targets). Knobs: `SCENARIO_SEEDS` (seeds per case, default 1), `SCENARIO_PARALLEL` (cases at
//! once, default 6).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../forward/tests/support/alertmanager.rs"]
mod alertmanager;
mod scenario;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use scenario::*;
use serde_json::Value;
use support::*;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Debug, Clone)]
struct Outcome {
    topology: &'static str,
    kind: &'static str,
    service: String,
    /// Root cause of the first incident involving the faulty service (`None`: no such incident).
    root: Option<String>,
    involved: usize,
    noise: usize,
    open_delay_ms: Option<i64>,
    /// Incidents already open when the fault was sent: false alarms on healthy traffic (what they were).
    pre_fault: Vec<String>,
    /// For a wrong root: the reason and the anomalies, to see what misled it.
    detail: String,
    /// The services of the alerts Alertmanager holds for the tenant at the end.
    alerts: Vec<String>,
}

impl Outcome {
    fn one_alert(&self) -> bool {
        self.alerts.len() == 1 && self.alerts[0] == self.service
    }
}

/// The services of the alerts Alertmanager holds for `tenant` (by the tenant label Vigil adds).
async fn alerts_of(am: &alertmanager::Alertmanager, tenant: &str) -> Vec<String> {
    let mut services: Vec<String> = am
        .alerts()
        .await
        .iter()
        .map(alertmanager::labels)
        .filter(|l| l.get("tenant").map(String::as_str) == Some(tenant))
        .map(|l| l.get("service").cloned().unwrap_or_else(|| "-".into()))
        .collect();
    services.sort();
    services
}

fn kinds() -> [(&'static str, FaultKind); 3] {
    [
        ("errors", FaultKind::Errors { ratio: 0.5 }),
        ("latency", FaultKind::Latency { extra_ms: 250.0 }),
        ("both", FaultKind::Both { ratio: 0.5, extra_ms: 250.0 }),
    ]
}

async fn incidents(base: &str, tenant: &str) -> Vec<Value> {
    let r =
        request("GET", &format!("{base}/api/v1/incidents"), &[("X-Scope-OrgID", tenant)], Bytes::new()).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    body["data"].as_array().cloned().unwrap_or_default()
}

fn involves(i: &Value, service: &str) -> bool {
    i["services"].as_array().is_some_and(|s| s.iter().any(|x| x == service)) || i["root_cause"]["service"] == service
}

async fn run(base: String, am: std::sync::Arc<alertmanager::Alertmanager>, s: Scenario, kind: &'static str) -> Outcome {
    let faulty = s.topology.services[s.fault.service].clone();
    let (windows, _) = s.generate(now_ms() - 500);
    for w in windows.iter().filter(|w| !w.faulty) {
        send_window(&base, &s.tenant, w).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pre_fault: Vec<String> = incidents(&base, &s.tenant)
        .await
        .iter()
        .map(|i| {
            let series: Vec<String> = i["evidence"]["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| format!("{} {} score {:.1}", a["service"], a["labels"], a["score"].as_f64().unwrap_or(0.0)))
                .collect();
            series.join("; ")
        })
        .collect();
    let sent = now_ms();
    for w in windows.iter().filter(|w| w.faulty) {
        send_window(&base, &s.tenant, w).await;
    }
    // Until an incident involves the faulty service (or 30 s), then what else arrives settles in.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !incidents(&base, &s.tenant).await.iter().any(|i| involves(i, &faulty)) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let all = incidents(&base, &s.tenant).await;
    let alerts = alerts_of(&am, &s.tenant).await;
    let involved: Vec<&Value> = all.iter().filter(|i| involves(i, &faulty)).collect();
    let first = involved.first();
    Outcome {
        topology: s.topology.name,
        kind,
        service: faulty.clone(),
        root: first.and_then(|i| i["root_cause"]["service"].as_str().map(str::to_owned)),
        involved: involved.len(),
        noise: all.len() - involved.len(),
        open_delay_ms: first.map(|i| rfc3339_ms(i["opened_at"].as_str().unwrap()) - sent),
        pre_fault,
        alerts,
        detail: first.map_or_else(String::new, |i| {
            let series: Vec<String> = i["evidence"]["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    let t = rfc3339_ms(a["start"].as_str().unwrap()) - sent;
                    format!(
                        "{}/{} {:+} ms score {:.1}",
                        a["service"],
                        a["labels"]["__name__"],
                        t,
                        a["score"].as_f64().unwrap_or(0.0)
                    )
                })
                .collect();
            format!("{}\n    {}", i["root_cause"]["reason"], series.join("\n    "))
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes of run time: benches/incidents_harness.sh runs it"]
async fn root_cause_accuracy_over_topologies_and_faults() {
    let dir = TempDir::new("incident-scenarios");
    let am = std::sync::Arc::new(
        alertmanager::Alertmanager::start(&alertmanager::config(&["alertname", "tenant"], None, "")).await,
    );
    let config = vigil_config(&dir.0, &am.alerts_url());
    let vigil = Vigil::start(&dir.0, &["--config".into(), config.display().to_string()]).await;
    let base = vigil.url("");
    let seeds = env_usize("SCENARIO_SEEDS", 1) as u64;
    let parallel = env_usize("SCENARIO_PARALLEL", 6).max(1);
    let mut cases = Vec::new();
    for topology in [Topology::shop(), Topology::chain(), Topology::fan_out(), Topology::deep()] {
        for service in 0..topology.services.len() {
            for (kind_name, kind) in kinds() {
                for seed in 0..seeds {
                    let n = cases.len();
                    let s = Scenario {
                        tenant: format!("s{n}-{}-{}-{kind_name}", topology.name, topology.services[service]),
                        topology: topology.clone(),
                        fault: Fault { service, kind },
                        step_ms: 2000,
                        history: 40,
                        fault_windows: 3,
                        requests_per_window: 10,
                        seed: 1 + seed * 1000 + n as u64,
                    };
                    cases.push((s, kind_name));
                }
            }
        }
    }
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for batch in cases.chunks(parallel) {
        let tasks: Vec<_> = batch
            .iter()
            .map(|(s, k)| tokio::spawn(run(base.clone(), std::sync::Arc::clone(&am), s.clone(), k)))
            .collect();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
    }
    let n = outcomes.len();
    let right = outcomes.iter().filter(|o| o.root.as_deref() == Some(o.service.as_str())).count();
    let single = outcomes.iter().filter(|o| o.involved == 1).count();
    let missed = outcomes.iter().filter(|o| o.involved == 0).count();
    let noise: usize = outcomes.iter().map(|o| o.noise).sum();
    // Open delays of incidents the fault opened (not of false alarms it joined).
    let mut delays: Vec<i64> =
        outcomes.iter().filter(|o| o.pre_fault.is_empty()).filter_map(|o| o.open_delay_ms).collect();
    let false_alarms = outcomes.iter().filter(|o| !o.pre_fault.is_empty()).count();
    for o in outcomes.iter().filter(|o| !o.pre_fault.is_empty()) {
        println!("false alarm before the fault ({} {} {}): {}", o.topology, o.kind, o.service, o.pre_fault.join(" | "));
    }
    delays.sort_unstable();
    let pct = |a: usize| 100.0 * a as f64 / n as f64;
    println!(
        "\n{:<8} {:<8} {:<10} {:<10} {:>8} {:>6} {:>4} {:>9}  alerts",
        "topology", "fault", "service", "root", "incidents", "noise", "pre", "open ms"
    );
    for o in &outcomes {
        println!(
            "{:<8} {:<8} {:<10} {:<10} {:>8} {:>6} {:>4} {:>9}  {}",
            o.topology,
            o.kind,
            o.service,
            o.root.as_deref().unwrap_or("-"),
            o.involved,
            o.noise,
            o.pre_fault.len(),
            o.open_delay_ms.map_or("-".into(), |d| d.to_string()),
            o.alerts.join(",")
        );
    }
    for o in outcomes.iter().filter(|o| o.root.as_deref() != Some(o.service.as_str())) {
        println!("\nwrong: {} {} {} → {:?}: {}", o.topology, o.kind, o.service, o.root, o.detail);
    }
    let mut by: BTreeMap<(&str, &str), (usize, usize)> = BTreeMap::new();
    for o in &outcomes {
        let e = by.entry((o.topology, o.kind)).or_default();
        e.0 += 1;
        e.1 += usize::from(o.root.as_deref() == Some(o.service.as_str()));
    }
    println!("\nroot cause right by topology and fault:");
    for ((t, k), (cases, ok)) in &by {
        println!("  {t:<8} {k:<8} {ok}/{cases}");
    }
    let one_alert = outcomes.iter().filter(|o| o.one_alert()).count();
    for o in outcomes.iter().filter(|o| !o.one_alert()) {
        println!("alerts not one on the fault ({} {} {}): {:?}", o.topology, o.kind, o.service, o.alerts);
    }
    let q = |p: f64| delays.get(((delays.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(-1);
    println!(
        "\nscenarios {n}  root cause right {right} ({:.1} %)  one incident {single} ({:.1} %)  missed {missed}  \
         noise incidents {noise}  false alarms before the fault {false_alarms} ({:.1} %)  open delay ms (faults \
         that opened their incident) p50 {} p95 {} max {}  one alert on the fault at Alertmanager {one_alert} \
         ({:.1} %)  wall {:.0} s",
        pct(right),
        pct(single),
        pct(false_alarms),
        q(0.5),
        q(0.95),
        delays.last().copied().unwrap_or(-1),
        pct(one_alert),
        started.elapsed().as_secs_f64()
    );
    assert!(pct(right) >= 90.0, "root-cause accuracy {:.1} % < 90 %", pct(right));
    assert!(pct(single) >= 95.0, "one incident per fault in {:.1} % < 95 %", pct(single));
    assert!(pct(one_alert) >= 95.0, "one alert on the fault at Alertmanager in {:.1} % < 95 %", pct(one_alert));
}

//! Alert rules over Vigil's own series and incidents, sent to Alertmanager.
//!
//! The selectors of the threshold rules go into the own-series store's keep set on every (re)load, so the
//! ingested series they read are recorded there too (`own_series::KeepSet`).
//!
//! Rules ([`rules`]: `threshold`, `anomaly`, `composite`) come from a YAML file, validated with errors that
//! name the rule and key, and re-read when it changes (a bad edit is logged and counted; the rules before it
//! keep running). Every `evaluation_interval` a thread evaluates them per tenant ([`evaluator`]): a series
//! whose condition holds is pending, then firing after the rule's `for` ([`state`]); a rule's firing series
//! are grouped by its `group_by` labels into one alert ([`groups`]); alerts another explains are silenced
//! ([`inhibit`]: the file's `inhibit_rules`, and the root cause of an open incident); what is due goes out
//! as [`AlertBatch`]es on a channel ([`notify`]: firing alerts re-sent every `resend_delay`, resolved ones
//! with their end). The binary connects that channel to the alerts write-ahead log, which the Alertmanager
//! forwarder delivers; this module never calls the forwarder.
//!
//! `GET /api/v1/rules` and `GET /api/v1/alerts` answer in Prometheus' format ([`api`]).

mod api;
mod conditions;
mod config;
mod evaluator;
mod groups;
mod inhibit;
mod notify;
pub(crate) mod rules;
mod state;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use vigil_detect::events::EventQuery;
use vigil_detect::incidents::{IncidentQuery, Status};
use vigil_detect::{CorrelateHandle, DetectHandle};
use vigil_proto::alertmanager::AlertBatch;

pub use api::{AlertingApi, alerting_router};
pub use config::AlertingConfig;

use crate::own_series::{OwnSeriesStore, wall_clock_ms};
use evaluator::{Evaluator, World};
use rules::RuleSet;

/// Why alerting could not start, or a rule file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AlertingError {
    #[error("alerting.rules_file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("alerting.rules_file {path}: {}", .problems.join("; "))]
    Invalid { path: PathBuf, problems: Vec<String> },
    #[error("could not start the alert rule thread: {0}")]
    Thread(std::io::Error),
}

/// Reads and validates a rule file (`vigil check-rules`, start-up, reloads).
pub fn check_rules_file(path: &Path, default_group_by: &[String]) -> Result<usize, AlertingError> {
    load(path, default_group_by).map(|(set, _)| set.rules.len())
}

fn load(path: &Path, default_group_by: &[String]) -> Result<(RuleSet, Vec<u8>), AlertingError> {
    let bytes = read(path)?;
    let set = parse(path, &bytes, default_group_by)?;
    Ok((set, bytes))
}

fn read(path: &Path) -> Result<Vec<u8>, AlertingError> {
    let read_error = |source| AlertingError::Read { path: path.to_owned(), source };
    let len = std::fs::metadata(path).map_err(read_error)?.len();
    if len > rules::MAX_RULE_FILE_BYTES as u64 {
        let problem = format!("the file is {len} bytes, more than {}", rules::MAX_RULE_FILE_BYTES);
        return Err(AlertingError::Invalid { path: path.to_owned(), problems: vec![problem] });
    }
    std::fs::read(path).map_err(read_error)
}

fn parse(path: &Path, bytes: &[u8], default_group_by: &[String]) -> Result<RuleSet, AlertingError> {
    let invalid = |problems| AlertingError::Invalid { path: path.to_owned(), problems };
    let text = std::str::from_utf8(bytes).map_err(|e| invalid(vec![format!("not UTF-8: {e}")]))?;
    rules::parse(text, default_group_by).map_err(invalid)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// `vigil_alerting_*`. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AlertingMetrics {
    reloads: Family<ResultLabels, Counter>,
    evaluations: Counter,
    rule_failures: Counter,
    sent: Counter,
    queue_full: Counter,
}

impl AlertingMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("vigil_alerting");
        r.register("rule_reloads", "Rule file reloads, by result (success, failure)", m.reloads.clone());
        r.register("evaluations", "Evaluations of the whole rule set", m.evaluations.clone());
        r.register(
            "rule_failures",
            "Rule evaluations that failed (the rule's alerts kept as they were)",
            m.rule_failures.clone(),
        );
        r.register("alerts_sent", "Alert messages handed to the Alertmanager queue", m.sent.clone());
        r.register(
            "queue_full",
            "Evaluations whose alerts waited for the next one: the alert queue was full",
            m.queue_full.clone(),
        );
        m
    }
}

/// What the API reads and the binary stops.
#[derive(Debug)]
pub struct AlertingHandle {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    config: AlertingConfig,
    evaluator: Mutex<Evaluator>,
    /// The last rule file problem since the last good load, for `/api/v1/rules`.
    reload_error: Mutex<Option<String>>,
    stop: AtomicBool,
    metrics: AlertingMetrics,
}

/// What the rule thread reads and where its alerts go.
#[derive(Debug)]
pub struct AlertingInputs {
    pub store: Arc<OwnSeriesStore>,
    /// The engine, whose open anomaly events anomaly rules read (with the scores in `store`).
    pub detect: Option<DetectHandle>,
    pub correlate: Option<CorrelateHandle>,
    pub alerts: mpsc::Sender<AlertBatch>,
    pub metrics: AlertingMetrics,
    /// `tenancy.default_tenant`.
    pub default_tenant: String,
}

impl AlertingHandle {
    /// Loads the rules (a missing or invalid file is an error: Vigil refuses to start on it) and starts the
    /// rule thread.
    pub fn start(config: AlertingConfig, inputs: AlertingInputs) -> Result<Self, AlertingError> {
        let (set, bytes) = match &config.rules_file {
            Some(path) => load(path, &config.group_by)?,
            None => (
                rules::parse(rules::DEFAULT_RULES, &config.group_by).map_err(|problems| AlertingError::Invalid {
                    path: PathBuf::from("<embedded default rules>"),
                    problems,
                })?,
                Vec::new(),
            ),
        };
        inputs.store.keep().set_rule_selectors(set.keep_selectors());
        let shared = Arc::new(Shared {
            config,
            evaluator: Mutex::new(Evaluator::new(set)),
            reload_error: Mutex::new(None),
            stop: AtomicBool::new(false),
            metrics: inputs.metrics.clone(),
        });
        let run = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("alert-rules".into())
            .spawn(move || rule_loop(&run, &inputs, bytes))
            .map_err(AlertingError::Thread)?;
        Ok(Self { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Stops the rule thread after its current evaluation.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.lock().take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for AlertingHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Anomaly events read per tenant and evaluation: the open ones with a sample in the last 5 minutes
/// (Prometheus' lookback), at most this many, the newest.
const OPEN_ANOMALY_LOOKBACK_MS: i64 = 5 * 60 * 1000;
const MAX_OPEN_ANOMALIES: usize = 100_000;

fn rule_loop(shared: &Shared, inputs: &AlertingInputs, mut loaded: Vec<u8>) {
    let config = &shared.config;
    let mut next_reload = Instant::now() + config.reload_interval;
    let open_incidents = |tenant: &str| match &inputs.correlate {
        Some(c) => {
            let q = IncidentQuery { tenant, start_ms: None, end_ms: None, status: Some(Status::Open), limit: 1000 };
            c.incidents(&q).0
        }
        None => Vec::new(),
    };
    let anomalies = |tenant: &str| match &inputs.detect {
        Some(d) => {
            let q = EventQuery {
                tenant,
                selectors: &[],
                start_ms: Some(wall_clock_ms().saturating_sub(OPEN_ANOMALY_LOOKBACK_MS)),
                end_ms: None,
                min_score: 0.0,
                limit: MAX_OPEN_ANOMALIES,
            };
            d.open_anomalies(&q)
        }
        None => Vec::new(),
    };
    while !shared.stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        if let (Some(path), true) = (&config.rules_file, started >= next_reload) {
            next_reload = started + config.reload_interval;
            reload(shared, path, &mut loaded, &inputs.store);
        }
        let world = World {
            store: &inputs.store,
            open_incidents: &open_incidents,
            anomalies: &anomalies,
            now_ms: wall_clock_ms(),
            default_tenant: &inputs.default_tenant,
        };
        let mut send = |batch: AlertBatch| {
            let n = batch.alerts.len() as u64;
            match inputs.alerts.try_send(batch) {
                Ok(()) => {
                    shared.metrics.sent.inc_by(n);
                    true
                }
                Err(_) => {
                    shared.metrics.queue_full.inc();
                    false
                }
            }
        };
        {
            let mut evaluator = shared.evaluator.lock();
            evaluator.evaluate(&world, config, &mut send);
            let failures = evaluator.health.iter().flat_map(|h| h.values()).filter(|h| h.last_error.is_some()).count();
            shared.metrics.rule_failures.inc_by(failures as u64);
        }
        shared.metrics.evaluations.inc();
        let next = started + config.evaluation_interval;
        while !shared.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::park_timeout(next - now);
        }
    }
}

/// Re-reads the rule file if its bytes changed; a file that does not validate leaves the rules as they were
/// (and is not parsed again until it changes).
fn reload(shared: &Shared, path: &Path, last_seen: &mut Vec<u8>, store: &OwnSeriesStore) {
    let outcome = match read(path) {
        Ok(bytes) if bytes == *last_seen => return,
        Ok(bytes) => {
            let parsed = parse(path, &bytes, &shared.config.group_by);
            *last_seen = bytes;
            parsed
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(set) => {
            let n = set.rules.len();
            store.keep().set_rule_selectors(set.keep_selectors());
            shared.evaluator.lock().replace(set);
            *shared.reload_error.lock() = None;
            shared.metrics.reloads.get_or_create(&ResultLabels { result: "success" }).inc();
            tracing::info!(path = %path.display(), rules = n, "Alert rules reloaded.");
        }
        Err(e) => {
            let text = e.to_string();
            let mut last = shared.reload_error.lock();
            if last.as_deref() != Some(text.as_str()) {
                shared.metrics.reloads.get_or_create(&ResultLabels { result: "failure" }).inc();
                tracing::error!(error = %text, "The alert rule file changed but is not valid; the rules before it keep running.");
                *last = Some(text);
            }
        }
    }
}

//! Vigil's configuration: one YAML document, every section optional, every field defaulted.
//!
//! Each component owns its config struct; this file composes them. [`Config::validate`] is pure (no I/O)
//! and reports every problem at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_detect::{CorrelateConfig, DetectConfig};
use vigil_forward::ForwardMode;
use vigil_forward::alertmanager::AlertmanagerConfig;
use vigil_forward::loki::LokiConfig;
use vigil_forward::tempo::TempoConfig;
use vigil_forward::victoriametrics::VictoriaMetricsConfig;
use vigil_ingest::buffer::BufferConfig;
use vigil_ingest::limits::IngestLimits;
use vigil_ingest::loki::LokiReceiverConfig;
use vigil_ingest::remote_write::RemoteWriteConfig;
use vigil_ingest::series::SeriesRegistryConfig;
use vigil_ingest::wal::{QueueConfig, WalConfig};
use vigil_query::OwnSeriesConfig;
use vigil_query::alerting::AlertingConfig;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    pub(crate) server: ServerConfig,
    pub(crate) limits: IngestLimits,
    /// The metrics window (samples, exemplars, native histograms).
    pub(crate) buffer: BufferConfig,
    /// The spans window.
    pub(crate) spans_buffer: BufferConfig,
    /// The log-lines window.
    pub(crate) logs_buffer: BufferConfig,
    pub(crate) tenancy: TenancyConfig,
    pub(crate) series: SeriesRegistryConfig,
    pub(crate) remote_write: RemoteWriteConfig,
    /// The Loki push receiver.
    pub(crate) loki: LokiReceiverConfig,
    pub(crate) forward: ForwardConfig,
    /// The write-ahead log under `server.data_dir`/wal.
    pub(crate) wal: WalConfig,
    /// Limits on what one forwarder may have undelivered.
    pub(crate) queue: QueueConfig,
    /// Anomaly detection over the metrics window: rules by selector, cap, write-back, events.
    pub(crate) detect: DetectConfig,
    /// Trace-id index, span RED series, service graph and incidents.
    pub(crate) correlate: CorrelateConfig,
    /// The series Vigil computes itself (anomaly scores, span RED metrics, incident counts), kept for the
    /// Prometheus API (`/api/v1/query` and friends): retention and caps.
    pub(crate) own_series: OwnSeriesConfig,
    /// Alert rules over Vigil's own series and incidents, sent through `forward.alertmanager`.
    pub(crate) alerting: AlertingConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            limits: IngestLimits::default(),
            buffer: BufferConfig::default(),
            // Spans are fewer and larger than samples; the window is for correlation, not long storage.
            spans_buffer: BufferConfig { max_bytes: 128 << 20, ..BufferConfig::default() },
            logs_buffer: BufferConfig { max_bytes: 128 << 20, ..BufferConfig::default() },
            loki: LokiReceiverConfig::default(),
            tenancy: TenancyConfig::default(),
            series: SeriesRegistryConfig::default(),
            remote_write: RemoteWriteConfig::default(),
            forward: ForwardConfig::default(),
            wal: WalConfig::default(),
            queue: QueueConfig::default(),
            detect: DetectConfig::default(),
            correlate: CorrelateConfig::default(),
            own_series: OwnSeriesConfig::default(),
            alerting: AlertingConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TenancyConfig {
    /// Tenant of requests without `X-Scope-OrgID`; sent on to Loki and Tempo as theirs.
    pub(crate) default_tenant: String,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self { default_tenant: "anonymous".into() }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    /// Remote write, OTLP/HTTP (later), the query API, `/metrics` and health.
    pub(crate) http_listen: String,
    /// OTLP/gRPC (later).
    pub(crate) grpc_listen: String,
    /// Where Vigil keeps its state on disk.
    pub(crate) data_dir: PathBuf,
    /// How long a SIGTERM may take, in all: finishing in-flight requests, then forwarding what is logged
    /// (what is not delivered by then stays in the write-ahead log for the next start).
    #[serde(with = "humantime_serde")]
    pub(crate) shutdown_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            http_listen: "0.0.0.0:4318".into(),
            grpc_listen: "0.0.0.0:4317".into(),
            data_dir: PathBuf::from("./vigil-data"),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ForwardConfig {
    /// `replicate`: every URL of a kind gets everything; `failover`: the first URL of each kind is the
    /// primary, the others standbys used (in order) while the primary's breaker is open.
    pub(crate) mode: ForwardMode,
    /// Every destination gets every sample (`mode: replicate`).
    pub(crate) victoriametrics: Vec<VictoriaMetricsConfig>,
    /// Every destination gets every span.
    pub(crate) tempo: Vec<TempoConfig>,
    /// Every destination gets every log line.
    pub(crate) loki: Vec<LokiConfig>,
    /// Every destination gets every alert of the rule evaluator (from the alerts write-ahead log).
    pub(crate) alertmanager: Vec<AlertmanagerConfig>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing {path}: {source}")]
    Parse { path: PathBuf, source: serde_yaml_ng::Error },
    #[error("{} problem(s) in the configuration:\n  - {}", .0.len(), .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    pub(crate) fn from_yaml_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut config = Self::from_yaml(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        // A relative rule file is the config file's neighbour, as Prometheus reads `rule_files`.
        if let (Some(rules), Some(dir)) = (&mut config.alerting.rules_file, path.parent())
            && rules.is_relative()
        {
            *rules = dir.join(&*rules);
        }
        Ok(config)
    }

    pub(crate) fn from_yaml(text: &str) -> Result<Self, serde_yaml_ng::Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml_ng::from_str(text)
    }

    /// Every problem, not just the first.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for (key, addr) in
            [("server.http_listen", &self.server.http_listen), ("server.grpc_listen", &self.server.grpc_listen)]
        {
            if addr.parse::<SocketAddr>().is_err() {
                problems.push(format!("{key} {addr:?} is not an address like 0.0.0.0:4318"));
            }
        }
        if self.server.http_listen == self.server.grpc_listen {
            problems.push("server.http_listen and server.grpc_listen must differ".into());
        }
        if self.server.data_dir.as_os_str().is_empty() {
            problems.push("server.data_dir must not be empty".into());
        }
        let checks =
            [self.limits.validate(), self.buffer.validate(), self.remote_write.validate(), self.wal.validate()];
        problems.extend(checks.into_iter().filter_map(Result::err));
        if let Err(e) = self.spans_buffer.validate() {
            problems.push(e.replace("buffer.", "spans_buffer."));
        }
        if let Err(e) = self.logs_buffer.validate() {
            problems.push(e.replace("buffer.", "logs_buffer."));
        }
        if let Err(e) = self.loki.validate() {
            problems.push(e);
        }
        for loki in &self.forward.loki {
            if let Err(e) = loki.validate() {
                problems.push(e);
            }
        }
        if let Err(e) = vigil_ingest::tenant::validate_tenant(&self.tenancy.default_tenant) {
            problems.push(format!("tenancy.default_tenant: {e}"));
        }
        for tempo in &self.forward.tempo {
            if let Err(e) = tempo.validate() {
                problems.push(e);
            }
        }
        for am in &self.forward.alertmanager {
            if let Err(e) = am.validate() {
                problems.push(e);
            }
        }
        if self.queue.max_bytes == 0 {
            problems.push("queue.max_bytes must be > 0".into());
        }
        if self.series.max_series == 0 {
            problems.push("series.max_series must be > 0".into());
        }
        let mut seen = std::collections::HashSet::new();
        for vm in &self.forward.victoriametrics {
            if let Err(e) = vm.validate() {
                problems.push(e);
            }
            if !seen.insert(&vm.url) {
                problems.push(format!("forward.victoriametrics lists {:?} twice", vm.url));
            }
        }
        if let Err(detect) = self.detect.validate() {
            problems.extend(detect);
        }
        if let Err(correlate) = self.correlate.validate() {
            problems.extend(correlate);
        }
        if let Err(own) = self.own_series.validate() {
            problems.extend(own);
        }
        match self.alerting.validate() {
            Err(alerting) => problems.extend(alerting),
            Ok(()) => {
                if let (true, Some(file)) = (self.alerting.enabled, &self.alerting.rules_file)
                    && let Err(e) = vigil_query::alerting::check_rules_file(file, &self.alerting.group_by)
                {
                    problems.push(e.to_string());
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(problems)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_validate() {
        let c = Config::default();
        c.validate().unwrap();
        let yaml = serde_yaml_ng::to_string(&c).unwrap();
        assert_eq!(Config::from_yaml(&yaml).unwrap(), c);
        assert_eq!(Config::from_yaml("").unwrap(), c);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = Config::from_yaml("server:\n  http_listn: 1.2.3.4:5\n").unwrap_err().to_string();
        assert!(err.contains("http_listn"), "{err}");
        assert!(Config::from_yaml("bogus: 1\n").is_err());
    }

    #[test]
    fn every_problem_is_reported() {
        let c = Config::from_yaml(
            "server:\n  http_listen: nope\nbuffer:\n  max_bytes: 10\nforward:\n  victoriametrics:\n    - url: ftp://x\n",
        )
        .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("server.http_listen"), "{err}");
        assert!(err.contains("buffer.max_bytes"), "{err}");
        assert!(err.contains("ftp://x"), "{err}");
    }

    #[test]
    fn per_tenant_limits_parse_and_default() {
        let c = Config::from_yaml(
            "limits:\n  max_samples_per_second_per_tenant: 10000\n  samples_per_second_burst: 50000\nseries:\n  max_series: 100\n  max_series_per_tenant: 10\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!((c.limits.max_samples_per_second_per_tenant, c.limits.samples_burst()), (10_000, 50_000));
        assert_eq!(c.series.series_per_tenant(), 10);
        // Unset: no rate limit, and a tenant may have as many series as all of them together.
        let c = Config::from_yaml("series:\n  max_series: 100\n").unwrap();
        assert_eq!((c.limits.max_samples_per_second_per_tenant, c.series.series_per_tenant()), (0, 100));
        let c = Config::from_yaml("limits:\n  samples_per_second_burst: 5\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("limits.samples_per_second_burst"));
    }

    #[test]
    fn the_detect_section_parses_and_reports_its_problems() {
        let c = Config::from_yaml(
            "detect:\n  max_series: 10\n  rules:\n    - match: 'latency{job=\"api\"}'\n      settings:\n        direction: up\n    - match: '{__name__=~\"debug_.+\"}'\n      exclude: true\n  events:\n    max_age: 1d\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!((c.detect.max_series, c.detect.rules.len()), (10, 2));
        assert!(c.detect.enabled, "on unless turned off");
        let c = Config::from_yaml("detect:\n  rules:\n    - match: 'up{'\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("detect.rules[0].match"), "{err}");
        assert!(Config::from_yaml("detect:\n  rulez: []\n").is_err());
    }

    #[test]
    fn the_own_series_section_parses_and_reports_its_problems() {
        let c = Config::from_yaml("own_series:\n  retention: 6h\n  max_series: 100\n").unwrap();
        c.validate().unwrap();
        assert_eq!(c.own_series.retention, Duration::from_secs(6 * 3600));
        assert_eq!((c.own_series.max_series, c.own_series.max_samples), (100, OwnSeriesConfig::default().max_samples));
        let c = Config::from_yaml("own_series:\n  max_samples: 0\n").unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("own_series.max_samples"));
        assert!(Config::from_yaml("own_series:\n  retension: 1h\n").is_err());
    }

    #[test]
    fn the_correlate_section_parses_and_reports_its_problems() {
        let c = Config::from_yaml(
            "correlate:\n  red:\n    step: 5s\n    quantiles: [0.5, 0.99]\n  incidents:\n    window: 10m\n    service_labels: [service, app]\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.correlate.red.step, Duration::from_secs(5));
        assert_eq!(c.correlate.incidents.service_labels, ["service", "app"]);
        assert!(c.correlate.enabled, "on unless turned off");
        let c = Config::from_yaml("correlate:\n  red:\n    step: 1ms\n  graph:\n    buckets: []\n").unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("correlate.red.step") && err.contains("correlate.graph.buckets"), "{err}");
        assert!(Config::from_yaml("correlate:\n  incidentz: {}\n").is_err());
    }

    #[test]
    fn durations_and_sections_parse() {
        let c = Config::from_yaml(
            "buffer:\n  seal_interval: 500ms\nforward:\n  victoriametrics:\n    - url: http://127.0.0.1:8428/api/v1/write\n      flush_interval: 2s\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.buffer.seal_interval, Duration::from_millis(500));
        assert_eq!(c.forward.victoriametrics[0].flush_interval, Duration::from_secs(2));
    }

    #[test]
    fn alertmanager_destinations_parse_and_report_their_problems() {
        let c = Config::from_yaml(
            "forward:\n  mode: failover\n  alertmanager:\n    - url: http://am-1:9093/api/v2/alerts\n      flush_interval: 100ms\n    - url: http://am-2:9093/api/v2/alerts\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.forward.alertmanager.len(), 2);
        assert_eq!(c.forward.alertmanager[0].flush_interval, Duration::from_millis(100));
        let c = Config::from_yaml("forward:\n  alertmanager:\n    - url: am:9093\n      max_alerts_per_request: 0\n")
            .unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("forward.alertmanager"), "{err}");
        assert!(Config::from_yaml("forward:\n  alertmanager:\n    - url: x\n      max_alerts: 1\n").is_err());
    }
}

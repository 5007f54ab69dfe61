//! `alerting:` — where the rules come from and how alerts are evaluated, grouped and re-sent.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    pub enabled: bool,
    /// The rule file (YAML), re-read when it changes; with none, Vigil's default rules (one anomaly alert per
    /// service) run. A file that does not validate is refused at start; a bad edit later is logged and the
    /// rules before it keep running.
    pub rules_file: Option<PathBuf>,
    /// How often the rule file is checked for changes.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// How often every rule is evaluated.
    #[serde(with = "humantime_serde")]
    pub evaluation_interval: Duration,
    /// How often a firing (or recently resolved) alert is sent again, so Alertmanager keeps it (Prometheus'
    /// `--rules.alert.resend-delay`).
    #[serde(with = "humantime_serde")]
    pub resend_delay: Duration,
    /// How long a resolved alert keeps being sent as resolved (Prometheus keeps 15 minutes).
    #[serde(with = "humantime_serde")]
    pub resolved_retention: Duration,
    /// Labels whose values make one alert of a rule's alerting series, unless the rule sets `group_by`.
    pub group_by: Vec<String>,
    /// A group whose series all stopped alerting stays firing this long: a symptom that clears and comes back
    /// within it stays one alert.
    #[serde(with = "humantime_serde")]
    pub group_window: Duration,
    /// Group the alerting series of the services an open incident explains under its root-cause service:
    /// one fault is one alert (on the root cause), whichever services show it and whether or not the root
    /// cause's own series alert.
    pub group_by_incident: bool,
    /// Silence an alert on a service when an open incident names another service as its root cause and an
    /// alert on that service is firing (it explains this one).
    pub inhibit_by_root_cause: bool,
    /// The labels that name a series' service, first present wins (correlation's `service_labels`): an
    /// alert grouped by `service` takes its value from them, so a span RED series (`service="api"`), a
    /// scraped one (`job="api"`) and a service-graph edge into it (`server="api"`, where its failures show)
    /// of one service are one alert, and root-cause inhibition can match it.
    pub service_labels: Vec<String>,
    /// The label that tells tenants' alerts apart in one Alertmanager, added to the alerts of every tenant but
    /// `tenancy.default_tenant` (a multi-tenant Alertmanager reads the `X-Scope-OrgID` header instead); empty:
    /// never added.
    pub tenant_label: String,
    /// Vigil's address as Alertmanager users reach it, for `generatorURL` and incident links.
    pub external_url: String,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rules_file: None,
            reload_interval: Duration::from_secs(5),
            evaluation_interval: Duration::from_secs(5),
            resend_delay: Duration::from_secs(60),
            resolved_retention: Duration::from_secs(15 * 60),
            group_by: vec!["cluster".into(), "service".into()],
            group_window: Duration::from_secs(60),
            group_by_incident: true,
            inhibit_by_root_cause: true,
            service_labels: ["service", "service_name", "service.name", "job", "server"].map(String::from).to_vec(),
            tenant_label: "tenant".into(),
            external_url: "http://localhost:4318".into(),
        }
    }
}

impl AlertingConfig {
    /// Every problem, each naming its key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (key, d) in [
            ("reload_interval", self.reload_interval),
            ("evaluation_interval", self.evaluation_interval),
            ("resend_delay", self.resend_delay),
        ] {
            if d < Duration::from_millis(10) {
                problems.push(format!("alerting.{key} must be at least 10ms"));
            }
        }
        if self.service_labels.iter().any(String::is_empty) {
            problems.push("alerting.service_labels must not list an empty label".into());
        }
        if !(self.external_url.starts_with("http://") || self.external_url.starts_with("https://")) {
            problems.push(format!(
                "alerting.external_url must start with http:// or https://, got {:?}",
                self.external_url
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    pub(crate) fn millis(d: Duration) -> i64 {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

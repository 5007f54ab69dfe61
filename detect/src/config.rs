//! The `detect:` section of Vigil's configuration: which series are scored and how, the cardinality cap,
//! write-back and the events' retention.
//!
//! ```yaml
//! detect:
//!   max_series: 100000
//!   forget_after: 48h
//!   rules:
//!     - match: 'http_requests_total{job="api"}'
//!       settings: { sensitivity: 0.5, direction: up }
//!     - match: '{__name__=~"debug_.+"}'
//!       exclude: true
//!   events: { max_events: 100000, max_age: 7d }
//!   iforest: { group_by: [job, service_name, service], refit_interval: 10m }
//!   peers: { interval: 5m, group_by_excluding: [instance, pod], eps: 1.5 }
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::iforest::online::IforestConfig;
pub use crate::peers::PeersConfig;
use crate::rules::RuleSet;
use crate::selector::Selector;
use crate::settings::Settings;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Score series as they arrive. Off: no scores, no events, an empty anomaly API.
    pub enabled: bool,
    /// How a series no rule matches is scored.
    pub defaults: Settings,
    /// The first rule whose `match` selects a series decides how it is scored, or that it is not
    /// (`exclude: true`). Series named `anomaly_*` (Vigil's own scores) are never scored.
    pub rules: Vec<Rule>,
    /// Most series with detector state at once, all tenants together. Series beyond it are not scored and
    /// are counted in `vigil_detect_series_dropped_total`.
    pub max_series: u64,
    /// A series with no sample for this long is forgotten: its state is dropped, an open event of it is
    /// closed, and its place under `max_series` is freed (pods come and go; without this the cap fills with
    /// series that are gone). Measured in sample time, behind the newest sample of the series' engine
    /// shard, so replayed data behaves like live data. A series that comes back learns again from scratch.
    #[serde(with = "humantime_serde")]
    pub forget_after: Duration,
    /// Append `anomaly_score`, `anomaly_expected`, `anomaly_lower` and `anomaly_upper` for every scored
    /// sample to the metrics path (and so to the forwarders).
    pub write_back: bool,
    pub events: EventsConfig,
    /// The isolation forest per group of series, trained online (its contribution is `iforest`).
    pub iforest: IforestConfig,
    /// Peer-group outliers: a series unlike its siblings (its contribution is `peers`).
    pub peers: PeersConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            defaults: Settings::default(),
            rules: Vec::new(),
            max_series: 100_000,
            forget_after: Duration::from_secs(48 * 3600),
            write_back: true,
            events: EventsConfig::default(),
            iforest: IforestConfig::default(),
            peers: PeersConfig::default(),
        }
    }
}

/// One entry of `detect.rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Rule {
    /// A PromQL series selector, e.g. `http_requests_total{job="api", code=~"5.."}`.
    #[serde(rename = "match")]
    pub selector: String,
    /// Series this rule selects are not scored.
    pub exclude: bool,
    /// How the series this rule selects are scored; fields left out take the built-in defaults.
    pub settings: Settings,
}

/// Retention of the anomaly events table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Closed events kept, all tenants together; the oldest go first.
    pub max_events: usize,
    /// Closed events that ended longer ago than this are dropped.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// An event closes once this many consecutive samples of its series score ≤ 1; until then the series
    /// is still in the same anomaly (no repeat event).
    pub close_after: u32,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { max_events: 100_000, max_age: Duration::from_secs(7 * 24 * 3600), close_after: 3 }
    }
}

/// More rules than this cannot be told apart in the per-series state (a `u16` index).
pub(crate) const MAX_RULES: usize = u16::MAX as usize - 1;

impl DetectConfig {
    /// Every problem (each naming its key), or the rules compiled for the engine.
    pub fn validate(&self) -> Result<RuleSet, Vec<String>> {
        let mut problems = Vec::new();
        if let Err(e) = self.defaults.validate() {
            problems.push(format!("detect.defaults: {e}"));
        }
        if self.rules.len() > MAX_RULES {
            problems.push(format!("detect.rules has {} rules; at most {MAX_RULES}", self.rules.len()));
        }
        let mut compiled = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.selector.trim().is_empty() {
                problems.push(format!("detect.rules[{i}].match is required (a series selector)"));
            } else {
                match Selector::parse(&rule.selector) {
                    Ok(selector) => compiled.push((selector, rule.exclude, rule.settings.clone())),
                    Err(e) => problems.push(format!("detect.rules[{i}].match {:?}: {e}", rule.selector)),
                }
            }
            if let Err(e) = rule.settings.validate() {
                problems.push(format!("detect.rules[{i}].settings: {e}"));
            }
        }
        if self.max_series == 0 {
            problems.push("detect.max_series must be > 0".into());
        }
        if self.forget_after < Duration::from_secs(60) {
            problems.push(format!("detect.forget_after must be at least 1m, got {:?}", self.forget_after));
        }
        if self.events.max_events == 0 {
            problems.push("detect.events.max_events must be > 0".into());
        }
        if self.events.max_age.is_zero() {
            problems.push("detect.events.max_age must be > 0".into());
        }
        if self.events.close_after == 0 || self.events.close_after > 255 {
            problems
                .push(format!("detect.events.close_after must be 1 to 255 samples, got {}", self.events.close_after));
        }
        problems.extend(self.iforest.problems());
        problems.extend(self.peers.problems());
        if problems.is_empty() { Ok(RuleSet::new(compiled, self.defaults.clone())) } else { Err(problems) }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::settings::Direction;

    /// Configs are written as JSON here (the crate has no YAML parser); serde sees the same shape.
    fn parse(text: &str) -> Result<DetectConfig, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_round_trip_and_validate() {
        let c = DetectConfig::default();
        let rules = c.validate().unwrap();
        assert_eq!(rules.len(), 0);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<DetectConfig>(&json).unwrap(), c);
        assert_eq!(parse("{}").unwrap(), c);
        assert!(c.enabled && c.write_back);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        assert!(parse(r#"{"enabld": true}"#).unwrap_err().contains("enabld"));
        let e = parse(r#"{"rules": [{"match": "up", "sensitivity": 2}]}"#).unwrap_err();
        assert!(e.contains("sensitivity"), "settings go under `settings:`: {e}");
        assert!(parse(r#"{"events": {"max_rows": 1}}"#).unwrap_err().contains("max_rows"));
    }

    #[test]
    fn rules_parse() {
        let c = parse(
            r#"{"rules": [{"match": "up{job=\"a\"}", "settings": {"sensitivity": 2, "direction": "up"}},
                          {"match": "{__name__=~\"debug_.+\"}", "exclude": true}],
                "events": {"max_age": "1h", "close_after": 5}}"#,
        )
        .unwrap();
        assert_eq!(c.rules[0].settings.direction, Direction::Up);
        assert_eq!(c.rules[0].settings.min_history, Settings::default().min_history, "unset fields default");
        assert!(c.rules[1].exclude);
        assert_eq!(c.events.max_age, Duration::from_secs(3600));
        assert_eq!(c.validate().unwrap().len(), 2);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let c = parse(
            r#"{"max_series": 0, "forget_after": "30s", "defaults": {"sensitivity": -1},
                "rules": [{"match": "up{job=}"}, {"settings": {"min_deviation": -2}}],
                "events": {"max_events": 0, "close_after": 0}}"#,
        )
        .unwrap();
        let problems = c.validate().unwrap_err();
        let all = problems.join("\n");
        for key in [
            "detect.defaults: sensitivity",
            "detect.rules[0].match \"up{job=}\": parse error at char 8",
            "detect.rules[1].match is required",
            "detect.rules[1].settings: min_deviation",
            "detect.max_series",
            "detect.forget_after must be at least 1m",
            "detect.events.max_events",
            "detect.events.close_after",
        ] {
            assert!(all.contains(key), "missing {key:?} in:\n{all}");
        }
        assert_eq!(problems.len(), 8, "{all}");
    }
}

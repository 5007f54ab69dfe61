//! `detect.rules` compiled: which settings a series is scored with, decided once when the series is first
//! seen and kept as a small index in its state.

use crate::selector::Selector;
use crate::settings::Settings;

/// Vigil's own output: scoring it would score the scores, and write scores of those back, without end.
pub const OUTPUT_PREFIX: &str = "anomaly_";

/// The rules of a validated [`crate::DetectConfig`], in order, plus the defaults.
#[derive(Debug, Clone)]
pub struct RuleSet {
    selectors: Vec<(Selector, bool)>,
    /// One per rule, then the defaults (index `selectors.len()`).
    settings: Vec<Settings>,
}

/// Index into a [`RuleSet`]'s settings.
pub type RuleIndex = u16;

impl RuleSet {
    pub(crate) fn new(rules: Vec<(Selector, bool, Settings)>, defaults: Settings) -> Self {
        let mut selectors = Vec::with_capacity(rules.len());
        let mut settings = Vec::with_capacity(rules.len() + 1);
        for (selector, exclude, s) in rules {
            selectors.push((selector, exclude));
            settings.push(s);
        }
        settings.push(defaults);
        Self { selectors, settings }
    }

    /// Number of rules (the defaults not counted).
    pub fn len(&self) -> usize {
        self.selectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.selectors.is_empty()
    }

    /// How the series with these labels is scored: `None` when it is not (an `exclude` rule, or Vigil's own
    /// `anomaly_*` output), else the index of its settings.
    pub fn resolve(&self, labels: &[(&str, &str)]) -> Option<RuleIndex> {
        let name = labels.iter().find(|(n, _)| *n == "__name__").map_or("", |(_, v)| *v);
        if name.starts_with(OUTPUT_PREFIX) {
            return None;
        }
        let first = self.selectors.iter().position(|(s, _)| s.matches_pairs(labels));
        match first {
            Some(i) if self.selectors[i].1 => None,
            Some(i) => RuleIndex::try_from(i).ok(),
            None => RuleIndex::try_from(self.selectors.len()).ok(),
        }
    }

    /// The settings at `index` (the defaults for an index past the rules).
    pub fn settings(&self, index: RuleIndex) -> &Settings {
        let last = self.settings.len() - 1;
        &self.settings[usize::from(index).min(last)]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::config::{DetectConfig, Rule};

    fn rules() -> RuleSet {
        let rule = |m: &str, exclude: bool, sensitivity: f64| Rule {
            selector: m.into(),
            exclude,
            settings: Settings { sensitivity, ..Settings::default() },
        };
        DetectConfig {
            rules: vec![rule(r#"{job="batch"}"#, true, 1.0), rule("latency{job=~\"api|web\"}", false, 2.0)],
            ..DetectConfig::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn the_first_matching_rule_wins_and_the_defaults_take_the_rest() {
        let r = rules();
        let api = r.resolve(&[("__name__", "latency"), ("job", "api")]).unwrap();
        assert_eq!(r.settings(api).sensitivity, 2.0);
        assert_eq!(r.resolve(&[("__name__", "latency"), ("job", "batch")]), None, "excluded by the first rule");
        let other = r.resolve(&[("__name__", "up"), ("job", "api")]).unwrap();
        assert_eq!(other, 2);
        assert_eq!(r.settings(other), &Settings::default());
    }

    #[test]
    fn vigil_output_is_never_scored() {
        let r = rules();
        assert_eq!(r.resolve(&[("__name__", "anomaly_score"), ("for", "latency"), ("job", "api")]), None);
        assert_eq!(r.resolve(&[("__name__", "anomaly_upper")]), None);
        assert!(r.resolve(&[("__name__", "anomalyish")]).is_some());
    }
}

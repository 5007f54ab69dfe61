//! `detect.peers`: peer-group outliers.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How sibling series are compared.
///
/// ```yaml
/// detect:
///   peers: { interval: 5m, group_by_excluding: [instance, pod], eps: 1.5, min_points: 3 }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeersConfig {
    /// Compare sibling series periodically and flag the one unlike the rest (its contribution is `peers`).
    pub enabled: bool,
    /// How often (sample time) siblings are compared, each time over the samples since the last time.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Series of one tenant with the same metric name and the same labels except these are siblings (the
    /// replicas of one thing). A series with none of these labels has no siblings.
    pub group_by_excluding: Vec<String>,
    /// DBSCAN's neighbourhood radius, in the normalised units of the summaries: 1 is a level apart by the
    /// larger of 10 % of the siblings' median level and their typical noise, or a deviation or roughness
    /// apart by a factor of 2.
    pub eps: f64,
    /// DBSCAN's core-point size: a series with this many siblings (itself included) within `eps` is in a
    /// cluster. At least 2.
    pub min_points: usize,
    /// Samples a series needs in an interval to be compared.
    pub min_samples: u32,
}

impl Default for PeersConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(300),
            group_by_excluding: ["instance", "pod", "pod_name", "pod_ip", "container_id", "host", "hostname"]
                .map(String::from)
                .to_vec(),
            eps: 1.5,
            min_points: 3,
            min_samples: 5,
        }
    }
}

impl PeersConfig {
    /// Every problem, each naming its key under `detect.peers`.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.interval.is_zero() {
            p.push("detect.peers.interval must be > 0".into());
        }
        if self.group_by_excluding.is_empty() || self.group_by_excluding.iter().any(|l| l.trim().is_empty()) {
            p.push("detect.peers.group_by_excluding needs at least one label name, none empty".into());
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            p.push(format!("detect.peers.eps must be a positive number, got {}", self.eps));
        }
        if self.min_points < 2 {
            p.push(format!("detect.peers.min_points must be at least 2, got {}", self.min_points));
        }
        if self.min_samples < 2 {
            p.push(format!("detect.peers.min_samples must be at least 2, got {}", self.min_samples));
        }
        p
    }
}

//! Peer-group outliers (`detect.peers`): one series unlike its siblings — one pod of a deployment, one
//! instance of a job — where every series alone looks ordinary against its own history.
//!
//! Siblings are the series of one tenant with the same metric name and the same labels but the
//! instance-like ones (`group_by_excluding`). Each series keeps a running summary of its values since the
//! last comparison ([`Window`]: mean, deviation, mean absolute step). Every `interval` of sample time the
//! engine's background thread takes every series' summary, and for each set of at least three siblings
//! normalises them (`cluster::normalise`) and clusters them with linfa-clustering's DBSCAN. A sibling
//! DBSCAN calls noise while most of the others form one cluster is a peer outlier: its score (distance to
//! that cluster over `eps`, > 1) is its `peers` contribution on every sample until the next comparison, so
//! it raises the series' score, opens an event and is written back like any other detector's.

mod cluster;
mod config;
mod window;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicI64, Ordering};

pub(crate) use cluster::outliers;
pub use config::PeersConfig;
pub(crate) use window::{Summary, Window};

/// Sibling sets and the comparison schedule.
#[derive(Debug)]
pub(crate) struct Peers {
    config: PeersConfig,
    excluding: HashSet<String>,
    interval_ms: i64,
    /// Sample time of the next comparison; `i64::MIN` until the first sample.
    next_ms: AtomicI64,
}

impl Peers {
    /// `config` must have passed validation.
    pub(crate) fn new(config: &PeersConfig) -> Self {
        Self {
            config: config.clone(),
            excluding: config.group_by_excluding.iter().cloned().collect(),
            interval_ms: i64::try_from(config.interval.as_millis()).unwrap_or(i64::MAX).max(1),
            next_ms: AtomicI64::new(i64::MIN),
        }
    }

    pub(crate) fn config(&self) -> &PeersConfig {
        &self.config
    }

    /// The sibling set of a series (a hash of its tenant and labels but the excluded ones), or `None` when
    /// it has none of the excluded labels: nothing tells it from siblings, so it has none.
    pub(crate) fn key(&self, tenant: u32, labels: &[(&str, &str)]) -> Option<NonZeroU64> {
        if !labels.iter().any(|(n, _)| self.excluding.contains(*n)) {
            return None;
        }
        let mut h = DefaultHasher::new();
        tenant.hash(&mut h);
        for (n, v) in labels.iter().filter(|(n, _)| !self.excluding.contains(*n)) {
            n.hash(&mut h);
            v.hash(&mut h);
        }
        NonZeroU64::new(h.finish()).or(NonZeroU64::new(1))
    }

    /// Whether a sample at `timestamp_ms` starts a comparison: true for exactly one caller per interval.
    /// The first sample only sets the schedule (a window must fill first).
    pub(crate) fn due(&self, timestamp_ms: i64) -> bool {
        let next = self.next_ms.load(Ordering::Relaxed);
        if timestamp_ms < next {
            return false;
        }
        let later = timestamp_ms.saturating_add(self.interval_ms);
        self.next_ms.compare_exchange(next, later, Ordering::AcqRel, Ordering::Relaxed).is_ok() && next != i64::MIN
    }
}

//! What the engine adds to a series' own verdict: its group's isolation forest (`crate::iforest::online`)
//! and the comparison with its siblings (`crate::peers`), and the background thread that refits the
//! forests and compares the siblings, so that neither holds up a shard's batch.
//!
//! Both join the ensemble as the statistical detectors do: a contribution on the same scale (`iforest`,
//! `peers`), and the sample's score raised to it (times the sensitivity) when it is higher, so events and
//! write-back see it. The alerting score (`Verdict::alert`, the series judged against its own history,
//! which `vigil eval` reads) is the series detector's alone.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Condvar, Mutex};

use super::Shared;
use crate::config::DetectConfig;
use crate::features::FeatureState;
use crate::iforest::online::{Group, Groups, Model, Resolved};
use crate::peers::{Peers, Summary, Window, outliers};
use crate::settings::{Direction, Settings};
use crate::telemetry::DetectMetrics;
use crate::verdict::Verdict;

/// Work for the background thread.
#[derive(Debug)]
enum Job {
    Refit(Arc<Group>),
    Peers,
}

/// The group forests, the sibling sets, and the background thread's queue.
#[derive(Debug)]
pub(crate) struct Online {
    groups: Option<Groups>,
    peers: Option<Peers>,
    jobs: Mutex<VecDeque<Job>>,
    wake: Condvar,
    stop: AtomicBool,
}

/// A series' share: 160 bytes.
#[derive(Debug)]
pub(crate) struct OnlineSeries {
    features: FeatureState,
    group: Option<Arc<Group>>,
    /// The group's model as of `epoch`: re-read only when the group publishes a new one.
    model: Option<Arc<Model>>,
    epoch: u64,
    peer_key: Option<NonZeroU64>,
    window: Window,
    /// The `peers` contribution from the last comparison (0: like its siblings, or not compared).
    peer_score: f32,
}

impl Online {
    /// `config` must have passed validation.
    pub(crate) fn new(config: &DetectConfig) -> Self {
        Self {
            groups: config.iforest.enabled.then(|| Groups::new(&config.iforest)),
            peers: config.peers.enabled.then(|| Peers::new(&config.peers)),
            jobs: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        }
    }

    /// The state of a series seen for the first time.
    pub(crate) fn admit(&self, tenant: u32, labels: &[(&str, &str)], metrics: &DetectMetrics) -> OnlineSeries {
        let group = match self.groups.as_ref().map(|g| (g.resolve(tenant, labels), g.len())) {
            Some((Resolved::Group(g), groups)) => {
                metrics.iforest_groups.set(i64::try_from(groups).unwrap_or(i64::MAX));
                Some(g)
            }
            Some((Resolved::Full, _)) => {
                metrics.iforest_groups_dropped.inc();
                None
            }
            None => None,
        };
        OnlineSeries {
            features: FeatureState::default(),
            group,
            model: None,
            epoch: 0,
            peer_key: self.peers.as_ref().and_then(|p| p.key(tenant, labels)),
            window: Window::default(),
            peer_score: 0.0,
        }
    }

    /// Adds the forest's and the peers' judgement to a sample's verdict.
    pub(crate) fn apply(
        &self,
        series: &mut OnlineSeries,
        settings: &Settings,
        sample: (i64, f64),
        verdict: &mut Verdict,
        metrics: &DetectMetrics,
    ) {
        let (timestamp_ms, raw) = sample;
        let stats_score = verdict.score;
        if let Some(own) = series.features.observe(settings, timestamp_ms, raw, verdict) {
            if series.peer_key.is_some() {
                series.window.push(own.x);
            }
            if let (Some(groups), Some(group)) = (&self.groups, &series.group) {
                let observed = groups.observe(group, timestamp_ms, &own, stats_score <= 1.0);
                if observed.refit_due {
                    self.queue(Job::Refit(Arc::clone(group)));
                }
                let epoch = group.epoch();
                if epoch != series.epoch {
                    series.model = group.model();
                    series.epoch = epoch;
                }
                if let Some(model) = &series.model {
                    let mut c = model.contribution(&observed.row);
                    // A one-sided rule watches one side: the forest's judgement counts when the sample is on
                    // it (the forest itself is two-sided).
                    if settings.direction != Direction::Both && settings.direction.clip(own.resid) <= 0.0 {
                        c = 0.0;
                    }
                    if c > 1.0 {
                        metrics.iforest_anomalous.inc();
                    }
                    verdict.contributions.iforest = c as f32;
                    verdict.score = verdict.score.max(c * settings.sensitivity);
                }
            }
        }
        if series.peer_score > 0.0 {
            verdict.contributions.peers = series.peer_score;
            verdict.score = verdict.score.max(f64::from(series.peer_score) * settings.sensitivity);
        }
        if self.peers.as_ref().is_some_and(|p| p.due(timestamp_ms)) {
            self.queue(Job::Peers);
        }
    }

    fn queue(&self, job: Job) {
        self.jobs.lock().push_back(job);
        self.wake.notify_one();
    }

    /// Lets the background thread finish the jobs queued and end.
    pub(crate) fn stop(&self) {
        let _jobs = self.jobs.lock();
        self.stop.store(true, Ordering::Release);
        self.wake.notify_all();
    }
}

/// The background thread: refits and comparisons as the shard threads ask for them, until stopped.
pub(crate) fn run(shared: &Shared) {
    let online = &shared.online;
    loop {
        let job = {
            let mut jobs = online.jobs.lock();
            loop {
                if let Some(job) = jobs.pop_front() {
                    break Some(job);
                }
                if online.stop.load(Ordering::Acquire) {
                    break None;
                }
                online.wake.wait(&mut jobs);
            }
        };
        match job {
            None => return,
            Some(Job::Refit(group)) => refit(shared, &group),
            Some(Job::Peers) => compare_peers(shared),
        }
    }
}

fn refit(shared: &Shared, group: &Group) {
    let Some(groups) = &shared.online.groups else { return };
    let m = &shared.metrics;
    match groups.refit(group) {
        Ok(r) => {
            m.iforest_refits.inc();
            m.iforest_refit_seconds.inc_by(r.took.as_secs_f64());
            tracing::debug!(rows = r.rows, took = ?r.took, "Refitted a group's isolation forest.");
        }
        Err(e) => {
            m.iforest_refit_errors.inc();
            tracing::warn!(error = %e, "Refitting a group's isolation forest failed; it keeps its last model.");
        }
    }
}

/// One series' summary for a comparison.
struct Member {
    key: u64,
    shard: usize,
    id: u64,
    summary: Summary,
}

/// Takes every series' window, compares each set of siblings, and gives every compared series its new
/// `peers` contribution (0 when it is like its siblings or has fewer than three).
fn compare_peers(shared: &Shared) {
    let Some(peers) = &shared.online.peers else { return };
    let config = peers.config();
    let mut members = Vec::new();
    for (shard, state) in shared.shards.iter().enumerate() {
        let mut state = state.lock();
        for (id, t) in state.series.iter_mut() {
            let o = &mut t.online;
            let Some(key) = o.peer_key else { continue };
            // A series with too few samples since the last comparison keeps its last verdict: comparisons
            // can come back to back (a shard catching up), and the second must not undo the first.
            if let Some(summary) = o.window.take(config.min_samples) {
                members.push(Member { key: key.get(), shard, id: *id, summary });
            }
        }
    }
    members.sort_unstable_by_key(|m| (m.key, m.id));
    let mut scores = Vec::with_capacity(members.len());
    let (mut sets, mut flagged) = (0u64, 0u64);
    for siblings in members.chunk_by(|a, b| a.key == b.key) {
        if siblings.len() < 3 {
            scores.extend(std::iter::repeat_n(0.0, siblings.len()));
            continue;
        }
        sets += 1;
        let summaries: Vec<Summary> = siblings.iter().map(|m| m.summary).collect();
        let s = outliers(&summaries, config.eps, config.min_points);
        flagged += s.iter().filter(|&&x| x > 1.0).count() as u64;
        scores.extend(s);
    }
    for (shard, state) in shared.shards.iter().enumerate() {
        let mut state = state.lock();
        for (m, score) in members.iter().zip(&scores).filter(|(m, _)| m.shard == shard) {
            if let Some(t) = state.series.get_mut(&m.id) {
                t.online.peer_score = *score as f32;
            }
        }
    }
    let m = &shared.metrics;
    m.peers_comparisons.inc();
    m.peers_sets.set(i64::try_from(sets).unwrap_or(i64::MAX));
    m.peers_outliers.inc_by(flagged);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_series_share_is_small() {
        // Inline in the engine's per-series entry (whose whole size the engine tests hold to 2 KiB); the
        // group and model it points to are shared by the whole group.
        assert!(size_of::<OnlineSeries>() <= 160, "{} bytes", size_of::<OnlineSeries>());
    }

    #[test]
    fn one_sided_rules_and_sensitivity_apply_to_the_peers_contribution() {
        let online = Online::new(&DetectConfig::default());
        let metrics = DetectMetrics::default();
        let labels = [("__name__", "rps"), ("job", "api"), ("pod", "a")];
        let mut series = online.admit(0, &labels, &metrics);
        assert!(series.group.is_some() && series.peer_key.is_some());
        assert_eq!(metrics.iforest_groups.get(), 1);
        series.peer_score = 2.0;
        let mut v = Verdict {
            score: 0.3,
            alert: 0.3,
            expected: 1.0,
            lower: 0.0,
            upper: 2.0,
            contributions: crate::verdict::Contributions::default(),
        };
        let settings = Settings { sensitivity: 0.5, ..Settings::default() };
        online.apply(&mut series, &settings, (1000, 1.0), &mut v, &metrics);
        assert_eq!((v.contributions.peers, v.score, v.alert), (2.0, 1.0, 0.3));
        let off = Online::new(&DetectConfig {
            iforest: crate::config::IforestConfig { enabled: false, ..Default::default() },
            peers: crate::config::PeersConfig { enabled: false, ..Default::default() },
            ..DetectConfig::default()
        });
        let series = off.admit(0, &labels, &metrics);
        assert!(series.group.is_none() && series.peer_key.is_none());
    }
}

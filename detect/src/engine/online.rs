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
use crate::iforest::online::{Batch, Group, Groups, Model, Queued, Resolved};
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

/// A sample's online judgement between [`Online::observe`] and [`Online::finish`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deferred {
    forest: Forest,
    /// The series' `peers` contribution when the sample was observed.
    peer_score: f32,
}

/// The forest's part of a [`Deferred`].
#[derive(Debug, Clone, Copy)]
enum Forest {
    /// No judgement: features still filling, no group (or beyond `max_groups`), no model yet.
    None,
    /// 0: the sample is on the side a one-sided rule does not watch.
    Zero,
    /// The row's contribution, once the batch is scored.
    Queued(Queued),
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

    /// `series` is forgotten: it no longer counts in its group's context.
    pub(crate) fn forget(&self, series: &OnlineSeries) {
        if let Some(group) = series.group.as_ref() {
            group.leave();
        }
    }

    /// The first half of adding the forest's and the peers' judgement to a sample's verdict, in the order
    /// of the batch: the sample's features, its group's context and training rows, refits and comparisons
    /// asked for, and its row queued on `batch` for its group's forest. Once the batch's rows are scored
    /// ([`Batch::score`]), [`finish`](Self::finish) adds the judgement to the verdict.
    ///
    /// Two halves because a row scored alone walks its whole forest for one row, which costs several times
    /// what the rest of the sample's scoring costs; a batch's rows together walk each tree once per block.
    pub(crate) fn observe(
        &self,
        series: &mut OnlineSeries,
        settings: &Settings,
        sample: (i64, f64),
        verdict: &Verdict,
        batch: &mut Batch,
    ) -> Deferred {
        let (timestamp_ms, raw) = sample;
        let mut forest = Forest::None;
        if let Some(own) = series.features.observe(settings, timestamp_ms, raw, verdict) {
            if series.peer_key.is_some() {
                series.window.push(own.x);
            }
            if let (Some(groups), Some(group)) = (&self.groups, &series.group) {
                let observed = groups.observe(group, timestamp_ms, &own, verdict.score <= 1.0);
                if observed.refit_due {
                    self.queue(Job::Refit(Arc::clone(group)));
                }
                let epoch = group.epoch();
                if epoch != series.epoch {
                    series.model = group.model();
                    series.epoch = epoch;
                }
                if let Some(model) = &series.model {
                    // A one-sided rule watches one side: the forest's judgement counts when the sample is on
                    // it (the forest itself is two-sided), so a row on the other side need not be scored.
                    forest = if settings.direction != Direction::Both && settings.direction.clip(own.resid) <= 0.0 {
                        Forest::Zero
                    } else {
                        Forest::Queued(batch.push(model, &observed.row))
                    };
                }
            }
        }
        if self.peers.as_ref().is_some_and(|p| p.due(timestamp_ms)) {
            self.queue(Job::Peers);
        }
        // The shard's lock is held from `observe` to `finish`, so the comparison (which takes it to hand out
        // scores) cannot change this in between.
        Deferred { forest, peer_score: series.peer_score }
    }

    /// Adds the forest's (from the scored `batch`) and the peers' judgement to a sample's verdict.
    pub(crate) fn finish(
        &self,
        deferred: Deferred,
        settings: &Settings,
        verdict: &mut Verdict,
        batch: &Batch,
        metrics: &DetectMetrics,
    ) {
        let c = match deferred.forest {
            Forest::None => None,
            Forest::Zero => Some(0.0),
            Forest::Queued(q) => Some(batch.contribution(q)),
        };
        if let Some(c) = c {
            if c > 1.0 {
                metrics.iforest_anomalous.inc();
            }
            verdict.contributions.iforest = c as f32;
            verdict.score = verdict.score.max(c * settings.sensitivity);
        }
        if deferred.peer_score > 0.0 {
            verdict.contributions.peers = deferred.peer_score;
            verdict.score = verdict.score.max(f64::from(deferred.peer_score) * settings.sensitivity);
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

    /// [`Online::observe`], the row scored in a batch of its own, and [`Online::finish`]: one sample the way
    /// the engine once scored every sample (the reference the batched path is tested against).
    fn apply(
        online: &Online,
        series: &mut OnlineSeries,
        settings: &Settings,
        sample: (i64, f64),
        verdict: &mut Verdict,
        metrics: &DetectMetrics,
    ) {
        let mut batch = Batch::default();
        let deferred = online.observe(series, settings, sample, verdict, &mut batch);
        batch.score();
        online.finish(deferred, settings, verdict, &batch, metrics);
    }

    #[test]
    fn a_batch_row_between_the_passes_is_small() {
        // Held per scored sample of a batch by the shard (`shard::Pending`), next to its verdict.
        assert!(size_of::<Deferred>() <= 16, "{} bytes", size_of::<Deferred>());
    }

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
        apply(&online, &mut series, &settings, (1000, 1.0), &mut v, &metrics);
        assert_eq!((v.contributions.peers, v.score, v.alert), (2.0, 1.0, 0.3));
        let off = Online::new(&DetectConfig {
            iforest: crate::config::IforestConfig { enabled: false, ..Default::default() },
            peers: crate::config::PeersConfig { enabled: false, ..Default::default() },
            ..DetectConfig::default()
        });
        let series = off.admit(0, &labels, &metrics);
        assert!(series.group.is_none() && series.peer_key.is_none());
    }

    /// Runs the refits the samples so far asked for, as the background thread would; how many.
    fn refit_now(online: &Online) -> usize {
        let groups = online.groups.as_ref().unwrap();
        let mut refits = 0;
        while let Some(job) = online.jobs.lock().pop_front() {
            if let Job::Refit(group) = job {
                groups.refit(&group).unwrap();
                refits += 1;
            }
        }
        refits
    }

    #[test]
    fn a_batch_scored_in_passes_gives_the_verdicts_of_scoring_sample_after_sample() {
        let config = DetectConfig {
            iforest: crate::config::IforestConfig {
                min_rows: 64,
                refit_interval: std::time::Duration::from_secs(3600),
                ..Default::default()
            },
            ..DetectConfig::default()
        };
        let metrics = DetectMetrics::default();
        // `alone` scores each sample through to the end; `batched` in batches of 37 samples, the engine's way.
        let (alone, batched) = (Online::new(&config), Online::new(&config));
        const SERIES: usize = 12;
        let pods: Vec<String> = (0..SERIES).map(|k| format!("p{k}")).collect();
        let mut settings = Vec::new();
        let (mut detectors, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for (k, pod) in pods.iter().enumerate() {
            let labels = [("job", if k % 2 == 0 { "a" } else { "b" }), ("pod", pod.as_str())];
            // A third of the series watch one side only: their rows on the other side are not scored.
            let direction = if k % 3 == 0 { Direction::Up } else { Direction::Both };
            settings.push(Settings { direction, ..Settings::default() });
            detectors.push(crate::series::SeriesDetector::new(&settings[k]));
            a.push(alone.admit(0, &labels, &metrics));
            b.push(batched.admit(0, &labels, &metrics));
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let mut queue: Vec<(usize, Verdict, Deferred)> = Vec::new();
        let mut forest = Batch::default();
        let (mut compared, mut from_forest, mut anomalous, mut refits) = (0, 0, 0, 0);
        let finish = |queue: &mut Vec<(usize, Verdict, Deferred)>, forest: &mut Batch, expected: &[Verdict]| {
            forest.score();
            for ((k, mut v, d), want) in queue.drain(..).zip(expected) {
                batched.finish(d, &settings[k], &mut v, forest, &metrics);
                assert_eq!(format!("{v:?}"), format!("{want:?}"), "series {k}");
            }
            forest.clear();
        };
        let mut expected = Vec::new();
        for i in 0..1500 {
            let ts = 1_700_000_000_000 + i * 60_000;
            for k in 0..SERIES {
                let level = 10.0 * (k + 1) as f64;
                let mut x = level * (1.0 + 0.02 * (rng.f64() - 0.5));
                if rng.u32(0..300) == 0 {
                    x += level * if rng.bool() { 0.5 } else { -0.5 };
                }
                if k == 5 && i > 1200 {
                    x += if i % 2 == 0 { 0.015 * level } else { -0.015 * level };
                }
                let Some(verdict) = detectors[k].observe(&settings[k], ts, x) else { continue };
                let mut want = verdict;
                apply(&alone, &mut a[k], &settings[k], (ts, x), &mut want, &metrics);
                refit_now(&alone);
                let d = batched.observe(&mut b[k], &settings[k], (ts, x), &verdict, &mut forest);
                // Refits land mid-batch: the rows after them are scored by the new model.
                refits += refit_now(&batched);
                from_forest += usize::from(matches!(d.forest, Forest::Queued(_)));
                anomalous += usize::from(want.contributions.iforest > 1.0);
                queue.push((k, verdict, d));
                expected.push(want);
                compared += 1;
                if queue.len() == 37 {
                    finish(&mut queue, &mut forest, &expected);
                    expected.clear();
                }
            }
        }
        finish(&mut queue, &mut forest, &expected);
        assert!(batched.groups.as_ref().unwrap().len() == 2 && refits >= 40, "{refits} refits");
        assert!(compared > 17_000 && from_forest > 10_000 && anomalous > 0, "{compared} {from_forest} {anomalous}");
    }
}

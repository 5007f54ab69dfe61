//! Isolation forests trained online, one per group of series (`detect.iforest`).
//!
//! The series of a group (by default one service, or one job) share one forest over scale-free feature
//! rows (`crate::features`): each sample's own residual, step and rolling residual statistics, plus the
//! group's context at that time. That context is what makes the model multivariate across the group: a
//! forest over rows of "this series" alone would miss several series drifting together, each a little,
//! and a row per time step with a column per series would need aligned timestamps and a fixed set of
//! series (neither holds for scraped targets that come and go). The two context features — the share of
//! the group's recent samples beyond [`DEVIATING`](crate::features::DEVIATING) of their band, and their
//! mean residual — let the forest isolate a sample that is odd given what its siblings do right now.
//!
//! **Across shards.** The buffer shards series by id, so a group's series are read by different engine
//! threads. A per-shard model would see only part of the group (and its context), and would train the same
//! group once per shard; so each group is one [`Group`] shared by every shard: the context and the training
//! reservoir sit behind one short mutex (taken once per sample: a few counters and at most one row copy),
//! the fitted [`Model`] behind an `RwLock` that scoring reads only when the group's epoch changed (each
//! series caches the model it scores with). Refits run on the engine's background thread, never on a
//! shard thread: a fit plus calibration takes a few milliseconds, long enough to hold up a batch.
//!
//! **Training.** Each group keeps a reservoir of feature rows (Vitter's algorithm R, so a uniform sample of
//! what came in). At every refit the count of rows seen is cut back to the reservoir's size, so rows since
//! the last refit then replace old ones at a high rate: the sample leans to the recent past and forgets an
//! old regime within a few refits. Rows the statistical ensemble already calls anomalous are not added:
//! the forest models the ordinary. A group is refitted when its newest sample is `refit_interval` (sample
//! time, so replay and tests behave like live data) past the last fit, once it has `min_rows` rows.
//!
//! **Calibration.** A path-length score s ∈ (0, 1] becomes a contribution on the ensemble's scale as
//! (s − m) / (t − m), floored at 0, with m the median score of the training rows and t their
//! [`HIGH_QUANTILE`] quantile pushed out by [`MARGIN`] times its distance from the median. Fresh rows like
//! the training rows exceed that quantile itself 1 time in 100, and the margin beyond it is what keeps
//! them from alarming: a sample scores > 1 only when it is isolated clearly faster than nearly every
//! ordinary row.

mod batch;
mod config;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::{IsolationForest, IsolationForestError, IsolationForestParams, average_path_length};
use crate::features::{DEVIATING, FEATURES, Own};

pub(crate) use batch::{Batch, Queued};
pub use config::IforestConfig;

/// The training-score quantile calibration starts from.
pub(crate) const HIGH_QUANTILE: f64 = 0.99;
/// How far beyond that quantile (in units of its distance from the median) a score reaches 1.
pub(crate) const MARGIN: f64 = 0.5;
/// The least distance between the median and the threshold: a group whose rows are all alike (flat
/// series) scores nearly everything the same, and a hair's difference must not become an alarm.
const MIN_SPREAD: f64 = 0.1;

/// A fitted forest and its calibration.
#[derive(Debug)]
pub(crate) struct Model {
    forest: IsolationForest,
    /// c(ψ): turns a score back into a mean path length.
    c_psi: f64,
    /// Each feature's range over the training rows.
    lo: [f64; FEATURES],
    hi: [f64; FEATURES],
    median: f64,
    threshold: f64,
}

impl Model {
    fn new(forest: IsolationForest, rows: &[f64]) -> Self {
        let mut lo = [f64::INFINITY; FEATURES];
        let mut hi = [f64::NEG_INFINITY; FEATURES];
        for row in rows.chunks_exact(FEATURES) {
            for (f, &x) in row.iter().enumerate() {
                lo[f] = lo[f].min(x);
                hi[f] = hi[f].max(x);
            }
        }
        let c_psi = average_path_length(forest.sample_size());
        let mut model = Self { forest, c_psi, lo, hi, median: 0.5, threshold: 1.0 };
        // Training rows are within the range: the forest's scores need no correction.
        let mut scores = vec![0.0; rows.len() / FEATURES];
        if model.forest.score_into(rows, &mut scores).is_ok() {
            (model.median, model.threshold) = calibrate(&mut scores);
        }
        model
    }

    /// The forest's verdict on each row of `rows` into `out` (as long as `rows`) on the ensemble's scale:
    /// ≥ 0, and > 1 anomalous. The rows walk each tree together, so a tree is read from memory once for all
    /// of them (one row alone walks half a megabyte at the defaults, mostly cache misses: several
    /// microseconds). Does not allocate.
    ///
    /// The forest refuses NaN: a call with a NaN row (or `out` of another length) scores every row 0.
    /// [`Batch`] scores its NaN rows 0 without asking.
    pub(crate) fn contributions_into(&self, rows: &[[f64; FEATURES]], out: &mut [f64]) {
        if self.forest.score_into(rows.as_flattened(), out).is_err() {
            out.fill(0.0);
            return;
        }
        for (row, o) in rows.iter().zip(out.iter_mut()) {
            *o = self.calibrated(self.corrected(row, *o));
        }
    }

    /// One row's [`contributions_into`](Self::contributions_into).
    #[cfg(test)]
    pub(crate) fn contribution(&self, row: &[f64; FEATURES]) -> f64 {
        let mut out = [0.0];
        self.contributions_into(std::slice::from_ref(row), &mut out);
        out[0]
    }

    fn calibrated(&self, score: f64) -> f64 {
        ((score - self.median) / (self.threshold - self.median)).max(0.0)
    }

    /// The forest's score `s` of `row`, corrected for rows outside the training range.
    ///
    /// A tree can only split within the range of the rows it was grown on, so a row beyond that range
    /// follows the most extreme training rows down and scores no higher than they do, however far out it
    /// is: a pattern never seen (a step or a deviation twice the largest in training) would look like the
    /// edge of the ordinary. Had the row been among the training rows, a node choosing feature f would
    /// have cut it off with probability excess_f / (range_f + excess_f). With p the mean of that over the
    /// features (the node ranges taken as the whole training range, which understates p in deeper, narrower
    /// nodes), the row is cut off at each level with probability p, so its expected path is
    /// (1 − (1 − p)^h) / p instead of the forest's h. Rows within the range are scored as the forest
    /// scores them.
    fn corrected(&self, row: &[f64; FEATURES], s: f64) -> f64 {
        let mut p = 0.0;
        for (f, &x) in row.iter().enumerate() {
            let excess = (self.lo[f] - x).max(x - self.hi[f]).max(0.0);
            if excess > 0.0 {
                p += excess / (self.hi[f] - self.lo[f] + excess);
            }
        }
        p /= FEATURES as f64;
        if p <= 0.0 || self.c_psi <= 0.0 {
            return s;
        }
        let h = -s.log2() * self.c_psi;
        // 1 − (1 − p)^h, computed without cancellation: a row a hair beyond the range (a context feature
        // that decays towards a training row's value never reaches it) has p near 1e-17, where
        // `1.0 - (1.0 - p).powf(h)` is exactly 0, and every such ordinary row scored as isolated at once.
        let cut = -(h * (-p).ln_1p()).exp_m1() / p;
        (-cut.min(h) / self.c_psi).exp2()
    }

    /// Median and threshold of the calibration.
    #[cfg(test)]
    pub(crate) fn calibration(&self) -> (f64, f64) {
        (self.median, self.threshold)
    }
}

/// Calibrates on the training rows' own scores: (median, threshold).
fn calibrate(scores: &mut [f64]) -> (f64, f64) {
    scores.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| scores.get(((scores.len() - 1) as f64 * q).round() as usize).copied().unwrap_or(0.5);
    let (median, high) = (at(0.5), at(HIGH_QUANTILE));
    let threshold = (high + MARGIN * (high - median)).max(median + MIN_SPREAD);
    (median, threshold)
}

/// Steps of the whole group the context remembers: a sample moves it by 1 / (this × the group's series).
const CONTEXT_STEPS: f64 = 2.0;

/// The group's recent samples, as exponentially weighted averages over the group's stream of samples.
///
/// Weighting by sample rather than by time window needs no aligned timestamps (scrapes of different
/// targets are seconds apart, and samples come every 10 s or every 5 min) and no agreement between the
/// shard threads on what "now" is: with the weight 1 / (2 × series), the context spans about the group's
/// last two time steps whatever their length.
#[derive(Debug, Default)]
struct Context {
    /// Series of the group (a sample's weight is 1 / (CONTEXT_STEPS × this)).
    series: u32,
    /// Share of recent samples deviating (beyond [`DEVIATING`] of their band).
    share: f64,
    /// Mean residual of recent samples.
    mean: f64,
}

impl Context {
    /// Counts a residual, then gives the share of deviating samples and the mean residual.
    fn observe(&mut self, resid: f64) -> (f64, f64) {
        let a = 1.0 / (CONTEXT_STEPS * f64::from(self.series.max(1)));
        let deviating = if resid.abs() > DEVIATING { 1.0 } else { 0.0 };
        self.share += a * (deviating - self.share);
        self.mean += a * (resid - self.mean);
        (self.share, self.mean)
    }
}

/// Training rows, algorithm R.
#[derive(Debug)]
struct Reservoir {
    rows: Vec<f64>,
    capacity: usize,
    /// Rows offered since the count was last cut back.
    seen: u64,
    rng: fastrand::Rng,
}

impl Reservoir {
    fn len(&self) -> usize {
        self.rows.len() / FEATURES
    }

    fn offer(&mut self, row: &[f64; FEATURES]) {
        self.seen += 1;
        if self.len() < self.capacity {
            self.rows.extend_from_slice(row);
            return;
        }
        let j = self.rng.u64(..self.seen);
        if let Ok(j) = usize::try_from(j)
            && j < self.capacity
        {
            self.rows[j * FEATURES..(j + 1) * FEATURES].copy_from_slice(row);
        }
    }
}

#[derive(Debug)]
struct GroupState {
    context: Context,
    reservoir: Reservoir,
    /// Sample time of the newest row when the last refit was asked for.
    fitted_ms: Option<i64>,
}

/// One group's model, context and training rows, shared by every shard.
#[derive(Debug)]
pub(crate) struct Group {
    state: Mutex<GroupState>,
    model: RwLock<Option<Arc<Model>>>,
    /// Bumped when a new model is published: series re-read the model only then.
    epoch: AtomicU64,
    /// A refit is waiting or running.
    queued: AtomicBool,
    seed: u64,
    fits: AtomicU64,
}

impl Group {
    fn new(seed: u64, capacity: usize) -> Self {
        let reservoir = Reservoir { rows: Vec::new(), capacity, seen: 0, rng: fastrand::Rng::with_seed(seed) };
        Self {
            state: Mutex::new(GroupState { context: Context::default(), reservoir, fitted_ms: None }),
            model: RwLock::new(None),
            epoch: AtomicU64::new(0),
            queued: AtomicBool::new(false),
            seed,
            fits: AtomicU64::new(0),
        }
    }

    /// The published model's epoch (0: none yet).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn model(&self) -> Option<Arc<Model>> {
        self.model.read().clone()
    }

    /// One of the group's series was forgotten: the context weighs each sample by the group's series count.
    pub(crate) fn leave(&self) {
        let mut st = self.state.lock();
        st.context.series = st.context.series.saturating_sub(1);
    }

    /// Rows in the training reservoir.
    #[cfg(test)]
    pub(crate) fn rows(&self) -> usize {
        self.state.lock().reservoir.len()
    }
}

/// What [`Groups::observe`] gives back for one sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed {
    pub(crate) row: [f64; FEATURES],
    /// The group is due for a refit and the caller must queue it (exactly one caller is told).
    pub(crate) refit_due: bool,
}

/// Outcome of a refit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refit {
    pub(crate) rows: usize,
    pub(crate) took: Duration,
}

/// How a series' group was resolved.
#[derive(Debug)]
pub(crate) enum Resolved {
    Group(Arc<Group>),
    /// `detect.iforest.max_groups` reached: the series is scored without the forest.
    Full,
}

/// Every group, and how they are trained.
#[derive(Debug)]
pub(crate) struct Groups {
    config: IforestConfig,
    refit_ms: i64,
    index: Mutex<HashMap<Vec<u8>, Arc<Group>>>,
}

impl Groups {
    /// `config` must have passed validation.
    pub(crate) fn new(config: &IforestConfig) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1);
        Self { config: config.clone(), refit_ms: ms(config.refit_interval), index: Mutex::new(HashMap::new()) }
    }

    /// The group of a series of tenant `tenant` with these labels, made on first use.
    pub(crate) fn resolve(&self, tenant: u32, labels: &[(&str, &str)]) -> Resolved {
        // Length-prefixed values: no separator a label value could contain.
        let mut key = tenant.to_le_bytes().to_vec();
        for name in &self.config.group_by {
            let value = labels.iter().find(|(n, _)| n == name).map_or("", |(_, v)| *v);
            key.extend_from_slice(&(value.len() as u64).to_le_bytes());
            key.extend_from_slice(value.as_bytes());
        }
        let mut index = self.index.lock();
        if let Some(g) = index.get(&key) {
            g.state.lock().context.series += 1;
            return Resolved::Group(Arc::clone(g));
        }
        if index.len() >= self.config.max_groups {
            return Resolved::Full;
        }
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let group = Arc::new(Group::new(self.config.seed ^ h.finish(), self.config.reservoir_rows));
        group.state.lock().context.series = 1;
        index.insert(key, Arc::clone(&group));
        Resolved::Group(group)
    }

    /// Groups made so far.
    pub(crate) fn len(&self) -> usize {
        self.index.lock().len()
    }

    /// Counts one sample's residual in its group's context and completes its row; when `train`, offers the
    /// row to the reservoir.
    pub(crate) fn observe(&self, group: &Group, timestamp_ms: i64, own: &Own, train: bool) -> Observed {
        let mut st = group.state.lock();
        let (share, mean) = st.context.observe(own.resid);
        let row = own.row(share, mean);
        if train {
            st.reservoir.offer(&row);
        }
        let due = st.reservoir.len() >= self.config.min_rows
            && st.fitted_ms.is_none_or(|f| timestamp_ms.saturating_sub(f) >= self.refit_ms)
            && !group.queued.swap(true, Ordering::AcqRel);
        if due {
            st.fitted_ms = Some(timestamp_ms);
        }
        Observed { row, refit_due: due }
    }

    /// Fits the group's forest on its reservoir, calibrates it on the same rows and publishes it. Slow
    /// (milliseconds): call it off the shard threads.
    pub(crate) fn refit(&self, group: &Group) -> Result<Refit, IsolationForestError> {
        let started = Instant::now();
        let rows = {
            let mut st = group.state.lock();
            let res = &mut st.reservoir;
            // Later rows now replace earlier ones at capacity / (capacity + new rows): recent rows dominate.
            res.seen = res.seen.min(res.capacity as u64);
            res.rows.clone()
        };
        let result = self.fit(group, &rows);
        group.queued.store(false, Ordering::Release);
        let model = result?;
        *group.model.write() = Some(Arc::new(model));
        group.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(Refit { rows: rows.len() / FEATURES, took: started.elapsed() })
    }

    fn fit(&self, group: &Group, rows: &[f64]) -> Result<Model, IsolationForestError> {
        let fit = group.fits.fetch_add(1, Ordering::Relaxed);
        let seed = group.seed ^ fit.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let forest = IsolationForestParams::default()
            .n_trees(self.config.trees)
            .sample_size(self.config.sample_size)
            .seed(seed)
            .fit_rows(rows, FEATURES)?;
        Ok(Model::new(forest, rows))
    }
}

//! Isolation forest (Liu, Ting & Zhou, "Isolation Forest", ICDM 2008).
//!
//! Each tree is grown on a subsample of ψ rows drawn without replacement, to height limit
//! ceil(log2 ψ), splitting on an attribute chosen uniformly among those not constant in the node at a
//! value drawn uniformly between the node's min and max. A row's path length is its depth at the leaf
//! it reaches plus c(leaf size), the expected depth still to go in an unbuilt subtree, and its score is
//! s(x) = 2^(−E[h(x)] / c(ψ)): near 1 for anomalies, at or below 0.5 for ordinary rows.
//!
//! Two ways in: the slice API ([`IsolationForestValidParams::fit_rows`],
//! [`IsolationForest::score_into`]) for the hot path, and linfa's `Fit` / `Predict` for linfa
//! datasets (`Predict` gives the scores as an `Array1<f64>`).
//!
//! ```
//! use linfa::prelude::*;
//! use ndarray::{Array1, array};
//! use vigil_detect::iforest::IsolationForest;
//!
//! let records = array![[0.0, 0.1], [0.1, 0.0], [0.05, 0.05], [0.1, 0.1], [8.0, 9.0]];
//! let forest = IsolationForest::params().seed(1).fit(&DatasetBase::from(records.clone()))?;
//! let scores: Array1<f64> = forest.predict(&records);
//! assert!(scores[4] > scores[0]);
//! # Ok::<(), vigil_detect::iforest::IsolationForestError>(())
//! ```
//!
//! Layout: a tree is stored as a *complete* binary tree of depth ceil(log2 ψ), heap-numbered from 1
//! (node i has children 2i and 2i+1, so a step is `i = 2i + went_right`); a leaf above the bottom
//! becomes a chain of pass-through splits (threshold +∞, so every row goes left) ending in the bottom
//! slot that holds its path length. Every row then takes exactly `depth` steps with no leaf test, and
//! the step is branch-free, so several rows can walk one tree in lockstep and their loads overlap.
//! Since 2^ceil(log2 ψ) < 2ψ this costs at most about twice the nodes of a pointer tree. All trees live
//! in three flat arrays: split attributes, split values, leaf path lengths.

mod build;
pub(crate) mod online;
mod params;
mod traits;

#[cfg(test)]
mod tests;

pub use params::{IsolationForestError, IsolationForestParams, IsolationForestValidParams, MAX_SAMPLE_SIZE};

/// Euler–Mascheroni constant, for H(i) ≈ ln(i) + γ.
const EULER_GAMMA: f64 = 0.577_215_664_9;

/// Rows walking one tree together; enough independent load chains to hide L1 latency, few enough to
/// keep their node indices in registers.
const LANES: usize = 8;

/// Values (8 bytes each) in the transposed block of rows that walks one tree at a time: 16 KiB, so
/// the block and one tree (5 KiB at ψ = 256) stay in L1. A power of two, for the index mask.
const TRANSPOSED: usize = 2048;

/// Rows per pass over the forest when rows are read in place (over 256 features, or a batch smaller
/// than LANES rows).
const BLOCK_ROWS: usize = 128;

/// c(n): the average path length of an unsuccessful search in a binary search tree of n keys, which
/// is also the average depth at which an isolation tree on n distinct points isolates one.
///
/// c(n) = 2H(n−1) − 2(n−1)/n with H(i) ≈ ln(i) + γ; c(2) = 1 uses the exact H(1) = 1 (the
/// approximation gives 0.15 there) and c(0) = c(1) = 0, as scikit-learn does.
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// A fitted isolation forest. Scores are in (0, 1]; higher is more anomalous.
#[derive(Clone, PartialEq)]
pub struct IsolationForest {
    n_features: usize,
    n_trees: usize,
    sample_size: usize,
    depth: u32,
    /// Split attribute of every split slot, `2^depth` slots per tree, tree after tree; slot 0 of each
    /// is unused, which makes a tree's slots a power of two so that `index & (2^depth − 1)` needs no
    /// bounds check. Kept apart from `thresholds` (structure of arrays) so that the addressing mode
    /// scales the index for both; an array of 16-byte pairs cost a shift per step.
    features: Vec<u32>,
    /// Split value of every slot: a row goes right iff `x[feature] > threshold`; +∞ (every row goes
    /// left) in pass-through and unused slots.
    thresholds: Vec<f64>,
    /// Depth + c(size) of the leaf reaching each bottom slot, `2^depth` per tree.
    leaf_paths: Vec<f64>,
    /// 1 / (n_trees · c(ψ)): turns a row's summed path lengths into the exponent's E[h] / c(ψ).
    norm: f64,
}

impl std::fmt::Debug for IsolationForest {
    // The node arrays are tens of thousands of numbers; the shape is what a log line needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolationForest")
            .field("n_features", &self.n_features)
            .field("n_trees", &self.n_trees)
            .field("sample_size", &self.sample_size)
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

impl IsolationForestValidParams {
    /// Fits on `rows`, row-major with `n_features` values per row. Refuses non-finite values (a NaN
    /// has no place between a min and a max) and fewer than 2 rows.
    pub fn fit_rows(&self, rows: &[f64], n_features: usize) -> Result<IsolationForest, IsolationForestError> {
        let n_rows = whole_rows(rows, n_features)?;
        if n_rows < 2 {
            return Err(IsolationForestError::TooFewRows(n_rows));
        }
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(non_finite(rows, n_features, i));
        }
        Ok(build::grow_forest(self, rows, n_features, n_rows))
    }
}

impl IsolationForestParams {
    /// Checks the parameters, then [`IsolationForestValidParams::fit_rows`].
    pub fn fit_rows(&self, rows: &[f64], n_features: usize) -> Result<IsolationForest, IsolationForestError> {
        linfa::ParamGuard::check_ref(self)?.fit_rows(rows, n_features)
    }
}

impl IsolationForest {
    pub fn params() -> IsolationForestParams {
        IsolationForestParams::default()
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn n_trees(&self) -> usize {
        self.n_trees
    }

    /// ψ actually used: the asked sample size, or the number of rows fitted if smaller.
    pub fn sample_size(&self) -> usize {
        self.sample_size
    }

    /// Height limit ceil(log2 ψ).
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Scores `rows` (row-major, [`n_features`](Self::n_features) values per row) into `out`, one score
    /// per row. Does not allocate. Refuses NaN (it would silently take the right branch everywhere);
    /// ±∞ are scored as values beyond every split.
    pub fn score_into(&self, rows: &[f64], out: &mut [f64]) -> Result<(), IsolationForestError> {
        let n_rows = whole_rows(rows, self.n_features)?;
        if n_rows != out.len() {
            return Err(IsolationForestError::OutputLength { rows: n_rows, out: out.len() });
        }
        if let Some(i) = rows.iter().position(|v| v.is_nan()) {
            return Err(non_finite(rows, self.n_features, i));
        }
        self.score_unchecked(rows, out);
        Ok(())
    }

    /// Scores of `rows` as a new vector; see [`score_into`](Self::score_into).
    pub fn score(&self, rows: &[f64]) -> Result<Vec<f64>, IsolationForestError> {
        let mut out = vec![0.0; rows.len() / self.n_features.max(1)];
        self.score_into(rows, &mut out)?;
        Ok(out)
    }

    /// The scoring kernel. Needs `rows.len() == out.len() * n_features`; any values are memory-safe
    /// (NaN goes right at every split and still lands on a leaf).
    pub(crate) fn score_unchecked(&self, rows: &[f64], out: &mut [f64]) {
        // A constant slot count lets the compiler drop the slot bounds checks (index & (N − 1)) and
        // unroll the descent; ψ = 256 (depth 8) is the paper's and the default.
        match self.depth {
            7 => self.score_blocks::<128>(rows, out),
            8 => self.score_blocks::<256>(rows, out),
            9 => self.score_blocks::<512>(rows, out),
            _ => self.score_blocks::<0>(rows, out),
        }
        for o in out.iter_mut() {
            *o = (-*o * self.norm).exp2();
        }
    }

    /// Sums every row's path lengths over the trees into `out`. `N` is the slots per tree, or 0 for
    /// "not known at compile time".
    fn score_blocks<const N: usize>(&self, rows: &[f64], out: &mut [f64]) {
        let d = self.n_features;
        // A constant chunk length makes each tree's slice length known, so slot indexing is unchecked.
        let slots = if N == 0 { 1usize << self.depth } else { N };
        let trees = || {
            self.features
                .chunks_exact(slots)
                .zip(self.thresholds.chunks_exact(slots))
                .zip(self.leaf_paths.chunks_exact(slots))
                .map(|((features, thresholds), leaf_paths)| Tree::<N> {
                    features,
                    thresholds,
                    leaf_paths,
                    depth: self.depth,
                })
        };
        out.fill(0.0);

        let group = LANES * d;
        let block_groups = TRANSPOSED / group;
        if block_groups == 0 || rows.len() < group {
            // Too many features for the transposed buffer, or too few rows to be worth filling it:
            // read the rows where they are.
            for (block, block_out) in rows.chunks(BLOCK_ROWS * d).zip(out.chunks_mut(BLOCK_ROWS)) {
                for tree in trees() {
                    let mut lanes_out = block_out.chunks_exact_mut(LANES);
                    for (rows8, out8) in block.chunks_exact(group).zip(&mut lanes_out) {
                        tree.walk::<LANES>(|k, f| rows8[k * d + f], out8);
                    }
                    let tail = block.chunks_exact(group).remainder().chunks_exact(d);
                    for (row, o) in tail.zip(lanes_out.into_remainder()) {
                        tree.walk::<1>(|_, f| row[f], std::slice::from_mut(o));
                    }
                }
            }
            return;
        }

        // Each block of rows is copied group by group (LANES rows) feature-major into `buf`: a lane's
        // value is then at base + feature·LANES + lane, one base register for all lanes instead of one
        // row pointer per lane (which spilled). The block and one tree fit in L1 together.
        let mut buf = [0.0; TRANSPOSED];
        for (block, block_out) in rows.chunks(block_groups * group).zip(out.chunks_mut(block_groups * LANES)) {
            let groups = block.chunks_exact(group);
            let tail = groups.remainder();
            for (rows8, buf8) in groups.zip(buf.chunks_exact_mut(group)) {
                for (k, row) in rows8.chunks_exact(d).enumerate() {
                    for (f, &x) in row.iter().enumerate() {
                        buf8[f * LANES + k] = x;
                    }
                }
            }
            let (groups_out, tail_out) = block_out.split_at_mut(block_out.len() - tail.len() / d);
            for tree in trees() {
                for (g, out8) in groups_out.chunks_exact_mut(LANES).enumerate() {
                    let base = g * group;
                    // Masking before adding the lane keeps the index below TRANSPOSED (no bounds check)
                    // and leaves the lane as a constant displacement of the load.
                    tree.walk::<LANES>(|k, f| buf[((base + f * LANES) & (TRANSPOSED - LANES)) + k], out8);
                }
                for (row, o) in tail.chunks_exact(d).zip(tail_out.iter_mut()) {
                    tree.walk::<1>(|_, f| row[f], std::slice::from_mut(o));
                }
            }
        }
    }
}

/// One tree's slices of the forest arrays; `N` as in [`IsolationForest::score_blocks`].
#[derive(Clone, Copy)]
struct Tree<'a, const N: usize> {
    features: &'a [u32],
    thresholds: &'a [f64],
    leaf_paths: &'a [f64],
    depth: u32,
}

impl<const N: usize> Tree<'_, N> {
    /// Walks `L` rows down the tree in lockstep and adds their path lengths to `out`; `value(lane,
    /// feature)` reads a row.
    #[inline(always)]
    fn walk<const L: usize>(&self, value: impl Fn(usize, usize) -> f64, out: &mut [f64]) {
        let (mask, depth) = if N == 0 { (self.thresholds.len() - 1, self.depth) } else { (N - 1, N.trailing_zeros()) };
        let mut node = [1usize; L];
        for _ in 0..depth {
            // One level for all lanes before the next level: `from_fn` over a constant L unrolls, so
            // the L independent load chains interleave instead of running lane after lane.
            node = std::array::from_fn(|k| {
                let i = node[k] & mask;
                2 * node[k] + usize::from(value(k, self.features[i] as usize) > self.thresholds[i])
            });
        }
        // Bottom slots are numbered 2^depth..2^(depth+1); leaf j is slot 2^depth + j.
        for (o, i) in out.iter_mut().zip(node) {
            *o += self.leaf_paths[i & mask];
        }
    }
}

fn whole_rows(rows: &[f64], n_features: usize) -> Result<usize, IsolationForestError> {
    if n_features == 0 {
        return Err(IsolationForestError::NoFeatures);
    }
    if !rows.len().is_multiple_of(n_features) {
        return Err(IsolationForestError::RaggedRows { len: rows.len(), n_features });
    }
    Ok(rows.len() / n_features)
}

fn non_finite(rows: &[f64], n_features: usize, i: usize) -> IsolationForestError {
    IsolationForestError::NonFinite { row: i / n_features, feature: i % n_features, value: rows[i] }
}

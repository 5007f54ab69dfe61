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
//! Layout: a tree is stored as a *complete* binary tree of depth ceil(log2 ψ) (node i has children
//! 2i+1, 2i+2); a leaf above the bottom becomes a chain of pass-through splits (threshold +∞, so every
//! row goes left) ending in the bottom slot that holds its path length. Every row then takes exactly
//! `depth` steps with no leaf test, and the step is branch-free, so several rows can walk one tree in
//! lockstep and their loads overlap. Since 2^ceil(log2 ψ) < 2ψ this costs at most about twice the nodes
//! of a pointer tree. All trees live in three flat arrays (split feature, threshold, leaf path length).

mod build;
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

/// Rows scored per pass over the forest: one tree (about 5 KiB at ψ = 256) and this block of rows
/// (a few KiB at ten features) stay in L1 while the block walks the tree.
const BLOCK_ROWS: usize = 128;

/// c(n): the average path length of an unsuccessful search in a binary search tree of n keys, which
/// is also the average depth at which an isolation tree on n distinct points isolates one.
///
/// c(n) = 2H(n−1) − 2(n−1)/n with H(i) ≈ ln(i) + γ; c(2) = 1 uses the exact H(1) = 1 (the
/// approximation gives 0.15 there) and c(0) = c(1) = 0, as in the paper's reference implementation
/// and scikit-learn.
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
    /// Split attribute of every split slot, `n_trees × (2^depth − 1)`, tree after tree.
    features: Vec<u32>,
    /// Split value of every split slot (row goes right iff `x > threshold`); +∞ for pass-through.
    thresholds: Vec<f64>,
    /// Depth + c(size) of the leaf reaching each bottom slot, `n_trees × 2^depth`.
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
        let d = self.n_features;
        let n_split = (1usize << self.depth) - 1;
        let n_leaf = n_split + 1;
        out.fill(0.0);
        for (block, block_out) in rows.chunks(BLOCK_ROWS * d).zip(out.chunks_mut(BLOCK_ROWS)) {
            let trees = self
                .features
                .chunks_exact(n_split)
                .zip(self.thresholds.chunks_exact(n_split))
                .zip(self.leaf_paths.chunks_exact(n_leaf));
            for ((features, thresholds), leaf_paths) in trees {
                let tree = Tree { features, thresholds, leaf_paths, depth: self.depth };
                let mut lanes = block.chunks_exact(LANES * d);
                let mut lanes_out = block_out.chunks_exact_mut(LANES);
                for (rows8, out8) in (&mut lanes).zip(&mut lanes_out) {
                    tree.walk::<LANES>(rows8, d, out8);
                }
                for (row, o) in lanes.remainder().chunks_exact(d).zip(lanes_out.into_remainder()) {
                    tree.walk::<1>(row, d, std::slice::from_mut(o));
                }
            }
        }
        for o in out.iter_mut() {
            *o = (-*o * self.norm).exp2();
        }
    }
}

/// One tree's slices of the forest arrays.
#[derive(Clone, Copy)]
struct Tree<'a> {
    features: &'a [u32],
    thresholds: &'a [f64],
    leaf_paths: &'a [f64],
    depth: u32,
}

impl Tree<'_> {
    /// Walks `L` rows down the tree in lockstep and adds their path lengths to `out`.
    #[inline(always)]
    fn walk<const L: usize>(&self, rows: &[f64], d: usize, out: &mut [f64]) {
        let mut node = [0usize; L];
        for _ in 0..self.depth {
            for (k, i) in node.iter_mut().enumerate() {
                let x = rows[k * d + self.features[*i] as usize];
                *i = 2 * *i + 1 + usize::from(x > self.thresholds[*i]);
            }
        }
        let n_split = self.thresholds.len();
        for (o, i) in out.iter_mut().zip(node) {
            *o += self.leaf_paths[i - n_split];
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

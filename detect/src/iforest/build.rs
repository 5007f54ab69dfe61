//! Growing the trees.

use super::{IsolationForest, IsolationForestValidParams, average_path_length};

/// Grows the forest. The caller has checked the shape, that there are at least 2 rows and that every
/// value is finite.
pub(super) fn grow_forest(
    params: &IsolationForestValidParams,
    rows: &[f64],
    d: usize,
    n_rows: usize,
) -> IsolationForest {
    let psi = params.sample_size.min(n_rows);
    // ceil(log2 ψ) for ψ ≥ 2.
    let depth = usize::BITS - (psi - 1).leading_zeros();
    let slots = 1usize << depth;
    let n_trees = params.n_trees;

    // Untouched split slots stay pass-through (+∞): every row goes left.
    let mut features = vec![0u32; n_trees * slots];
    let mut thresholds = vec![f64::INFINITY; n_trees * slots];
    let mut leaf_paths = vec![0.0; n_trees * slots];

    let mut rng = fastrand::Rng::with_seed(params.seed);
    // A running permutation of the row indices: a partial Fisher–Yates over its first ψ slots draws a
    // uniform ψ-subset whatever order the previous tree left it in, without a fresh 0..n per tree.
    let mut perm: Vec<usize> = (0..n_rows).collect();
    // The subsample copied contiguously: the node scans below then stay within ψ·d values (L1-sized
    // at ψ = 256) instead of gathering from the whole data set.
    let mut sample = vec![0.0; psi * d];
    let mut ids: Vec<u32> = Vec::with_capacity(psi);
    let mut attrs: Vec<usize> = (0..d).collect();

    let trees = features
        .chunks_exact_mut(slots)
        .zip(thresholds.chunks_exact_mut(slots))
        .zip(leaf_paths.chunks_exact_mut(slots));
    for ((features, thresholds), leaf_paths) in trees {
        for i in 0..psi {
            let j = rng.usize(i..n_rows);
            perm.swap(i, j);
            let src = perm[i] * d;
            sample[i * d..(i + 1) * d].copy_from_slice(&rows[src..src + d]);
        }
        ids.clear();
        // ψ ≤ MAX_SAMPLE_SIZE, so local indices fit in u32.
        ids.extend(0..psi as u32);
        let mut grower =
            Grower { sample: &sample, d, depth, features, thresholds, leaf_paths, rng: &mut rng, attrs: &mut attrs };
        grower.grow(1, 0, &mut ids);
    }

    let norm = 1.0 / (n_trees as f64 * average_path_length(psi));
    IsolationForest { n_features: d, n_trees, sample_size: psi, depth, features, thresholds, leaf_paths, norm }
}

struct Grower<'a> {
    sample: &'a [f64],
    d: usize,
    depth: u32,
    /// This tree's split slots, heap-numbered from 1 (slot 0 unused).
    features: &'a mut [u32],
    thresholds: &'a mut [f64],
    leaf_paths: &'a mut [f64],
    rng: &'a mut fastrand::Rng,
    /// A permutation of the attributes; its first `k` entries are the candidates still untried in a
    /// node. Any order will do, so it is not reset between nodes.
    attrs: &'a mut Vec<usize>,
}

impl Grower<'_> {
    /// Grows the subtree at complete-tree slot `node`, at depth `level`, over the subsample rows `ids`.
    fn grow(&mut self, node: usize, level: u32, ids: &mut [u32]) {
        if level >= self.depth || ids.len() <= 1 {
            self.leaf(node, level, ids.len());
            return;
        }
        // Draw attributes without replacement until one is not constant here: that is a uniform pick
        // among the non-constant ones, found without computing every attribute's range.
        let mut untried = self.d;
        let (attr, lo, hi) = loop {
            if untried == 0 {
                // Every attribute constant: the rows cannot be told apart.
                self.leaf(node, level, ids.len());
                return;
            }
            let k = self.rng.usize(..untried);
            let attr = self.attrs[k];
            let (lo, hi) = self.range(attr, ids);
            if lo < hi {
                break (attr, lo, hi);
            }
            untried -= 1;
            self.attrs.swap(k, untried);
        };
        let u = self.rng.f64();
        // Convex combination: no overflow for ranges wider than f64::MAX.
        let mut split = lo * (1.0 - u) + hi * u;
        // Rows go left iff x ≤ split; keeping split in [lo, hi) leaves at least the min on the left
        // and the max on the right (the paper's x < p with p in (lo, hi) differs on a null set).
        if !(split >= lo && split < hi) {
            split = lo;
        }
        self.features[node] = attr as u32;
        self.thresholds[node] = split;

        let d = self.d;
        let sample = self.sample;
        let n_left = partition(ids, |&i| sample[i as usize * d + attr] <= split);
        let (left, right) = ids.split_at_mut(n_left);
        self.grow(2 * node, level + 1, left);
        self.grow(2 * node + 1, level + 1, right);
    }

    /// Ends a branch: its rows reach the bottom slot down the leftmost path of pass-through splits.
    fn leaf(&mut self, node: usize, level: u32, size: usize) {
        let mut slot = node;
        while slot < self.thresholds.len() {
            slot *= 2;
        }
        self.leaf_paths[slot - self.thresholds.len()] = f64::from(level) + average_path_length(size);
    }

    fn range(&self, attr: usize, ids: &[u32]) -> (f64, f64) {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for &i in ids {
            let x = self.sample[i as usize * self.d + attr];
            lo = lo.min(x);
            hi = hi.max(x);
        }
        (lo, hi)
    }
}

/// Moves the elements satisfying `left` to the front; returns how many there are.
fn partition(ids: &mut [u32], left: impl Fn(&u32) -> bool) -> usize {
    let mut n = 0;
    for i in 0..ids.len() {
        if left(&ids[i]) {
            ids.swap(n, i);
            n += 1;
        }
    }
    n
}

//! Which siblings are unlike the rest: their summaries normalised, clustered with linfa-clustering's
//! DBSCAN, and the noise points far from the main cluster scored.

use linfa::traits::Transformer;
use linfa_clustering::Dbscan;
use ndarray::Array2;

use super::window::Summary;

/// Levels within this share of the siblings' median level are alike, whatever their noise.
const LEVEL_SHARE: f64 = 0.1;
/// Deviations and roughnesses are compared as logarithms; this factor apart is one unit.
const RATIO_UNIT: f64 = std::f64::consts::LN_2;
/// Scaled MAD ≈ σ for normal data.
const MAD_TO_SIGMA: f64 = 1.4826;

fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Centre and spread (scaled MAD) of one column.
fn centre_and_mad(column: &[f64]) -> (f64, f64) {
    let mut v = column.to_vec();
    let m = median(&mut v);
    let mut dev: Vec<f64> = column.iter().map(|x| (x - m).abs()).collect();
    (m, MAD_TO_SIGMA * median(&mut dev))
}

/// The summaries in normalised units, one row each: level, log deviation, log roughness. Each unit is the
/// larger of the siblings' own spread (scaled MAD: a dimension in which they naturally differ counts for
/// less) and a floor below which differences do not matter (see [`super::PeersConfig::eps`]).
pub(crate) fn normalise(summaries: &[Summary]) -> Vec<[f64; 3]> {
    let col = |d: usize| summaries.iter().map(|s| s[d]).collect::<Vec<_>>();
    let (level, level_mad) = centre_and_mad(&col(0));
    let (std, _) = centre_and_mad(&col(1));
    // Logarithms need a floor: a flat sibling has no deviation. Float dust (far below the level and the
    // noise) is the same as none.
    let tiny = 1e-9 * (1.0 + level.abs() + std);
    let ln = |d: usize| summaries.iter().map(|s| (s[d] + tiny).ln()).collect::<Vec<_>>();
    let (ln_std, ln_rough) = (ln(1), ln(2));
    let (c1, mad1) = centre_and_mad(&ln_std);
    let (c2, mad2) = centre_and_mad(&ln_rough);
    let level_unit = level_mad.max(LEVEL_SHARE * level.abs()).max(std).max(tiny);
    let (u1, u2) = (mad1.max(RATIO_UNIT), mad2.max(RATIO_UNIT));
    summaries
        .iter()
        .zip(ln_std.iter().zip(&ln_rough))
        .map(|(s, (l1, l2))| [(s[0] - level) / level_unit, (l1 - c1) / u1, (l2 - c2) / u2])
        .collect()
}

/// A score per sibling: > 1 for one DBSCAN calls noise while most siblings form one cluster (its distance
/// to the nearest member of that cluster over `eps`), else 0.
pub(crate) fn outliers(summaries: &[Summary], eps: f64, min_points: usize) -> Vec<f64> {
    let n = summaries.len();
    let mut scores = vec![0.0; n];
    if n < 3 || summaries.iter().flatten().any(|x| !x.is_finite()) {
        return scores;
    }
    let points = normalise(summaries);
    let Ok(records) = Array2::from_shape_vec((n, 3), points.iter().flatten().copied().collect()) else {
        return scores;
    };
    let labels = match Dbscan::params(min_points).tolerance(eps).transform(&records) {
        Ok(labels) => labels,
        Err(e) => {
            tracing::warn!(error = %e, "Peer clustering refused its parameters.");
            return scores;
        }
    };
    // The main cluster, and whether it holds most of the siblings.
    let mut sizes = std::collections::HashMap::new();
    for c in labels.iter().flatten() {
        *sizes.entry(*c).or_insert(0usize) += 1;
    }
    let Some((&main, &size)) = sizes.iter().max_by_key(|(c, s)| (**s, std::cmp::Reverse(**c))) else {
        return scores;
    };
    if 2 * size <= n {
        return scores;
    }
    let dist = |a: &[f64; 3], b: &[f64; 3]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    for (i, label) in labels.iter().enumerate() {
        if label.is_some() {
            continue;
        }
        let nearest = (0..n)
            .filter(|&j| labels[j] == Some(main))
            .map(|j| dist(&points[i], &points[j]))
            .fold(f64::INFINITY, f64::min);
        let score = nearest / eps;
        if score > 1.0 {
            scores[i] = score;
        }
    }
    scores
}

use linfa::traits::{Fit, Predict};
use linfa::{DatasetBase, ParamGuard};
use ndarray::{Array1, Array2, ShapeBuilder};

use super::*;
use crate::roc::auroc;

/// Standard normal by Box–Muller (1 − u keeps the log argument in (0, 1]).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = 1.0 - rng.f64();
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n_inliers` rows from two unit-variance Gaussian clusters centred at 0 and at 6 on every axis, then
/// `n_outliers` rows uniform on [−10, 16]^d; labels true for the outliers.
fn clusters_and_outliers(d: usize, n_inliers: usize, n_outliers: usize, seed: u64) -> (Vec<f64>, Vec<bool>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut rows = Vec::with_capacity((n_inliers + n_outliers) * d);
    for i in 0..n_inliers {
        let centre = if i % 2 == 0 { 0.0 } else { 6.0 };
        rows.extend((0..d).map(|_| centre + normal(&mut rng)));
    }
    rows.extend((0..n_outliers * d).map(|_| -10.0 + 26.0 * rng.f64()));
    let labels = (0..n_inliers + n_outliers).map(|i| i >= n_inliers).collect();
    (rows, labels)
}

fn fit(rows: &[f64], d: usize, seed: u64) -> IsolationForest {
    IsolationForest::params().seed(seed).fit_rows(rows, d).unwrap()
}

#[test]
fn c_n_matches_hand_computed_values() {
    assert_eq!(average_path_length(0), 0.0);
    assert_eq!(average_path_length(1), 0.0);
    assert_eq!(average_path_length(2), 1.0);
    // c(3) = 2(ln 2 + γ) − 4/3 = 2(0.693147180560 + 0.577215664900) − 1.333333333333 = 1.207392357587
    assert!((average_path_length(3) - 1.207_392_357_587).abs() < 1e-11);
    // c(256) = 2(ln 255 + γ) − 510/256 = 2(5.541263545158 + 0.577215664900) − 1.9921875 = 10.244770920116
    assert!((average_path_length(256) - 10.244_770_920_116).abs() < 1e-11);
}

/// Clusters at 0 and 6 with σ = 1 against outliers uniform over a box of side 26: an outlier lands
/// within 3σ of a cluster centre (all axes) with probability about 2·(6/26)^d, 0.1 at d = 2 and 1e-3
/// at d = 5, so a perfect ranking would score about 0.95 at d = 2 and 0.999 at d = 5. The forest
/// (measured 0.979 and 0.99997 with these seeds) must reach 0.95 and 0.99: room for seed noise, none for
/// a broken split rule or c(n) normalisation (random scores give 0.5).
#[test]
fn auroc_on_gaussian_clusters_with_uniform_outliers() {
    for (d, bound) in [(2, 0.95), (5, 0.99)] {
        let (rows, labels) = clusters_and_outliers(d, 2000, 100, 42);
        let scores = fit(&rows, d, 1).score(&rows).unwrap();
        let auc = auroc(&scores, &labels).unwrap();
        assert!(auc >= bound, "d = {d}: AUROC {auc} < {bound}");
    }
}

#[test]
fn same_seed_gives_the_same_scores_bit_for_bit() {
    let (rows, _) = clusters_and_outliers(5, 1000, 50, 7);
    let a = fit(&rows, 5, 99);
    let b = fit(&rows, 5, 99);
    assert!(a == b, "forests differ");
    let (sa, sb) = (a.score(&rows).unwrap(), b.score(&rows).unwrap());
    assert!(sa.iter().zip(&sb).all(|(x, y)| x.to_bits() == y.to_bits()));
    let sc = fit(&rows, 5, 100).score(&rows).unwrap();
    assert_ne!(sa, sc, "another seed should grow other trees");
}

#[test]
fn scores_lie_in_unit_interval_and_batches_match_single_rows() {
    let (rows, _) = clusters_and_outliers(3, 500, 20, 3);
    let forest = fit(&rows, 3, 5);
    let batch = forest.score(&rows).unwrap();
    assert!(batch.iter().all(|s| *s > 0.0 && *s <= 1.0));
    // Lockstep lanes and the remainder path must agree with one-row calls.
    for (row, s) in rows.chunks_exact(3).zip(&batch).take(37) {
        assert_eq!(forest.score(row).unwrap()[0].to_bits(), s.to_bits());
    }
}

#[test]
fn constant_data_scores_every_row_equally() {
    let rows = vec![3.5; 300 * 4];
    let forest = fit(&rows, 4, 0);
    let scores = forest.score(&rows).unwrap();
    // The root is a leaf of ψ rows: E[h] = c(ψ), s = 2^−1.
    assert!(scores.iter().all(|s| s.to_bits() == scores[0].to_bits()));
    assert!((scores[0] - 0.5).abs() < 1e-12);
    // Any other point falls in that same leaf.
    assert_eq!(forest.score(&[0.0, 1e9, -1.0, 3.5]).unwrap()[0].to_bits(), scores[0].to_bits());
}

#[test]
fn constant_columns_are_never_split_on() {
    // Column 0 constant, column 1 varies: every split is on column 1.
    let rows: Vec<f64> = (0..400).flat_map(|i| [1.0, f64::from(i)]).collect();
    let forest = fit(&rows, 2, 11);
    for (f, t) in forest.features.iter().zip(&forest.thresholds) {
        assert!(*f == 1 || t.is_infinite(), "split on constant column at {t}");
    }
}

#[test]
fn fewer_rows_than_psi_use_all_rows() {
    let forest = fit(&[0.0, 1.0, 5.0], 1, 0);
    assert_eq!((forest.sample_size(), forest.depth()), (3, 2));
    let forest = fit(&[0.0, 1.0], 1, 0);
    assert_eq!((forest.sample_size(), forest.depth()), (2, 1));
    // Two distinct points: each isolated at depth 1, E[h] = 1 = c(2), s = 0.5.
    assert!(forest.score(&[0.0, 1.0]).unwrap().iter().all(|s| (s - 0.5).abs() < 1e-12));
    let forest = fit(&vec![0.5; 1000], 1, 0);
    assert_eq!((forest.sample_size(), forest.depth()), (256, 8));
}

#[test]
fn invalid_parameters_are_refused() {
    let p = IsolationForestParams::default();
    assert!(matches!(p.n_trees(0).check(), Err(IsolationForestError::NoTrees)));
    assert!(matches!(p.sample_size(1).check(), Err(IsolationForestError::SampleSize(1))));
    let big = MAX_SAMPLE_SIZE + 1;
    assert!(matches!(p.sample_size(big).check(), Err(IsolationForestError::SampleSize(b)) if b == big));
    assert_eq!(p.check().unwrap().n_trees(), 100);
    assert_eq!(p.check().unwrap().sample_size(), 256);
}

#[test]
fn invalid_data_is_refused_with_a_clear_error() {
    let p = IsolationForest::params();
    assert!(matches!(p.fit_rows(&[], 3), Err(IsolationForestError::TooFewRows(0))));
    assert!(matches!(p.fit_rows(&[1.0, 2.0], 2), Err(IsolationForestError::TooFewRows(1))));
    assert!(matches!(p.fit_rows(&[1.0, 2.0], 0), Err(IsolationForestError::NoFeatures)));
    assert!(matches!(p.fit_rows(&[1.0; 5], 2), Err(IsolationForestError::RaggedRows { len: 5, n_features: 2 })));
    let err = p.fit_rows(&[1.0, 2.0, 3.0, f64::NAN], 2).unwrap_err();
    assert!(matches!(err, IsolationForestError::NonFinite { row: 1, feature: 1, .. }));
    assert_eq!(err.to_string(), "row 1, feature 1 is NaN: fitting needs finite values, scoring refuses NaN");
    assert!(matches!(
        p.fit_rows(&[1.0, f64::INFINITY, 3.0, 4.0], 2),
        Err(IsolationForestError::NonFinite { row: 0, feature: 1, .. })
    ));

    let forest = fit(&[0.0, 0.0, 1.0, 1.0, 2.0, 0.5], 2, 0);
    let mut out = [0.0; 2];
    assert!(matches!(
        forest.score_into(&[0.0, f64::NAN, 1.0, 1.0], &mut out),
        Err(IsolationForestError::NonFinite { row: 0, feature: 1, .. })
    ));
    assert!(matches!(
        forest.score_into(&[0.0; 6], &mut out),
        Err(IsolationForestError::OutputLength { rows: 3, out: 2 })
    ));
    // Infinities are values beyond every split, not errors.
    assert!(forest.score_into(&[f64::INFINITY, 0.0, f64::NEG_INFINITY, 1.0], &mut out).is_ok());
}

#[test]
fn linfa_fit_and_predict_match_the_slice_api() {
    let (rows, labels) = clusters_and_outliers(4, 600, 30, 5);
    let records = Array2::from_shape_vec((rows.len() / 4, 4), rows.clone()).unwrap();
    let targets = Array1::from_iter(labels.iter().map(|&l| usize::from(l)));
    let dataset = DatasetBase::new(records.clone(), targets);

    let params = IsolationForest::params().seed(3);
    let forest: IsolationForest = params.fit(&dataset).unwrap();
    assert!(forest == params.fit_rows(&rows, 4).unwrap());

    let expected = forest.score(&rows).unwrap();
    let from_dataset: Array1<f64> = forest.predict(&dataset);
    let from_records: Array1<f64> = forest.predict(&records);
    assert_eq!(from_dataset.to_vec(), expected);
    assert_eq!(from_records.to_vec(), expected);

    // Column-major records: same forest, same scores.
    let mut fortran = Array2::zeros(records.dim().f());
    fortran.assign(&records);
    let dataset_f = DatasetBase::from(fortran.clone());
    assert!(params.fit(&dataset_f).unwrap() == forest);
    assert_eq!(forest.predict(&fortran).to_vec(), expected);

    // Unchecked parameters are checked by linfa's blanket `Fit`.
    let refused: Result<IsolationForest, IsolationForestError> = params.n_trees(0).fit(&dataset);
    assert!(matches!(refused, Err(IsolationForestError::NoTrees)));
}

#[test]
fn linfa_predict_scores_nan_rows_as_nan() {
    let forest = fit(&[0.0, 0.0, 1.0, 1.0, 2.0, 0.5], 2, 0);
    let x = Array2::from_shape_vec((2, 2), vec![0.0, f64::NAN, 1.0, 1.0]).unwrap();
    let scores: Array1<f64> = forest.predict(&x);
    assert!(scores[0].is_nan() && scores[1].is_finite());
}

#[test]
fn scoring_paths_agree_bit_for_bit() {
    // Depth 8: the constant-slot kernel against the run-time one.
    let (rows, _) = clusters_and_outliers(9, 700, 40, 13);
    let forest = fit(&rows, 9, 2);
    let (mut fixed, mut dynamic) = (vec![0.0; 740], vec![0.0; 740]);
    forest.score_blocks::<256>(&rows, &mut fixed);
    forest.score_blocks::<0>(&rows, &mut dynamic);
    assert!(fixed.iter().zip(&dynamic).all(|(a, b)| a.to_bits() == b.to_bits()));

    // Rows too wide for the transposed buffer (300 features), and a depth (4) with no constant kernel:
    // batches against one row at a time.
    for (d, psi) in [(300, 256), (3, 16)] {
        let (rows, _) = clusters_and_outliers(d, 60, 5, 17);
        let forest = IsolationForest::params().sample_size(psi).fit_rows(&rows, d).unwrap();
        let batch = forest.score(&rows).unwrap();
        for (row, s) in rows.chunks_exact(d).zip(&batch) {
            assert_eq!(forest.score(row).unwrap()[0].to_bits(), s.to_bits(), "d = {d}, ψ = {psi}");
        }
    }
}

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::features::{FeatureState, OWN};
use crate::series::SeriesDetector;
use crate::settings::Settings;

const FIVE_MIN: i64 = 300_000;
/// 2024-01-01T00:00:00Z, a Monday.
const START: i64 = 1_704_067_200_000;
const SERIES: usize = 8;

fn gauss(rng: &mut fastrand::Rng) -> f64 {
    let (u, v) = (rng.f64().max(1e-12), rng.f64());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Series `k` of a group: its own level and unit (so the group shares a model only if the features are
/// scale-free), a daily cycle, Gaussian noise σ = 2 % of the level.
fn clean(k: usize, i: usize, rng: &mut fastrand::Rng) -> f64 {
    let level = 100.0 * (1 + k) as f64;
    let t = START + i as i64 * FIVE_MIN;
    let day = (t % 86_400_000) as f64 / 86_400_000.0;
    level * (1.0 + 0.2 * (std::f64::consts::TAU * day).sin() + 0.02 * gauss(rng))
}

/// One group of series scored the way the engine scores them, refitting synchronously when due.
struct Sim {
    groups: Groups,
    group: Arc<Group>,
    detectors: Vec<SeriesDetector>,
    features: Vec<FeatureState>,
    settings: Settings,
    refits: Vec<Refit>,
}

/// One sample's outcome.
#[derive(Debug, Clone, Copy)]
struct Scored {
    iforest: Option<f64>,
}

impl Sim {
    fn new(config: &IforestConfig) -> Self {
        assert!(config.problems().is_empty());
        let groups = Groups::new(config);
        let Resolved::Group(group) = groups.resolve(0, &[("job", "api")]) else { panic!("no group") };
        for _ in 1..SERIES {
            assert!(matches!(groups.resolve(0, &[("job", "api")]), Resolved::Group(_)));
        }
        let settings = Settings::default();
        Self {
            groups,
            group,
            detectors: (0..SERIES).map(|_| SeriesDetector::new(&settings)).collect(),
            features: vec![FeatureState::default(); SERIES],
            settings,
            refits: Vec::new(),
        }
    }

    /// Scores sample `i` of every series, `values[k]` for series k.
    fn step(&mut self, i: usize, values: &[f64]) -> Vec<Option<Scored>> {
        let ts = START + i as i64 * FIVE_MIN;
        let mut out = Vec::with_capacity(SERIES);
        for (k, &x) in values.iter().enumerate() {
            let Some(v) = self.detectors[k].observe(&self.settings, ts, x) else {
                out.push(None);
                continue;
            };
            let Some(own) = self.features[k].observe(&self.settings, ts, x, &v) else {
                out.push(None);
                continue;
            };
            let obs = self.groups.observe(&self.group, ts, &own, v.score <= 1.0);
            if obs.refit_due {
                self.refits.push(self.groups.refit(&self.group).unwrap());
            }
            let iforest = self.group.model().map(|m| m.contribution(&obs.row));
            out.push(Some(Scored { iforest }));
        }
        out
    }
}

fn config() -> IforestConfig {
    IforestConfig { refit_interval: Duration::from_secs(6 * 3600), ..IforestConfig::default() }
}

/// Eight series of clean seasonal noise for `days`, with `alter(k, i, value)` applied; every outcome.
fn simulate(days: usize, seed: u64, alter: impl Fn(usize, usize, f64) -> f64) -> (Sim, Vec<Vec<Option<Scored>>>) {
    let mut sim = Sim::new(&config());
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut all = Vec::new();
    for i in 0..days * 288 {
        let values: Vec<f64> = (0..SERIES).map(|k| alter(k, i, clean(k, i, &mut rng))).collect();
        all.push(sim.step(i, &values));
    }
    (sim, all)
}

#[test]
fn clean_seasonal_noise_across_a_group_raises_almost_no_alarm() {
    let (sim, all) = simulate(10, 11, |_, _, x| x);
    assert!(sim.refits.len() >= 30, "refitted every six hours: {}", sim.refits.len());
    let contributions = |days: &[Vec<Option<Scored>>]| -> Vec<f64> {
        days.iter().flatten().flatten().filter_map(|s| s.iforest).collect()
    };
    let alarms = |c: &[f64]| c.iter().filter(|&&c| c > 1.0).count();
    // Over the whole run, warm-up included: a few dozen at most, no flood.
    let all_of_it = contributions(&all);
    assert!(alarms(&all_of_it) * 200 < all_of_it.len(), "{} alarms in {}", alarms(&all_of_it), all_of_it.len());
    // Once the statistical detectors have learnt the daily profile (their residuals, the forest's rows,
    // shift while they learn it: the series tests grant the same warm-up), the bar for clean
    // seasonal noise: below 0.1 % false positives.
    let scored = contributions(&all[2 * 288..]);
    assert!(scored.len() > 18_000, "{}", scored.len());
    assert!(alarms(&scored) * 1000 < scored.len(), "{} iforest alarms in {} samples", alarms(&scored), scored.len());
    let mean = scored.iter().sum::<f64>() / scored.len() as f64;
    assert!(mean < 0.5, "ordinary samples sit well below the threshold: mean contribution {mean}");
    let (median, threshold) = sim.group.model().unwrap().calibration();
    assert!(median > 0.3 && median < 0.55 && threshold > median + MIN_SPREAD - 1e-12, "{median} {threshold}");
    assert!(sim.group.rows() <= config().reservoir_rows);
}

#[test]
fn one_series_oscillating_inside_its_band_is_flagged_by_the_forest() {
    // From day 8, series 3 alternates ±3.5 σ of its noise around its usual course: its values stay inside
    // the statistical band (±5 σ), but its steps and rolling deviation are far from anything the group has
    // shown.
    let onset = 8 * 288 + 100;
    let (_, all) = simulate(9, 12, |k, i, x| {
        if k == 3 && i >= onset {
            let level = 100.0 * (1 + k) as f64;
            x + if i % 2 == 0 { 0.07 * level } else { -0.07 * level }
        } else {
            x
        }
    });
    let first = (onset..onset + 12).find(|&i| all[i][3].is_some_and(|s| s.iforest.is_some_and(|c| c > 1.0)));
    let first = first.unwrap_or_else(|| {
        panic!("not flagged: {:?}", &all[onset..onset + 12].iter().map(|r| r[3]).collect::<Vec<_>>())
    });
    assert!(first < onset + 8, "flagged at {} samples after the onset", first - onset);
    // The others, at the same time, are not.
    let others = (onset..onset + 12).flat_map(|i| all[i].iter().enumerate().filter(|(k, _)| *k != 3).map(|(_, s)| *s));
    let flagged = others.filter(|s| s.is_some_and(|s| s.iforest.is_some_and(|c| c > 1.0))).count();
    assert!(flagged <= 1, "{flagged} of the ordinary series flagged");
}

#[test]
fn several_series_of_a_group_drifting_together_are_flagged() {
    // Six of the eight series move up by 3.5 σ at once and stay there: not anomalous for any series alone
    // (the band is ±5 σ, and the level detectors follow the new level within a few samples), but the
    // group's context and the runs of same-signed residuals are new.
    let onset = 8 * 288 + 50;
    let (_, all) = simulate(9, 13, |k, i, x| {
        let level = 100.0 * (1 + k) as f64;
        if k < 6 && i >= onset { x + 0.07 * level } else { x }
    });
    let window = onset..onset + 12;
    let flagged = |k: usize| window.clone().any(|i| all[i][k].is_some_and(|s| s.iforest.is_some_and(|c| c > 1.0)));
    let movers = (0..6).filter(|&k| flagged(k)).count();
    assert!(movers >= 4, "only {movers} of the 6 drifting series flagged");
}

#[test]
fn the_same_data_and_seed_give_the_same_contributions() {
    let a = simulate(4, 14, |_, _, x| x).1;
    let b = simulate(4, 14, |_, _, x| x).1;
    let bits = |all: &[Vec<Option<Scored>>]| -> Vec<u64> {
        all.iter().flatten().flatten().filter_map(|s| s.iforest).map(f64::to_bits).collect()
    };
    assert!(!bits(&a).is_empty());
    assert_eq!(bits(&a), bits(&b));
}

#[test]
fn the_context_is_a_weighted_average_over_the_groups_recent_samples() {
    // Two series: each sample weighs 1/4.
    let mut c = Context { series: 2, ..Context::default() };
    assert_eq!(c.observe(1.0), (0.25, 0.25));
    assert_eq!(c.observe(0.0), (0.1875, 0.1875));
    assert_eq!(c.observe(-0.2).0, 0.140625, "within the deviating bound: counts as not deviating");
    // Half the samples deviating, the other half calm: the share settles at one half.
    for i in 0..200 {
        c.observe(if i % 2 == 0 { 0.9 } else { 0.0 });
    }
    assert!((c.share - 0.5).abs() < 0.2 && (c.mean - 0.45).abs() < 0.2, "{c:?}");
}

#[test]
fn calibration_takes_the_median_and_the_pushed_out_high_quantile() {
    let mut scores: Vec<f64> = (0..101).rev().map(|i| 0.4 + 0.002 * f64::from(i)).collect();
    let (median, threshold) = calibrate(&mut scores);
    // Median 0.5, 99th percentile (index 99 of 0..=100) 0.598.
    assert!((median - 0.5).abs() < 1e-12);
    assert!((threshold - (0.598 + MARGIN * 0.098)).abs() < 1e-12, "{threshold}");
    let mut flat = vec![0.5; 50];
    assert_eq!(calibrate(&mut flat), (0.5, 0.5 + MIN_SPREAD));
}

#[test]
fn groups_follow_the_labels_and_the_cap() {
    let groups = Groups::new(&IforestConfig { max_groups: 2, ..IforestConfig::default() });
    let a = groups.resolve(0, &[("job", "api"), ("instance", "1")]);
    let b = groups.resolve(0, &[("job", "api"), ("instance", "2")]);
    let (Resolved::Group(a), Resolved::Group(b)) = (a, b) else { panic!() };
    assert!(Arc::ptr_eq(&a, &b), "instances of one job share a group");
    let Resolved::Group(c) = groups.resolve(0, &[("job", "api"), ("service_name", "cart")]) else { panic!() };
    assert!(!Arc::ptr_eq(&a, &c), "a service is its own group");
    assert!(matches!(groups.resolve(1, &[("job", "api")]), Resolved::Full), "another tenant, over the cap");
    assert_eq!(groups.len(), 2);
}

#[test]
fn the_reservoir_is_bounded_and_leans_to_recent_rows_after_a_refit() {
    let config = IforestConfig { reservoir_rows: 100, min_rows: 50, ..IforestConfig::default() };
    let groups = Groups::new(&config);
    let Resolved::Group(g) = groups.resolve(0, &[]) else { panic!() };
    let own = |x: f64| Own { resid: x, delta: 0.0, mean: 0.0, std: 0.0, rough: 0.0, x };
    for i in 0..10_000 {
        groups.observe(&g, i, &own(1.0), true);
    }
    assert_eq!(g.rows(), 100);
    g.queued.store(false, Ordering::Release);
    groups.refit(&g).unwrap();
    // 1000 new rows after the count was cut back to 100: each old row survives with p = 100/1100.
    for i in 0..1000 {
        groups.observe(&g, 20_000 + i, &own(-1.0), true);
    }
    let st = g.state.lock();
    let old = st.reservoir.rows.chunks_exact(FEATURES).filter(|r| r[0] > 0.0).count();
    assert!(old < 25, "{old} of 100 rows still from before the refit");
    assert_eq!(st.reservoir.rows.len(), 100 * FEATURES);
    assert_eq!(OWN + 2, FEATURES);
}

#[test]
fn a_refit_is_asked_for_once_per_interval() {
    let config = IforestConfig { min_rows: 10, refit_interval: Duration::from_millis(100), ..IforestConfig::default() };
    let groups = Groups::new(&config);
    let Resolved::Group(g) = groups.resolve(0, &[]) else { panic!() };
    let own = Own { resid: 0.1, delta: 0.0, mean: 0.0, std: 0.0, rough: 0.0, x: 0.0 };
    let due: Vec<i64> = (0..400).filter(|&t| groups.observe(&g, t, &own, true).refit_due).collect();
    assert_eq!(due, [9], "once at min_rows, then not again while the refit is queued");
    groups.refit(&g).unwrap();
    assert_eq!(g.epoch(), 1);
    let due: Vec<i64> = (400..700).filter(|&t| groups.observe(&g, t, &own, true).refit_due).collect();
    assert_eq!(due, [400], "the last fit's rows were from t = 9");
    groups.refit(&g).unwrap();
    let due: Vec<i64> = (700..900).filter(|&t| groups.observe(&g, t, &own, true).refit_due).collect();
    assert_eq!(due, [700]);
}

#[test]
fn config_problems_name_their_keys() {
    let bad = IforestConfig {
        group_by: vec![String::new()],
        refit_interval: Duration::ZERO,
        min_rows: 5000,
        trees: 0,
        sample_size: 1,
        max_groups: 0,
        ..IforestConfig::default()
    };
    let all = bad.problems().join("\n");
    for key in [
        "iforest.group_by",
        "iforest.refit_interval",
        "iforest.min_rows",
        "iforest.trees",
        "iforest.sample_size",
        "iforest.max_groups",
    ] {
        assert!(all.contains(key), "{key} missing in\n{all}");
    }
    assert!(IforestConfig::default().problems().is_empty());
}

/// A model fitted on `n` random rows (residual-like features near 0, seeded).
fn random_model(seed: u64, n: usize) -> Model {
    let mut rng = fastrand::Rng::with_seed(seed);
    let rows: Vec<f64> = (0..n * FEATURES).map(|_| 0.5 * gauss(&mut rng)).collect();
    let forest = IsolationForestParams::default().seed(seed).fit_rows(&rows, FEATURES).unwrap();
    Model::new(forest, &rows)
}

#[test]
fn a_row_a_hair_beyond_the_training_range_scores_like_the_edge_and_a_far_one_high() {
    let m = random_model(22, 1024);
    // The training row that sets the first feature's minimum, then the same row nudged past it.
    let edge = m.lo[0];
    let mut rng = fastrand::Rng::with_seed(23);
    let mut row: [f64; FEATURES] = std::array::from_fn(|_| 0.1 * gauss(&mut rng));
    row[0] = edge;
    let at_edge = m.contribution(&row);
    let range = m.hi[0] - m.lo[0];
    for nudge in [1e-15, 1e-12, 1e-9] {
        row[0] = edge - nudge * range;
        let beyond = m.contribution(&row);
        assert!((beyond - at_edge).abs() < 1e-6, "nudged by {nudge}: {beyond} vs {at_edge} at the edge");
    }
    row[0] = edge - 50.0 * range;
    assert!(m.contribution(&row) > 1.0, "far beyond the range: {}", m.contribution(&row));
}

#[test]
fn batched_contributions_equal_row_by_row_ones_to_the_bit() {
    let models: Vec<Arc<Model>> = (0..3).map(|m| Arc::new(random_model(20 + m, 1024))).collect();
    let mut rng = fastrand::Rng::with_seed(21);
    let mut batch = Batch::default();
    // Several batches through the same buffers, of sizes around the scorer's block and lane boundaries.
    for n in [1, 7, 8, 9, 300, 2000, 5] {
        let mut queued = Vec::new();
        for i in 0..n {
            // Mostly within the training range, some far beyond it (the range correction), a few infinite
            // or NaN (scored one by one).
            let mut row = [0.0; FEATURES];
            for x in &mut row {
                *x = match rng.u32(0..100) {
                    0..=79 => 0.5 * gauss(&mut rng),
                    80..=97 => 20.0 * gauss(&mut rng),
                    98 => f64::INFINITY,
                    _ => f64::NAN,
                };
            }
            // Runs of one model and switches, as groups come in a batch.
            let model = &models[(i / 5 + rng.usize(0..2)) % models.len()];
            queued.push((batch.push(model, &row), Arc::clone(model), row));
        }
        batch.score();
        for (q, model, row) in &queued {
            let alone = model.contribution(row);
            let batched = batch.contribution(*q);
            assert_eq!(batched.to_bits(), alone.to_bits(), "{row:?}: batched {batched} vs alone {alone}");
        }
        batch.clear();
    }
    // And the whole-slice form over many rows within range (no NaN: the forest's batch path).
    let m = &models[0];
    let rows: Vec<[f64; FEATURES]> = (0..777).map(|_| std::array::from_fn(|_| 2.0 * gauss(&mut rng))).collect();
    let mut out = vec![0.0; rows.len()];
    m.contributions_into(&rows, &mut out);
    assert!(out.iter().any(|&c| c > 0.0));
    for (row, c) in rows.iter().zip(&out) {
        assert_eq!(c.to_bits(), m.contribution(row).to_bits());
    }
}

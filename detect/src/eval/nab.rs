//! The Numenta Anomaly Benchmark's scoring (NAB v1.1, numenta/NAB), followed line by line:
//!
//! - `nab/sweeper.py`: [`scaled_sigmoid`], the probationary length, the sweep score of every row
//!   (`calcSweepScore` → [`sweep_points`]) and the score at every threshold (`calcScoreByThreshold` →
//!   [`scores_by_threshold`]).
//! - `nab/optimizer.py` (`optimizeThreshold`): the sweep rows of all files of the corpus are put together and
//!   swept once, and the threshold with the highest score wins (`sorted(…, key=score, reverse=True)[0]`, a
//!   stable sort, so on a tie the highest threshold) → [`best`].
//! - `nab/scorer.py` (`scoreCorpus`) then scores each file at that threshold with `Sweeper.scoreDataSet` and
//!   adds the files up. The parts of the score (`fp` and one per window) are additive over files and
//!   `scoreDataSet`'s row for the threshold detects the same rows (every score ≥ the threshold), so the
//!   total is the optimiser's best score (up to the order of floating-point additions); that is what
//!   [`score_corpus`] reports.
//! - `nab/runner.py` (`normalize`): `100 * (raw - null) / (perfect - null)`, where `null` is the score of
//!   NAB's null detector (`nab/detectors/null`: a constant 0.5 on every row, thresholds optimised and scored
//!   like any detector) and `perfect` is the number of label windows times `tpWeight` (`tpCount` counts the
//!   windows of the label file; a perfect detector fires on each window's first row, whose sweep score is
//!   exactly `tpWeight`). [`score_corpus`] computes the null score the same way, by sweeping a constant 0.5
//!   over the same rows: it is `-windows * fnWeight` whenever detecting every row scores worse than detecting
//!   none, as on NAB's corpus (`config/thresholds.json`: null -116 standard and reward_low_FP_rate, -232
//!   reward_low_FN_rate, for NAB's 116 windows; `results/final_results.json`: null 0 on every profile).

use super::corpus::{Profile, RowWindow};

/// NAB's `probationaryPercent` (`nab/runner.py`): the first 15 % of each file (at most 750 rows) is not
/// scored.
pub const PROBATION_PERCENT: f64 = 0.15;

/// `sweeper.sigmoid`.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `sweeper.scaledSigmoid`: 2·sigmoid(−5x) − 1, and −1 past 3. −1 (a window's first row) gives 0.98661,
/// 0 (a window's right edge) gives 0, 1 gives −0.98661.
pub fn scaled_sigmoid(relative_position: f64) -> f64 {
    if relative_position > 3.0 { -1.0 } else { 2.0 * sigmoid(-5.0 * relative_position) - 1.0 }
}

/// `Sweeper._getProbationaryLength`: `min(floor(percent * rows), percent * 5000)`. Rows whose index is below
/// it are probationary.
pub fn probationary_length(rows: usize, percent: f64) -> f64 {
    (percent * rows as f64).floor().min(percent * 5000.0)
}

/// Where a row stands for the sweep, with its unweighted sweep score (the profile's weights are applied in
/// [`scores_by_threshold`], in the same order of operations as NAB).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Place {
    /// In the probationary period: never scored (`windowName == "probationary"`).
    Probationary,
    /// In window `window` (a corpus-wide number): `unweighted` is `scaledSigmoid(-(right - i + 1) / width)`.
    Window { window: usize, unweighted: f64 },
    /// Outside every window: `scaledSigmoid(|prevRight - i| / (prevWidth - 1))` after a window, −1 before
    /// the first one.
    Outside { unweighted: f64 },
}

/// One row of one file: its anomaly score and its [`Place`] (`sweeper.AnomalyPoint`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub score: f64,
    pub place: Place,
}

/// `Sweeper.calcSweepScore` for one file: `scores[i]` is row `i`'s anomaly score, `windows` the rows each
/// window covers (sorted, disjoint), numbered from `first_window` on in the corpus.
pub fn sweep_points(scores: &[f64], windows: &[RowWindow], first_window: usize, probation_percent: f64) -> Vec<Point> {
    let probationary = probationary_length(scores.len(), probation_percent);
    let mut next = 0;
    // (window number, right index, width) of the window the row is in; (right index, width) of the last
    // window left behind.
    let mut current: Option<(usize, usize, f64)> = None;
    let mut previous: Option<(usize, f64)> = None;
    let mut points = Vec::with_capacity(scores.len());
    for (i, &score) in scores.iter().enumerate() {
        if let Some(w) = windows.get(next).filter(|w| w.start == i) {
            current = Some((first_window + next, w.end, (w.end - w.start + 1) as f64));
            next += 1;
        }
        let place = match (current, previous) {
            (Some((window, right, width)), _) => {
                let position = -((right - i + 1) as f64) / width;
                Place::Window { window, unweighted: scaled_sigmoid(position) }
            }
            // A one-row window gives 1 / 0 = inf here (NAB divides by zero), and scaledSigmoid(inf) = −1.
            (None, Some((right, width))) => {
                Place::Outside { unweighted: scaled_sigmoid((i - right) as f64 / (width - 1.0)) }
            }
            (None, None) => Place::Outside { unweighted: -1.0 },
        };
        let place = if (i as f64) >= probationary { place } else { Place::Probationary };
        // `+ 0.0` turns −0 into 0, which Python's sort and `!=` treat as equal.
        points.push(Point { score: score + 0.0, place });
        if let Some((_, right, width)) = current.filter(|&(_, right, _)| right == i) {
            previous = Some((right, width));
            current = None;
        }
    }
    points
}

/// The score of detecting every row whose anomaly score is ≥ `threshold` (`sweeper.ThresholdScore`; the
/// counts are of rows, as NAB's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdScore {
    pub threshold: f64,
    pub score: f64,
    pub tp: usize,
    pub tn: usize,
    pub fp: usize,
    pub fn_: usize,
}

/// `Sweeper.calcScoreByThreshold`: the score at every distinct anomaly score of the scored (not
/// probationary) rows of `points`, from the highest down, after a first entry at threshold 1.1 that detects
/// nothing. `windows` bounds the window numbers in `points`.
pub fn scores_by_threshold(points: &[Point], windows: usize, profile: &Profile) -> Vec<ThresholdScore> {
    let max_tp = scaled_sigmoid(-1.0);
    // prepAnomalyListForScoring: drop probationary rows, sort by score, highest first (stable).
    let mut scorable: Vec<&Point> = points.iter().filter(|p| p.place != Place::Probationary).collect();
    scorable.sort_by(|a, b| b.score.total_cmp(&a.score));
    // _prepareScoreByThresholdParts: {"fp": 0, window: -fnWeight, …} in order of first appearance.
    let mut parts: Vec<Option<f64>> = vec![None; windows];
    let mut order = Vec::new();
    let (mut tn, mut fn_, mut tp, mut fp) = (0, 0, 0, 0);
    for p in &scorable {
        match p.place {
            Place::Window { window, .. } => {
                fn_ += 1;
                if parts[window].is_none() {
                    parts[window] = Some(-profile.fn_weight);
                    order.push(window);
                }
            }
            Place::Outside { .. } => tn += 1,
            Place::Probationary => {}
        }
    }
    let mut fp_part = 0.0;
    // sum(scoreParts.values()): "fp" first, then the windows in insertion order.
    let total = |fp_part: f64, parts: &[Option<f64>]| order.iter().fold(fp_part, |s, &w| s + parts[w].unwrap_or(0.0));
    let mut threshold = 1.1;
    let mut out = Vec::new();
    for p in scorable {
        if p.score != threshold {
            out.push(ThresholdScore { threshold, score: total(fp_part, &parts), tp, tn, fp, fn_ });
            threshold = p.score;
        }
        match p.place {
            Place::Window { window, unweighted } => {
                tp += 1;
                fn_ -= 1;
                let sweep = unweighted * profile.tp_weight / max_tp;
                let part = &mut parts[window];
                *part = Some(part.map_or(sweep, |old| if sweep > old { sweep } else { old }));
            }
            Place::Outside { unweighted } => {
                fp += 1;
                tn -= 1;
                fp_part += unweighted * profile.fp_weight;
            }
            Place::Probationary => {}
        }
    }
    out.push(ThresholdScore { threshold, score: total(fp_part, &parts), tp, tn, fp, fn_ });
    out
}

/// The optimiser's choice: the highest score, the first (highest threshold) on a tie.
pub fn best(scores: &[ThresholdScore]) -> Option<ThresholdScore> {
    scores.iter().copied().reduce(|best, s| if s.score > best.score { s } else { best })
}

/// `100 * (raw - null) / (perfect - null)` (`Runner.normalize`); `None` when `perfect == null` (a corpus
/// without windows).
pub fn normalise(raw: f64, null: f64, perfect: f64) -> Option<f64> {
    (perfect != null).then(|| 100.0 * (raw - null) / (perfect - null))
}

/// One file's anomaly scores with its windows, as the scorer sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoredFile {
    pub scores: Vec<f64>,
    /// The rows each window covers, sorted and disjoint.
    pub windows: Vec<RowWindow>,
}

/// Events at a threshold: an event is a run of consecutive rows scoring ≥ the threshold, placed at its
/// first row; events starting in the probationary period are ignored. An event is true when its first row
/// is in a window; a window (with a row past the probationary period) is recalled when any of its scored
/// rows is detected. Not part of NAB: a plainer view of the same detections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Events {
    pub events: usize,
    pub true_events: usize,
    pub windows: usize,
    pub recalled: usize,
}

impl Events {
    pub fn precision(&self) -> Option<f64> {
        (self.events > 0).then(|| self.true_events as f64 / self.events as f64)
    }

    pub fn recall(&self) -> Option<f64> {
        (self.windows > 0).then(|| self.recalled as f64 / self.windows as f64)
    }

    /// 0 when precision and recall are both 0; `None` when either is undefined.
    pub fn f1(&self) -> Option<f64> {
        let (p, r) = (self.precision()?, self.recall()?);
        Some(if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 })
    }
}

/// [`Events`] of `files` when rows scoring ≥ `threshold` are detections.
pub fn events_at(files: &[ScoredFile], threshold: f64, probation_percent: f64) -> Events {
    let mut e = Events::default();
    for file in files {
        let probationary = probationary_length(file.scores.len(), probation_percent);
        let scored = |i: usize| (i as f64) >= probationary;
        let in_window = |i: usize| file.windows.iter().any(|w| (w.start..=w.end).contains(&i));
        let detected = |i: usize| file.scores[i] >= threshold;
        for i in (0..file.scores.len()).filter(|&i| detected(i) && (i == 0 || !detected(i - 1)) && scored(i)) {
            e.events += 1;
            e.true_events += usize::from(in_window(i));
        }
        for w in file.windows.iter().filter(|w| scored(w.end)) {
            e.windows += 1;
            e.recalled += usize::from((w.start..=w.end).any(|i| scored(i) && detected(i)));
        }
    }
    e
}

/// A profile's result on a corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileScore {
    pub profile: Profile,
    /// The chosen threshold and the raw score there, with NAB's row counts.
    pub best: ThresholdScore,
    /// The null detector's raw score (see the module's notes).
    pub null: f64,
    /// The perfect detector's raw score: label windows × `tpWeight`.
    pub perfect: f64,
    /// The NAB score, `None` for a corpus without windows.
    pub normalised: Option<f64>,
    /// Events at the chosen threshold.
    pub events: Events,
}

/// Scores `files` on each profile the way NAB does (module notes). `label_windows` is the number of label
/// windows of these files (NAB's `tpCount`), including any that cover no row.
pub fn score_corpus(files: &[ScoredFile], label_windows: usize, profiles: &[Profile]) -> Vec<ProfileScore> {
    let mut points = Vec::with_capacity(files.iter().map(|f| f.scores.len()).sum());
    let mut windows = 0;
    for file in files {
        points.extend(sweep_points(&file.scores, &file.windows, windows, PROBATION_PERCENT));
        windows += file.windows.len();
    }
    let null_points: Vec<Point> = points.iter().map(|p| Point { score: 0.5, place: p.place }).collect();
    let nothing = |threshold| ThresholdScore { threshold, score: 0.0, tp: 0, tn: 0, fp: 0, fn_: 0 };
    profiles
        .iter()
        .map(|profile| {
            let chosen = best(&scores_by_threshold(&points, windows, profile)).unwrap_or(nothing(1.1));
            let null = best(&scores_by_threshold(&null_points, windows, profile)).map_or(0.0, |s| s.score);
            let perfect = label_windows as f64 * profile.tp_weight;
            ProfileScore {
                profile: profile.clone(),
                best: chosen,
                null,
                perfect,
                normalised: normalise(chosen.score, null, perfect),
                events: events_at(files, chosen.threshold, PROBATION_PERCENT),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn standard() -> Profile {
        Profile::nab().remove(0)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn scaled_sigmoid_matches_nabs_documented_values() {
        // 2 / (1 + e^(5x)) - 1: x = -1 → 2 / (1 + e^-5) - 1 = 2 / 1.006737947 - 1 = 0.98661430.
        assert!(close(scaled_sigmoid(-1.0), 0.9866142981514305));
        // x = -0.5 → 2 / (1 + e^-2.5) - 1 = 2 / 1.082084999 - 1 = 0.84828364.
        assert!(close(scaled_sigmoid(-0.5), 0.8482836399575131));
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!(close(scaled_sigmoid(1.0), -0.9866142981514305));
        // 3 itself is still on the curve (2 / (1 + e^15) - 1); only past it is the score clamped to -1.
        assert!(close(scaled_sigmoid(3.0), -0.9999993881955461));
        assert_eq!(scaled_sigmoid(3.000001), -1.0);
    }

    #[test]
    fn probation_is_fifteen_percent_up_to_750_rows() {
        assert_eq!(probationary_length(100, PROBATION_PERCENT), 15.0);
        assert_eq!(probationary_length(7, PROBATION_PERCENT), 1.0); // floor(1.05)
        assert_eq!(probationary_length(4033, PROBATION_PERCENT), 604.0); // floor(604.95)
        assert_eq!(probationary_length(22_695, PROBATION_PERCENT), 750.0); // min(3404, 750)
    }

    /// 20 rows, probation floor(0.15 · 20) = 3 rows, one window over rows 8..=11 (width 4). Scores: row 1
    /// (probationary) 0.95, row 9 (in the window) 0.9, row 13 (after it) 0.8, row 5 (before it) 0.7, the
    /// rest 0.1.
    fn one_window_file() -> ScoredFile {
        let mut scores = vec![0.1; 20];
        scores[1] = 0.95;
        scores[9] = 0.9;
        scores[13] = 0.8;
        scores[5] = 0.7;
        ScoredFile { scores, windows: vec![RowWindow { start: 8, end: 11 }] }
    }

    #[test]
    fn sweep_places_rows_as_nab_does() {
        let f = one_window_file();
        let points = sweep_points(&f.scores, &f.windows, 0, PROBATION_PERCENT);
        assert_eq!(points[2].place, Place::Probationary);
        // Before the first window: -1.
        assert_eq!(points[3].place, Place::Outside { unweighted: -1.0 });
        // Row 8, the window's first: -(11 - 8 + 1) / 4 = -1 → maxTP.
        assert_eq!(points[8].place, Place::Window { window: 0, unweighted: scaled_sigmoid(-1.0) });
        // Row 11, its last: -(11 - 11 + 1) / 4 = -0.25 → 2 / (1 + e^-1.25) - 1 = 0.5546.
        let Place::Window { unweighted, .. } = points[11].place else { panic!("{:?}", points[11]) };
        assert!(close(unweighted, 2.0 / (1.0 + (-1.25f64).exp()) - 1.0));
        // Row 12, just after: |11 - 12| / (4 - 1) = 1/3 → 2 / (1 + e^(5/3)) - 1 = 2 / 6.2945 - 1 = -0.6823.
        let Place::Outside { unweighted } = points[12].place else { panic!("{:?}", points[12]) };
        assert!(close(unweighted, 2.0 / (1.0 + (5.0f64 / 3.0).exp()) - 1.0));
        assert!((unweighted + 0.6823).abs() < 1e-4);
    }

    #[test]
    fn threshold_sweep_keeps_the_earliest_true_positive_and_charges_false_positives() {
        let f = one_window_file();
        let points = sweep_points(&f.scores, &f.windows, 0, PROBATION_PERCENT);
        let sweep = scores_by_threshold(&points, 1, &standard());
        let thresholds: Vec<f64> = sweep.iter().map(|s| s.threshold).collect();
        // Row 1's 0.95 is probationary: no threshold of its own.
        assert_eq!(thresholds, vec![1.1, 0.9, 0.8, 0.7, 0.1]);
        // 1.1: nothing detected, the window is missed: -fnWeight = -1.
        assert_eq!(sweep[0].score, -1.0);
        // 0.9: row 9 at -(11 - 9 + 1) / 4 = -0.75 in the window: scaledSigmoid(-0.75) / maxTP
        //      = (2 / (1 + e^-3.75) - 1) / 0.98661430 = 0.95404 / 0.98661 = 0.96699.
        let tp = scaled_sigmoid(-0.75) / scaled_sigmoid(-1.0);
        assert!(close(tp, 0.9669890878000605));
        assert!(close(sweep[1].score, tp));
        assert_eq!((sweep[1].tp, sweep[1].fp, sweep[1].tn, sweep[1].fn_), (1, 0, 13, 3));
        // 0.8: plus row 13, 2 rows past the window's end: 0.11 · scaledSigmoid(2/3)
        //      = 0.11 · (2 / (1 + e^(10/3)) - 1) = 0.11 · -0.93111 = -0.10242.
        let fp_after = 0.11 * scaled_sigmoid(2.0 / 3.0);
        assert!((fp_after + 0.10242).abs() < 1e-5);
        assert!(close(sweep[2].score, tp + fp_after));
        // 0.7: plus row 5, before any window: -0.11.
        assert!(close(sweep[3].score, tp + fp_after - 0.11));
        // 0.1: everything. The window's part is now row 8's 1.0 (the earliest detection counts); false
        // positives: rows 3..=7 except 5 at -0.11 each (4 more), rows 12..=19 at 0.11 · scaledSigmoid(k / 3).
        let after: f64 = (1..=8).map(|k| 0.11 * scaled_sigmoid(k as f64 / 3.0)).sum();
        assert!(close(sweep[4].score, 1.0 + after - 5.0 * 0.11));
        assert_eq!((sweep[4].tp, sweep[4].fp, sweep[4].tn, sweep[4].fn_), (4, 13, 0, 0));
        // The best is 0.9: one early true positive, no false positive.
        let b = best(&sweep).unwrap();
        assert_eq!(b.threshold, 0.9);
        assert!(close(b.score, tp));
    }

    #[test]
    fn ties_go_to_the_highest_threshold() {
        // Rows 10 (window start) at 0.9 and 11 (also in the window) at 0.8: both thresholds score 1.0.
        let mut scores = vec![0.0; 20];
        scores[10] = 0.9;
        scores[11] = 0.8;
        let windows = [RowWindow { start: 10, end: 13 }];
        let sweep = scores_by_threshold(&sweep_points(&scores, &windows, 0, 0.15), 1, &standard());
        assert_eq!(sweep[1].score, 1.0);
        assert_eq!(sweep[2].score, 1.0);
        assert_eq!(best(&sweep).unwrap().threshold, 0.9);
    }

    #[test]
    fn nab_unit_cases() {
        // Modelled on numenta/NAB's tests/unit/sweeper_test.py: probation 0, all weights 1.
        let ones = Profile { name: "ones".into(), tp_weight: 1.0, fp_weight: 1.0, fn_weight: 1.0 };
        let at = |scores: &[f64], windows: &[RowWindow], threshold: f64| {
            let sweep = scores_by_threshold(&sweep_points(scores, windows, 0, 0.0), windows.len(), &ones);
            // Sweeper.scoreDataSet: the row at the threshold, or the one before the first below it.
            let mut prev = None;
            for s in sweep {
                if s.threshold == threshold {
                    return s;
                }
                if s.threshold < threshold {
                    return prev.unwrap();
                }
                prev = Some(s);
            }
            prev.unwrap()
        };
        // testNullCase: no windows, no detections → 0.
        assert_eq!(at(&[0.0; 10], &[], 0.5).score, 0.0);
        // testFirstTruePositiveWithinWindow: a detection on a window's first row scores exactly tpWeight.
        let mut s = vec![0.0; 10];
        s[5] = 1.0;
        assert_eq!(at(&s, &[RowWindow { start: 5, end: 6 }], 0.5).score, 1.0);
        // testFourFalseNegatives: four missed windows → -4.
        let four: Vec<RowWindow> = (0..4).map(|k| RowWindow { start: 100 + 400 * k, end: 109 + 400 * k }).collect();
        assert_eq!(at(&vec![0.0; 2000], &four, 1.0).score, -4.0);
        // testFalsePositiveMeansNegativeScore: one detection on row 0, before the window → -1 · fpWeight,
        // plus the missed window.
        let mut s = vec![0.0; 1000];
        s[0] = 1.0;
        let r = at(&s, &[RowWindow { start: 500, end: 509 }], 0.5);
        assert_eq!(r.score, -2.0);
        assert_eq!((r.tn, r.tp, r.fp, r.fn_), (1000 - 10 - 1, 0, 1, 10));
    }

    #[test]
    fn normalisation_reproduces_nabs_published_scores() {
        // numenta/NAB config/thresholds.json (raw scores) and results/final_results.json (normalised):
        // 116 windows, so perfect = 116 · tpWeight = 116 and null = -116 · fnWeight.
        // ARTime standard: 100 · (57.6608 + 116) / (116 + 116) = 74.8538.
        assert!(close(normalise(57.66075157860638, -116.0, 116.0).unwrap(), 74.85377223215792));
        // ARTime reward_low_FP_rate: 100 · (35.1573 + 116) / 232 = 65.1540.
        assert!(close(normalise(35.1572804170157, -116.0, 116.0).unwrap(), 65.15400017974811));
        // ARTime reward_low_FN_rate: null -232: 100 · (47.6608 + 232) / (116 + 232) = 80.3623.
        assert!(close(normalise(47.66075157860638, -232.0, 116.0).unwrap(), 80.36228493638114));
        // Numenta HTM standard: 100 · (46.6345 + 116) / 232 = 70.1011.
        assert!(close(normalise(46.634450197137596, -116.0, 116.0).unwrap(), 70.10105611943965));
        assert_eq!(normalise(0.0, 0.0, 0.0), None);
    }

    #[test]
    fn null_and_perfect_detectors_score_0_and_100() {
        // Two files of 200 rows (probation 30), windows at rows 80..=89 and 120..=129.
        let windows = vec![RowWindow { start: 80, end: 89 }, RowWindow { start: 120, end: 129 }];
        let file = |scores: Vec<f64>| ScoredFile { scores, windows: windows.clone() };
        let null = vec![file(vec![0.5; 200]), file(vec![0.5; 200])];
        let mut hit = vec![0.0; 200];
        hit[80] = 1.0;
        hit[120] = 1.0;
        let perfect = vec![file(hit.clone()), file(hit)];
        for (i, p) in Profile::nab().iter().enumerate() {
            let n = &score_corpus(&null, 4, std::slice::from_ref(p))[0];
            // Detecting nothing (-4 · fnWeight ≥ -8) beats detecting everything: 4 true positives, but rows
            // 30..=79 of each file alone are 2 · 50 false positives before any window at -0.11 (-0.22).
            assert_eq!(n.null, -4.0 * p.fn_weight, "{}", p.name);
            assert_eq!(n.best.score, n.null);
            assert_eq!(n.normalised, Some(0.0));
            let q = &score_corpus(&perfect, 4, &Profile::nab())[i];
            assert_eq!(q.best.score, 4.0);
            assert_eq!(q.perfect, 4.0);
            assert_eq!(q.normalised, Some(100.0));
            assert_eq!(q.events, Events { events: 4, true_events: 4, windows: 4, recalled: 4 });
        }
    }

    #[test]
    fn events_count_runs_and_recalled_windows() {
        // 40 rows, probation 6. Runs ≥ 0.5: rows 2..=3 (probationary, ignored), 10..=12 (before the window:
        // false), 20..=21 (starts in the window 19..=24: true), 30 (false). Window 19..=24 recalled.
        let mut scores = vec![0.0; 40];
        for i in [2, 3, 10, 11, 12, 20, 21, 30] {
            scores[i] = 0.9;
        }
        let f = ScoredFile { scores, windows: vec![RowWindow { start: 19, end: 24 }] };
        let e = events_at(&[f], 0.5, PROBATION_PERCENT);
        assert_eq!(e, Events { events: 3, true_events: 1, windows: 1, recalled: 1 });
        assert!(close(e.precision().unwrap(), 1.0 / 3.0));
        assert_eq!(e.recall(), Some(1.0));
        assert!(close(e.f1().unwrap(), 0.5)); // 2 · (1/3) · 1 / (4/3)
    }
}

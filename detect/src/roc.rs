//! Area under the ROC curve, to judge detectors on labelled data.

/// AUROC of `scores` (higher = more likely positive) against `labels`: the probability that a random
/// positive outscores a random negative, ties counting one half (the Mann–Whitney U statistic, equal
/// to the trapezoidal area scikit-learn's `roc_auc_score` computes). `None` when the lengths differ,
/// a score is NaN, or one class is empty.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the positives' ranks (1-based), tied runs sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let mean_rank = (start + 1 + end) as f64 / 2.0;
        let pos_in_run = order[start..end].iter().filter(|&&i| labels[i]).count();
        rank_sum += mean_rank * pos_in_run as f64;
        start = end;
    }
    let n_pos = n_pos as f64;
    let u = rank_sum - n_pos * (n_pos + 1.0) / 2.0;
    Some(u / (n_pos * n_neg as f64))
}

#[cfg(test)]
mod tests {
    use super::auroc;

    #[test]
    fn auroc_perfect_inverted_and_tied() {
        let labels = [false, false, true, true];
        assert_eq!(auroc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(auroc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(auroc(&[0.5; 4], &labels), Some(0.5));
        // Pairs (pos, neg): (0.8,0.1) 1, (0.8,0.8) ½, (0.3,0.1) 1, (0.3,0.8) 0 → 2.5 / 4.
        assert_eq!(auroc(&[0.1, 0.8, 0.8, 0.3], &labels), Some(0.625));
    }

    #[test]
    fn auroc_refuses_degenerate_input() {
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auroc(&[0.1], &[true, false]), None);
        assert_eq!(auroc(&[f64::NAN, 0.2], &[true, false]), None);
    }
}

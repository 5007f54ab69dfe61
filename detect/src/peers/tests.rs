#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;

fn gauss(rng: &mut fastrand::Rng) -> f64 {
    let (u, v) = (rng.f64().max(1e-12), rng.f64());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// The summary of `n` samples of a pod serving `level` requests per second with noise `sigma`.
fn pod(rng: &mut fastrand::Rng, n: usize, level: f64, sigma: f64) -> Summary {
    let mut w = Window::default();
    for _ in 0..n {
        w.push(level + sigma * gauss(rng));
    }
    w.take(5).unwrap()
}

fn flagged(scores: &[f64]) -> Vec<usize> {
    scores.iter().enumerate().filter(|(_, s)| **s > 1.0).map(|(i, _)| i).collect()
}

#[test]
fn six_alike_pods_have_no_outlier() {
    let c = PeersConfig::default();
    // Many draws: pods behind one load balancer differ a little in level (±5 %) and in their noise.
    for seed in 0..200 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let pods: Vec<Summary> = (0..6)
            .map(|_| {
                let level = 100.0 * (1.0 + 0.05 * (rng.f64() - 0.5));
                pod(&mut rng, 20, level, 3.0)
            })
            .collect();
        let scores = outliers(&pods, c.eps, c.min_points);
        assert!(flagged(&scores).is_empty(), "seed {seed}: {scores:?} for {pods:?}");
    }
}

#[test]
fn one_pod_unlike_the_others_is_flagged() {
    let c = PeersConfig::default();
    type Odd = fn(&mut fastrand::Rng) -> Summary;
    let cases: [(&str, Odd); 3] = [
        ("serves half the traffic", |rng| pod(rng, 20, 50.0, 3.0)),
        ("five times as noisy", |rng| pod(rng, 20, 100.0, 15.0)),
        ("flat while the others vary", |rng| pod(rng, 20, 100.0, 0.0)),
    ];
    for (what, odd) in cases {
        for seed in 0..50 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut pods: Vec<Summary> = (0..5).map(|_| pod(&mut rng, 20, 100.0, 3.0)).collect();
            pods.insert(2, odd(&mut rng));
            let scores = outliers(&pods, c.eps, c.min_points);
            assert_eq!(flagged(&scores), [2], "{what}, seed {seed}: {scores:?}");
        }
    }
}

#[test]
fn no_outlier_without_a_main_cluster() {
    // Siblings spread evenly (disks of many sizes): they chain into one cluster, nobody stands out.
    let spread: Vec<Summary> = (1..=6).map(|i| [300.0 * f64::from(i), 1.0, 1.0]).collect();
    assert!(flagged(&outliers(&spread, 1.5, 3)).is_empty());
    // Two halves: no cluster holds most of them, so neither half is the odd one.
    let halves: Vec<Summary> = [100.0, 101.0, 99.0, 500.0, 502.0, 498.0].iter().map(|&l| [l, 1.0, 1.0]).collect();
    assert!(flagged(&outliers(&halves, 1.5, 3)).is_empty());
    // …while with a seventh sibling joining the low half, the high half is still three: not "one unlike".
    let mut uneven = halves.clone();
    uneven.push([100.5, 1.0, 1.0]);
    assert_eq!(flagged(&outliers(&uneven, 1.5, 3)), Vec::<usize>::new(), "a cluster of three is not noise");
    // Too few to compare, and not-finite summaries.
    assert!(flagged(&outliers(&[[1.0, 0.1, 0.1], [100.0, 0.1, 0.1]], 1.5, 2)).is_empty());
    assert!(flagged(&outliers(&[[1.0, 0.1, 0.1], [1.0, 0.1, 0.1], [f64::NAN, 0.1, 0.1]], 1.5, 2)).is_empty());
}

#[test]
fn the_window_summarises_and_starts_afresh() {
    let mut w = Window::default();
    for x in [1.0, 3.0, 1.0, 3.0] {
        w.push(x);
    }
    w.push(f64::NAN);
    assert_eq!(w.take(4), Some([2.0, 1.0, 2.0]));
    assert_eq!(w.take(1), None, "taken: empty");
    w.push(5.0);
    assert_eq!(w.take(2), None, "one sample is too few");
}

#[test]
fn siblings_share_a_key_and_only_instance_like_labels_differ() {
    let p = Peers::new(&PeersConfig::default());
    let a = p.key(0, &[("__name__", "rps"), ("job", "api"), ("pod", "a")]).unwrap();
    let b = p.key(0, &[("__name__", "rps"), ("job", "api"), ("pod", "b")]).unwrap();
    assert_eq!(a, b);
    assert_ne!(Some(a), p.key(0, &[("__name__", "rps"), ("job", "web"), ("pod", "a")]));
    assert_ne!(Some(a), p.key(0, &[("__name__", "latency"), ("job", "api"), ("pod", "a")]));
    assert_ne!(Some(a), p.key(1, &[("__name__", "rps"), ("job", "api"), ("pod", "a")]), "tenants apart");
    assert_eq!(p.key(0, &[("__name__", "rps"), ("job", "api")]), None, "no instance-like label");
}

#[test]
fn a_comparison_is_due_once_per_interval() {
    let p = Peers::new(&PeersConfig { interval: Duration::from_secs(60), ..PeersConfig::default() });
    let due: Vec<i64> = (0..400).map(|i| i * 1000).filter(|&t| p.due(t)).collect();
    assert_eq!(due, [60_000, 120_000, 180_000, 240_000, 300_000, 360_000]);
}

#[test]
fn config_problems_name_their_keys() {
    let bad = PeersConfig {
        interval: Duration::ZERO,
        group_by_excluding: vec![],
        eps: f64::NAN,
        min_points: 1,
        min_samples: 0,
        ..PeersConfig::default()
    };
    let all = bad.problems().join("\n");
    for key in ["peers.interval", "peers.group_by_excluding", "peers.eps", "peers.min_points", "peers.min_samples"] {
        assert!(all.contains(key), "{key} missing in\n{all}");
    }
    assert!(PeersConfig::default().problems().is_empty());
}

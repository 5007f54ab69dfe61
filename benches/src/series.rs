//! Deterministic, realistic-looking Prometheus series.
//!
//! The series are shaped like what a Prometheus server scraping a Kubernetes cluster sends: every target
//! (a pod) exposes the same set of metric families, and each series carries the target labels `cluster`,
//! `instance`, `job`, `namespace` and `pod` plus zero to three family-specific labels (`code`, `method`,
//! `le`, `cpu`, `mode`, ...), so 6 to 9 labels in all. Label values repeat the way real ones do (a handful
//! of jobs and namespaces, one pod name per target), which matters for snappy's compression ratio and for
//! the receiver's label handling. The same index always gives the same series, so runs are comparable.

use vigil_proto::prometheus::Label;

/// A metric family: its name and the labels that vary within one target.
struct Family {
    name: &'static str,
    /// Each label's name and the values it takes; a target exposes every combination.
    variants: &'static [(&'static str, &'static [&'static str])],
}

const FAMILIES: &[Family] = &[
    Family { name: "up", variants: &[] },
    Family { name: "process_cpu_seconds_total", variants: &[] },
    Family { name: "process_resident_memory_bytes", variants: &[] },
    Family { name: "go_goroutines", variants: &[] },
    Family { name: "go_memstats_heap_inuse_bytes", variants: &[] },
    Family {
        name: "http_requests_total",
        variants: &[
            ("code", &["200", "404", "500"]),
            ("handler", &["/api/v1/query", "/api/v1/write", "/metrics"]),
            ("method", &["GET", "POST"]),
        ],
    },
    Family {
        name: "http_request_duration_seconds_bucket",
        variants: &[
            ("handler", &["/api/v1/query", "/api/v1/write"]),
            ("le", &["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"]),
            ("method", &["POST"]),
        ],
    },
    Family {
        name: "node_cpu_seconds_total",
        variants: &[("cpu", &["0", "1", "2", "3"]), ("mode", &["idle", "iowait", "irq", "system", "user"])],
    },
    Family { name: "container_memory_working_set_bytes", variants: &[("container", &["app", "istio-proxy"])] },
    Family { name: "kube_pod_container_status_restarts_total", variants: &[("container", &["app", "istio-proxy"])] },
];

const CLUSTERS: &[&str] = &["prod-eu-west-1", "prod-us-east-1"];
const JOBS: &[&str] = &["api-gateway", "checkout", "payments", "search", "kubernetes-pods", "node-exporter"];
const NAMESPACES: &[&str] = &["default", "shop", "payments", "search", "monitoring", "kube-system", "ingress"];

/// The series one target exposes: family name and family-specific labels.
fn target_template() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    let mut out = Vec::new();
    for family in FAMILIES {
        let combinations: usize = family.variants.iter().map(|(_, values)| values.len()).product();
        for mut c in 0..combinations {
            let mut labels = Vec::with_capacity(family.variants.len());
            for (name, values) in family.variants {
                labels.push((*name, values[c % values.len()]));
                c /= values.len();
            }
            out.push((family.name, labels));
        }
    }
    out
}

/// Series per target (the length of the per-target template).
pub fn series_per_target() -> usize {
    target_template().len()
}

/// The first `n` series, each a label set sorted by name.
pub fn generate(n: usize) -> Vec<Vec<Label>> {
    let template = target_template();
    let per_target = template.len().max(1);
    let mut out = Vec::with_capacity(n);
    let mut target_labels = Vec::new();
    for i in 0..n {
        let (target, j) = (i / per_target, i % per_target);
        if j == 0 {
            target_labels = target_labels_for(target);
        }
        let (name, extra) = &template[j];
        let mut labels = Vec::with_capacity(1 + target_labels.len() + extra.len());
        labels.push(Label { name: "__name__".into(), value: (*name).into() });
        labels.extend(target_labels.iter().cloned());
        labels.extend(extra.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }));
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        out.push(labels);
    }
    out
}

fn target_labels_for(target: usize) -> Vec<Label> {
    // Seeded per target so a series' labels depend only on its index.
    let mut rng = fastrand::Rng::with_seed(target as u64);
    let job = JOBS[target % JOBS.len()];
    let suffix: String = (0..5).map(|_| rng.lowercase()).collect();
    let pod = format!("{job}-{:08x}-{suffix}", rng.u32(..));
    // The instance is a label value shaped like a pod IP, not an address anything connects to.
    let instance = format!("10.{}.{}.{}:8080", (target >> 16) & 0xff, (target >> 8) & 0xff, target & 0xff);
    let label = |name: &str, value: String| Label { name: name.into(), value };
    vec![
        label("cluster", CLUSTERS[target % CLUSTERS.len()].into()),
        label("instance", instance),
        label("job", job.into()),
        label("namespace", NAMESPACES[target % NAMESPACES.len()].into()),
        label("pod", pod),
    ]
}

/// The value series `i` reports in scrape round `round`: counters grow at a per-series rate, so values
/// change between requests (as real ones do) without costing a random number per sample.
pub fn sample_value(i: usize, round: u64) -> f64 {
    let base = ((i as u64).wrapping_mul(7919) % 10_007) as f64;
    let rate = (i % 17) as f64 * 0.5 + 0.25;
    base + round as f64 * rate
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn series_are_unique_sorted_and_sized() {
        let series = generate(3 * series_per_target() + 7);
        let mut seen = HashSet::new();
        for labels in &series {
            assert!((6..=10).contains(&labels.len()), "{labels:?}");
            assert!(labels.windows(2).all(|w| w[0].name < w[1].name), "{labels:?}");
            assert_eq!(labels[0].name, "__name__");
            assert!(seen.insert(labels.clone()));
        }
    }

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(generate(200), generate(200));
    }
}

//! The causal rule of the design documents (002 §4.2.2, `CausalityAnomalyDetector::infer_root_cause`): take
//! the earliest anomaly, find the services its failure reaches in the dependency graph, and if every other
//! alert is on one of them it is a cascade from that root, with a confidence (0.85 there).
//!
//! Here a failure of service S reaches S's callers, directly or through others (`reach`): the services
//! that depend on S. Candidates are taken in order of their first signal, and the first whose reach covers
//! every other candidate is the root; candidates whose first signals lie within `tolerance` of that one's and
//! that also cover everything (possible only with cycles in the graph) compete on the traces' agreement.

use std::collections::HashSet;

/// A service with signals in an incident.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) service: u32,
    /// Its first signal (anomaly start, or the end of a failed or slow span that started a trace's trouble).
    pub(crate) first_ms: i64,
    pub(crate) anomalies: usize,
    /// Failed or slow traces whose trouble starts in this service.
    pub(crate) origin_traces: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// Its failure reaches every other candidate.
    Cascade,
    /// The only service with signals.
    Alone,
    /// No candidate reaches all the others; this one reaches the most.
    BestCover,
    /// The failed or slow traces start here, not where the causal rule pointed (an anomaly there, earlier,
    /// that the traces do not bear out: a false alarm, or a symptom).
    Traces,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ranked {
    pub(crate) service: u32,
    pub(crate) confidence: f64,
    pub(crate) rule: Rule,
    /// Other candidates its failure reaches, of how many.
    pub(crate) covered: usize,
    pub(crate) others: usize,
    /// Failed or slow traces starting in it, of how many such traces.
    pub(crate) origins: (usize, usize),
    /// Another candidate covered everything too, at about the same time.
    pub(crate) ambiguous: bool,
    /// A candidate it does not explain showed signals before it did (beyond the tolerance).
    pub(crate) earlier_unexplained: bool,
    /// With [`Rule::Traces`]: the service the causal rule named.
    pub(crate) overruled: Option<u32>,
}

/// Failed or slow traces needed before the traces may overrule the causal rule.
const MIN_TRACES: usize = 3;
/// ... when the causal rule's root starts at most this share of them, and another candidate at least
/// [`TRACES_MAJORITY`].
const TRACES_FEW: f64 = 0.2;
const TRACES_MAJORITY: f64 = 0.5;

/// The design documents' confidence for a cascade.
const CASCADE: f64 = 0.85;

/// Ranks `candidates`; `reach(s)` is the set of services a failure of `s` reaches. `origin_total` is the
/// number of failed or slow traces whose origin is known.
pub(crate) fn rank(
    candidates: &[Candidate],
    origin_total: usize,
    tolerance_ms: i64,
    reach: impl Fn(u32) -> HashSet<u32>,
) -> Option<Ranked> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| {
        (a.first_ms, std::cmp::Reverse(a.anomalies), a.service).cmp(&(
            b.first_ms,
            std::cmp::Reverse(b.anomalies),
            b.service,
        ))
    });
    let first = *sorted.first()?;
    let agreement = |c: &Candidate| (origin_total > 0).then(|| c.origin_traces as f64 / origin_total as f64);
    if sorted.len() == 1 {
        // Nothing to explain but itself: plausible, not proven.
        let confidence = 0.6 + agreement(first).map_or(0.0, |a| 0.3 * a);
        return Some(Ranked {
            service: first.service,
            confidence,
            rule: Rule::Alone,
            covered: 0,
            others: 0,
            origins: (first.origin_traces, origin_total),
            ambiguous: false,
            earlier_unexplained: false,
            overruled: None,
        });
    }
    let others = sorted.len() - 1;
    let covers: Vec<usize> = sorted
        .iter()
        .map(|c| {
            let r = reach(c.service);
            sorted.iter().filter(|o| o.service != c.service && r.contains(&o.service)).count()
        })
        .collect();
    let full = sorted.iter().zip(&covers).position(|(_, n)| *n == others);
    let (pick, rule, ambiguous) = match full {
        Some(i) => {
            let limit = sorted[i].first_ms.saturating_add(tolerance_ms);
            let group: Vec<usize> =
                (i..sorted.len()).filter(|&j| covers[j] == others && sorted[j].first_ms <= limit).collect();
            let best = group
                .iter()
                .copied()
                .max_by_key(|&j| (sorted[j].origin_traces, sorted[j].anomalies, std::cmp::Reverse(j)))
                .unwrap_or(i);
            (best, Rule::Cascade, group.len() > 1)
        }
        None => {
            let best = (0..sorted.len()).max_by_key(|&j| (covers[j], std::cmp::Reverse(j))).unwrap_or(0);
            (best, Rule::BestCover, false)
        }
    };
    let root = sorted[pick];
    let reach_root = reach(root.service);
    let earlier_unexplained = sorted.iter().any(|c| {
        c.service != root.service && c.first_ms < root.first_ms - tolerance_ms && !reach_root.contains(&c.service)
    });
    let a = agreement(root);
    let mut confidence = match rule {
        // 0.85, from 0.71 when no failed trace starts there to 0.99 when all do.
        Rule::Cascade => CASCADE + a.map_or(0.0, |a| 0.28 * (a - 0.5)),
        Rule::BestCover | Rule::Alone | Rule::Traces => {
            let cover = covers[pick] as f64 / others as f64;
            (CASCADE * cover * a.map_or(0.75, |a| 0.5 + 0.5 * a)).min(0.6)
        }
    };
    if ambiguous {
        confidence *= 0.8;
    }
    if earlier_unexplained {
        confidence *= 0.9;
    }
    let ranked = Ranked {
        service: root.service,
        confidence: confidence.clamp(0.05, 0.99),
        rule,
        covered: covers[pick],
        others,
        origins: (root.origin_traces, origin_total),
        ambiguous,
        earlier_unexplained,
        overruled: None,
    };
    Some(overrule_by_traces(ranked, &sorted, &covers, origin_total))
}

/// The second stage: where the failed or slow traces start. When enough of them are known, the causal
/// rule's root starts few of them and another candidate most, the traces win: an anomaly that no failing
/// request bears out is a false alarm or a symptom, whatever its time.
fn overrule_by_traces(ranked: Ranked, sorted: &[&Candidate], covers: &[usize], origin_total: usize) -> Ranked {
    if origin_total < MIN_TRACES || ranked.origins.0 as f64 > TRACES_FEW * origin_total as f64 {
        return ranked;
    }
    let Some((i, best)) = sorted.iter().enumerate().max_by_key(|(j, c)| (c.origin_traces, std::cmp::Reverse(*j)))
    else {
        return ranked;
    };
    let share = best.origin_traces as f64 / origin_total as f64;
    if share < TRACES_MAJORITY {
        return ranked;
    }
    let others = sorted.len() - 1;
    let cover = if others == 0 { 1.0 } else { covers[i] as f64 / others as f64 };
    Ranked {
        service: best.service,
        // From 0.5 (half the traces, covering nothing) to 0.9 (all of them, covering everything).
        confidence: (0.5 + 0.2 * (share - 0.5) * 2.0 + 0.2 * cover).clamp(0.05, 0.9),
        rule: Rule::Traces,
        covered: covers[i],
        others,
        origins: (best.origin_traces, origin_total),
        ambiguous: false,
        earlier_unexplained: false,
        overruled: Some(ranked.service),
    }
}

/// The reason, in words, with services by name (`overruled`: the name of the service the causal rule named).
pub(crate) fn reason(r: &Ranked, first_signal: &str, overruled: &str) -> String {
    let mut text = match r.rule {
        Rule::Traces => format!(
            "the failed or slow traces start here ({} of {}), not in {overruled}, where an earlier anomaly \
             pointed (its failure would reach {} of the {} other services)",
            r.origins.0, r.origins.1, r.covered, r.others
        ),
        Rule::Cascade => format!(
            "earliest signal ({first_signal}) whose failure reaches every other affected service ({} of {}): \
             they all depend on it in the service graph",
            r.covered, r.others
        ),
        Rule::Alone => format!("the only service with signals ({first_signal})"),
        Rule::BestCover => format!(
            "no service explains every other; this one's failure reaches the most ({} of {}), first signal \
             {first_signal}",
            r.covered, r.others
        ),
    };
    let (at, of) = r.origins;
    if of > 0 && r.rule != Rule::Traces {
        text.push_str(&format!("; {at} of {of} failed or slow traces start here"));
    }
    if r.ambiguous {
        text.push_str("; another service covers the others as well (a cycle in the graph)");
    }
    if r.earlier_unexplained {
        text.push_str("; a service it does not explain showed signals earlier");
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use super::*;

    /// frontend(1) → api(2) → db(3); api → cache(4); billing(5) alone.
    fn callers(s: u32) -> HashSet<u32> {
        let m: HashMap<u32, Vec<u32>> = HashMap::from([(2, vec![1]), (3, vec![2, 1]), (4, vec![2, 1])]);
        m.get(&s).cloned().unwrap_or_default().into_iter().collect()
    }

    fn c(service: u32, first_ms: i64, anomalies: usize, origin_traces: usize) -> Candidate {
        Candidate { service, first_ms, anomalies, origin_traces }
    }

    #[test]
    fn the_earliest_service_that_explains_all_others_is_the_root() {
        // db fails; api and frontend follow in the same window.
        let r = rank(&[c(1, 1000, 2, 0), c(2, 1000, 2, 0), c(3, 1000, 3, 10)], 10, 500, callers).unwrap();
        assert_eq!((r.service, r.rule, r.covered, r.others), (3, Rule::Cascade, 2, 2));
        assert!((r.confidence - 0.99).abs() < 1e-9, "full cascade, every failed trace starts there: {}", r.confidence);
        // The frontend's own latency metric fired a little earlier: it explains nothing, so db still wins.
        let r = rank(&[c(1, 800, 1, 0), c(2, 1000, 2, 0), c(3, 1000, 3, 0)], 0, 100, callers).unwrap();
        assert_eq!(r.service, 3);
        assert!(!r.earlier_unexplained, "the frontend depends on db: explained: {r:?}");
        assert!((r.confidence - 0.85).abs() < 1e-9, "{}", r.confidence);
        // The earliest covering one wins over a later one that covers too (api covers frontend only).
        let r = rank(&[c(1, 3000, 1, 0), c(2, 1000, 1, 0)], 0, 100, callers).unwrap();
        assert_eq!((r.service, r.rule), (2, Rule::Cascade));
        assert!(reason(&r, "latency at 00:00:01", "").contains("1 of 1"), "{}", reason(&r, "x", ""));
    }

    #[test]
    fn without_a_cascade_the_best_cover_is_named_with_less_confidence() {
        // db and billing (unconnected, and earlier): db explains api and frontend, not billing.
        let r =
            rank(&[c(1, 1000, 1, 0), c(2, 1000, 1, 0), c(3, 1000, 1, 0), c(5, 500, 1, 0)], 0, 100, callers).unwrap();
        assert_eq!((r.service, r.rule, r.covered, r.others), (3, Rule::BestCover, 2, 3));
        assert!(r.earlier_unexplained, "{r:?}");
        assert!((r.confidence - 0.85 * 2.0 / 3.0 * 0.75 * 0.9).abs() < 1e-9, "{}", r.confidence);
        assert!(reason(&r, "x", "").contains("showed signals earlier"));
        // Siblings: db and cache both under api, api anomalous too: nobody covers all.
        let r = rank(&[c(2, 1000, 1, 0), c(3, 1000, 1, 0), c(4, 1000, 1, 0)], 0, 100, callers).unwrap();
        assert_eq!(r.rule, Rule::BestCover);
        assert!(rank(&[], 0, 100, callers).is_none());
    }

    #[test]
    fn one_service_alone_and_the_traces_agreement() {
        let r = rank(&[c(3, 1000, 1, 0)], 0, 100, callers).unwrap();
        assert_eq!((r.service, r.rule), (3, Rule::Alone));
        assert!((r.confidence - 0.6).abs() < 1e-9);
        let r = rank(&[c(3, 1000, 1, 4)], 4, 100, callers).unwrap();
        assert!((r.confidence - 0.9).abs() < 1e-9);
        // A cascade root where fewer failed traces start than elsewhere: still named, less surely than 0.85.
        let r = rank(&[c(2, 1000, 1, 0), c(3, 1000, 1, 3), c(1, 1000, 1, 5)], 8, 100, callers).unwrap();
        assert_eq!((r.service, r.rule), (3, Rule::Cascade));
        assert!((r.confidence - (0.85 + 0.28 * (3.0 / 8.0 - 0.5))).abs() < 1e-9, "{}", r.confidence);
        assert!(reason(&r, "x", "").contains("3 of 8 failed or slow traces"), "{}", reason(&r, "x", ""));
    }

    #[test]
    fn the_traces_overrule_an_earlier_anomaly_they_do_not_bear_out() {
        // A false alarm on db just before the fault; the traces fail in the frontend, 9 of 10.
        let r = rank(&[c(3, 500, 1, 0), c(1, 1000, 2, 9)], 10, 100, callers).unwrap();
        assert_eq!((r.service, r.rule, r.overruled), (1, Rule::Traces, Some(3)));
        assert!((r.confidence - 0.66).abs() < 1e-9, "{}", r.confidence);
        assert!(reason(&r, "x", "db").contains("9 of 10), not in db"), "{}", reason(&r, "x", "db"));
        // Too few traces, or no clear majority elsewhere: the causal rule stands.
        assert_eq!(rank(&[c(3, 500, 1, 0), c(1, 1000, 2, 2)], 2, 100, callers).unwrap().service, 3);
        assert_eq!(rank(&[c(3, 500, 1, 0), c(1, 1000, 2, 4)], 10, 100, callers).unwrap().service, 3);
        // The causal rule's root starts a fair share itself: it stands.
        let r = rank(&[c(3, 500, 1, 3), c(1, 1000, 2, 7)], 10, 100, callers).unwrap();
        assert_eq!((r.service, r.rule), (3, Rule::Cascade));
    }

    #[test]
    fn a_cycle_makes_the_cascade_ambiguous() {
        // a(1) and b(2) call each other: each reaches the other.
        let cyc = |s: u32| -> HashSet<u32> { HashSet::from([if s == 1 { 2 } else { 1 }]) };
        let r = rank(&[c(1, 1000, 1, 1), c(2, 1050, 1, 3)], 4, 100, cyc).unwrap();
        assert_eq!((r.service, r.ambiguous), (2, true), "more failed traces start in b");
        assert!(r.confidence < 0.85);
    }
}

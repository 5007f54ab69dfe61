//! Alert states as Prometheus keeps them: a series whose condition holds is *pending*, and *firing* once it
//! has held for the rule's `for`; when it stops holding a firing series is resolved (its group decides when
//! to tell Alertmanager) and a pending one is forgotten.

use std::collections::BTreeMap;

use crate::own_series::Labels;

/// One alerting series of one rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Instance {
    /// When the condition started holding (Prometheus' `activeAt`).
    pub(crate) active_since_ms: i64,
    /// When it turned firing; `None` while pending.
    pub(crate) firing_since_ms: Option<i64>,
    pub(crate) value: f64,
}

impl Instance {
    pub(crate) fn state(&self) -> &'static str {
        if self.firing_since_ms.is_some() { "firing" } else { "pending" }
    }
}

/// One rule's alerting series for one tenant, by label set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Instances {
    pub(crate) by_labels: BTreeMap<Labels, Instance>,
}

impl Instances {
    /// Moves every series on by one evaluation: `holding` are the label sets the condition holds for now.
    pub(crate) fn advance(&mut self, holding: BTreeMap<Labels, f64>, now_ms: i64, for_ms: i64) {
        self.by_labels.retain(|labels, _| holding.contains_key(labels));
        for (labels, value) in holding {
            let i = self.by_labels.entry(labels).or_insert(Instance {
                active_since_ms: now_ms,
                firing_since_ms: None,
                value,
            });
            i.value = value;
            if i.firing_since_ms.is_none() && now_ms.saturating_sub(i.active_since_ms) >= for_ms {
                i.firing_since_ms = Some(now_ms);
            }
        }
    }

    pub(crate) fn firing(&self) -> impl Iterator<Item = (&Labels, &Instance)> {
        self.by_labels.iter().filter(|(_, i)| i.firing_since_ms.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(keys: &[(&str, f64)]) -> BTreeMap<Labels, f64> {
        keys.iter().map(|(s, v)| (Labels::from([("service".to_owned(), (*s).to_owned())]), *v)).collect()
    }

    #[test]
    fn pending_until_for_has_passed_then_firing_and_forgotten_when_it_stops() {
        let mut i = Instances::default();
        i.advance(holding(&[("api", 2.0)]), 0, 1000);
        assert_eq!(i.firing().count(), 0, "pending at first");
        i.advance(holding(&[("api", 3.0)]), 999, 1000);
        assert_eq!(i.firing().count(), 0, "still pending just before `for`");
        i.advance(holding(&[("api", 4.0), ("db", 1.0)]), 1000, 1000);
        let firing: Vec<_> = i.firing().map(|(l, x)| (l["service"].clone(), x.value, x.active_since_ms)).collect();
        assert_eq!(firing, vec![("api".to_owned(), 4.0, 0)]);
        i.advance(holding(&[("db", 1.0)]), 1500, 1000);
        assert!(i.firing().next().is_none() && i.by_labels.len() == 1, "api gone, db pending");
        i.advance(holding(&[("api", 1.0)]), 1600, 0);
        assert_eq!(i.firing().count(), 1, "for 0: firing at once; db no longer holds");
        assert_eq!(i.by_labels.len(), 1);
    }
}

//! Inhibition: a firing alert that explains others silences them. Two kinds, both in the design documents:
//! the rule file's Alertmanager-style `inhibit_rules` (e.g. `NodeDown` silences the alerts on its node), and
//! the root cause of an open incident (an alert on the root-cause service silences the alerts on the services
//! its failure reached in that incident).

use std::collections::BTreeMap;

use super::groups::{Group, SERVICE};
use super::rules::InhibitRule;
use crate::own_series::Labels;
use crate::promql::selects;

/// What an open incident says about one of its services.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Explained {
    pub(crate) incident: String,
    pub(crate) root: String,
}

/// Sets `inhibited_by` on every firing group of one tenant. `explained` maps a service to the open incident
/// naming another service as its root cause (`None` turns root-cause inhibition off).
pub(crate) fn apply(groups: &mut [&mut Group], rules: &[InhibitRule], explained: Option<&BTreeMap<String, Explained>>) {
    let service_label = SERVICE;
    // Sources are judged before anything is silenced: an inhibited alert still inhibits, as in Alertmanager.
    let firing: Vec<(Labels, String)> =
        groups.iter().filter(|g| g.is_firing()).map(|g| (g.labels.clone(), g.rule.clone())).collect();
    for g in groups.iter_mut() {
        g.inhibited_by = None;
        if !g.is_firing() {
            continue;
        }
        for (i, rule) in rules.iter().enumerate() {
            if !selects(None, &rule.target, &g.labels) {
                continue;
            }
            let source = firing.iter().find(|(labels, _)| {
                *labels != g.labels
                    && selects(None, &rule.source, labels)
                    && rule.equal.iter().all(|l| labels.get(l) == g.labels.get(l))
            });
            if let Some((_, name)) = source {
                g.inhibited_by = Some(format!("{name} (inhibit_rules[{i}])"));
                break;
            }
        }
        if g.inhibited_by.is_some() {
            continue;
        }
        let Some(service) = g.labels.get(service_label) else { continue };
        let Some(e) = explained.and_then(|m| m.get(service)) else { continue };
        let root_alert = firing.iter().find(|(labels, _)| labels.get(service_label) == Some(&e.root));
        if let Some((_, name)) = root_alert {
            g.inhibited_by = Some(format!("{name} on {}, root cause of incident {}", e.root, e.incident));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::alerting::groups::Sent;
    use crate::alerting::rules;

    fn group(rule: &str, labels: &[(&str, &str)]) -> Group {
        let mut l: Labels = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        l.insert("alertname".into(), rule.into());
        Group {
            rule: rule.into(),
            labels: l,
            members: BTreeMap::new(),
            value: 1.0,
            starts_at_ms: 0,
            last_member_ms: 0,
            resolved_at_ms: None,
            inhibited_by: None,
            sent: Sent::default(),
        }
    }

    #[test]
    fn node_down_silences_the_alerts_on_its_node_only() {
        let set = rules::parse(
            "inhibit_rules:\n- source_matchers: ['alertname=\"NodeDown\"']\n  target_matchers: ['alertname!=\"NodeDown\"']\n  equal: [node]\n",
            &[],
        )
        .unwrap();
        let mut gs = [
            group("NodeDown", &[("node", "n1")]),
            group("HighLatency", &[("node", "n1"), ("service", "api")]),
            group("HighLatency", &[("node", "n2"), ("service", "db")]),
        ];
        let mut refs: Vec<&mut Group> = gs.iter_mut().collect();
        apply(&mut refs, &set.inhibit, None);
        assert_eq!(gs[0].inhibited_by, None);
        assert_eq!(gs[1].inhibited_by.as_deref(), Some("NodeDown (inhibit_rules[0])"));
        assert_eq!(gs[2].inhibited_by, None, "another node");
        gs[0].resolved_at_ms = Some(5);
        let mut refs: Vec<&mut Group> = gs.iter_mut().collect();
        apply(&mut refs, &set.inhibit, None);
        assert_eq!(gs[1].inhibited_by, None, "a resolved source silences nothing");
    }

    #[test]
    fn the_root_cause_alert_silences_the_services_its_incident_explains() {
        let explained = BTreeMap::from([
            ("frontend".to_owned(), Explained { incident: "inc-1".into(), root: "db".into() }),
            ("checkout".to_owned(), Explained { incident: "inc-1".into(), root: "db".into() }),
        ]);
        let mut gs = [
            group("A", &[("service", "db")]),
            group("A", &[("service", "frontend")]),
            group("B", &[("service", "search")]),
        ];
        let mut refs: Vec<&mut Group> = gs.iter_mut().collect();
        apply(&mut refs, &[], Some(&explained));
        assert_eq!(gs[0].inhibited_by, None, "the root itself");
        assert_eq!(gs[1].inhibited_by.as_deref(), Some("A on db, root cause of incident inc-1"));
        assert_eq!(gs[2].inhibited_by, None, "not in the incident");
        // Without an alert on the root, nothing explains the symptom: it is sent.
        let mut only = [group("A", &[("service", "checkout")])];
        let mut refs: Vec<&mut Group> = only.iter_mut().collect();
        apply(&mut refs, &[], Some(&explained));
        assert_eq!(only[0].inhibited_by, None);
    }
}

//! Grouping: a rule's firing series with equal values of its `group_by` labels are one alert to
//! Alertmanager, firing from its first series' `activeAt` until none has fired for `group_window`.

use std::collections::BTreeMap;

use super::inhibit::Explained;
use super::rules::Rule;
use super::state::Instances;
use crate::own_series::Labels;

/// An alert as Alertmanager sees it: one group of one rule and tenant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    pub(crate) rule: String,
    /// `alertname`, the rule's labels and the group's `group_by` values: the alert's identity.
    pub(crate) labels: Labels,
    /// The firing series, with their values (the last ones while the group waits out `group_window`; none
    /// once resolved).
    pub(crate) members: BTreeMap<Labels, f64>,
    pub(crate) value: f64,
    pub(crate) starts_at_ms: i64,
    /// When a member last fired.
    pub(crate) last_member_ms: i64,
    pub(crate) resolved_at_ms: Option<i64>,
    /// Why it is silenced now, in words; `None` when it is not.
    pub(crate) inhibited_by: Option<String>,
    pub(crate) sent: Sent,
}

/// What Alertmanager was last told about a group.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sent {
    pub(crate) at_ms: Option<i64>,
    /// Whether the last message said firing (`false`: resolved, or never sent).
    pub(crate) firing: bool,
    /// The annotations last sent: a change (e.g. the incident's root cause becoming known) is sent at once.
    pub(crate) annotations: BTreeMap<String, String>,
}

impl Group {
    pub(crate) fn is_firing(&self) -> bool {
        self.resolved_at_ms.is_none()
    }

    pub(crate) fn state(&self) -> &'static str {
        match (self.is_firing(), &self.inhibited_by) {
            (false, _) => "resolved",
            (true, Some(_)) => "inhibited",
            (true, None) => "firing",
        }
    }
}

/// The label every alert names its service with.
pub(crate) const SERVICE: &str = "service";

/// How a series' service is read for grouping.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Services<'a> {
    /// The labels naming it, first present wins (`alerting.service_labels`).
    pub(crate) labels: &'a [String],
    /// Services an open incident explains, with its root cause: their series group under the root-cause
    /// service (`alerting.group_by_incident`), so one fault is one alert whichever services show it.
    pub(crate) root_of: Option<&'a BTreeMap<String, Explained>>,
}

/// The alert labels of a firing series of `rule`: everything when the rule does not group, else the
/// `group_by` labels the series has (`service` read through the service labels, first present, and moved
/// to its incident's root cause); then the rule's labels, then `alertname`.
pub(crate) fn group_labels(rule: &Rule, series: &Labels, services: Services<'_>) -> Labels {
    let mut labels: Labels = match &rule.group_by {
        None => series.clone(),
        Some(by) => by
            .iter()
            .filter_map(|l| {
                let value = match l.as_str() {
                    SERVICE => services
                        .labels
                        .iter()
                        .find_map(|s| series.get(s))
                        .or_else(|| series.get(l))
                        .map(|s| services.root_of.and_then(|r| r.get(s)).map_or(s, |e| &e.root)),
                    _ => series.get(l),
                };
                value.map(|v| (l.clone(), v.clone()))
            })
            .collect(),
    };
    for (k, v) in &rule.labels {
        labels.insert(k.clone(), v.clone());
    }
    labels.insert("alertname".into(), rule.name.clone());
    labels
}

/// Brings one rule's groups of one tenant up to date with its firing series at `now_ms`; groups whose
/// resolution is older than `retention_ms` are dropped.
pub(crate) fn update(
    groups: &mut BTreeMap<Labels, Group>,
    rule: &Rule,
    instances: &Instances,
    services: Services<'_>,
    now_ms: i64,
    (window_ms, retention_ms): (i64, i64),
) {
    let mut firing: BTreeMap<Labels, (BTreeMap<Labels, f64>, i64)> = BTreeMap::new();
    for (series, instance) in instances.firing() {
        let (members, since) =
            firing.entry(group_labels(rule, series, services)).or_insert_with(|| (BTreeMap::new(), i64::MAX));
        members.insert(series.clone(), instance.value);
        *since = (*since).min(instance.active_since_ms);
    }
    for (labels, (members, since)) in firing {
        let value = members.values().copied().fold(f64::NEG_INFINITY, f64::max);
        let g = groups.entry(labels.clone()).or_insert_with(|| Group {
            rule: rule.name.clone(),
            labels,
            members: BTreeMap::new(),
            value,
            starts_at_ms: since,
            last_member_ms: now_ms,
            resolved_at_ms: None,
            inhibited_by: None,
            sent: Sent::default(),
        });
        if g.resolved_at_ms.take().is_some() {
            // Fires again after resolving: a new alert for Alertmanager (a new startsAt).
            g.starts_at_ms = since;
        }
        g.members = members;
        g.value = value;
        g.last_member_ms = now_ms;
    }
    groups.retain(|_, g| {
        // Inside the window the last members stay (the annotations do not change while nothing does).
        if g.last_member_ms < now_ms
            && g.resolved_at_ms.is_none()
            && now_ms.saturating_sub(g.last_member_ms) >= window_ms
        {
            g.members.clear();
            g.resolved_at_ms = Some(g.last_member_ms);
        }
        g.resolved_at_ms.is_none_or(|r| now_ms.saturating_sub(r) < retention_ms)
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::alerting::rules;

    const SL: Services<'static> = Services { labels: &[], root_of: None };

    fn rule(group_by: &str) -> Rule {
        let text =
            format!("rules:\n- alert: A\n  anomaly: {{match: '{{job=\"x\"}}'}}\n  labels: {{team: t}}\n{group_by}");
        rules::parse(&text, &["service".to_owned()]).unwrap().rules.remove(0)
    }

    fn series(service: &str, pod: &str) -> Labels {
        Labels::from([("service".to_owned(), service.to_owned()), ("pod".to_owned(), pod.to_owned())])
    }

    fn instances(list: &[(Labels, f64)], since: i64) -> Instances {
        let mut i = Instances::default();
        i.advance(list.iter().cloned().collect(), since, 0);
        i
    }

    #[test]
    fn series_of_one_service_are_one_alert_until_the_window_passes_and_it_fires_anew_later() {
        let r = rule("");
        let mut groups = BTreeMap::new();
        let two = instances(&[(series("api", "a"), 2.0), (series("api", "b"), 5.0), (series("db", "c"), 1.5)], 100);
        update(&mut groups, &r, &two, SL, 100, (1000, 5000));
        assert_eq!(groups.len(), 2, "api and db");
        let api = groups.values().find(|g| g.labels["service"] == "api").unwrap();
        assert_eq!((api.members.len(), api.value, api.starts_at_ms), (2, 5.0, 100));
        assert_eq!(
            api.labels,
            Labels::from([
                ("alertname".into(), "A".into()),
                ("service".into(), "api".into()),
                ("team".into(), "t".into())
            ])
        );
        let none = Instances::default();
        update(&mut groups, &r, &none, SL, 900, (1000, 5000));
        assert!(groups.values().all(Group::is_firing), "inside the window: still firing");
        update(&mut groups, &r, &none, SL, 1100, (1000, 5000));
        assert!(groups.values().all(|g| g.resolved_at_ms == Some(100)), "resolved at the last member's time");
        update(&mut groups, &r, &instances(&[(series("api", "a"), 3.0)], 2000), SL, 2000, (1000, 5000));
        let api = groups.values().find(|g| g.labels["service"] == "api").unwrap();
        assert!(api.is_firing() && api.starts_at_ms == 2000, "a new episode");
        update(&mut groups, &r, &none, SL, 5200, (1000, 5000));
        assert_eq!(groups.len(), 1, "db dropped after the retention; api resolved at 2000 kept");
    }

    #[test]
    fn the_service_of_a_series_is_read_through_the_service_labels() {
        let r = rule("");
        let labels = ["service".to_owned(), "job".to_owned()];
        let plain = Services { labels: &labels, root_of: None };
        let job = Labels::from([("job".to_owned(), "payments".to_owned())]);
        assert_eq!(group_labels(&r, &job, plain).get("service").map(String::as_str), Some("payments"));
        assert_eq!(group_labels(&r, &series("api", "a"), plain)["service"], "api", "service wins over job");
        let roots = BTreeMap::from([("api".to_owned(), Explained { incident: "i".into(), root: "db".into() })]);
        let incident = Services { labels: &labels, root_of: Some(&roots) };
        assert_eq!(group_labels(&r, &series("api", "a"), incident)["service"], "db", "grouped under its root cause");
        assert_eq!(group_labels(&r, &job, incident)["service"], "payments", "not in the incident");
        assert!(!group_labels(&r, &job, SL).contains_key("service"), "without service_labels only `service` counts");
    }

    #[test]
    fn no_grouping_keeps_every_series_apart() {
        let r = rule("  group_by: ['...']\n");
        let mut groups = BTreeMap::new();
        update(&mut groups, &r, &instances(&[(series("api", "a"), 2.0), (series("api", "b"), 5.0)], 0), SL, 0, (0, 0));
        assert_eq!(groups.len(), 2);
        assert!(groups.keys().all(|l| l.contains_key("pod") && l["alertname"] == "A"));
    }
}

//! What Alertmanager is told, and when: a firing alert at once and every `resend_delay` (with `endsAt` far
//! enough ahead that Alertmanager keeps it between sends, as Prometheus does), at once again when its
//! annotations change; a resolved or newly silenced alert with `endsAt` at its end, re-sent as resolved
//! for as long as it is kept.

use std::collections::BTreeMap;

use vigil_proto::alertmanager::PostableAlert;

use super::groups::Group;
use crate::params::rfc3339;

/// What an incident adds to the annotations of an alert on one of its services.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IncidentNote {
    pub(crate) id: String,
    pub(crate) root_cause: Option<String>,
    pub(crate) trace_ids: Vec<String>,
}

/// Most member series and trace ids written into annotations.
const MAX_LISTED: usize = 5;

/// Timing of sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) now_ms: i64,
    pub(crate) resend_ms: i64,
    /// How far ahead a firing alert's `endsAt` is put.
    pub(crate) valid_for_ms: i64,
}

/// The annotations of a group: the rule's, with `{{ $labels.NAME }}` and `{{ $value }}` filled in, then
/// Vigil's own (member series, incident, root cause, trace ids, a link to the incident).
pub(crate) fn annotations(
    templates: &BTreeMap<String, String>,
    g: &Group,
    incident: Option<&IncidentNote>,
    external_url: &str,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = templates.iter().map(|(k, t)| (k.clone(), fill(t, g))).collect();
    if !g.members.is_empty() {
        out.insert("series_count".into(), g.members.len().to_string());
        let listed: Vec<String> = g.members.keys().take(MAX_LISTED).map(labels_text).collect();
        out.insert("series".into(), listed.join(" "));
    }
    if let Some(n) = incident {
        out.insert("incident".into(), n.id.clone());
        out.insert("incident_url".into(), format!("{}/api/v1/incidents/{}", external_url.trim_end_matches('/'), n.id));
        if let Some(r) = &n.root_cause {
            out.insert("root_cause".into(), r.clone());
        }
        if !n.trace_ids.is_empty() {
            let ids: Vec<&str> = n.trace_ids.iter().take(MAX_LISTED).map(String::as_str).collect();
            out.insert("trace_ids".into(), ids.join(","));
        }
    }
    out
}

fn fill(template: &str, g: &Group) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = rest[open + 2..open + close].trim();
        if inner == "$value" {
            out.push_str(&format_value(g.value));
        } else if let Some(name) = inner.strip_prefix("$labels.") {
            out.push_str(g.labels.get(name).map_or("", String::as_str));
        } else {
            out.push_str(&rest[open..open + close + 2]);
        }
        rest = &rest[open + close + 2..];
    }
    out.push_str(rest);
    out
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.4}") }
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// The message for `g` now, if one is due: `Some((alert, firing))`.
pub(crate) fn due(
    g: &Group,
    annotations: &BTreeMap<String, String>,
    t: Timing,
    generator_url: &str,
) -> Option<(PostableAlert, bool)> {
    let alert = |ends_at_ms: i64| PostableAlert {
        labels: g.labels.clone(),
        annotations: annotations.clone(),
        starts_at: Some(rfc3339(g.starts_at_ms)),
        ends_at: Some(rfc3339(ends_at_ms)),
        generator_url: Some(generator_url.to_owned()),
    };
    let resend_due = g.sent.at_ms.is_none_or(|at| t.now_ms.saturating_sub(at) >= t.resend_ms);
    match (g.is_firing(), &g.inhibited_by) {
        (true, None) => {
            let due = !g.sent.firing || resend_due || g.sent.annotations != *annotations;
            due.then(|| (alert(t.now_ms.saturating_add(t.valid_for_ms)), true))
        }
        // Silenced while Alertmanager holds it firing: end it there now; otherwise say nothing.
        (true, Some(_)) => g.sent.firing.then(|| (alert(t.now_ms), false)),
        (false, _) => {
            let ever_sent = g.sent.at_ms.is_some();
            let due = g.sent.firing || (ever_sent && resend_due && g.inhibited_by.is_none());
            let ends = g.resolved_at_ms.unwrap_or(t.now_ms).max(g.starts_at_ms);
            due.then(|| (alert(ends), false))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::alerting::groups::Sent;

    fn group() -> Group {
        Group {
            rule: "A".into(),
            labels: BTreeMap::from([("alertname".into(), "A".into()), ("service".into(), "api".into())]),
            members: BTreeMap::from([(BTreeMap::from([("pod".into(), "p1".into())]), 2.5)]),
            value: 2.5,
            starts_at_ms: 1_000,
            last_member_ms: 1_000,
            resolved_at_ms: None,
            inhibited_by: None,
            sent: Sent::default(),
        }
    }

    #[test]
    fn templates_and_incident_notes_fill_the_annotations() {
        let templates = BTreeMap::from([("summary".into(), "{{ $labels.service }} at {{$value}} {{ $x }}".into())]);
        let note =
            IncidentNote { id: "inc-7".into(), root_cause: Some("db (0.85)".into()), trace_ids: vec!["ab".into()] };
        let a = annotations(&templates, &group(), Some(&note), "http://vigil:4318/");
        assert_eq!(a["summary"], "api at 2.5000 {{ $x }}");
        assert_eq!(a["incident_url"], "http://vigil:4318/api/v1/incidents/inc-7");
        assert_eq!((a["root_cause"].as_str(), a["trace_ids"].as_str()), ("db (0.85)", "ab"));
        assert_eq!((a["series_count"].as_str(), a["series"].as_str()), ("1", "{pod=\"p1\"}"));
    }

    #[test]
    fn firing_is_sent_then_resent_after_the_delay_and_resolved_once_with_its_end() {
        let t = |now_ms| Timing { now_ms, resend_ms: 60_000, valid_for_ms: 240_000 };
        let mut g = group();
        let a = BTreeMap::new();
        let (first, firing) = due(&g, &a, t(2_000), "u").unwrap();
        assert!(firing);
        assert_eq!(first.ends_at.as_deref(), Some("1970-01-01T00:04:02.000Z"));
        g.sent = Sent { at_ms: Some(2_000), firing: true, annotations: a.clone() };
        assert!(due(&g, &a, t(30_000), "u").is_none(), "not again before the delay");
        assert!(due(&g, &a, t(62_000), "u").is_some(), "re-sent after it");
        let changed = BTreeMap::from([("root_cause".to_owned(), "db".to_owned())]);
        assert!(due(&g, &changed, t(30_000), "u").is_some(), "a new annotation goes at once");
        g.resolved_at_ms = Some(40_000);
        let (resolved, firing) = due(&g, &a, t(41_000), "u").unwrap();
        assert!(!firing && resolved.ends_at.as_deref() == Some("1970-01-01T00:00:40.000Z"));
        g.sent = Sent { at_ms: Some(41_000), firing: false, annotations: a.clone() };
        assert!(due(&g, &a, t(50_000), "u").is_none());
        assert!(due(&g, &a, t(101_000), "u").is_some(), "resolved is re-sent after the delay too");
        let mut silenced = group();
        silenced.inhibited_by = Some("x".into());
        assert!(due(&silenced, &a, t(2_000), "u").is_none(), "a silenced alert never sent stays unsent");
        silenced.sent = Sent { at_ms: Some(1_500), firing: true, annotations: a.clone() };
        let (ended, firing) = due(&silenced, &a, t(2_000), "u").unwrap();
        assert!(!firing && ended.ends_at.as_deref() == Some("1970-01-01T00:00:02.000Z"), "ended now");
    }
}

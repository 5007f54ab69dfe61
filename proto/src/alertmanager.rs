//! Alertmanager's alert API v2 (`POST /api/v2/alerts`, JSON array of `postableAlert`).
//!
//! Source: prometheus/alertmanager `api/v2/openapi.yaml` (`postableAlerts`, `postableAlert`, `alert`). Times
//! are RFC 3339 strings. Alertmanager treats an alert whose `endsAt` has passed as resolved, and one without
//! `endsAt` as firing until its `resolve_timeout`; senders re-post firing alerts to keep them alive.

use std::collections::BTreeMap;

/// One `postableAlert`. Field names are the API's (camelCase); empty optionals are left out, as Prometheus
/// leaves them out.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    /// The alert's identity: Alertmanager deduplicates, groups and inhibits on these. Must include
    /// `alertname` by convention.
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    /// RFC 3339; in the past for a resolved alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(default, rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// Alerts on their way from the rule evaluator to the Alertmanager forwarder (through a channel the binary
/// wires, then the alerts write-ahead log): one tenant's alerts of one evaluation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertBatch {
    pub tenant: String,
    pub alerts: Vec<PostableAlert>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn serialises_with_the_api_field_names_and_leaves_out_empty_ones() {
        let alert = PostableAlert {
            labels: BTreeMap::from([("alertname".into(), "HighLatency".into())]),
            starts_at: Some("2026-11-22T10:00:00Z".into()),
            generator_url: Some("http://vigil/x".into()),
            ..PostableAlert::default()
        };
        let json = serde_json::to_string(&alert).unwrap();
        assert_eq!(
            json,
            r#"{"labels":{"alertname":"HighLatency"},"startsAt":"2026-11-22T10:00:00Z","generatorURL":"http://vigil/x"}"#
        );
        assert_eq!(serde_json::from_str::<PostableAlert>(&json).unwrap(), alert);
    }
}

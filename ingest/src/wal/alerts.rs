//! Alerts records: one tenant's alerts of one rule evaluation ([`AlertBatch`]) as Alertmanager's JSON
//! `postableAlert` objects, each followed by a comma: `{…},{…},`. Records of one tenant then join by plain
//! concatenation, as protobuf records do, and the Alertmanager forwarder sends `[` + the joined bytes without
//! their last comma + `]`, the JSON array `POST /api/v2/alerts` takes: nothing is decoded on the way out.
//!
//! Here, beside the other logs' record formats, rather than in the forwarder: every record a forwarder
//! reads is written in its backend's form by whoever logs it (receivers, or for alerts the binary's alert
//! log task), and `wal/` is the one place that says what each log's records hold.

use vigil_proto::alertmanager::AlertBatch;

use super::entry::{Entry, EntryError};

/// The record body for `batch`; counts: alerts, 0, 0. A batch without alerts makes a record without payload
/// (nothing to send).
pub fn record(batch: &AlertBatch) -> Result<Vec<u8>, EntryError> {
    let mut json = Vec::with_capacity(256 * batch.alerts.len());
    for alert in &batch.alerts {
        // Maps of strings and optional strings: serialising into memory cannot fail.
        serde_json::to_writer(&mut json, alert).map_err(|_| EntryError("an alert did not serialise"))?;
        json.push(b',');
    }
    Entry::encode(&batch.tenant, [u32::try_from(batch.alerts.len()).unwrap_or(u32::MAX), 0, 0], &json)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use bytes::Bytes;
    use vigil_proto::alertmanager::PostableAlert;

    use super::*;

    fn alert(name: &str) -> PostableAlert {
        PostableAlert {
            labels: BTreeMap::from([("alertname".into(), name.into())]),
            annotations: BTreeMap::from([("summary".into(), "a \"quoted\", comma".into())]),
            starts_at: Some("2026-11-22T10:00:00Z".into()),
            ..PostableAlert::default()
        }
    }

    #[test]
    fn records_join_into_one_json_array() {
        let a = AlertBatch { tenant: "team-a".into(), alerts: vec![alert("A"), alert("B")] };
        let b = AlertBatch { tenant: "team-a".into(), alerts: vec![alert("C")] };
        let mut joined = Vec::new();
        for batch in [&a, &b] {
            let entry = Entry::decode(&Bytes::from(record(batch).unwrap())).unwrap();
            assert_eq!(entry.tenant, "team-a");
            assert_eq!(entry.counts[0] as usize, batch.alerts.len());
            joined.extend_from_slice(&entry.payload);
        }
        let body = [b"[".as_slice(), &joined[..joined.len() - 1], b"]"].concat();
        let back: Vec<PostableAlert> = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, vec![alert("A"), alert("B"), alert("C")]);

        let empty = Entry::decode(&Bytes::from(record(&AlertBatch::default()).unwrap())).unwrap();
        assert_eq!((empty.counts, empty.payload.len()), ([0, 0, 0], 0));
    }
}

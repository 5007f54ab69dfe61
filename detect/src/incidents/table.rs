//! The incidents table: resolved incidents as Arrow record batches (chunks of 256, kept as the events table
//! keeps its rows: [`Chunks`]), bounded by `correlate.incidents.max_incidents` and `max_age`, plus one batch
//! built at read time from the open ones and the resolved rows not yet chunked. Nested parts (services, evidence, timeline) are JSON text
//! columns, as the events table keeps labels.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};

use super::{Incident, RootCause, Status};
use crate::events::Severity;
use crate::events::chunks::{Chunks, Row};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("tenant", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("severity", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("opened_at", ts(), false),
        Field::new("resolved_at", ts(), true),
        Field::new("started_at", ts(), false),
        Field::new("last_signal_at", ts(), false),
        Field::new("root_service", DataType::Utf8, true),
        Field::new("root_confidence", DataType::Float64, true),
        Field::new("root_reason", DataType::Utf8, true),
        Field::new("services", DataType::Utf8, false),
        Field::new("evidence", DataType::Utf8, false),
        Field::new("timeline", DataType::Utf8, false),
    ]))
});

/// The incidents table's schema: id, tenant, title, severity (P0–P3), status (open/resolved), opened_at,
/// resolved_at, started_at, last_signal_at, root_service, root_confidence, root_reason, and services,
/// evidence and timeline as JSON.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

mod col {
    pub(super) const ID: usize = 0;
    pub(super) const TENANT: usize = 1;
    pub(super) const TITLE: usize = 2;
    pub(super) const SEVERITY: usize = 3;
    pub(super) const STATUS: usize = 4;
    pub(super) const OPENED: usize = 5;
    pub(super) const RESOLVED: usize = 6;
    pub(super) const STARTED: usize = 7;
    pub(super) const LAST: usize = 8;
    pub(super) const ROOT: usize = 9;
    pub(super) const CONFIDENCE: usize = 10;
    pub(super) const REASON: usize = 11;
    pub(super) const SERVICES: usize = 12;
    pub(super) const EVIDENCE: usize = 13;
    pub(super) const TIMELINE: usize = 14;
}

/// Resolved incidents, all tenants, oldest first.
pub(crate) type IncidentLog = Chunks<Incident>;

impl Row for Incident {
    const TABLE: &'static str = "incidents";
    const CHUNK_ROWS: usize = 256;
    const AGE_COLUMN: usize = col::RESOLVED;

    fn to_batch<'a>(rows: impl Iterator<Item = &'a Self> + Clone) -> Result<RecordBatch, ArrowError> {
        to_batch(rows)
    }

    fn aged_from(&self) -> Option<i64> {
        self.resolved_at_ms
    }
}

fn to_batch<'a>(incidents: impl Iterator<Item = &'a Incident> + Clone) -> Result<RecordBatch, ArrowError> {
    let n = incidents.clone().count();
    let mut s: [StringBuilder; 10] = std::array::from_fn(|_| StringBuilder::with_capacity(n, n * 32));
    let mut t: [TimestampMillisecondBuilder; 4] =
        std::array::from_fn(|_| TimestampMillisecondBuilder::with_capacity(n));
    let mut confidence = Float64Builder::with_capacity(n);
    for i in incidents {
        s[0].append_value(&i.id);
        s[1].append_value(&i.tenant);
        s[2].append_value(&i.title);
        s[3].append_value(i.severity.as_str());
        s[4].append_value(i.status.as_str());
        t[0].append_value(i.opened_at_ms);
        t[1].append_option(i.resolved_at_ms);
        t[2].append_value(i.started_at_ms);
        t[3].append_value(i.last_signal_ms);
        s[5].append_option(i.root_cause.as_ref().map(|r| r.service.as_str()));
        confidence.append_option(i.root_cause.as_ref().map(|r| r.confidence));
        s[6].append_option(i.root_cause.as_ref().map(|r| r.reason.as_str()));
        s[7].append_value(serde_json::to_string(&i.services).unwrap_or_else(|_| "[]".into()));
        s[8].append_value(i.evidence.to_string());
        s[9].append_value(i.timeline.to_string());
    }
    let [id, tenant, title, severity, status, root, reason, services, evidence, timeline] = &mut s;
    let [opened, resolved, started, last] = &mut t;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(tenant.finish()),
        Arc::new(title.finish()),
        Arc::new(severity.finish()),
        Arc::new(status.finish()),
        Arc::new(opened.finish()),
        Arc::new(resolved.finish()),
        Arc::new(started.finish()),
        Arc::new(last.finish()),
        Arc::new(root.finish()),
        Arc::new(confidence.finish()),
        Arc::new(reason.finish()),
        Arc::new(services.finish()),
        Arc::new(evidence.finish()),
        Arc::new(timeline.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// What selects an incident: its plain columns, read before its JSON parts are parsed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Head<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) id: &'a str,
    pub(crate) status: Status,
    pub(crate) opened_at_ms: i64,
    pub(crate) resolved_at_ms: Option<i64>,
    pub(crate) started_at_ms: i64,
    pub(crate) last_signal_ms: i64,
}

/// The incidents of `batches` for which `keep` holds, as rows.
pub(crate) fn read(batches: &[RecordBatch], keep: impl Fn(&Head<'_>) -> bool) -> Vec<Incident> {
    let mut out = Vec::new();
    for b in batches {
        read_batch(b, &keep, &mut out);
    }
    out
}

fn read_batch(b: &RecordBatch, keep: &impl Fn(&Head<'_>) -> bool, out: &mut Vec<Incident>) -> Option<()> {
    let s = |i: usize| b.column(i).as_string_opt::<i32>();
    let t = |i: usize| b.column(i).as_primitive_opt::<TimestampMillisecondType>();
    let (id, tenant, title, severity, status) =
        (s(col::ID)?, s(col::TENANT)?, s(col::TITLE)?, s(col::SEVERITY)?, s(col::STATUS)?);
    let (opened, resolved, started, last) = (t(col::OPENED)?, t(col::RESOLVED)?, t(col::STARTED)?, t(col::LAST)?);
    let (root, reason) = (s(col::ROOT)?, s(col::REASON)?);
    let confidence = b.column(col::CONFIDENCE).as_primitive_opt::<Float64Type>()?;
    let (services, evidence, timeline) = (s(col::SERVICES)?, s(col::EVIDENCE)?, s(col::TIMELINE)?);
    for i in 0..b.num_rows() {
        let head = Head {
            tenant: tenant.value(i),
            id: id.value(i),
            status: Status::parse(status.value(i)).unwrap_or(Status::Open),
            opened_at_ms: opened.value(i),
            resolved_at_ms: resolved.is_valid(i).then(|| resolved.value(i)),
            started_at_ms: started.value(i),
            last_signal_ms: last.value(i),
        };
        if !keep(&head) {
            continue;
        }
        out.push(Incident {
            id: head.id.to_owned(),
            tenant: head.tenant.to_owned(),
            title: title.value(i).to_owned(),
            severity: Severity::parse(severity.value(i)).unwrap_or(Severity::P3),
            status: head.status,
            opened_at_ms: head.opened_at_ms,
            resolved_at_ms: head.resolved_at_ms,
            started_at_ms: head.started_at_ms,
            last_signal_ms: head.last_signal_ms,
            root_cause: root.is_valid(i).then(|| RootCause {
                service: root.value(i).to_owned(),
                confidence: if confidence.is_valid(i) { confidence.value(i) } else { 0.0 },
                reason: if reason.is_valid(i) { reason.value(i).to_owned() } else { String::new() },
            }),
            services: serde_json::from_str(services.value(i)).unwrap_or_default(),
            evidence: serde_json::from_str(evidence.value(i)).unwrap_or_default(),
            timeline: serde_json::from_str(timeline.value(i)).unwrap_or_default(),
        });
    }
    Some(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn incident(n: usize, resolved: Option<i64>) -> Incident {
        Incident {
            id: format!("inc{n}"),
            tenant: if n.is_multiple_of(2) { "a".into() } else { "b".into() },
            title: "db: error ratio up".into(),
            severity: Severity::P1,
            status: if resolved.is_some() { Status::Resolved } else { Status::Open },
            opened_at_ms: 1000 + n as i64,
            resolved_at_ms: resolved,
            started_at_ms: 900,
            last_signal_ms: 1100,
            root_cause: (!n.is_multiple_of(3)).then(|| RootCause {
                service: "db".into(),
                confidence: 0.85,
                reason: "r".into(),
            }),
            services: vec!["api".into(), "db".into()],
            evidence: serde_json::json!({"trace_ids": ["ab"]}),
            timeline: serde_json::json!([{"kind": "opened"}]),
        }
    }

    #[test]
    fn incidents_round_trip_through_the_table() {
        let mut log = IncidentLog::new(1000, i64::MAX);
        for n in 0..300 {
            log.push(incident(n, Some(5000)));
        }
        let open = [incident(300, None)];
        let batches = log.snapshot(&open);
        assert_eq!(batches.len(), 2, "one chunk of 256, then the rest with the open one");
        assert!(batches.iter().all(|b| b.schema() == schema()));
        let all = read(&batches, |_| true);
        assert_eq!(all.len(), 301);
        for (n, got) in all.iter().enumerate() {
            let want = incident(n, (n < 300).then_some(5000));
            assert_eq!(got, &want);
        }
        let b_only = read(&batches, |h| h.tenant == "b");
        assert_eq!(b_only.len(), 150);
    }

    #[test]
    fn retention_by_count_and_age() {
        let mut log = IncidentLog::new(100, 1000);
        for n in 0..600 {
            log.push(incident(n, Some(n as i64 * 10)));
            log.retain(n as i64 * 10);
        }
        assert_eq!(log.len(), 100);
        let ids: Vec<String> = read(&log.snapshot(&[]), |_| true).into_iter().map(|i| i.id).collect();
        assert_eq!(ids.first().map(String::as_str), Some("inc500"));
        // Much later, everything has aged out.
        log.retain(1_000_000);
        assert_eq!(log.len(), 0);
    }
}

//! OTLP log records → log rows.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use serde_json::{Map, Value};

use crate::buffer::Staged;
use crate::buffer::logs::{LogRow, LogsShardRows};
use crate::loki::labels;
use crate::otlp::any_value::value_json;

/// What was staged, and what was refused with why (for `partial_success`).
#[derive(Debug, Default)]
pub(crate) struct Converted {
    pub(crate) records: u64,
    pub(crate) rejected: u64,
    pub(crate) problems: Vec<String>,
}

/// Loki's label for a missing `service.name` (Loki's OTLP ingestion does the same).
const UNKNOWN_SERVICE: &str = "unknown_service";

/// Stages every record with valid ids; a record whose trace or span id has the wrong length is refused
/// alone.
pub(crate) fn convert(
    request: &ExportLogsServiceRequest,
    tenant: &str,
    stream_label_attributes: &[String],
    now_ns: i64,
    staged: &mut Staged<LogsShardRows>,
) -> Converted {
    let mut out = Converted::default();
    for rl in &request.resource_logs {
        let resource_attrs: &[KeyValue] = rl.resource.as_ref().map_or(&[], |r| &r.attributes);
        let mut stream = Vec::new();
        let mut rest = Map::new();
        for kv in resource_attrs {
            if stream_label_attributes.contains(&kv.key) {
                let v = kv.value.as_ref().map(text).unwrap_or_default();
                if !v.is_empty() {
                    stream.push((labels::sanitize_name(&kv.key), v));
                }
            } else {
                rest.insert(kv.key.clone(), value_json(kv.value.as_ref()));
            }
        }
        let service =
            resource_attrs.iter().find(|kv| kv.key == "service.name").and_then(|kv| kv.value.as_ref()).map(text);
        if service.is_none() && stream_label_attributes.iter().any(|a| a == "service.name") {
            stream.push(("service_name".into(), UNKNOWN_SERVICE.into()));
        }
        // Label sets per level seen in this resource, formatted once each.
        let mut label_sets: Vec<(Option<String>, String)> = Vec::new();
        for record in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
            let (trace_id, span_id) = match (id_hex(&record.trace_id, 16), id_hex(&record.span_id, 8)) {
                (Ok(t), Ok(s)) => (t, s),
                (Err(len), _) => {
                    out.reject(format!("a log record's trace_id has {len} bytes; it must have 16"));
                    continue;
                }
                (_, Err(len)) => {
                    out.reject(format!("a log record's span_id has {len} bytes; it must have 8"));
                    continue;
                }
            };
            let word = severity_word(record.severity_number);
            let level = word
                .map(str::to_owned)
                .or_else(|| (!record.severity_text.is_empty()).then(|| record.severity_text.to_lowercase()));
            let labels = match label_sets.iter().find(|(l, _)| *l == level) {
                Some((_, s)) => s.clone(),
                None => {
                    let mut pairs = stream.clone();
                    if let Some(l) = &level {
                        pairs.push(("level".into(), l.clone()));
                    }
                    if pairs.is_empty() {
                        pairs.push(("service_name".into(), UNKNOWN_SERVICE.into()));
                    }
                    let s = labels::format(&mut pairs);
                    label_sets.push((level, s.clone()));
                    s
                }
            };
            let mut attributes = rest.clone();
            for kv in &record.attributes {
                attributes.insert(kv.key.clone(), value_json(kv.value.as_ref()));
            }
            let observed = nanos(record.observed_time_unix_nano).unwrap_or(now_ns);
            staged.push(LogRow {
                timestamp_ns: nanos(record.time_unix_nano).unwrap_or(observed),
                observed_timestamp_ns: observed,
                tenant: tenant.to_owned(),
                service: service.clone(),
                severity: if record.severity_text.is_empty() {
                    word.map(str::to_owned)
                } else {
                    Some(record.severity_text.clone())
                },
                body: record.body.as_ref().map(text).unwrap_or_default(),
                trace_id,
                span_id,
                labels,
                attributes: Value::Object(attributes).to_string(),
            });
            out.records += 1;
        }
    }
    out
}

impl Converted {
    fn reject(&mut self, problem: String) {
        self.rejected += 1;
        if !self.problems.contains(&problem) {
            self.problems.push(problem);
        }
    }
}

fn nanos(v: u64) -> Option<i64> {
    (v != 0).then(|| i64::try_from(v).unwrap_or(i64::MAX))
}

/// Empty means absent; otherwise the id must have `len` bytes. `Err` carries the wrong length.
fn id_hex(id: &[u8], len: usize) -> Result<Option<String>, usize> {
    if id.is_empty() {
        return Ok(None);
    }
    if id.len() != len {
        return Err(id.len());
    }
    Ok(Some(id.iter().map(|b| format!("{b:02x}")).collect()))
}

/// The OTLP severity number ranges (logs data model, "Field: SeverityNumber") as their short names.
pub(crate) fn severity_word(number: i32) -> Option<&'static str> {
    Some(match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => return None,
    })
}

/// A value as text: strings as they are, anything else as JSON.
fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        None => String::new(),
        Some(_) => value_json(Some(v)).to_string(),
    }
}

#[cfg(test)]
pub(crate) fn base64_for_tests(bytes: &[u8]) -> String {
    crate::otlp::any_value::base64(bytes)
}

//! Validating decoded streams the way Loki's distributor does, and turning their entries into log rows.
//!
//! As in Loki, a stream with bad labels is refused whole and a bad entry alone; everything else is kept,
//! and the answer is 400 naming what was refused (clients do not retry a 400, so the rest must not be lost).

use super::config::LokiReceiverConfig;
use super::decode::{Entry, Stream};
use super::labels;
use crate::buffer::Staged;
use crate::buffer::logs::{LogRow, LogsShardRows};
use crate::limits::IngestLimits;

/// At most this many problems are listed in an answer; the rest are counted.
const MAX_LISTED: usize = 10;

#[derive(Debug, Default)]
pub(crate) struct Converted {
    pub(crate) lines: u64,
    pub(crate) problems: Vec<String>,
    pub(crate) unlisted: usize,
}

impl Converted {
    fn problem(&mut self, p: String) {
        if self.problems.len() < MAX_LISTED {
            self.problems.push(p);
        } else {
            self.unlisted += 1;
        }
    }

    pub(crate) fn messages(mut self) -> Vec<String> {
        if self.unlisted > 0 {
            self.problems.push(format!("… and {} more", self.unlisted));
        }
        self.problems
    }
}

/// Stages every valid entry of `streams` for `tenant`; problems are collected, not fatal.
pub(crate) fn stage(
    streams: Vec<Stream>,
    tenant: &str,
    config: &LokiReceiverConfig,
    limits: &IngestLimits,
    now_ns: i64,
    staged: &mut Staged<LogsShardRows>,
) -> Converted {
    let mut out = Converted::default();
    for (i, stream) in streams.into_iter().enumerate() {
        let mut pairs = stream.labels;
        // Prometheus semantics: a label with an empty value is no label.
        pairs.retain(|(_, v)| !v.is_empty());
        if let Err(problem) = check_labels(&mut pairs, limits) {
            out.problem(format!("stream {i}: {problem}"));
            continue;
        }
        let find =
            |names: &[&str]| names.iter().find_map(|n| pairs.iter().find(|(k, _)| k == n)).map(|(_, v)| v.clone());
        let service = find(&["service_name", "service", "job"]);
        let level = find(&["level", "severity", "detected_level"]);
        let label_set = labels::format(&mut pairs);
        for (j, entry) in stream.entries.into_iter().enumerate() {
            if entry.line.len() > config.max_line_bytes {
                out.problem(format!(
                    "stream {i}, entry {j}: line of {} bytes exceeds `loki.max_line_bytes` = {}",
                    entry.line.len(),
                    config.max_line_bytes
                ));
                continue;
            }
            if entry.timestamp_ns <= 0 {
                out.problem(format!("stream {i}, entry {j}: the timestamp is missing or not after 1970"));
                continue;
            }
            staged.push(row(entry, tenant, service.clone(), level.clone(), label_set.clone(), now_ns));
            out.lines += 1;
        }
    }
    out
}

/// Loki's rules (`invalid_labels`, `missing_labels`) plus Vigil's label limits. Names are echoed: they are
/// schema, not data.
fn check_labels(pairs: &mut [(String, String)], limits: &IngestLimits) -> Result<(), String> {
    if pairs.is_empty() {
        return Err("at least one label pair is required per stream".into());
    }
    if pairs.len() > limits.max_labels_per_series {
        return Err(format!(
            "{} labels exceed `limits.max_labels_per_series` = {}",
            pairs.len(),
            limits.max_labels_per_series
        ));
    }
    for (name, value) in pairs.iter() {
        if !labels::valid_name(name) {
            return Err(format!("invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"));
        }
        if name.len() > limits.max_label_name_bytes {
            return Err("a label name exceeds `limits.max_label_name_bytes`".into());
        }
        if value.len() > limits.max_label_value_bytes {
            return Err(format!("the value of label {name:?} exceeds `limits.max_label_value_bytes`"));
        }
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("duplicate label name {:?}", w[0].0));
    }
    Ok(())
}

fn row(
    entry: Entry,
    tenant: &str,
    service: Option<String>,
    level: Option<String>,
    labels: String,
    now_ns: i64,
) -> LogRow {
    let meta =
        |names: &[&str]| names.iter().find_map(|n| entry.metadata.iter().find(|(k, _)| k == n)).map(|(_, v)| v.clone());
    let severity = level.or_else(|| meta(&["level", "severity", "detected_level"]));
    let trace_id = meta(&["trace_id", "traceID", "traceId"]);
    let span_id = meta(&["span_id", "spanID", "spanId"]);
    // The structured metadata is kept whole (trace and span ids included), so a forwarder re-sends exactly
    // what the client sent.
    let attributes = if entry.metadata.is_empty() {
        "{}".to_owned()
    } else {
        let map: serde_json::Map<String, serde_json::Value> =
            entry.metadata.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
        serde_json::Value::Object(map).to_string()
    };
    LogRow {
        timestamp_ns: entry.timestamp_ns,
        observed_timestamp_ns: now_ns,
        tenant: tenant.to_owned(),
        service,
        severity,
        body: entry.line,
        trace_id,
        span_id,
        labels,
        attributes,
    }
}

//! A sealed logs batch into the index (lines with a trace id), and out as the error lines the incident
//! correlation looks at.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{Array, StringArray};
use vigil_ingest::buffer::logs::LogsBatch;
use vigil_ingest::buffer::logs::schema as col;

use super::ids::{TraceId, parse_span_id, parse_trace_id};
use super::index::RowRef;
use super::{TraceStore, Tracer};

/// Bytes of a line's body an incident keeps as evidence (the whole line stays in the buffer and in Loki).
const MAX_BODY: usize = 1024;

/// An error log line, for the incident correlation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogSignal {
    pub(crate) tenant: u32,
    pub(crate) timestamp_ms: i64,
    pub(crate) service: Option<u32>,
    pub(crate) severity: String,
    pub(crate) body: String,
    pub(crate) trace: Option<TraceId>,
    pub(crate) span: u64,
}

/// Severity words and texts (any case) that mean a failure: OTLP's `ERROR`/`FATAL` ranges, syslog's and
/// the usual logging libraries' names.
pub(crate) fn is_error(severity: &str) -> bool {
    let s = severity.trim().to_ascii_lowercase();
    ["err", "fatal", "crit", "alert", "emerg", "panic", "severe"].iter().any(|p| s.starts_with(p))
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// Cuts `s` to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Tracer {
    /// Reads one sealed logs batch; error lines go to `out`. Returns the rows read.
    pub(crate) fn ingest_logs(&mut self, store: &TraceStore, batch: &LogsBatch, out: &mut Vec<LogSignal>) -> usize {
        let b = &batch.logs;
        let s = |i: usize| b.column(i).as_string_opt::<i32>();
        let (Some(tenant), Some(service), Some(severity), Some(body), Some(trace), Some(span), Some(ts)) = (
            s(col::TENANT),
            s(col::SERVICE),
            s(col::SEVERITY),
            s(col::BODY),
            s(col::TRACE_ID),
            s(col::SPAN_ID),
            b.column(col::TIMESTAMP).as_primitive_opt::<TimestampNanosecondType>(),
        ) else {
            tracing::error!(shard = batch.shard, "A sealed logs batch does not have the logs schema. This is a bug.");
            return 0;
        };
        let shard = u16::try_from(batch.shard).unwrap_or(u16::MAX);
        let mut symbols = store.symbols.lock();
        let mut index = store.index.lock();
        for i in 0..b.num_rows() {
            let trace_id = opt(trace, i).and_then(|t| parse_trace_id(t).ok());
            let error = opt(severity, i).is_some_and(is_error);
            if trace_id.is_none() && !error {
                continue;
            }
            let Some(t) = symbols.intern(tenant.value(i)) else {
                self.skipped_rows += 1;
                continue;
            };
            if let Some(trace_id) = trace_id {
                let at = RowRef { seq: batch.seq, row: u32::try_from(i).unwrap_or(u32::MAX), shard };
                index.add_log(t, trace_id, at);
            }
            if error {
                out.push(LogSignal {
                    tenant: t,
                    timestamp_ms: ts.value(i).div_euclid(1_000_000),
                    service: opt(service, i).and_then(|s| symbols.intern(s)),
                    severity: opt(severity, i).unwrap_or_default().to_owned(),
                    body: truncate(body.value(i), MAX_BODY),
                    trace: trace_id,
                    span: opt(span, i).and_then(parse_span_id).unwrap_or(0),
                });
            }
        }
        b.num_rows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_severities() {
        for yes in
            ["error", "ERROR", "Err", "fatal", "CRITICAL", "crit", "alert", "emerg", "panic", "SEVERE", " error "]
        {
            assert!(is_error(yes), "{yes}");
        }
        for no in ["", "info", "warn", "WARNING", "debug", "trace", "notice"] {
            assert!(!is_error(no), "{no}");
        }
    }

    #[test]
    fn bodies_are_cut_on_character_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}

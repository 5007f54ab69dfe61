//! An open incident of the worker as the table and the API hold it: names for symbols, evidence and
//! timeline as JSON, a title.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::correlate::{Anom, Open};
use super::{Incident, RootCause, Status, rfc3339};
use crate::traces::symbols::Symbols;
use crate::traces::{span_hex, trace_hex};

/// What a metric's anomaly says, in a few words.
fn phrase(a: &Anom) -> String {
    let name = a.metric();
    let what = if name == crate::traces::red::ERROR_RATIO {
        "error ratio"
    } else if name == crate::traces::red::LATENCY {
        "latency"
    } else if name == crate::traces::red::REQUESTS {
        "request rate"
    } else if name.starts_with("traces_service_graph_request_failed") {
        "failed calls"
    } else if name.starts_with("traces_service_graph_request_server_seconds") {
        "call latency"
    } else if name.starts_with("traces_service_graph_request_total") {
        "call rate"
    } else {
        name
    };
    let direction = if a.row.value >= a.row.expected { "up" } else { "down" };
    format!("{what} {direction}")
}

fn title(inc: &Open, symbols: &Symbols) -> String {
    let name = |s: u32| symbols.name_or_empty(s).to_string();
    let subject = inc.root.as_ref().map(|r| r.ranked.service).or_else(|| inc.anomalies.first().and_then(|a| a.service));
    let mut phrases: Vec<String> = Vec::new();
    for a in inc.anomalies.iter().filter(|a| subject.is_none() || a.service == subject) {
        let p = phrase(a);
        if !phrases.contains(&p) {
            phrases.push(p);
        }
    }
    if phrases.is_empty() {
        let errors: u64 = subject.and_then(|s| inc.services.get(&s)).map_or(0, |f| f.error_spans);
        phrases.push(if errors > 0 { "failed requests".into() } else { "slow requests".into() });
    }
    phrases.truncate(3);
    let others = inc.services.len().saturating_sub(1);
    let head = subject.map_or_else(|| "unknown service".to_owned(), name);
    match others {
        0 => format!("{head}: {}", phrases.join(", ")),
        1 => format!("{head}: {}; 1 more service affected", phrases.join(", ")),
        n => format!("{head}: {}; {n} more services affected", phrases.join(", ")),
    }
}

fn evidence(inc: &Open, symbols: &Symbols) -> Value {
    let name = |s: u32| symbols.name_or_empty(s).to_string();
    let spans: Vec<Value> = inc
        .spans
        .iter()
        .map(|s| {
            json!({
                "trace_id": trace_hex(&s.trace),
                "span_id": span_hex(s.span),
                "service": name(s.service),
                "name": s.name,
                "error": s.error,
                "slow": s.slow,
                "duration_ms": s.duration_ns as f64 / 1e6,
                "end": rfc3339(s.end_ms),
            })
        })
        .collect();
    let logs: Vec<Value> = inc
        .logs
        .iter()
        .map(|l| {
            json!({
                "timestamp": rfc3339(l.timestamp_ms),
                "service": l.service.map(name),
                "severity": l.severity,
                "body": l.body,
                "trace_id": l.trace.as_ref().map(trace_hex),
                "span_id": (l.span != 0).then(|| span_hex(l.span)),
            })
        })
        .collect();
    let series: Vec<Value> = inc
        .anomalies
        .iter()
        .map(|a| {
            json!({
                "labels": a.labels,
                "service": a.service.map(name),
                "start": rfc3339(a.row.start_ms),
                "end": rfc3339(a.row.end_ms),
                "peak_at": rfc3339(a.row.peak_ms),
                "score": a.row.score,
                "value": a.row.value,
                "expected": a.row.expected,
                "severity": a.row.severity,
                "open": a.row.open,
                "trace_ids": a.traces.iter().map(trace_hex).collect::<Vec<_>>(),
            })
        })
        .collect();
    let (mut failed, mut slow, mut error_logs) = (0, 0, 0);
    for f in inc.services.values() {
        failed += f.error_spans;
        slow += f.slow_spans;
        error_logs += f.error_logs;
    }
    json!({
        "trace_ids": inc.traces.iter().map(trace_hex).collect::<Vec<_>>(),
        "spans": spans,
        "logs": logs,
        "series": series,
        "counts": {"failed_spans": failed, "slow_spans": slow, "error_logs": error_logs, "anomalies": inc.anomalies.len()},
    })
}

fn timeline(inc: &Open) -> Value {
    let mut items = inc.timeline.clone();
    items.sort_by_key(|t| t.at_ms);
    let mut out: Vec<Value> = items
        .iter()
        .map(|t| json!({"at": rfc3339(t.at_ms), "kind": t.kind, "service": t.service, "detail": t.detail}))
        .collect();
    if inc.timeline_dropped > 0 {
        out.push(json!({"kind": "truncated", "detail": format!("{} more entries not listed", inc.timeline_dropped)}));
    }
    Value::Array(out)
}

pub(crate) fn incident(inc: &Open, status: Status, resolved_at_ms: Option<i64>, symbols: &Symbols) -> Incident {
    let services: BTreeSet<String> = inc.services.keys().map(|s| symbols.name_or_empty(*s).to_string()).collect();
    Incident {
        id: inc.id.clone(),
        tenant: inc.tenant_name.to_string(),
        title: title(inc, symbols),
        severity: inc.severity,
        status,
        opened_at_ms: inc.opened_at_ms,
        resolved_at_ms,
        started_at_ms: inc.started_ms,
        last_signal_ms: inc.last_ms,
        root_cause: inc.root.as_ref().map(|r| RootCause {
            service: symbols.name_or_empty(r.ranked.service).to_string(),
            confidence: (r.ranked.confidence * 100.0).round() / 100.0,
            reason: r.reason.clone(),
        }),
        services: services.into_iter().collect(),
        evidence: evidence(inc, symbols),
        timeline: timeline(inc),
    }
}

//! OTLP `ExportTraceServiceRequest` → span rows, with the per-span checks the spec asks of a receiver.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use crate::buffer::spans::SpanRow;
use crate::otlp::any_value::attributes_json;

/// The rows kept, and what was refused with why (for `partial_success`).
#[derive(Debug, Default)]
pub(crate) struct Converted {
    pub(crate) rows: Vec<SpanRow>,
    pub(crate) rejected_spans: u64,
    /// Distinct problems, without attribute values (clients log these).
    pub(crate) problems: Vec<String>,
}

pub(crate) fn convert(request: &ExportTraceServiceRequest, tenant: &Arc<str>) -> Converted {
    let mut out = Converted::default();
    for rs in &request.resource_spans {
        let service = service_name(rs.resource.as_ref());
        for ss in &rs.scope_spans {
            if ss.spans.is_empty() {
                continue;
            }
            let resource_scope: Arc<[u8]> = Arc::from(resource_scope(rs, ss));
            for span in &ss.spans {
                if let Err(problem) = check_ids(span) {
                    out.rejected_spans += 1;
                    if !out.problems.contains(&problem) {
                        out.problems.push(problem);
                    }
                    continue;
                }
                out.rows.push(row(span, tenant, service.as_ref(), &resource_scope));
            }
        }
    }
    out
}

fn row(span: &Span, tenant: &Arc<str>, service: Option<&Arc<str>>, resource_scope: &Arc<[u8]>) -> SpanRow {
    let status = span.status.as_ref();
    SpanRow {
        tenant: Arc::clone(tenant),
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
        service: service.cloned(),
        name: span.name.clone(),
        kind: span.kind,
        start_unix_nano: i64::try_from(span.start_time_unix_nano).unwrap_or(i64::MAX),
        // An end before the start is the sender's error; the row says 0, the stored span keeps both times.
        duration_ns: i64::try_from(span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano))
            .unwrap_or(i64::MAX),
        status_code: status.map_or(0, |s| s.code),
        status_message: status.map(|s| s.message.clone()).filter(|m| !m.is_empty()),
        attributes: attributes_json(&span.attributes),
        span: span.encode_to_vec(),
        resource_scope: Arc::clone(resource_scope),
    }
}

/// Ids as the spec defines them: a trace id of 16 bytes and a span id of 8, neither all zeros; a parent
/// span id empty (root) or 8 bytes.
pub(crate) fn check_ids(span: &Span) -> Result<(), String> {
    let check = |field: &str, id: &[u8], len: usize| {
        if id.len() != len {
            Err(format!("span {field} is {} bytes, must be {len}", id.len()))
        } else if id.iter().all(|&b| b == 0) {
            Err(format!("span {field} is all zeros"))
        } else {
            Ok(())
        }
    };
    check("trace_id", &span.trace_id, 16)?;
    check("span_id", &span.span_id, 8)?;
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(format!("span parent_span_id is {} bytes, must be empty or 8", span.parent_span_id.len()));
    }
    Ok(())
}

/// The resource and scope of a group of spans, as a spanless `ResourceSpans` the forwarders fill again.
fn resource_scope(rs: &ResourceSpans, ss: &ScopeSpans) -> Vec<u8> {
    ResourceSpans {
        resource: rs.resource.clone(),
        scope_spans: vec![ScopeSpans { scope: ss.scope.clone(), spans: Vec::new(), schema_url: ss.schema_url.clone() }],
        schema_url: rs.schema_url.clone(),
    }
    .encode_to_vec()
}

fn service_name(resource: Option<&Resource>) -> Option<Arc<str>> {
    resource?.attributes.iter().rev().find(|kv| kv.key == "service.name").and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(Arc::from(s.as_str())),
            _ => None,
        }
    })
}

/// Lower-case hex, the form Tempo and the OTLP/JSON examples' readers compare ids in.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

#![allow(clippy::unwrap_used)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span, span};

use super::*;

fn resource_scope(service: &str, scope: &str) -> Vec<u8> {
    ResourceSpans {
        resource: Some(Resource { dropped_attributes_count: service.len() as u32, ..Default::default() }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope { name: scope.into(), ..Default::default() }),
            spans: Vec::new(),
            schema_url: "scope-schema".into(),
        }],
        schema_url: service.into(),
    }
    .encode_to_vec()
}

fn span(id: u8) -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![id; 8],
        name: format!("s{id}"),
        events: vec![span::Event { name: "e".into(), time_unix_nano: 5, ..Default::default() }],
        trace_state: "k=v".into(),
        flags: 0x301,
        ..Default::default()
    }
}

#[test]
fn spans_are_grouped_by_resource_and_scope_and_copied_verbatim() {
    let (a, b) = (resource_scope("svc-a", "lib"), resource_scope("svc-b", "lib"));
    let spans: Vec<Vec<u8>> = (1..=3).map(|i| span(i).encode_to_vec()).collect();
    let mut request = SpansRequest::default();
    request.push(&a, &spans[0]);
    request.push(&b, &spans[1]);
    request.push(&a, &spans[2]);
    assert_eq!(request.spans, 3);
    let mut out = vec![0xff];
    assert_eq!(request.encode(&mut out), 0);
    let got = ExportTraceServiceRequest::decode(out.as_slice()).unwrap();
    assert_eq!(got.resource_spans.len(), 2);
    let first = &got.resource_spans[0];
    assert_eq!(first.schema_url, "svc-a");
    assert_eq!(first.scope_spans.len(), 1);
    assert_eq!(first.scope_spans[0].scope.as_ref().unwrap().name, "lib");
    assert_eq!(first.scope_spans[0].schema_url, "scope-schema");
    assert_eq!(first.scope_spans[0].spans, vec![span(1), span(3)]);
    assert_eq!(got.resource_spans[1].schema_url, "svc-b");
    assert_eq!(got.resource_spans[1].scope_spans[0].spans, vec![span(2)]);
}

#[test]
fn undecodable_resource_bytes_skip_their_group_only() {
    let good = resource_scope("svc", "lib");
    let s = span(1).encode_to_vec();
    let mut request = SpansRequest::default();
    request.push(&[0x0a, 0xff], &s);
    request.push(&good, &s);
    let mut out = Vec::new();
    assert_eq!(request.encode(&mut out), 1);
    assert_eq!(ExportTraceServiceRequest::decode(out.as_slice()).unwrap().resource_spans.len(), 1);
}

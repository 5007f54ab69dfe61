//! Tests of the traces receiver: span checks and row conversion here, the HTTP router in [`router`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::convert::convert;
use crate::tenant::{tenant_of, validate_tenant};

pub(super) mod router;

const TRACE_JSON: &str = include_str!("testdata/trace.json");

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        ..Default::default()
    }
}

pub(super) fn span(trace_id: &[u8], span_id: &[u8], parent: &[u8]) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.to_vec(),
        name: "GET /cart".into(),
        kind: 2,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 1_250,
        attributes: vec![kv("http.route", "/cart")],
        status: Some(Status { code: 2, message: "boom".into() }),
        ..Default::default()
    }
}

pub(super) fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![kv("service.name", "cart")], ..Default::default() }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "lib".into(), ..Default::default() }),
                spans,
                schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
            }],
            schema_url: String::new(),
        }],
    }
}

pub(super) const TRACE: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
pub(super) const SPAN: [u8; 8] = [0xab, 2, 3, 4, 5, 6, 7, 8];

#[test]
fn a_valid_span_becomes_one_row_with_every_column() {
    let tenant: Arc<str> = Arc::from("acme");
    let c = convert(&request(vec![span(&TRACE, &SPAN, &[])]), &tenant);
    assert_eq!((c.rows.len(), c.rejected_spans), (1, 0));
    let r = &c.rows[0];
    assert_eq!(&*r.tenant, "acme");
    assert_eq!(r.trace_id, "0102030405060708090a0b0c0d0e0f10");
    assert_eq!(r.span_id, "ab02030405060708");
    assert_eq!(r.parent_span_id, None);
    assert_eq!(r.service.as_deref(), Some("cart"));
    assert_eq!((r.name.as_str(), r.kind, r.start_unix_nano, r.duration_ns), ("GET /cart", 2, 1_000, 250));
    assert_eq!((r.status_code, r.status_message.as_deref()), (2, Some("boom")));
    assert_eq!(r.attributes, r#"{"http.route":"/cart"}"#);
    assert_eq!(Span::decode(r.span.as_slice()).unwrap(), span(&TRACE, &SPAN, &[]));
    let rs = ResourceSpans::decode(&*r.resource_scope).unwrap();
    let mut want = request(Vec::new()).resource_spans.remove(0);
    want.scope_spans[0].spans.clear();
    assert_eq!(rs, want);
}

#[test]
fn bad_ids_are_rejected_one_by_one_with_a_message() {
    let tenant: Arc<str> = Arc::from("t");
    let spans = vec![
        span(&TRACE[..15], &SPAN, &[]),
        span(&[0; 16], &SPAN, &[]),
        span(&TRACE, &SPAN[..7], &[]),
        span(&TRACE, &[0; 8], &[]),
        span(&TRACE, &SPAN, &[1, 2, 3, 4]),
        span(&TRACE[..15], &SPAN, &[]),
        span(&TRACE, &SPAN, &SPAN),
    ];
    let c = convert(&request(spans), &tenant);
    assert_eq!(c.rejected_spans, 6);
    assert_eq!(c.rows.len(), 1);
    assert_eq!(c.rows[0].parent_span_id.as_deref(), Some("ab02030405060708"));
    assert_eq!(
        c.problems,
        [
            "span trace_id is 15 bytes, must be 16",
            "span trace_id is all zeros",
            "span span_id is 7 bytes, must be 8",
            "span span_id is all zeros",
            "span parent_span_id is 4 bytes, must be empty or 8",
        ]
    );
    // Messages never carry attribute values or names.
    assert!(c.problems.iter().all(|p| !p.contains("/cart")));
}

#[test]
fn the_otlp_json_example_with_upper_case_hex_ids_is_accepted() {
    let request: ExportTraceServiceRequest = serde_json::from_str(TRACE_JSON).unwrap();
    let c = convert(&request, &Arc::from("default"));
    assert_eq!((c.rows.len(), c.rejected_spans), (1, 0));
    let r = &c.rows[0];
    assert_eq!(r.trace_id, "5b8efff798038103d269b633813fc60c");
    assert_eq!(r.span_id, "eee19b7ec3c1b174");
    assert_eq!(r.parent_span_id.as_deref(), Some("eee19b7ec3c1b173"));
    assert_eq!(r.service.as_deref(), Some("my.service"));
    assert_eq!((r.kind, r.duration_ns), (2, 1_000_000_000));
    assert_eq!(r.attributes, r#"{"my.span.attr":"some value"}"#);
    let rs = ResourceSpans::decode(&*r.resource_scope).unwrap();
    let scope = rs.scope_spans[0].scope.as_ref().unwrap();
    assert_eq!((scope.name.as_str(), scope.version.as_str()), ("my.library", "1.0.0"));
    assert!(rs.scope_spans[0].spans.is_empty());
}

#[test]
fn a_malformed_hex_id_fails_the_json_decode() {
    let bad = TRACE_JSON.replace("5B8EFFF798038103D269B633813FC60C", "5B8EFFF798038103D269B633813FC6ZZ");
    assert!(serde_json::from_str::<ExportTraceServiceRequest>(&bad).is_err());
}

#[test]
fn tenants_follow_tempo_rules() {
    assert_eq!(&*tenant_of(None, "anonymous").unwrap(), "anonymous");
    assert_eq!(&*tenant_of(Some(b" team-a_1 "), "x").unwrap(), "team-a_1");
    for bad in [&b""[..], b"a/b", b"..", b"a|b", &[0xff]] {
        assert!(tenant_of(Some(bad), "x").is_err(), "{bad:?}");
    }
    assert!(validate_tenant(&"a".repeat(151)).is_err());
    assert!(validate_tenant(&"a".repeat(150)).is_ok());
}

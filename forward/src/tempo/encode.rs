//! Span rows → OTLP `ExportTraceServiceRequest` protobuf, one per tenant.
//!
//! Rows are grouped by their `resource_scope` bytes: each distinct value becomes one `ResourceSpans` with one
//! `ScopeSpans`, and the rows' `span` bytes are copied into it verbatim — no decode and re-encode, so every
//! field (events, links, trace state, flags, dropped counts, fields this version does not know) leaves as
//! it arrived. Only the small resource/scope message is decoded, to splice the spans into it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, BinaryArray, DictionaryArray, RecordBatch, StringArray};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use prost::encoding::encoded_len_varint;
use vigil_ingest::buffer::spans::SealedSpans;
use vigil_ingest::buffer::spans::schema::col;
use vigil_ingest::put_varint;

/// The columns of a sealed spans batch the encoder reads.
pub(crate) struct Columns<'a> {
    tenant: &'a StringArray,
    span: &'a BinaryArray,
    resource_scope: &'a DictionaryArray<Int32Type>,
    resource_values: &'a BinaryArray,
}

impl<'a> Columns<'a> {
    /// `None` when the batch does not have the spans schema (a bug upstream).
    pub(crate) fn of(batch: &'a RecordBatch) -> Option<Self> {
        let resource_scope = batch.column(col::RESOURCE_SCOPE).as_dictionary_opt::<Int32Type>()?;
        Some(Self {
            tenant: batch.column(col::TENANT).as_string_opt::<i32>()?,
            span: batch.column(col::SPAN).as_binary_opt::<i32>()?,
            resource_values: resource_scope.values().as_binary_opt::<i32>()?,
            resource_scope,
        })
    }

    pub(crate) fn tenant(&self, row: usize) -> &'a str {
        self.tenant.value(row)
    }

    pub(crate) fn span(&self, row: usize) -> &'a [u8] {
        self.span.value(row)
    }

    /// Empty (an empty resource and scope) where the dictionary held a null.
    pub(crate) fn resource_scope(&self, row: usize) -> &'a [u8] {
        if self.resource_scope.is_null(row) {
            return &[];
        }
        let key = usize::try_from(self.resource_scope.keys().value(row)).unwrap_or(usize::MAX);
        if key < self.resource_values.len() { self.resource_values.value(key) } else { &[] }
    }
}

/// The spans of one tenant gathered for one request, grouped by resource and scope, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct TenantRequest<'a> {
    groups: Vec<(&'a [u8], Vec<&'a [u8]>)>,
    index: HashMap<&'a [u8], usize>,
    spans: usize,
}

impl<'a> TenantRequest<'a> {
    pub(crate) fn push(&mut self, resource_scope: &'a [u8], span: &'a [u8]) {
        let i = *self.index.entry(resource_scope).or_insert_with(|| {
            self.groups.push((resource_scope, Vec::new()));
            self.groups.len() - 1
        });
        self.groups[i].1.push(span);
        self.spans += 1;
    }

    pub(crate) fn spans(&self) -> usize {
        self.spans
    }

    /// Writes the `ExportTraceServiceRequest` into `out` (cleared first). Groups whose resource bytes do not
    /// decode (cannot happen: the receiver wrote them) are skipped; their span count is returned.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> usize {
        out.clear();
        let mut skipped = 0;
        for (resource_scope, spans) in &self.groups {
            let Ok(mut rs) = ResourceSpans::decode(*resource_scope) else {
                skipped += spans.len();
                continue;
            };
            let scope = rs.scope_spans.pop().unwrap_or_default();
            rs.scope_spans.clear();
            let (rs_head, ss_head) = (rs.encode_to_vec(), scope.encode_to_vec());
            let ss_len = ss_head.len() + spans.iter().map(|s| field_len(s.len())).sum::<usize>();
            let rs_len = rs_head.len() + field_len(ss_len);
            out.push(0x0a); // ExportTraceServiceRequest.resource_spans = 1
            put_varint(out, rs_len as u64);
            out.extend_from_slice(&rs_head);
            out.push(0x12); // ResourceSpans.scope_spans = 2
            put_varint(out, ss_len as u64);
            out.extend_from_slice(&ss_head);
            for span in spans {
                out.push(0x12); // ScopeSpans.spans = 2
                put_varint(out, span.len() as u64);
                out.extend_from_slice(span);
            }
        }
        skipped
    }
}

/// A length-delimited field of `len` bytes with a one-byte tag.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// The request gathered for `tenant`, added on the tenant's first row. Tenants stay in order of first
/// appearance; there are a handful per shard, so a linear search is enough.
pub(crate) fn request_for<'v, 'a>(
    tenants: &'v mut Vec<(&'a str, TenantRequest<'a>)>,
    tenant: &'a str,
) -> &'v mut TenantRequest<'a> {
    let i = match tenants.iter().position(|(t, _)| *t == tenant) {
        Some(i) => i,
        None => {
            tenants.push((tenant, TenantRequest::default()));
            tenants.len() - 1
        }
    };
    &mut tenants[i].1
}

/// One tenant's request, as [`encode_export_requests`] builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRequest {
    pub tenant: String,
    /// An encoded `ExportTraceServiceRequest`.
    pub body: Vec<u8>,
    pub spans: usize,
}

/// Encodes whole sealed batches into one request per tenant, tenants in order of first appearance (for
/// tests and tools; the worker splits by `max_spans_per_request` itself).
pub fn encode_export_requests(batches: &[Arc<SealedSpans>]) -> Vec<EncodedRequest> {
    let mut order: Vec<(&str, TenantRequest<'_>)> = Vec::new();
    for batch in batches {
        let Some(cols) = Columns::of(&batch.spans) else { continue };
        for row in 0..batch.spans.num_rows() {
            request_for(&mut order, cols.tenant(row)).push(cols.resource_scope(row), cols.span(row));
        }
    }
    order
        .into_iter()
        .map(|(tenant, request)| {
            let mut body = Vec::new();
            let skipped = request.encode(&mut body);
            EncodedRequest { tenant: tenant.to_owned(), body, spans: request.spans() - skipped }
        })
        .collect()
}

#[cfg(test)]
mod tests;

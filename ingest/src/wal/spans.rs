//! Spans records: one accepted request's kept spans as an OTLP `ExportTraceServiceRequest` protobuf, the form
//! the Tempo forwarder sends. Requests concatenate (repeated `resource_spans`), so a forwarder joins records
//! of one tenant without decoding them.
//!
//! Rows are grouped by their `resource_scope` bytes: each distinct value becomes one `ResourceSpans` with one
//! `ScopeSpans`, and the rows' `span` bytes are copied into it verbatim — no decode and re-encode, so every
//! field (events, links, trace state, flags, dropped counts, fields this version does not know) leaves as it
//! arrived. Only the small resource/scope message is decoded, to splice the spans into it.

use std::collections::HashMap;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use prost::encoding::encoded_len_varint;

use super::entry::{Entry, EntryError};
use crate::buffer::Staged;
use crate::buffer::spans::SpansShardRows;
use crate::put_varint;

/// The record body for the spans of one request of `tenant`.
pub(crate) fn record(tenant: &str, staged: &Staged<SpansShardRows>) -> Result<Vec<u8>, EntryError> {
    let mut request = SpansRequest::default();
    for row in staged.shards.iter().flat_map(|s| s.spans.iter()) {
        request.push(&row.resource_scope, &row.span);
    }
    let mut raw = Vec::new();
    let skipped = request.encode(&mut raw);
    if skipped > 0 {
        // The receiver encoded these bytes a moment ago; they always decode.
        return Err(EntryError("a span's resource bytes do not decode"));
    }
    Entry::encode(tenant, [u32::try_from(request.spans).unwrap_or(u32::MAX), 0, 0], &raw)
}

/// Spans gathered for one request, grouped by resource and scope, in arrival order.
#[derive(Debug, Default)]
pub(crate) struct SpansRequest<'a> {
    groups: Vec<(&'a [u8], Vec<&'a [u8]>)>,
    index: HashMap<&'a [u8], usize>,
    spans: usize,
}

impl<'a> SpansRequest<'a> {
    pub(crate) fn push(&mut self, resource_scope: &'a [u8], span: &'a [u8]) {
        let i = *self.index.entry(resource_scope).or_insert_with(|| {
            self.groups.push((resource_scope, Vec::new()));
            self.groups.len() - 1
        });
        self.groups[i].1.push(span);
        self.spans += 1;
    }

    /// Writes the `ExportTraceServiceRequest` into `out` (cleared first). Groups whose resource bytes do not
    /// decode are skipped; their span count is returned.
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

#[cfg(test)]
mod tests;

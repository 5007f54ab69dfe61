//! Metrics records: one accepted request as a snappy-compressed remote write 1.0 `WriteRequest`, the form
//! the VictoriaMetrics forwarder sends, so forwarding needs no decoding.
//!
//! A 1.0 request whose every label set arrived canonical is logged as received (its compressed body is
//! already that form: no encoding at all on the hot path); anything else (2.0, OTLP, non-canonical 1.0) is
//! encoded here from the staged rows, taking each series' labels from the registry by slot.

use prost::encoding::encoded_len_varint;

use super::entry::Entry;
use crate::buffer::StagedRows;
use crate::put_varint;
use crate::series::SeriesRegistry;

/// The uncompressed request, reused per worker thread.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    raw: Vec<u8>,
}

/// The record body for a request of `tenant` whose snappy-compressed 1.0 body is `compressed`.
pub(crate) fn record_from_body(
    tenant: &str,
    staged: &StagedRows,
    compressed: &[u8],
) -> Result<Vec<u8>, super::EntryError> {
    Entry::encode(tenant, counts(staged), compressed)
}

/// The record body for `staged`, encoded as remote write 1.0.
pub(crate) fn record_from_rows(
    encoder: &mut Encoder,
    tenant: &str,
    staged: &StagedRows,
    registry: &SeriesRegistry,
) -> Result<Vec<u8>, super::EntryError> {
    encoder.raw.clear();
    encode_rows(staged, registry, &mut encoder.raw);
    let compressed = snap::raw::Encoder::new()
        .compress_vec(&encoder.raw)
        .map_err(|_| super::EntryError("snappy could not compress the request"))?;
    Entry::encode(tenant, counts(staged), &compressed)
}

fn counts(staged: &StagedRows) -> [u32; 3] {
    let c = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    [c(staged.sample_count()), c(staged.exemplar_count()), c(staged.histogram_count())]
}

/// `Sample { value = 1 (fixed64); timestamp = 2 (varint) }` as field 2 of `TimeSeries`.
fn sample_len(ts: i64) -> usize {
    let inner = 9 + 1 + encoded_len_varint(ts as u64);
    1 + encoded_len_varint(inner as u64) + inner
}

fn put_sample(out: &mut Vec<u8>, ts: i64, value: f64) {
    let inner = 9 + 1 + encoded_len_varint(ts as u64);
    out.push(0x12);
    put_varint(out, inner as u64);
    out.push(0x09);
    out.extend_from_slice(&value.to_le_bytes());
    out.push(0x10);
    put_varint(out, ts as u64);
}

fn put_timeseries_header(out: &mut Vec<u8>, body_len: usize) {
    out.push(0x0a); // WriteRequest.timeseries = 1
    put_varint(out, body_len as u64);
}

/// Appends every staged row to `out` as `WriteRequest.timeseries` fields. Consecutive samples of one
/// series share a `TimeSeries`; each exemplar and histogram gets its own.
pub(crate) fn encode_rows(staged: &StagedRows, registry: &SeriesRegistry, out: &mut Vec<u8>) {
    for shard in &staged.shards {
        let samples = &shard.samples;
        let mut row = 0;
        while row < samples.len() {
            let id = samples[row].series;
            let mut end = row + 1;
            while end < samples.len() && samples[end].series == id {
                end += 1;
            }
            // Staged rows name registered series only: every slot has its key.
            if let Some(key) = registry.key_by_slot(samples[row].slot) {
                let body_len = key.len() + samples[row..end].iter().map(|s| sample_len(s.timestamp_ms)).sum::<usize>();
                put_timeseries_header(out, body_len);
                out.extend_from_slice(key);
                for s in &samples[row..end] {
                    put_sample(out, s.timestamp_ms, s.value);
                }
            }
            row = end;
        }
        for ex in &shard.exemplars {
            let Some(key) = registry.key(ex.series) else { continue };
            // Exemplar { labels = 1, value = 2, timestamp = 3 }
            let inner = ex.labels.len() + 9 + 1 + encoded_len_varint(ex.timestamp_ms as u64);
            let field = 1 + encoded_len_varint(inner as u64) + inner;
            put_timeseries_header(out, key.len() + field);
            out.extend_from_slice(&key);
            out.push(0x1a);
            put_varint(out, inner as u64);
            out.extend_from_slice(&ex.labels);
            out.push(0x11);
            out.extend_from_slice(&ex.value.to_le_bytes());
            out.push(0x18);
            put_varint(out, ex.timestamp_ms as u64);
        }
        for h in &shard.histograms {
            let Some(key) = registry.key(h.series) else { continue };
            let field = 1 + encoded_len_varint(h.encoded.len() as u64) + h.encoded.len();
            put_timeseries_header(out, key.len() + field);
            out.extend_from_slice(&key);
            out.push(0x22);
            put_varint(out, h.encoded.len() as u64);
            out.extend_from_slice(&h.encoded);
        }
    }
}

//! Sealed batches → a remote write 1.0 `WriteRequest`, written directly as protobuf bytes.
//!
//! The series registry stores each label set already encoded as `TimeSeries.labels` fields, so a series'
//! labels are copied, not re-encoded. Consecutive rows of one series share one `TimeSeries`. Rows of
//! different tenants go into different requests ([`TenantRequests`]), one per tenant.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use prost::encoding::encoded_len_varint;
use vigil_ingest::series::SeriesRegistry;

/// Counts of what an encoded request carries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncodedCounts {
    pub samples: u64,
    pub exemplars: u64,
    pub histograms: u64,
    /// Rows whose series id was unknown to the registry (cannot happen while series are never forgotten).
    pub unknown_series: u64,
}

use vigil_ingest::put_varint;

/// One tenant's request being filled: its uncompressed protobuf and what it holds so far.
#[derive(Debug, Default)]
pub struct TenantRequest {
    /// The tenant's index in the series registry.
    pub tenant: u32,
    pub raw: Vec<u8>,
    pub counts: EncodedCounts,
}

impl TenantRequest {
    /// Rows that count towards `max_samples_per_request`.
    pub(crate) fn rows(&self) -> usize {
        (self.counts.samples + self.counts.unknown_series) as usize
    }
}

/// The requests being filled, one per tenant seen since the last send. Buffers are kept (and reused) after
/// a request is sent; usually there is one tenant, so the lookup is a comparison.
#[derive(Debug, Default)]
pub(crate) struct TenantRequests {
    pub(crate) open: Vec<TenantRequest>,
    last: usize,
}

impl TenantRequests {
    pub(crate) fn of(&mut self, tenant: u32) -> &mut TenantRequest {
        if self.open.get(self.last).is_none_or(|r| r.tenant != tenant) {
            self.last = match self.open.iter().position(|r| r.tenant == tenant) {
                Some(i) => i,
                None => {
                    self.open.push(TenantRequest { tenant, ..TenantRequest::default() });
                    self.open.len() - 1
                }
            };
        }
        &mut self.open[self.last]
    }

    /// Most rows held by one tenant's request.
    pub(crate) fn fullest(&self) -> usize {
        self.open.iter().map(TenantRequest::rows).max().unwrap_or(0)
    }

    /// Rows of unknown series, which no request will carry (counted here since no tenant owns them).
    pub(crate) fn unknown(&mut self) -> &mut TenantRequest {
        self.of(u32::MAX)
    }
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

/// Appends the rows `[start, end)` of a `samples` batch to `out`.
pub(crate) fn encode_samples(
    batch: &RecordBatch,
    start: usize,
    end: usize,
    registry: &SeriesRegistry,
    requests: &mut TenantRequests,
) {
    let series = batch.column(0).as_primitive::<UInt64Type>().values();
    let ts = batch.column(1).as_primitive::<TimestampMillisecondType>().values();
    let values = batch.column(2).as_primitive::<Float64Type>().values();
    let slots = batch.column(3).as_primitive::<UInt32Type>().values();
    let mut row = start;
    while row < end {
        let id = series[row];
        let mut run_end = row + 1;
        while run_end < end && series[run_end] == id {
            run_end += 1;
        }
        // By slot: no hashing or locking per series on the way out.
        let Some((key, tenant)) = registry.series_by_slot(slots[row]) else {
            requests.unknown().counts.unknown_series += (run_end - row) as u64;
            row = run_end;
            continue;
        };
        let TenantRequest { raw: out, counts, .. } = requests.of(tenant);
        let body_len = key.len() + (row..run_end).map(|r| sample_len(ts[r])).sum::<usize>();
        put_timeseries_header(out, body_len);
        out.extend_from_slice(key);
        for r in row..run_end {
            put_sample(out, ts[r], values[r]);
        }
        counts.samples += (run_end - row) as u64;
        row = run_end;
    }
}

/// Every exemplar as a `TimeSeries` holding only that exemplar (field 3).
pub(crate) fn encode_exemplars(batch: &RecordBatch, registry: &SeriesRegistry, requests: &mut TenantRequests) {
    let series = batch.column(0).as_primitive::<UInt64Type>().values();
    let ts = batch.column(1).as_primitive::<TimestampMillisecondType>().values();
    let values = batch.column(2).as_primitive::<Float64Type>().values();
    let labels = batch.column(5).as_binary::<i32>();
    for row in 0..batch.num_rows() {
        let Some((key, tenant)) = registry.series(series[row]) else {
            requests.unknown().counts.unknown_series += 1;
            continue;
        };
        let TenantRequest { raw: out, counts, .. } = requests.of(tenant);
        let ex_labels = if labels.is_null(row) { &[][..] } else { labels.value(row) };
        // Exemplar { labels = 1 (same encoding as TimeSeries.labels), value = 2, timestamp = 3 }
        let inner = ex_labels.len() + 9 + 1 + encoded_len_varint(ts[row] as u64);
        let field = 1 + encoded_len_varint(inner as u64) + inner;
        put_timeseries_header(out, key.len() + field);
        out.extend_from_slice(&key);
        out.push(0x1a);
        put_varint(out, inner as u64);
        out.extend_from_slice(ex_labels);
        out.push(0x11);
        out.extend_from_slice(&values[row].to_le_bytes());
        out.push(0x18);
        put_varint(out, ts[row] as u64);
        counts.exemplars += 1;
    }
}

/// Every native histogram as a `TimeSeries` holding it (field 4), passed through as encoded.
pub(crate) fn encode_histograms(batch: &RecordBatch, registry: &SeriesRegistry, requests: &mut TenantRequests) {
    let series = batch.column(0).as_primitive::<UInt64Type>().values();
    let encoded = batch.column(2).as_binary::<i32>();
    for row in 0..batch.num_rows() {
        let Some((key, tenant)) = registry.series(series[row]) else {
            requests.unknown().counts.unknown_series += 1;
            continue;
        };
        let TenantRequest { raw: out, counts, .. } = requests.of(tenant);
        let h = encoded.value(row);
        let field = 1 + encoded_len_varint(h.len() as u64) + h.len();
        put_timeseries_header(out, key.len() + field);
        out.extend_from_slice(&key);
        out.push(0x22);
        put_varint(out, h.len() as u64);
        out.extend_from_slice(h);
        counts.histograms += 1;
    }
}

/// Encodes whole sealed batches into one uncompressed `WriteRequest` per tenant (used by tests and tools;
/// the worker splits by `max_samples_per_request` itself).
pub fn encode_write_requests(
    batches: &[std::sync::Arc<vigil_ingest::buffer::SealedBatch>],
    registry: &SeriesRegistry,
) -> Vec<TenantRequest> {
    let mut requests = TenantRequests::default();
    for b in batches {
        encode_samples(&b.samples, 0, b.samples.num_rows(), registry, &mut requests);
        if let Some(e) = &b.exemplars {
            encode_exemplars(e, registry, &mut requests);
        }
        if let Some(h) = &b.histograms {
            encode_histograms(h, registry, &mut requests);
        }
    }
    requests.open
}

#[cfg(test)]
mod tests;

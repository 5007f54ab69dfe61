//! Exemplars of a sealed metrics batch into the index (trace id → the series sample that points at it),
//! and the recent exemplars of each series, so an anomaly of a series can be tied to the traces of its
//! anomalous samples.

use std::collections::{HashMap, VecDeque};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt64Type};
use arrow_array::{Array, RecordBatch};
use vigil_ingest::buffer::SealedBatch;

use super::ids::{TraceId, parse_span_id, parse_trace_id};
use super::index::{RowRef, SeriesRef};
use super::{TraceStore, Tracer};

/// Exemplars remembered per series, newest kept.
const PER_SERIES: usize = 16;
/// Series with remembered exemplars at most; past it the map is cleared (they are only a recent window).
const MAX_SERIES: usize = 100_000;

/// Recent exemplars by series id: (timestamp, trace, span).
#[derive(Debug, Default)]
pub(crate) struct ExemplarLinks {
    by_series: HashMap<u64, VecDeque<(i64, TraceId, u64)>>,
}

impl ExemplarLinks {
    fn add(&mut self, series: u64, ts_ms: i64, trace: TraceId, span: u64) {
        if self.by_series.len() >= MAX_SERIES && !self.by_series.contains_key(&series) {
            self.by_series.clear();
        }
        let recent = self.by_series.entry(series).or_default();
        recent.push_back((ts_ms, trace, span));
        if recent.len() > PER_SERIES {
            recent.pop_front();
        }
    }

    #[cfg(test)]
    pub(crate) fn add_for_tests(&mut self, series: u64, ts_ms: i64, trace: TraceId, span: u64) {
        self.add(series, ts_ms, trace, span);
    }

    /// The traces of the series' exemplars within `[from_ms, to_ms]`.
    pub(crate) fn traces(&self, series: u64, from_ms: i64, to_ms: i64) -> Vec<(TraceId, u64)> {
        self.by_series
            .get(&series)
            .map(|r| r.iter().filter(|(t, ..)| (from_ms..=to_ms).contains(t)).map(|(_, tr, s)| (*tr, *s)).collect())
            .unwrap_or_default()
    }
}

impl Tracer {
    /// Reads the exemplars of one sealed metrics batch. Returns how many had a trace id.
    pub(crate) fn ingest_exemplars(&mut self, store: &TraceStore, batch: &SealedBatch) -> usize {
        let Some(ex) = &batch.exemplars else { return 0 };
        let Some(cols) = columns(ex) else {
            tracing::error!(shard = batch.shard, "A sealed exemplars batch does not have its schema. This is a bug.");
            return 0;
        };
        let (ids, times, values, traces, spans) = cols;
        let shard = u16::try_from(batch.shard).unwrap_or(u16::MAX);
        let mut linked = Vec::new();
        for i in 0..ex.num_rows() {
            if traces.is_null(i) {
                continue;
            }
            let Ok(trace) = parse_trace_id(traces.value(i)) else { continue };
            let span = if spans.is_null(i) { 0 } else { parse_span_id(spans.value(i)).unwrap_or(0) };
            linked.push((i, ids.value(i), times.value(i), values.value(i), trace, span));
        }
        if linked.is_empty() {
            return 0;
        }
        // The tenant is the series': asked of the registry before taking the index's locks.
        let tenants: Vec<Option<std::sync::Arc<str>>> = linked
            .iter()
            .map(|(_, id, ..)| {
                let (_, t) = store.registry.series(*id)?;
                store.registry.tenant_name(t).cloned()
            })
            .collect();
        let mut symbols = store.symbols.lock();
        let mut index = store.index.lock();
        for ((row, series_id, ts, value, trace, span), tenant) in linked.iter().zip(tenants) {
            let Some(t) = tenant.and_then(|name| symbols.intern(&name)) else {
                self.skipped_rows += 1;
                continue;
            };
            let at = RowRef { seq: batch.seq, row: u32::try_from(*row).unwrap_or(u32::MAX), shard };
            let r = SeriesRef { at, series_id: *series_id, timestamp_ms: *ts, value: *value, span: *span };
            index.add_series(t, *trace, r);
            self.exemplars.add(*series_id, *ts, *trace, *span);
        }
        linked.len()
    }
}

type ExemplarColumns<'a> = (
    &'a arrow_array::UInt64Array,
    &'a arrow_array::TimestampMillisecondArray,
    &'a arrow_array::Float64Array,
    &'a arrow_array::StringArray,
    &'a arrow_array::StringArray,
);

/// By the exemplars schema: series_id, timestamp, value, trace_id, span_id, labels.
fn columns(b: &RecordBatch) -> Option<ExemplarColumns<'_>> {
    Some((
        b.column(0).as_primitive_opt::<UInt64Type>()?,
        b.column(1).as_primitive_opt::<TimestampMillisecondType>()?,
        b.column(2).as_primitive_opt::<Float64Type>()?,
        b.column(3).as_string_opt::<i32>()?,
        b.column(4).as_string_opt::<i32>()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_exemplars_by_series_and_time() {
        let mut l = ExemplarLinks::default();
        for i in 0..20i64 {
            l.add(1, i * 1000, [i as u8 + 1; 16], 7);
        }
        l.add(2, 5000, [99; 16], 0);
        let got = l.traces(1, 15_000, 17_000);
        assert_eq!(got, [([16; 16], 7), ([17; 16], 7), ([18; 16], 7)]);
        assert!(l.traces(1, 0, 3000).is_empty(), "only the newest 16 are kept");
        assert_eq!(l.traces(2, 0, 10_000), [([99; 16], 0)]);
        assert!(l.traces(3, 0, 10_000).is_empty());
    }
}

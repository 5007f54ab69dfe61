//! The trace-id index: per tenant and trace id, references to the span rows, log lines and exemplars
//! (series samples) that carry it, in the buffers where they live.
//!
//! References are positions (`shard`, batch `seq`, `row`), not copies: the buffers hold the data, and the
//! index forgets a reference once its batch is evicted ([`TraceIndex::prune`]), so it is kept for the
//! buffers' retention and no longer. Memory is bounded twice: `max_traces` traces and `max_refs` references
//! (about 48 bytes a span or exemplar, 16 a log line), the oldest trace (by first sight) going first, plus `max_refs_per_trace` per trace.
//! Each span reference also carries what correlation needs without reading the buffer again: its span and
//! parent ids, its service and whether it failed or was a latency outlier.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet, VecDeque};

use super::config::IndexConfig;
use super::ids::TraceId;

/// A row of a sealed batch in one of the buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowRef {
    pub(crate) seq: u64,
    pub(crate) row: u32,
    pub(crate) shard: u16,
}

/// The span failed (OTLP status `ERROR`).
pub(crate) const ERROR: u8 = 1;
/// The span took far longer than its operation usually does.
pub(crate) const SLOW: u8 = 2;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpanRef {
    pub(crate) at: RowRef,
    pub(crate) span: u64,
    /// 0 for a root span.
    pub(crate) parent: u64,
    /// The service's symbol.
    pub(crate) service: u32,
    pub(crate) flags: u8,
    pub(crate) end_ms: i64,
}

/// An exemplar: a sample of a series that points at this trace.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeriesRef {
    /// The metrics batch that holds the exemplar.
    pub(crate) at: RowRef,
    pub(crate) series_id: u64,
    pub(crate) timestamp_ms: i64,
    pub(crate) value: f64,
    /// 0 when the exemplar names no span.
    pub(crate) span: u64,
}

/// Which buffer a reference points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Spans,
    Logs,
    Metrics,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Entry {
    pub(crate) spans: Vec<SpanRef>,
    pub(crate) logs: Vec<RowRef>,
    pub(crate) series: Vec<SeriesRef>,
    /// References not kept because of `max_refs_per_trace`.
    pub(crate) dropped: u32,
    /// Its place in the eviction order.
    insert_no: u64,
}

impl Entry {
    fn refs(&self) -> usize {
        self.spans.len() + self.logs.len() + self.series.len()
    }

    /// The services of the trace's spans, each once.
    pub(crate) fn services(&self) -> Vec<u32> {
        let mut s: Vec<u32> = self.spans.iter().map(|r| r.service).collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    /// Spans with `flag` none of whose descendants has it: where a failure (or slowness) started in this
    /// trace, as far as the spans Vigil holds tell. Descendants, not children: between a server span and the
    /// next service's there is usually a client span, which the slowness check does not flag.
    pub(crate) fn origins(&self, flag: u8) -> Vec<&SpanRef> {
        let parent_of: HashMap<u64, u64> = self.spans.iter().map(|s| (s.span, s.parent)).collect();
        let mut above_flagged: HashSet<u64> = HashSet::new();
        for s in self.spans.iter().filter(|s| s.flags & flag != 0) {
            // Every ancestor of a flagged span has a flagged descendant; stop where an earlier walk did.
            let mut at = s.parent;
            let mut steps = 0;
            while at != 0 && above_flagged.insert(at) && steps < self.spans.len() {
                at = parent_of.get(&at).copied().unwrap_or(0);
                steps += 1;
            }
        }
        self.spans.iter().filter(|s| s.flags & flag != 0 && !above_flagged.contains(&s.span)).collect()
    }

    pub(crate) fn span(&self, span: u64) -> Option<&SpanRef> {
        self.spans.iter().find(|s| s.span == span)
    }
}

/// (tenant symbol, trace id).
pub(crate) type Key = (u32, TraceId);

#[derive(Debug)]
pub(crate) struct TraceIndex {
    map: HashMap<Key, Entry>,
    /// Keys in order of first sight, with their insert number (a key forgotten and seen again is a new
    /// entry; its old place in the queue no longer matches and is skipped).
    order: VecDeque<(Key, u64)>,
    next_no: u64,
    refs: usize,
    max_traces: usize,
    max_refs: usize,
    max_refs_per_trace: usize,
    /// Traces forgotten to stay within the bounds, and because their batches were evicted.
    pub(crate) evicted_for_space: u64,
    pub(crate) evicted_for_retention: u64,
}

impl TraceIndex {
    pub(crate) fn new(config: &IndexConfig) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            next_no: 0,
            refs: 0,
            max_traces: config.max_traces.max(1),
            max_refs: config.max_refs.max(1),
            max_refs_per_trace: config.max_refs_per_trace.max(1),
            evicted_for_space: 0,
            evicted_for_retention: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn refs(&self) -> usize {
        self.refs
    }

    pub(crate) fn get(&self, tenant: u32, trace: &TraceId) -> Option<&Entry> {
        self.map.get(&(tenant, *trace))
    }

    /// Adds one reference to the trace `key` (created, making room first, if new); false when the trace
    /// already holds `max_refs_per_trace` references (counted in its `dropped`).
    fn add(&mut self, key: Key, push: impl FnOnce(&mut Entry)) -> bool {
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.max_traces && self.evict_oldest() {}
            let no = self.next_no;
            self.next_no += 1;
            self.order.push_back((key, no));
            self.map.insert(key, Entry { insert_no: no, ..Entry::default() });
        }
        let Some(entry) = self.map.get_mut(&key) else { return false };
        let added = entry.refs() < self.max_refs_per_trace;
        if added {
            push(entry);
            self.refs += 1;
        } else {
            entry.dropped = entry.dropped.saturating_add(1);
        }
        self.enforce_refs();
        added
    }

    /// Adds a span; false when the trace already holds `max_refs_per_trace` references.
    pub(crate) fn add_span(&mut self, tenant: u32, trace: TraceId, span: SpanRef) -> bool {
        self.add((tenant, trace), |e| e.spans.push(span))
    }

    pub(crate) fn add_log(&mut self, tenant: u32, trace: TraceId, at: RowRef) -> bool {
        self.add((tenant, trace), |e| e.logs.push(at))
    }

    pub(crate) fn add_series(&mut self, tenant: u32, trace: TraceId, series: SeriesRef) -> bool {
        self.add((tenant, trace), |e| e.series.push(series))
    }

    fn enforce_refs(&mut self) {
        while self.refs > self.max_refs && self.evict_oldest() {}
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((key, no)) = self.order.pop_front() {
            if let MapEntry::Occupied(e) = self.map.entry(key)
                && e.get().insert_no == no
            {
                self.refs -= e.get().refs();
                e.remove();
                self.evicted_for_space += 1;
                return true;
            }
        }
        false
    }

    /// Forgets every reference into a batch the buffers no longer hold: `first_seq(signal, shard)` is the
    /// sequence number of the oldest batch that shard still has. Traces left with nothing go.
    pub(crate) fn prune(&mut self, first_seq: impl Fn(Signal, u16) -> u64) {
        let before = self.map.len();
        let mut refs = 0;
        self.map.retain(|_, e| {
            e.spans.retain(|s| s.at.seq >= first_seq(Signal::Spans, s.at.shard));
            e.logs.retain(|l| l.seq >= first_seq(Signal::Logs, l.shard));
            e.series.retain(|s| s.at.seq >= first_seq(Signal::Metrics, s.at.shard));
            refs += e.refs();
            e.refs() > 0
        });
        self.refs = refs;
        self.evicted_for_retention += (before - self.map.len()) as u64;
        // Forgotten keys stay in the queue until popped; keep it from growing without bound.
        if self.order.len() > 2 * self.map.len() + 1024 {
            let map = &self.map;
            self.order.retain(|(k, no)| map.get(k).is_some_and(|e| e.insert_no == *no));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn at(shard: u16, seq: u64, row: u32) -> RowRef {
        RowRef { seq, row, shard }
    }

    fn span(seq: u64, span: u64, parent: u64, service: u32, flags: u8) -> SpanRef {
        SpanRef { at: at(0, seq, 0), span, parent, service, flags, end_ms: 0 }
    }

    fn index(max_traces: usize, max_refs: usize, per_trace: usize) -> TraceIndex {
        TraceIndex::new(&IndexConfig { max_traces, max_refs, max_refs_per_trace: per_trace })
    }

    #[test]
    fn every_signal_is_found_by_tenant_and_trace() {
        let mut ix = index(10, 100, 10);
        let t = [7u8; 16];
        assert!(ix.add_span(1, t, span(0, 1, 0, 5, 0)));
        assert!(ix.add_log(1, t, at(2, 3, 4)));
        let s = SeriesRef { at: at(1, 0, 0), series_id: 42, timestamp_ms: 1000, value: 0.5, span: 1 };
        assert!(ix.add_series(1, t, s.clone()));
        let e = ix.get(1, &t).unwrap();
        assert_eq!((e.spans.len(), e.logs.clone(), e.series.clone()), (1, vec![at(2, 3, 4)], vec![s]));
        assert!(ix.get(2, &t).is_none(), "another tenant's trace with the same id is another trace");
        assert_eq!((ix.len(), ix.refs()), (1, 3));
    }

    #[test]
    fn the_oldest_traces_go_first_when_full() {
        let mut ix = index(3, 100, 10);
        for i in 0..5u8 {
            ix.add_span(0, [i; 16], span(0, 1, 0, 0, 0));
        }
        assert_eq!(ix.len(), 3);
        assert!(ix.get(0, &[0; 16]).is_none() && ix.get(0, &[1; 16]).is_none());
        assert!(ix.get(0, &[4; 16]).is_some());
        assert_eq!(ix.evicted_for_space, 2);
        // The reference cap evicts whole traces too.
        let mut ix = index(100, 4, 10);
        for i in 0..3u8 {
            ix.add_span(0, [i; 16], span(0, 1, 0, 0, 0));
            ix.add_span(0, [i; 16], span(0, 2, 1, 0, 0));
        }
        assert_eq!((ix.len(), ix.refs()), (2, 4));
        assert!(ix.get(0, &[0; 16]).is_none());
        // Per trace: extra references are counted, not kept.
        let mut ix = index(100, 100, 2);
        for i in 0..5 {
            ix.add_span(0, [9; 16], span(0, i + 1, 0, 0, 0));
        }
        let e = ix.get(0, &[9; 16]).unwrap();
        assert_eq!((e.spans.len(), e.dropped), (2, 3));
    }

    #[test]
    fn references_to_evicted_batches_are_forgotten() {
        let mut ix = index(10, 100, 10);
        ix.add_span(0, [1; 16], span(3, 1, 0, 0, 0));
        ix.add_span(0, [1; 16], span(9, 2, 1, 0, 0));
        ix.add_span(0, [2; 16], span(4, 1, 0, 0, 0));
        ix.add_log(0, [2; 16], at(0, 50, 0));
        // Spans shard 0 now starts at batch 5, logs shard 0 at batch 60.
        ix.prune(|signal, _| if signal == Signal::Spans { 5 } else { 60 });
        assert_eq!(ix.get(0, &[1; 16]).unwrap().spans.len(), 1);
        assert!(ix.get(0, &[2; 16]).is_none());
        assert_eq!((ix.len(), ix.refs(), ix.evicted_for_retention), (1, 1, 1));
        // A pruned key seen again is a new entry, and its stale queue place does not evict it.
        ix.add_span(0, [2; 16], span(10, 1, 0, 0, 0));
        let mut small = index(2, 100, 10);
        small.add_span(0, [1; 16], span(0, 1, 0, 0, 0));
        small.prune(|_, _| 1);
        small.add_span(0, [1; 16], span(2, 1, 0, 0, 0));
        small.add_span(0, [2; 16], span(2, 1, 0, 0, 0));
        small.add_span(0, [3; 16], span(2, 1, 0, 0, 0));
        assert!(small.get(0, &[1; 16]).is_none(), "the re-added trace is now the oldest");
        assert!(small.get(0, &[3; 16]).is_some());
    }

    #[test]
    fn references_are_as_small_as_documented() {
        assert_eq!(std::mem::size_of::<RowRef>(), 16, "a log line");
        assert!(std::mem::size_of::<SpanRef>() <= 48);
        assert!(std::mem::size_of::<SeriesRef>() <= 48);
    }

    #[test]
    fn origins_are_flagged_spans_without_flagged_children() {
        let mut ix = index(10, 100, 20);
        let t = [1; 16];
        // frontend(1) → api(2) → db(3) all failed; api's other child cache(4) is fine; a slow span in api.
        ix.add_span(0, t, span(0, 1, 0, 10, ERROR));
        ix.add_span(0, t, span(0, 2, 1, 11, ERROR | SLOW));
        ix.add_span(0, t, span(0, 3, 2, 12, ERROR));
        ix.add_span(0, t, span(0, 4, 2, 13, 0));
        let e = ix.get(0, &t).unwrap();
        let errors: Vec<u32> = e.origins(ERROR).iter().map(|s| s.service).collect();
        assert_eq!(errors, [12]);
        let slow: Vec<u64> = e.origins(SLOW).iter().map(|s| s.span).collect();
        assert_eq!(slow, [2]);
        assert_eq!(e.services(), [10, 11, 12, 13]);
        // Cache slow as well: 2 has a slow descendant now, so only 4 starts the slowness.
        let t3 = [3; 16];
        for (id, parent, service, flags) in [(1, 0, 10, ERROR), (2, 1, 11, SLOW), (3, 2, 12, 0), (4, 2, 13, SLOW)] {
            ix.add_span(0, t3, span(0, id, parent, service, flags));
        }
        let slow: Vec<u64> = ix.get(0, &t3).unwrap().origins(SLOW).iter().map(|s| s.span).collect();
        assert_eq!(slow, [4]);
        // An unflagged client span between two flagged server spans: the lower one is the origin.
        let t2 = [2; 16];
        ix.add_span(0, t2, span(0, 1, 0, 10, SLOW));
        ix.add_span(0, t2, span(0, 2, 1, 10, 0));
        ix.add_span(0, t2, span(0, 3, 2, 11, SLOW));
        let slow: Vec<u64> = ix.get(0, &t2).unwrap().origins(SLOW).iter().map(|s| s.span).collect();
        assert_eq!(slow, [3]);
    }
}

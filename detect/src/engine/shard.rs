//! One buffer shard's detection: read its sealed batches in order, score each sample with its series'
//! detector, track events, encode the scores for write-back.
//!
//! The buffer shards rows by series id, so every sample of a series is read by the same worker, in the
//! order it was appended; the series' state needs no lock of its own. The shard's state sits behind one
//! mutex, taken once per batch by the worker and briefly by forecasts; its open events behind another,
//! taken by the worker once per chunk, only to update them, so the anomaly API never waits for scoring.
//!
//! A batch is read in three passes (over chunks of [`CHUNK`] scored samples when it is larger): (a) every
//! sample's verdict from its series' detector, its feature row queued for its group's forest; (b) the
//! queued rows scored model by model (`iforest::online::Batch`: a forest walked once per block of rows
//! rather than once per row, which took several times the rest of a sample's scoring); (c) the forest's and
//! the peers' contributions added to each verdict and write-back, then events, in the batch's order. The
//! scores are those of scoring each sample through to the end before the next; the passes' buffers
//! ([`Scratch`]) are kept from batch to batch.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt32Type, UInt64Type};
use tokio::sync::mpsc::error::TrySendError;
use vigil_ingest::buffer::{Next, SealedBatch, Subscription};
use vigil_ingest::series::{IdHasher, decode_label_key};

use super::online::{Deferred, OnlineSeries};
use super::writeback::{Body, Encoder, compress};
use super::{Shared, WriteBack};
use crate::events::{Event, EventTracker};
use crate::forecast::History;
use crate::iforest::online::Batch;
use crate::rules::RuleIndex;
use crate::series::SeriesDetector;
use crate::verdict::Verdict;

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// What the engine keeps per scored series: its detector, the forecast's history, its share of the group
/// forest and peer comparison, and 16 bytes.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub(crate) detector: SeriesDetector,
    /// Hourly means over the last week, for the forecast (`crate::forecast`).
    pub(crate) history: History,
    /// Features, group forest and peer summary (`online.rs`).
    pub(crate) online: OnlineSeries,
    /// Newest timestamp scored; older or equal samples are skipped.
    pub(crate) last_ms: i64,
    /// The series' slot in the registry: its labels and tenant without a lookup.
    pub(crate) slot: u32,
    pub(crate) rule: RuleIndex,
}

impl Tracked {
    /// Memory one series holds in the engine, in bytes: its map entry (id, state, control byte) and what
    /// its detector and history allocated (the 2 KiB budget's test reads it).
    #[cfg(test)]
    pub(crate) fn state_bytes(&self) -> usize {
        let detector_heap = self.detector.state_bytes() - size_of::<SeriesDetector>();
        size_of::<(u64, Self)>() + 1 + detector_heap + self.history.heap_bytes()
    }
}

#[derive(Debug)]
pub(crate) struct ShardState {
    pub(crate) series: IdMap<Tracked>,
    /// Series never scored: excluded by a rule, Vigil's own `anomaly_*` output, or over `detect.max_series`.
    /// Remembered so each is resolved (and counted) once, until a sweep frees room under the cap.
    skipped: IdSet,
    /// Newest sample time the shard has read, and that of its last sweep for forgotten series.
    newest_ms: i64,
    swept_ms: i64,
}

impl ShardState {
    pub(crate) fn new() -> Self {
        Self { series: IdMap::default(), skipped: IdSet::default(), newest_ms: i64::MIN, swept_ms: i64::MIN }
    }
}

/// Sweeps for forgotten series run this often (in sample time), as a share of `detect.forget_after`: a
/// series is forgotten between `forget_after` and this much later.
const SWEEPS_PER_FORGET: i64 = 16;
/// A sample stamped further ahead of the wall clock than this does not move the shard's sample time: one
/// sample from a sender with a broken clock would otherwise make every other series look silent.
const FUTURE_TOLERANCE_MS: i64 = 3_600_000;

/// A scored sample between the passes.
#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    ts: i64,
    value: f64,
    slot: u32,
    rule: RuleIndex,
    verdict: Verdict,
    online: Deferred,
}

/// Samples taken through pass (a) before passes (b) and (c) run over them: a batch can be as large as one
/// remote-write request, so it is read in chunks of at most this many scored samples, which bounds the
/// passes' buffers (about 250 bytes a sample: 2 MiB per shard). Enough rows per group for the forest's batch
/// scorer (at six groups, over a thousand each); the engine bench measured 40 000-sample batches the same
/// in one chunk or in five. A chunk boundary changes no score.
const CHUNK: usize = 8192;

/// The buffers of a batch's passes, kept by the worker from batch to batch: once grown to a chunk, reading
/// a batch allocates nothing here.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pending: Vec<Pending>,
    forest: Batch,
    /// Events closed by a chunk, on their way to the table.
    closed: Vec<Event>,
}

/// Counts for one batch, added to the shared counters once.
#[derive(Debug, Default)]
struct Tally {
    scored: u64,
    out_of_order: u64,
    not_finite: u64,
    opened: u64,
}

/// The worker loop of shard `index`, until the buffer closes.
pub(crate) fn run(
    shared: &Shared,
    index: usize,
    mut subscription: Subscription,
    runtime: &tokio::runtime::Handle,
    write_back: Option<&tokio::sync::mpsc::Sender<WriteBack>>,
) {
    let mut encoder = Encoder::default();
    let mut scratch = Scratch::default();
    loop {
        match runtime.block_on(subscription.next()) {
            Next::Batch(batch) => {
                let live = write_back.filter(|_| shared.live.load(Ordering::Relaxed));
                score_batch(shared, index, &batch, live.map(|_| &mut encoder), &mut scratch);
                if let Some(tx) = live {
                    for (tenant, body) in encoder.drain() {
                        send(shared, tx, tenant, body);
                    }
                }
            }
            Next::Lagged(missed) => {
                shared.metrics.lagged_batches.inc_by(missed);
            }
            Next::Closed => return,
        }
    }
}

/// Scores every sample of one sealed batch.
fn score_batch(
    shared: &Shared,
    index: usize,
    batch: &SealedBatch,
    mut encoder: Option<&mut Encoder>,
    scratch: &mut Scratch,
) {
    let samples = &batch.samples;
    let (Some(ids), Some(times), Some(values), Some(slots)) = (
        samples.column(0).as_primitive_opt::<UInt64Type>(),
        samples.column(1).as_primitive_opt::<TimestampMillisecondType>(),
        samples.column(2).as_primitive_opt::<Float64Type>(),
        samples.column(3).as_primitive_opt::<UInt32Type>(),
    ) else {
        tracing::error!(shard = index, "A sealed batch does not have the samples schema. This is a bug.");
        return;
    };
    let (Some(state), Some(events)) = (shared.shards.get(index), shared.open.get(index)) else { return };
    let mut state = state.lock();
    let ShardState { series, skipped, newest_ms, .. } = &mut *state;
    let mut tally = Tally::default();
    let future = crate::events::now_ms().saturating_add(FUTURE_TOLERANCE_MS);
    // (a) Verdicts and feature rows.
    for i in 0..samples.num_rows() {
        let id = ids.value(i);
        if times.value(i) <= future {
            *newest_ms = (*newest_ms).max(times.value(i));
        }
        if skipped.contains(&id) {
            continue;
        }
        let tracked = match series.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => match shared.admit(slots.value(i)) {
                Some(t) => e.insert(t),
                None => {
                    skipped.insert(id);
                    continue;
                }
            },
        };
        let (ts, value) = (times.value(i), values.value(i));
        if !value.is_finite() {
            // Staleness markers and the like: nothing to score, and they say nothing about the level.
            tally.not_finite += 1;
            continue;
        }
        if ts <= tracked.last_ms {
            tally.out_of_order += 1;
            continue;
        }
        tracked.last_ms = ts;
        let settings = shared.rules.settings(tracked.rule);
        tracked.history.observe(settings, ts, value);
        let Some(verdict) = tracked.detector.observe(settings, ts, value) else { continue };
        let online = shared.online.observe(&mut tracked.online, settings, (ts, value), &verdict, &mut scratch.forest);
        let rule = tracked.rule;
        scratch.pending.push(Pending { id, ts, value, slot: tracked.slot, rule, verdict, online });
        if scratch.pending.len() >= CHUNK {
            finish_chunk(shared, events, scratch, encoder.as_deref_mut(), &mut tally);
        }
    }
    finish_chunk(shared, events, scratch, encoder, &mut tally);
    forget_silent(shared, events, &mut state);
    drop(state);
    let m = &shared.metrics;
    m.samples_scored.inc_by(tally.scored);
    m.anomalies.inc_by(tally.opened);
    if tally.out_of_order > 0 {
        m.skipped("out_of_order").inc_by(tally.out_of_order);
    }
    if tally.not_finite > 0 {
        m.skipped("not_finite").inc_by(tally.not_finite);
    }
}

/// Drops the series with no sample for `detect.forget_after` (behind the newest sample the shard has read),
/// once per `forget_after / SWEEPS_PER_FORGET` of sample time: their state, their place under
/// `detect.max_series` and their group membership; their open events are closed. A series that only ever
/// sent staleness markers has no sample time and goes at the first sweep (it is admitted again if it comes
/// back). When room was freed, the series skipped for the cap get another chance.
fn forget_silent(shared: &Shared, events: &parking_lot::Mutex<EventTracker>, state: &mut ShardState) {
    let every = (shared.forget_after_ms / SWEEPS_PER_FORGET).max(1);
    if state.newest_ms == i64::MIN || state.newest_ms.saturating_sub(state.swept_ms) < every {
        return;
    }
    state.swept_ms = state.newest_ms;
    let cutoff = state.newest_ms.saturating_sub(shared.forget_after_ms);
    let mut gone = Vec::new();
    state.series.retain(|id, t| {
        let keep = t.last_ms >= cutoff;
        if !keep {
            shared.online.forget(&t.online);
            gone.push(*id);
        }
        keep
    });
    if gone.is_empty() {
        return;
    }
    // Into the table before the open events are let go, as in `finish_chunk`: a reader sees each event once.
    let mut open = events.lock();
    let closed = open.close_series(&gone);
    if !closed.is_empty() {
        shared.events.extend(closed);
    }
    drop(open);
    let n = gone.len() as u64;
    shared.tracked.fetch_sub(n, Ordering::Relaxed);
    shared.metrics.series.dec_by(i64::try_from(n).unwrap_or(i64::MAX));
    shared.metrics.series_forgotten.inc_by(n);
    state.skipped.clear();
}

/// Passes (b) and (c) over the samples pending: the forests, each over all of its rows, then each sample's
/// contributions and write-back in order, then — the shard's open events locked, briefly — its event, the
/// events that closed going to the table before the lock is let go.
fn finish_chunk(
    shared: &Shared,
    events: &parking_lot::Mutex<EventTracker>,
    scratch: &mut Scratch,
    mut encoder: Option<&mut Encoder>,
    tally: &mut Tally,
) {
    let Scratch { pending, forest, closed } = scratch;
    forest.score();
    for p in pending.iter_mut() {
        let settings = shared.rules.settings(p.rule);
        shared.online.finish(p.online, settings, &mut p.verdict, forest, &shared.metrics);
        if let Some(encoder) = encoder.as_deref_mut()
            && let Some((key, tenant)) = shared.registry.series_by_slot(p.slot)
        {
            encoder.push(tenant, key, p.ts, &p.verdict);
        }
    }
    tally.scored += pending.len() as u64;
    if !pending.is_empty() {
        let mut events = events.lock();
        for p in pending.iter() {
            let slot = p.slot;
            let step = events.observe(p.id, p.ts, p.value, &p.verdict, || describe(&shared.registry, slot));
            tally.opened += u64::from(step.opened);
            closed.extend(step.closed);
        }
        if !closed.is_empty() {
            shared.events.extend(closed.drain(..));
        }
    }
    pending.clear();
    forest.clear();
}

/// Hands one tenant's body to the write-back channel, never waiting: when the channel is full the scores
/// are dropped and counted, so detection never slows ingest down.
fn send(shared: &Shared, tx: &tokio::sync::mpsc::Sender<WriteBack>, tenant: u32, body: Body) {
    let Some(name) = shared.registry.tenant_name(tenant).cloned() else { return };
    let samples = body.samples;
    let bytes = match compress(&body.raw) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "Compressing scores for write-back failed. This is a bug.");
            shared.metrics.writeback_dropped("refused", samples);
            return;
        }
    };
    match tx.try_send(WriteBack { tenant: name, body: bytes, samples }) {
        Ok(()) => {
            shared.metrics.writeback_samples.inc_by(samples);
        }
        Err(TrySendError::Full(_)) => shared.metrics.writeback_dropped("queue_full", samples),
        Err(TrySendError::Closed(_)) => shared.metrics.writeback_dropped("closed", samples),
    }
}

/// The labels of the series in `slot` as a JSON object, and its tenant's name.
pub(crate) fn describe(registry: &vigil_ingest::series::SeriesRegistry, slot: u32) -> (Arc<str>, Arc<str>) {
    let Some((key, tenant)) = registry.series_by_slot(slot) else { return (Arc::from(""), Arc::from("{}")) };
    let labels: std::collections::BTreeMap<&str, &str> = decode_label_key(key).map(|p| (p.name, p.value)).collect();
    let json = serde_json::to_string(&labels).unwrap_or_else(|_| "{}".into());
    let tenant = registry.tenant_name(tenant).cloned().unwrap_or_else(|| Arc::from(""));
    (tenant, Arc::from(json))
}

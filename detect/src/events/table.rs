//! The anomaly events table: closed events as Arrow record batches, bounded by `detect.events`, in chunks of
//! [`CHUNK_ROWS`] ([`Chunks`]); a reader gets them plus one batch of the rows not yet chunked and the events
//! still open.

use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::builder::{
    BooleanBuilder, Float32Builder, Float64Builder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, TimestampMillisecondType, UInt64Type};
use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
    UInt64Array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use parking_lot::Mutex;

use super::Event;
use super::chunks::{Chunks, Row, with_last_batch};
use crate::config::EventsConfig;
use crate::verdict::Contributions;

/// Rows per chunk.
pub(crate) const CHUNK_ROWS: usize = 1024;

/// The detectors' names, in [`Contributions::iter`] order: one `detector_<name>` column each.
pub(crate) static DETECTORS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| Contributions::default().iter().map(|(name, _)| name).collect());

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let ts = || DataType::Timestamp(TimeUnit::Millisecond, None);
    let mut fields = vec![
        Field::new("tenant", DataType::Utf8, false),
        Field::new("series_id", DataType::UInt64, false),
        // A JSON object: label sets differ per series, so a fixed column per label cannot hold them.
        Field::new("labels", DataType::Utf8, false),
        Field::new("start", ts(), false),
        Field::new("end", ts(), false),
        Field::new("peak_at", ts(), false),
        Field::new("score", DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("expected", DataType::Float64, false),
        Field::new("lower", DataType::Float64, false),
        Field::new("upper", DataType::Float64, false),
    ];
    fields.extend(DETECTORS.iter().map(|name| Field::new(format!("detector_{name}"), DataType::Float32, false)));
    fields.push(Field::new("severity", DataType::Utf8, false));
    fields.push(Field::new("open", DataType::Boolean, false));
    Arc::new(Schema::new(fields))
});

/// The events table's schema: tenant, series_id, labels (JSON), start, end, peak_at, score, value,
/// expected, lower, upper (all at the peak), one `detector_<name>` Float32 per detector, severity, open.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// Column positions, by the schema above.
pub(crate) mod col {
    pub(crate) const TENANT: usize = 0;
    pub(crate) const SERIES_ID: usize = 1;
    pub(crate) const LABELS: usize = 2;
    pub(crate) const START: usize = 3;
    pub(crate) const END: usize = 4;
    pub(crate) const PEAK_AT: usize = 5;
    pub(crate) const SCORE: usize = 6;
    pub(crate) const VALUE: usize = 7;
    pub(crate) const EXPECTED: usize = 8;
    pub(crate) const LOWER: usize = 9;
    pub(crate) const UPPER: usize = 10;
    pub(crate) const FIRST_DETECTOR: usize = 11;
}

/// The columns of an events batch, typed once, for its readers (the query API's, correlation's).
pub(crate) struct Columns<'a> {
    pub(crate) tenant: &'a StringArray,
    pub(crate) series_id: &'a UInt64Array,
    pub(crate) labels: &'a StringArray,
    pub(crate) start: &'a TimestampMillisecondArray,
    pub(crate) end: &'a TimestampMillisecondArray,
    pub(crate) peak_at: &'a TimestampMillisecondArray,
    pub(crate) score: &'a Float64Array,
    pub(crate) value: &'a Float64Array,
    pub(crate) expected: &'a Float64Array,
    pub(crate) lower: &'a Float64Array,
    pub(crate) upper: &'a Float64Array,
    /// One per [`DETECTORS`] entry, in its order.
    pub(crate) detectors: Vec<&'a Float32Array>,
    pub(crate) severity: &'a StringArray,
    pub(crate) open: &'a BooleanArray,
}

impl<'a> Columns<'a> {
    /// `None` when `batch` does not have the events schema.
    pub(crate) fn of(batch: &'a RecordBatch) -> Option<Self> {
        let string = |i: usize| batch.column(i).as_string_opt::<i32>();
        let time = |i: usize| batch.column(i).as_primitive_opt::<TimestampMillisecondType>();
        let float = |i: usize| batch.column(i).as_primitive_opt::<Float64Type>();
        let after = col::FIRST_DETECTOR + DETECTORS.len();
        Some(Self {
            tenant: string(col::TENANT)?,
            series_id: batch.column(col::SERIES_ID).as_primitive_opt::<UInt64Type>()?,
            labels: string(col::LABELS)?,
            start: time(col::START)?,
            end: time(col::END)?,
            peak_at: time(col::PEAK_AT)?,
            score: float(col::SCORE)?,
            value: float(col::VALUE)?,
            expected: float(col::EXPECTED)?,
            lower: float(col::LOWER)?,
            upper: float(col::UPPER)?,
            detectors: (col::FIRST_DETECTOR..after)
                .map(|i| batch.column(i).as_primitive_opt::<Float32Type>())
                .collect::<Option<_>>()?,
            severity: string(after)?,
            open: batch.column(after + 1).as_boolean_opt()?,
        })
    }
}

/// Closed events, all tenants, oldest first.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Chunks<Event>>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Row for Event {
    const TABLE: &'static str = "events";
    const CHUNK_ROWS: usize = CHUNK_ROWS;
    const AGE_COLUMN: usize = col::END;

    fn to_batch<'a>(rows: impl Iterator<Item = &'a Self> + Clone) -> Result<RecordBatch, ArrowError> {
        to_batch(rows)
    }

    fn aged_from(&self) -> Option<i64> {
        Some(self.end_ms)
    }
}

impl EventLog {
    pub fn new(config: &EventsConfig) -> Self {
        let max_age_ms = i64::try_from(config.max_age.as_millis()).unwrap_or(i64::MAX);
        Self { inner: Mutex::new(Chunks::new(config.max_events, max_age_ms)) }
    }

    /// Closed events held.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds closed events, then applies retention.
    pub fn extend(&self, events: impl IntoIterator<Item = Event>) {
        self.extend_at(events, now_ms());
    }

    pub(crate) fn extend_at(&self, events: impl IntoIterator<Item = Event>, now_ms: i64) {
        let mut inner = self.inner.lock();
        for event in events {
            inner.push(event);
        }
        inner.retain(now_ms);
    }

    /// The closed events (after retention) as record batches, oldest first, then `open` as a last batch.
    pub fn snapshot(&self, open: &[Event]) -> Vec<RecordBatch> {
        let mut inner = self.inner.lock();
        inner.retain(now_ms());
        inner.snapshot(open)
    }

    /// Closed events ever added: note it before reading the open events, and [`Closed::drop_closed_twins`]
    /// tells which of those closed meanwhile.
    pub(crate) fn pushed(&self) -> u64 {
        self.inner.lock().pushed()
    }

    /// The closed events (after retention), taken under the lock without building anything: the chunks
    /// (shared) and a copy of the fewer than [`CHUNK_ROWS`] rows not yet chunked.
    pub(crate) fn closed(&self) -> Closed {
        let mut inner = self.inner.lock();
        inner.retain(now_ms());
        let (chunks, pending) = inner.pending();
        Closed { chunks, pending: pending.to_vec(), pushed: inner.pushed() }
    }
}

/// One closed row as [`Closed::for_each_added_since`] finds it: still an [`Event`], or row `i` of a chunk.
pub(crate) enum AddedRow<'e, 'c> {
    Typed(&'e Event),
    Chunked(&'c Columns<'e>, usize),
}

impl AddedRow<'_, '_> {
    /// What an event is known by: its series and start.
    pub(crate) fn key(&self) -> (u64, i64) {
        match self {
            Self::Typed(e) => (e.series_id, e.start_ms),
            Self::Chunked(c, i) => (c.series_id.value(*i), c.start.value(*i)),
        }
    }
}

/// The closed events as a reader took them ([`EventLog::closed`]), oldest first.
#[derive(Debug)]
pub(crate) struct Closed {
    pub(crate) chunks: Vec<RecordBatch>,
    /// The rows after the chunks.
    pub(crate) pending: Vec<Event>,
    /// [`EventLog::pushed`] then.
    pushed: u64,
}

impl Closed {
    /// Closed events the log had been given when this was taken (retention notwithstanding).
    pub(crate) fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Calls `f` on each row added after [`EventLog::pushed`] gave `seen` (those retention has not dropped
    /// yet), newest first: the rows not yet chunked, then the chunks from the end.
    pub(crate) fn for_each_added_since(&self, seen: u64, mut f: impl FnMut(AddedRow<'_, '_>)) {
        let mut left = usize::try_from(self.pushed.saturating_sub(seen)).unwrap_or(usize::MAX);
        for e in self.pending.iter().rev().take(left) {
            f(AddedRow::Typed(e));
        }
        left = left.saturating_sub(self.pending.len());
        for batch in self.chunks.iter().rev() {
            if left == 0 {
                break;
            }
            let Some(c) = Columns::of(batch) else {
                tracing::error!("The events table does not have the expected columns. This is a bug.");
                continue;
            };
            let rows = batch.num_rows();
            for i in (rows.saturating_sub(left)..rows).rev() {
                f(AddedRow::Chunked(&c, i));
            }
            left = left.saturating_sub(rows);
        }
    }

    /// Removes from `open` (open events read after [`EventLog::pushed`] gave `seen`, before this was taken)
    /// every event that has closed since: it is among the rows added since, and must be read once, closed.
    pub(crate) fn drop_closed_twins(&self, open: &mut Vec<Event>, seen: u64) {
        if self.pushed <= seen || open.is_empty() {
            return;
        }
        let mut keys = std::collections::HashSet::new();
        self.for_each_added_since(seen, |row| {
            keys.insert(row.key());
        });
        open.retain(|e| !keys.contains(&(e.series_id, e.start_ms)));
    }

    /// As record batches: the chunks, then the pending rows and `open` in one last batch (the shape of
    /// [`EventLog::snapshot`]).
    pub(crate) fn into_batches(self, open: &[Event]) -> Vec<RecordBatch> {
        with_last_batch(self.chunks, self.pending.iter().chain(open))
    }
}

/// One record batch of `events`, for tests.
#[cfg(test)]
pub(crate) fn to_batch_for_tests(events: &[Event]) -> RecordBatch {
    to_batch(events.iter()).unwrap_or_else(|e| panic!("{e}"))
}

/// One record batch of events.
fn to_batch<'a>(events: impl Iterator<Item = &'a Event> + Clone) -> Result<RecordBatch, ArrowError> {
    let n = events.clone().count();
    let mut tenant = StringBuilder::with_capacity(n, n * 8);
    let mut series = UInt64Builder::with_capacity(n);
    let mut labels = StringBuilder::with_capacity(n, n * 64);
    let (mut start, mut end, mut peak_at) = (
        TimestampMillisecondBuilder::with_capacity(n),
        TimestampMillisecondBuilder::with_capacity(n),
        TimestampMillisecondBuilder::with_capacity(n),
    );
    let mut floats: [Float64Builder; 5] = std::array::from_fn(|_| Float64Builder::with_capacity(n));
    let mut detectors: Vec<Float32Builder> = DETECTORS.iter().map(|_| Float32Builder::with_capacity(n)).collect();
    let mut severity = StringBuilder::with_capacity(n, n * 2);
    let mut open = BooleanBuilder::with_capacity(n);
    for e in events {
        tenant.append_value(&*e.tenant);
        series.append_value(e.series_id);
        labels.append_value(&*e.labels);
        start.append_value(e.start_ms);
        end.append_value(e.end_ms);
        peak_at.append_value(e.peak.timestamp_ms);
        let p = &e.peak;
        for (b, v) in floats.iter_mut().zip([p.score, p.value, p.expected, p.lower, p.upper]) {
            b.append_value(v);
        }
        for (b, (_, v)) in detectors.iter_mut().zip(p.contributions.iter()) {
            b.append_value(v);
        }
        severity.append_value(e.severity().as_str());
        open.append_value(e.open);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(tenant.finish()),
        Arc::new(series.finish()),
        Arc::new(labels.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(peak_at.finish()),
    ];
    columns.extend(floats.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend(detectors.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.push(Arc::new(severity.finish()));
    columns.push(Arc::new(open.finish()));
    RecordBatch::try_new(schema(), columns)
}

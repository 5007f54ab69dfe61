//! Rows kept as an Arrow table in chunks, bounded by a count and an age: the events table and the incidents
//! table.
//!
//! Rows gather in a small list and are turned into an immutable record batch every [`Row::CHUNK_ROWS`]; a reader
//! gets the chunks (shared, not copied) plus one batch built from the rows not yet chunked and any rows it
//! adds (the open events or incidents). Retention drops the oldest rows, slicing a chunk when only part of
//! it has to go.

use std::collections::VecDeque;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Array, RecordBatch};
use arrow_schema::ArrowError;

/// A row of a [`Chunks`] table.
pub(crate) trait Row: Sized {
    /// The table's name, for messages.
    const TABLE: &'static str;
    /// Rows per chunk: large enough that per-batch overhead is small, small enough that a reader's extra
    /// batch stays cheap to build.
    const CHUNK_ROWS: usize;
    /// The column (timestamps in ms) holding [`Row::aged_from`]; a null there never ages out.
    const AGE_COLUMN: usize;

    /// Rows as one record batch.
    fn to_batch<'a>(rows: impl Iterator<Item = &'a Self> + Clone) -> Result<RecordBatch, ArrowError>
    where
        Self: 'a;

    /// When the row's age starts (ms since the epoch); `None`: it never ages out.
    fn aged_from(&self) -> Option<i64>;
}

/// Rows, all tenants, oldest first.
#[derive(Debug)]
pub(crate) struct Chunks<R> {
    max_rows: usize,
    max_age_ms: i64,
    chunks: VecDeque<RecordBatch>,
    /// Rows in `chunks`.
    chunked: usize,
    pending: Vec<R>,
    /// Rows ever pushed: a reader that notes it before and after tells the rows added meanwhile (the newest).
    pushed: u64,
}

impl<R: Row> Chunks<R> {
    pub(crate) fn new(max_rows: usize, max_age_ms: i64) -> Self {
        Self {
            max_rows: max_rows.max(1),
            max_age_ms,
            chunks: VecDeque::new(),
            chunked: 0,
            pending: Vec::new(),
            pushed: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.chunked + self.pending.len()
    }

    /// Adds a row (retention is the caller's: [`Chunks::retain`]).
    pub(crate) fn push(&mut self, row: R) {
        self.pushed += 1;
        self.pending.push(row);
        if self.pending.len() < R::CHUNK_ROWS {
            return;
        }
        let rows = std::mem::take(&mut self.pending);
        match R::to_batch(rows.iter()) {
            Ok(batch) => {
                self.chunked += batch.num_rows();
                self.chunks.push_back(batch);
            }
            Err(e) => {
                tracing::error!(table = R::TABLE, error = %e, "Building a chunk failed; its rows are lost. This is a bug.")
            }
        }
    }

    /// Drops the oldest rows past `max_rows`, and those older than `max_age` at `now_ms`.
    pub(crate) fn retain(&mut self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.max_age_ms);
        loop {
            let surplus = self.len().saturating_sub(self.max_rows);
            let Some(front) = self.chunks.front() else {
                let expired = self.pending.iter().take_while(|r| r.aged_from().is_some_and(|t| t < cutoff)).count();
                self.pending.drain(..surplus.max(expired).min(self.pending.len()));
                return;
            };
            let expired = front
                .column(R::AGE_COLUMN)
                .as_primitive_opt::<TimestampMillisecondType>()
                .map_or(0, |t| (0..front.num_rows()).take_while(|&i| t.is_valid(i) && t.value(i) < cutoff).count());
            let drop = surplus.max(expired).min(front.num_rows());
            if drop == 0 {
                return;
            }
            self.chunked -= drop;
            if drop == front.num_rows() {
                self.chunks.pop_front();
            } else {
                let rest = front.slice(drop, front.num_rows() - drop);
                self.chunks[0] = rest;
                return;
            }
        }
    }

    /// Rows ever pushed, retention notwithstanding.
    pub(crate) fn pushed(&self) -> u64 {
        self.pushed
    }

    /// The chunks (shared, not copied) and the rows not yet chunked, oldest first: a reader filters them
    /// after letting go of the table instead of building a batch of every pending row.
    pub(crate) fn pending(&self) -> (Vec<RecordBatch>, &[R]) {
        (self.chunks.iter().cloned().collect(), &self.pending)
    }

    /// The table, oldest first, then `extra` in the last batch.
    pub(crate) fn snapshot(&self, extra: &[R]) -> Vec<RecordBatch> {
        with_last_batch(self.chunks.iter().cloned().collect(), self.pending.iter().chain(extra))
    }
}

/// `chunks`, then `rows` as one last batch (none when there are no rows).
pub(crate) fn with_last_batch<'a, R: Row + 'a>(
    mut chunks: Vec<RecordBatch>,
    rows: impl Iterator<Item = &'a R> + Clone,
) -> Vec<RecordBatch> {
    match R::to_batch(rows) {
        Ok(batch) if batch.num_rows() > 0 => chunks.push(batch),
        Ok(_) => {}
        Err(e) => tracing::error!(table = R::TABLE, error = %e, "Building a snapshot failed. This is a bug."),
    }
    chunks
}

//! One engine batch's rows for the group forests, scored model by model after the batch is read.
//!
//! Scoring a row alone walks every tree of its forest (half a megabyte at 100 trees × ψ 256) for one
//! row: mostly cache misses, several microseconds. The engine instead queues the rows of a whole batch
//! here as it reads it, then [`scores`](Batch::score) them once: the rows of each model are gathered
//! contiguously (a counting sort by model) and go through the forest's batch scorer, which walks each tree
//! with many rows at once, so a tree is read once per block of rows rather than once per row.
//!
//! A row is scored by the model its series held when the row was made — a refit published mid-batch
//! changes the model of later rows only — so the scores are those of scoring each row on its own, to the bit.
//! The buffers are kept from batch to batch: once grown to the largest batch, queuing and scoring
//! allocate nothing. They hold 128 bytes per row of the largest batch (two copies of the row, its score
//! and two indices): 1 MiB per engine shard at 8192-row batches.

use std::sync::Arc;

use super::Model;
use crate::features::FEATURES;

/// Where a queued row's contribution will be, once the batch is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// The row's index among the batch's rows.
    Row(u32),
    /// A row with a NaN: the forest refuses it, and its contribution is 0 (kept out of the batch, where it
    /// would make its model's whole call fail).
    Nan,
}

/// The rows of one batch, waiting for their forests.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The models the rows are scored with, each once, in order of first use.
    models: Vec<Arc<Model>>,
    /// Index in `models` of the newest row's model: consecutive rows mostly come from one group (a scrape
    /// is one target's series in a row), so the lookup rarely scans.
    last: usize,
    /// Queued rows in arrival order, and the index in `models` of each one's model.
    rows: Vec<[f64; FEATURES]>,
    model_of: Vec<u32>,
    /// The rows gathered model by model (`starts[m]..starts[m + 1]` are model m's), their contributions, and
    /// each queued row's position there.
    sorted: Vec<[f64; FEATURES]>,
    scores: Vec<f64>,
    starts: Vec<usize>,
    position: Vec<u32>,
    scored: bool,
}

impl Batch {
    /// Queues `row` to be scored by `model`.
    pub(crate) fn push(&mut self, model: &Arc<Model>, row: &[f64; FEATURES]) -> Queued {
        debug_assert!(!self.scored, "rows queued after the batch was scored");
        if row.iter().any(|x| x.is_nan()) {
            return Queued::Nan;
        }
        if !self.models.get(self.last).is_some_and(|m| Arc::ptr_eq(m, model)) {
            // At most one model per group in a batch (two when a refit lands in it): a short scan.
            self.last = match self.models.iter().position(|m| Arc::ptr_eq(m, model)) {
                Some(i) => i,
                None => {
                    self.models.push(Arc::clone(model));
                    self.models.len() - 1
                }
            };
        }
        let queued = Queued::Row(u32::try_from(self.rows.len()).unwrap_or(u32::MAX));
        self.rows.push(*row);
        self.model_of.push(u32::try_from(self.last).unwrap_or(u32::MAX));
        queued
    }

    /// Scores every queued row.
    pub(crate) fn score(&mut self) {
        let n = self.rows.len();
        self.scored = true;
        // Counting sort by model: count, prefix sums, then each row to its model's next free place.
        self.starts.clear();
        self.starts.resize(self.models.len() + 1, 0);
        for &m in &self.model_of {
            if let Some(c) = self.starts.get_mut(m as usize + 1) {
                *c += 1;
            }
        }
        for m in 1..self.starts.len() {
            self.starts[m] += self.starts[m - 1];
        }
        self.sorted.clear();
        self.sorted.resize(n, [0.0; FEATURES]);
        self.position.clear();
        // `starts[m]` serves as model m's cursor during the scatter, ending at `starts[m + 1]`; shifted
        // back afterwards.
        for (row, &m) in self.rows.iter().zip(&self.model_of) {
            let Some(at) = self.starts.get_mut(m as usize) else { continue };
            if let Some(slot) = self.sorted.get_mut(*at) {
                *slot = *row;
            }
            self.position.push(u32::try_from(*at).unwrap_or(u32::MAX));
            *at += 1;
        }
        self.starts.rotate_right(1);
        if let Some(first) = self.starts.first_mut() {
            *first = 0;
        }
        self.scores.clear();
        self.scores.resize(n, 0.0);
        for (m, model) in self.models.iter().enumerate() {
            let range = self.starts[m]..self.starts[m + 1];
            if let (Some(rows), Some(out)) = (self.sorted.get(range.clone()), self.scores.get_mut(range)) {
                model.contributions_into(rows, out);
            }
        }
    }

    /// The contribution of a queued row, once [`score`](Self::score)d.
    pub(crate) fn contribution(&self, queued: Queued) -> f64 {
        debug_assert!(self.scored, "contribution read before the batch was scored");
        match queued {
            Queued::Row(i) => {
                let at = self.position.get(i as usize).map_or(usize::MAX, |&p| p as usize);
                self.scores.get(at).copied().unwrap_or(0.0)
            }
            Queued::Nan => 0.0,
        }
    }

    /// Empties the batch for the next one, keeping the buffers; lets go of the models (a replaced model is
    /// freed with its last user).
    pub(crate) fn clear(&mut self) {
        self.models.clear();
        self.last = 0;
        self.rows.clear();
        self.model_of.clear();
        self.scored = false;
    }
}

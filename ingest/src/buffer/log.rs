//! A shard's sealed batches in arrival order, with the pins of lossless subscribers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use super::table::SealedTable;

#[derive(Debug)]
pub(super) struct ShardLog<S> {
    batches: VecDeque<Arc<S>>,
    /// Sequence number of `batches[0]`.
    first_seq: u64,
    /// Per lossless subscriber: the first sequence number it has not committed.
    pins: Vec<(u64, u64)>,
    next_pin_id: u64,
    closed: bool,
}

impl<S> Default for ShardLog<S> {
    fn default() -> Self {
        Self { batches: VecDeque::new(), first_seq: 0, pins: Vec::new(), next_pin_id: 0, closed: false }
    }
}

impl<S: SealedTable> ShardLog<S> {
    pub(super) fn next_seq(&self) -> u64 {
        self.first_seq + self.batches.len() as u64
    }

    pub(super) fn first_seq(&self) -> u64 {
        self.first_seq
    }

    pub(super) fn push(&mut self, batch: Arc<S>) {
        self.batches.push_back(batch);
    }

    pub(super) fn get(&self, seq: u64) -> Option<&Arc<S>> {
        seq.checked_sub(self.first_seq).and_then(|i| self.batches.get(i as usize))
    }

    fn lowest_pin(&self) -> Option<u64> {
        self.pins.iter().map(|(_, p)| *p).min()
    }

    pub(super) fn evictable_front_time(&self) -> Option<SystemTime> {
        let front = self.batches.front()?;
        match self.lowest_pin() {
            Some(pin) if pin <= self.first_seq => None,
            _ => Some(front.sealed_at()),
        }
    }

    pub(super) fn pop_front_unpinned(&mut self) -> Option<Arc<S>> {
        self.evictable_front_time()?;
        let batch = self.batches.pop_front()?;
        self.first_seq += 1;
        Some(batch)
    }

    pub(super) fn add_pin(&mut self, at: u64) -> u64 {
        let id = self.next_pin_id;
        self.next_pin_id += 1;
        self.pins.push((id, at));
        id
    }

    pub(super) fn move_pin(&mut self, id: u64, to: u64) {
        if let Some(p) = self.pins.iter_mut().find(|(i, _)| *i == id) {
            p.1 = p.1.max(to);
        }
    }

    pub(super) fn remove_pin(&mut self, id: u64) {
        self.pins.retain(|(i, _)| *i != id);
    }

    pub(super) fn close(&mut self) {
        self.closed = true;
    }

    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(super) fn snapshot(&self) -> Vec<Arc<S>> {
        self.batches.iter().cloned().collect()
    }
}

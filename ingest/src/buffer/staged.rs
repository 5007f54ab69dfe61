//! Rows staged by a receiver before they enter the buffer, one set per shard.

use super::table::ShardRows;

/// Everything one request adds, split by buffer shard. A receiver reuses one of these per worker.
#[derive(Debug, Default)]
pub struct Staged<R: ShardRows> {
    pub(crate) shards: Vec<R>,
}

impl<R: ShardRows> Staged<R> {
    /// Empties the staging area for a buffer with `shards` shards, keeping capacity.
    pub fn reset(&mut self, shards: usize) {
        self.shards.resize_with(shards.max(1), R::default);
        for s in &mut self.shards {
            s.clear();
        }
    }

    /// The rows of the shard that owns `key` (a series id, or a stream or trace hash).
    pub fn shard_for(&mut self, key: u64) -> &mut R {
        if self.shards.is_empty() {
            self.shards.push(R::default());
        }
        let n = self.shards.len() as u64;
        &mut self.shards[(key % n) as usize]
    }

    pub(crate) fn estimated_bytes(&self) -> u64 {
        self.shards.iter().map(ShardRows::estimated_bytes).sum()
    }
}

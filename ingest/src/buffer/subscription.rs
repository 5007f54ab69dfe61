//! Reading a shard's sealed batches in order.

use std::sync::Arc;

use super::ColumnarBuffer;
use super::table::OpenTable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionMode {
    /// Starts at the next batch sealed and pins every batch not yet committed: nothing is evicted under it.
    Lossless,
    /// Starts at the oldest batch held and may be overtaken by eviction; it is then told how much it missed.
    Lossy,
}

#[derive(Debug)]
pub enum TableNext<S> {
    Batch(Arc<S>),
    /// Eviction overtook a lossy reader: this many batches were skipped.
    Lagged(u64),
    /// The buffer was closed and everything has been read.
    Closed,
}

#[derive(Debug)]
pub struct TableSubscription<O: OpenTable> {
    buffer: Arc<ColumnarBuffer<O>>,
    shard: usize,
    cursor: u64,
    pin: Option<u64>,
}

impl<O: OpenTable> TableSubscription<O> {
    pub(super) fn new(buffer: Arc<ColumnarBuffer<O>>, shard: usize, mode: SubscriptionMode) -> Self {
        let shard = shard.min(buffer.shard_count().saturating_sub(1));
        let (cursor, pin) = {
            let mut log = buffer.shards[shard].log.lock();
            match mode {
                SubscriptionMode::Lossless => {
                    let at = log.next_seq();
                    (at, Some(log.add_pin(at)))
                }
                SubscriptionMode::Lossy => (log.first_seq(), None),
            }
        };
        Self { buffer, shard, cursor, pin }
    }

    pub fn shard(&self) -> usize {
        self.shard
    }

    /// The next batch without waiting, if one is ready.
    pub fn try_next(&mut self) -> Option<TableNext<O::Sealed>> {
        let shard = &self.buffer.shards[self.shard];
        let log = shard.log.lock();
        if self.cursor < log.first_seq() {
            let missed = log.first_seq() - self.cursor;
            self.cursor = log.first_seq();
            return Some(TableNext::Lagged(missed));
        }
        if let Some(batch) = log.get(self.cursor) {
            self.cursor += 1;
            return Some(TableNext::Batch(Arc::clone(batch)));
        }
        log.is_closed().then_some(TableNext::Closed)
    }

    /// Waits for the next batch.
    pub async fn next(&mut self) -> TableNext<O::Sealed> {
        let buffer = Arc::clone(&self.buffer);
        let shard = &buffer.shards[self.shard];
        loop {
            let notified = shard.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(next) = self.try_next() {
                return next;
            }
            notified.await;
        }
    }

    /// Releases every batch handed out so far: a lossless reader calls this once they are delivered.
    pub fn commit(&self) {
        if let Some(pin) = self.pin {
            self.buffer.shards[self.shard].log.lock().move_pin(pin, self.cursor);
        }
    }
}

impl<O: OpenTable> Drop for TableSubscription<O> {
    fn drop(&mut self) {
        if let Some(pin) = self.pin {
            self.buffer.shards[self.shard].log.lock().remove_pin(pin);
        }
    }
}

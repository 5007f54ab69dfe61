//! The keep feeder: ingested series the own-series store keeps (`own_series.keep` and the selectors of the
//! threshold rules, `vigil_query::KeepSet`), read from the metrics buffer into the store, so threshold rules
//! and `/api/v1/query` see them.
//!
//! Per buffer shard, a task waits until the keep set holds something, then reads the shard through a
//! *lossy* subscription (never pinning the buffer or slowing ingest; batches evicted before it reads them
//! are counted in `vigil_own_series_keep_lagged_batches_total`) and passes each sealed batch (an `Arc`,
//! nothing copied) to one thread, `vigil-keep-series`. The thread gives the batch's columns to
//! [`KeptSamples`], which matches each series once and gathers the kept samples, and appends what it
//! gathered once no batch is waiting (or [`FLUSH_AT`] samples are). With an empty keep set no shard is
//! subscribed: ingest pays nothing. When the set changes, each task starts over at the oldest batch the
//! buffer holds, so newly kept series get the buffer's window at once (samples already kept are written
//! again, in place).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt32Type};
use tokio::sync::{mpsc, watch};
use vigil_ingest::buffer::{MetricsBuffer, Next, SealedBatch, SubscriptionMode};
use vigil_ingest::series::SeriesRegistry;
use vigil_query::{KeepSnapshot, KeptSamples, OwnSeriesStore, SampleRows};

/// Kept samples gathered before they are appended even though more batches are waiting.
const FLUSH_AT: usize = 64 * 1024;

enum Read {
    Batch(Arc<SealedBatch>),
    Lagged(u64),
}

/// The running feeder; [`KeepFeeder::stop`] once the metrics buffer is closed.
#[derive(Debug)]
pub(crate) struct KeepFeeder {
    stop: watch::Sender<bool>,
}

impl KeepFeeder {
    /// Idle shard tasks end now, reading ones once they have read the closed buffer to its end; the thread
    /// ends after them.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }
}

/// Starts the shard tasks (on the current tokio runtime) and the thread.
pub(crate) fn start(
    buffer: &Arc<MetricsBuffer>,
    registry: &Arc<SeriesRegistry>,
    store: &Arc<OwnSeriesStore>,
) -> std::io::Result<KeepFeeder> {
    let shards = buffer.shard_count();
    let (tx, rx) = mpsc::channel(shards.clamp(4, 64));
    let kept = KeptSamples::new(Arc::clone(store));
    let registry = Arc::clone(registry);
    std::thread::Builder::new().name("vigil-keep-series".into()).spawn(move || run(rx, kept, &registry))?;
    let (stop, stopped) = watch::channel(false);
    for shard in 0..shards {
        let keep = store.keep().subscribe();
        tokio::spawn(read_shard(Arc::clone(buffer), shard, keep, tx.clone(), stopped.clone()));
    }
    Ok(KeepFeeder { stop })
}

/// One shard's batches to the thread, while the keep set holds something.
async fn read_shard(
    buffer: Arc<MetricsBuffer>,
    shard: usize,
    mut keep: watch::Receiver<Arc<KeepSnapshot>>,
    tx: mpsc::Sender<Read>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            kept = async { keep.wait_for(|k| !k.is_empty()).await.map(|_| ()) } => if kept.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
        let mut subscription = buffer.subscribe(shard, SubscriptionMode::Lossy);
        loop {
            tokio::select! {
                next = subscription.next() => {
                    let read = match next {
                        Next::Batch(batch) => Read::Batch(batch),
                        Next::Lagged(missed) => Read::Lagged(missed),
                        Next::Closed => return,
                    };
                    if tx.send(read).await.is_err() {
                        return;
                    }
                }
                // A new keep set: start over at the oldest batch held, or stop reading if it is empty.
                changed = keep.changed() => match changed {
                    Ok(()) => break,
                    Err(_) => return,
                },
            }
        }
    }
}

/// The thread: batches into [`KeptSamples`], appended to the store whenever the queue runs dry.
fn run(mut rx: mpsc::Receiver<Read>, mut kept: KeptSamples, registry: &SeriesRegistry) {
    while let Some(read) = rx.blocking_recv() {
        take(&mut kept, registry, read);
        while kept.waiting() < FLUSH_AT {
            match rx.try_recv() {
                Ok(read) => take(&mut kept, registry, read),
                Err(_) => break,
            }
        }
        kept.flush();
    }
}

fn take(kept: &mut KeptSamples, registry: &SeriesRegistry, read: Read) {
    match read {
        Read::Batch(batch) => match rows(&batch) {
            Some(rows) => kept.feed(registry, rows),
            None => tracing::error!("A sealed batch does not have the samples schema. This is a bug."),
        },
        Read::Lagged(missed) => kept.lagged(missed),
    }
}

/// The batch's slot, timestamp and value columns.
fn rows(batch: &SealedBatch) -> Option<SampleRows<'_>> {
    let columns = batch.samples.columns();
    Some(SampleRows {
        times: columns.get(1)?.as_primitive_opt::<TimestampMillisecondType>()?.values(),
        values: columns.get(2)?.as_primitive_opt::<Float64Type>()?.values(),
        slots: columns.get(3)?.as_primitive_opt::<UInt32Type>()?.values(),
    })
}

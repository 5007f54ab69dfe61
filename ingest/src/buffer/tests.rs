//! Tests of the columnar buffer: staging, sealing, subscriptions, eviction and back-pressure.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt64Type};

use super::*;
use crate::series::{decode_label_key, push_label};

const HOUR: Duration = Duration::from_secs(3600);

/// The smallest `max_bytes` [`BufferConfig::validate`] accepts: every shard's pre-sized sample columns,
/// four times over.
fn floor(c: &BufferConfig) -> u64 {
    c.min_max_bytes()
}

/// Two shards of four-row batches, `extra` bytes above the floor, sealed only by size or by hand.
fn small_config(extra: u64) -> BufferConfig {
    let mut c = BufferConfig { max_bytes: 0, shards: 2, batch_rows: 4, seal_interval: HOUR };
    c.max_bytes = floor(&c) + extra;
    c.validate().unwrap();
    c
}

fn stage(buffer: &MetricsBuffer, rows: &[(u64, i64, f64)]) -> StagedRows {
    let mut staged = buffer.staged_rows();
    for &(series, timestamp_ms, value) in rows {
        staged.push_sample(SampleRow { series, slot: 0, timestamp_ms, value });
    }
    staged
}

/// Rows of one batch's `samples` table as (series id, timestamp, value), in stored order.
fn samples_of(batch: &SealedBatch) -> Vec<(u64, i64, f64)> {
    let s = &batch.samples;
    assert_eq!(s.schema(), *schema::SAMPLES);
    let ids = s.column(0).as_primitive::<UInt64Type>();
    let ts = s.column(1).as_primitive::<TimestampMillisecondType>();
    let values = s.column(2).as_primitive::<Float64Type>();
    (0..s.num_rows()).map(|i| (ids.value(i), ts.value(i), values.value(i))).collect()
}

fn expect_batch(next: Option<Next>) -> Arc<SealedBatch> {
    match next {
        Some(Next::Batch(b)) => b,
        other => panic!("expected a batch, got {other:?}"),
    }
}

fn open_rows(buffer: &MetricsBuffer, shard: usize) -> usize {
    buffer.shards[shard].open.lock().rows()
}

/// Four samples of `series` at timestamps `4*i .. 4*i+3`: exactly one batch in a `batch_rows: 4` buffer.
fn batch_of_four(series: u64, i: i64) -> Vec<(u64, i64, f64)> {
    (0..4).map(|k| (series, 4 * i + k, (4 * i + k) as f64)).collect()
}

#[test]
fn validate_floor_and_yaml() {
    let c = small_config(0);
    assert_eq!(c.max_bytes, 2 * 4 * 28 * 4);
    assert!(c.validate().is_ok(), "the floor itself is accepted");
    let below = BufferConfig { max_bytes: c.max_bytes - 1, ..c.clone() };
    let err = below.validate().unwrap_err();
    assert!(err.contains("buffer.max_bytes") && err.contains(&c.max_bytes.to_string()), "{err}");
    assert!(BufferConfig { batch_rows: 0, ..c.clone() }.validate().unwrap_err().contains("buffer.batch_rows"));
    assert!(
        BufferConfig { seal_interval: Duration::ZERO, ..c.clone() }
            .validate()
            .unwrap_err()
            .contains("buffer.seal_interval")
    );
    assert!(BufferConfig::default().validate().is_ok());
    assert!(BufferConfig { shards: 0, ..c.clone() }.effective_shards() >= 2);

    let parsed: BufferConfig =
        serde_yaml_ng::from_str("max_bytes: 4096\nshards: 3\nbatch_rows: 8\nseal_interval: 150ms\n").unwrap();
    assert_eq!(
        parsed,
        BufferConfig { max_bytes: 4096, shards: 3, batch_rows: 8, seal_interval: Duration::from_millis(150) }
    );
    assert!(serde_yaml_ng::from_str::<BufferConfig>("max_byte: 1\n").is_err(), "unknown keys are refused");
}

#[test]
fn sealed_rows_read_back_through_lossy_subscription() {
    let buffer =
        MetricsBuffer::new(BufferConfig { max_bytes: 1 << 20, shards: 2, batch_rows: 100, seal_interval: HOUR });
    assert_eq!(buffer.shard_count(), 2);
    let first = [(10, 1_000, 1.0), (11, 1_000, 2.0), (10, 2_000, 3.0), (13, 1_500, -4.5)];
    let second = [(12, 500, 5.0), (11, 3_000, f64::MAX), (10, 2_000, 7.0)];
    buffer.append(&stage(&buffer, &first)).unwrap();
    buffer.append(&stage(&buffer, &second)).unwrap();

    let mut subs = [buffer.subscribe(0, SubscriptionMode::Lossy), buffer.subscribe(1, SubscriptionMode::Lossy)];
    for (shard, sub) in subs.iter_mut().enumerate() {
        assert_eq!(sub.shard(), shard);
        assert!(sub.try_next().is_none(), "nothing is visible before sealing");
        assert!(buffer.snapshot(shard).is_empty());
    }
    buffer.seal_all();
    assert_eq!(buffer.stats().sealed_batches.load(Relaxed), 2);

    let all: Vec<_> = first.iter().chain(&second).copied().collect();
    for (shard, sub) in subs.iter_mut().enumerate() {
        let batch = expect_batch(sub.try_next());
        assert_eq!((batch.shard, batch.seq), (shard, 0));
        let expected: Vec<_> = all.iter().copied().filter(|(id, _, _)| *id % 2 == shard as u64).collect();
        assert_eq!(samples_of(&batch), expected, "shard {shard} keeps arrival order");
        assert_eq!(batch.sample_count(), expected.len());
        assert!(batch.exemplars.is_none() && batch.histograms.is_none());
        assert_eq!((batch.exemplar_count(), batch.histogram_count()), (0, 0));
        assert!(batch.bytes > 0);
        assert!(sub.try_next().is_none(), "one batch per shard");
    }

    // Sealing again with nothing open adds no empty batch.
    buffer.seal_all();
    assert_eq!(buffer.snapshot(0).len(), 1);
    assert_eq!(buffer.snapshot(1).len(), 1);
    assert_eq!(buffer.stats().sealed_batches.load(Relaxed), 2);

    // A subscription to a shard past the end is clamped to the last shard.
    assert_eq!(buffer.subscribe(7, SubscriptionMode::Lossy).shard(), 1);
}

#[test]
fn seals_when_batch_rows_is_reached() {
    let buffer = MetricsBuffer::new(small_config(1 << 20));
    buffer.append(&stage(&buffer, &[(0, 1, 1.0), (2, 2, 2.0), (4, 3, 3.0)])).unwrap();
    buffer.append(&stage(&buffer, &[(1, 1, 1.0), (3, 2, 2.0), (5, 3, 3.0)])).unwrap();
    assert!(buffer.snapshot(0).is_empty(), "three rows of four: still open");
    assert!(buffer.snapshot(1).is_empty());
    assert_eq!(open_rows(&buffer, 0), 3);

    buffer.append(&stage(&buffer, &[(6, 4, 4.0)])).unwrap();
    let sealed = buffer.snapshot(0);
    assert_eq!(sealed.len(), 1, "the fourth row seals shard 0");
    assert_eq!(samples_of(&sealed[0]), vec![(0, 1, 1.0), (2, 2, 2.0), (4, 3, 3.0), (6, 4, 4.0)]);
    assert_eq!(open_rows(&buffer, 0), 0, "a fresh open batch replaces the sealed one");
    assert!(buffer.snapshot(1).is_empty(), "shard 1 is untouched");
    assert_eq!(open_rows(&buffer, 1), 3);

    // Exemplar and histogram rows count towards the batch size too.
    let mut staged = buffer.staged_rows();
    staged.push_histogram(HistogramRow { series: 7, timestamp_ms: 9, encoded: vec![1, 2, 3] });
    buffer.append(&staged).unwrap();
    let sealed = buffer.snapshot(1);
    assert_eq!(sealed.len(), 1);
    assert_eq!((sealed[0].sample_count(), sealed[0].histogram_count()), (3, 1));

    // One append bigger than a batch stays together and is sealed at once.
    let big: Vec<_> = (0..6).map(|i| (8, 100 + i, i as f64)).collect();
    buffer.append(&stage(&buffer, &big)).unwrap();
    let sealed = buffer.snapshot(0);
    assert_eq!(sealed.len(), 2);
    assert_eq!(samples_of(&sealed[1]), big);
    assert_eq!(sealed[1].seq, sealed[0].seq + 1);
}

#[test]
fn seal_due_respects_seal_interval() {
    let interval = Duration::from_millis(300);
    let buffer =
        MetricsBuffer::new(BufferConfig { max_bytes: 1 << 20, shards: 2, batch_rows: 100, seal_interval: interval });
    let opened = Instant::now();
    buffer.append(&stage(&buffer, &[(0, 1, 1.0)])).unwrap();
    buffer.seal_due();
    if opened.elapsed() < interval {
        assert!(buffer.snapshot(0).is_empty(), "sealed before seal_interval passed");
    }
    std::thread::sleep(interval / 2);
    // A later row does not restart the clock of the batch it joins.
    buffer.append(&stage(&buffer, &[(2, 2, 2.0)])).unwrap();
    std::thread::sleep(interval / 2 + Duration::from_millis(50));
    assert!(opened.elapsed() >= interval);
    buffer.seal_due();
    let sealed = buffer.snapshot(0);
    assert_eq!(sealed.len(), 1, "the open batch is due");
    assert_eq!(samples_of(&sealed[0]), vec![(0, 1, 1.0), (2, 2, 2.0)]);
    assert!(buffer.snapshot(1).is_empty(), "an empty shard is never sealed");
    buffer.seal_due();
    assert_eq!(buffer.snapshot(0).len(), 1, "nothing left to seal");
}

#[tokio::test]
async fn run_sealer_makes_rows_visible_within_the_interval() {
    let buffer = MetricsBuffer::new(BufferConfig {
        max_bytes: 1 << 20,
        shards: 2,
        batch_rows: 100,
        seal_interval: Duration::from_millis(50),
    });
    let sealer = tokio::spawn(Arc::clone(&buffer).run_sealer());
    let mut sub = buffer.subscribe(1, SubscriptionMode::Lossless);
    buffer.append(&stage(&buffer, &[(3, 30, 3.0)])).unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), sub.next()).await.expect("the sealer never sealed");
    let Next::Batch(batch) = next else { panic!("expected a batch, got {next:?}") };
    assert_eq!(samples_of(&batch), vec![(3, 30, 3.0)]);
    sealer.abort();
}

#[test]
fn eviction_drops_oldest_batches_and_lossy_reader_is_told() {
    let config = small_config(64);
    let max = config.max_bytes;
    let buffer = MetricsBuffer::new(config);
    let mut lossy = buffer.subscribe(0, SubscriptionMode::Lossy);
    const BATCHES: i64 = 40;
    let mut largest = 0;
    for i in 0..BATCHES {
        buffer.append(&stage(&buffer, &batch_of_four(2, i))).unwrap();
        largest = largest.max(buffer.snapshot(0).last().map_or(0, |b| b.bytes));
    }
    let stats = buffer.stats();
    assert_eq!(stats.sealed_batches.load(Relaxed), BATCHES as u64);
    let evicted = stats.evicted_batches.load(Relaxed);
    assert!(evicted > 0, "{BATCHES} batches cannot fit in {max} bytes");
    assert_eq!(stats.evicted_rows.load(Relaxed), evicted * 4);
    assert_eq!(stats.rejected_appends.load(Relaxed), 0, "a lossy reader never blocks appends");
    assert!(buffer.used_bytes() <= max + largest, "used {} of {max}", buffer.used_bytes());

    let held = buffer.snapshot(0);
    assert_eq!(held.len() as u64 + evicted, BATCHES as u64);
    assert_eq!(held[0].seq, evicted, "the oldest went first");

    match lossy.try_next() {
        Some(Next::Lagged(n)) => assert_eq!(n, evicted),
        other => panic!("expected Lagged, got {other:?}"),
    }
    for i in evicted as i64..BATCHES {
        let batch = expect_batch(lossy.try_next());
        assert_eq!(batch.seq, i as u64);
        assert_eq!(samples_of(&batch), batch_of_four(2, i));
    }
    assert!(lossy.try_next().is_none());
}

#[test]
fn lossless_subscription_pins_until_commit() {
    let config = small_config(64);
    let buffer = MetricsBuffer::new(config.clone());
    let mut lossless = buffer.subscribe(0, SubscriptionMode::Lossless);
    // A lossy reader on the same shard changes nothing.
    let _lossy = buffer.subscribe(0, SubscriptionMode::Lossy);

    let mut appended = 0;
    let full = loop {
        assert!(appended < 100, "the buffer never filled up");
        match buffer.append(&stage(&buffer, &batch_of_four(4, appended))) {
            Ok(()) => appended += 1,
            Err(e) => break e,
        }
    };
    assert!(appended >= 1);
    assert_eq!(full, BufferFull { limit: config.max_bytes });
    assert!(full.to_string().contains("buffer.max_bytes"));
    let stats = buffer.stats();
    assert_eq!(stats.evicted_batches.load(Relaxed), 0, "pinned batches are never evicted");
    assert_eq!(stats.rejected_appends.load(Relaxed), 1);

    // The refused append added nothing anywhere, and asking again is refused again.
    let used = buffer.used_bytes();
    let again = stage(&buffer, &[(4, 1_000, 1.0), (5, 1_000, 1.0)]);
    assert_eq!(buffer.append(&again), Err(full));
    assert_eq!(buffer.used_bytes(), used);
    assert_eq!((open_rows(&buffer, 0), open_rows(&buffer, 1)), (0, 0));
    assert_eq!(buffer.snapshot(0).len() as i64, appended);
    assert!(buffer.snapshot(1).is_empty());
    assert_eq!(stats.rejected_appends.load(Relaxed), 2);

    // Reading is not enough: only a commit releases the batches.
    for i in 0..appended {
        let batch = expect_batch(lossless.try_next());
        assert_eq!(samples_of(&batch), batch_of_four(4, i));
    }
    assert!(lossless.try_next().is_none());
    assert!(buffer.append(&stage(&buffer, &batch_of_four(4, appended))).is_err());

    lossless.commit();
    buffer.append(&stage(&buffer, &batch_of_four(4, appended))).unwrap();
    assert!(stats.evicted_batches.load(Relaxed) > 0, "committed batches made room");
    let batch = expect_batch(lossless.try_next());
    assert_eq!(samples_of(&batch), batch_of_four(4, appended));
}

#[test]
fn dropping_a_lossless_subscription_releases_its_pin() {
    let buffer = MetricsBuffer::new(small_config(64));
    let lossless = buffer.subscribe(1, SubscriptionMode::Lossless);
    let mut i = 0;
    while buffer.append(&stage(&buffer, &batch_of_four(1, i))).is_ok() {
        i += 1;
        assert!(i < 100, "the buffer never filled up");
    }
    drop(lossless);
    buffer.append(&stage(&buffer, &batch_of_four(1, i))).unwrap();
}

#[test]
fn lossless_starts_at_the_next_batch_and_lossy_at_the_oldest() {
    let buffer = MetricsBuffer::new(small_config(1 << 20));
    buffer.append(&stage(&buffer, &batch_of_four(0, 0))).unwrap();
    let mut lossless = buffer.subscribe(0, SubscriptionMode::Lossless);
    let mut lossy = buffer.subscribe(0, SubscriptionMode::Lossy);
    buffer.append(&stage(&buffer, &batch_of_four(0, 1))).unwrap();
    assert_eq!(expect_batch(lossy.try_next()).seq, 0);
    assert_eq!(expect_batch(lossy.try_next()).seq, 1);
    assert_eq!(expect_batch(lossless.try_next()).seq, 1, "a lossless reader does not see older batches");
    assert!(lossless.try_next().is_none());
}

#[tokio::test]
async fn close_ends_subscriptions() {
    let buffer = MetricsBuffer::new(small_config(1 << 20));
    let mut waiting = buffer.subscribe(1, SubscriptionMode::Lossy);
    let waiter = tokio::spawn(async move { waiting.next().await });
    buffer.append(&stage(&buffer, &[(0, 1, 1.0)])).unwrap();
    buffer.seal_all();
    let mut reader = buffer.subscribe(0, SubscriptionMode::Lossy);
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "shard 1 has nothing yet");

    buffer.close();
    let woken = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("close did not wake a waiting reader")
        .unwrap();
    assert!(matches!(woken, Next::Closed), "{woken:?}");
    // What was sealed before closing is still delivered, then Closed, and Closed again.
    let next = reader.next().await;
    assert!(matches!(&next, Next::Batch(b) if samples_of(b) == vec![(0, 1, 1.0)]), "{next:?}");
    assert!(matches!(reader.next().await, Next::Closed));
    assert!(matches!(reader.next().await, Next::Closed));
}

#[tokio::test]
async fn waiting_reader_is_woken_by_a_seal() {
    let buffer = MetricsBuffer::new(small_config(1 << 20));
    let mut sub = buffer.subscribe(1, SubscriptionMode::Lossless);
    let waiter = tokio::spawn(async move { sub.next().await });
    tokio::task::yield_now().await;
    buffer.append(&stage(&buffer, &batch_of_four(3, 0))).unwrap();
    let next =
        tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("the seal did not wake the reader").unwrap();
    assert!(matches!(&next, Next::Batch(b) if samples_of(b) == batch_of_four(3, 0)), "{next:?}");
}

#[test]
fn exemplar_and_histogram_tables_are_sealed() {
    let buffer =
        MetricsBuffer::new(BufferConfig { max_bytes: 1 << 20, shards: 2, batch_rows: 100, seal_interval: HOUR });
    let mut labels = Vec::new();
    push_label(&mut labels, b"trace_id", b"4bf92f3577b34da6a3ce929d0e0e4736");
    push_label(&mut labels, b"span_id", b"00f067aa0ba902b7");
    let mut staged = buffer.staged_rows();
    staged.push_sample(SampleRow { series: 2, slot: 0, timestamp_ms: 10, value: 1.0 });
    staged.push_exemplar(ExemplarRow {
        series: 2,
        timestamp_ms: 11,
        value: 0.25,
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        span_id: Some("00f067aa0ba902b7".into()),
        labels: labels.clone(),
    });
    staged.push_exemplar(ExemplarRow {
        series: 4,
        timestamp_ms: 12,
        value: 2.0,
        trace_id: None,
        span_id: None,
        labels: Vec::new(),
    });
    staged.push_histogram(HistogramRow { series: 6, timestamp_ms: 13, encoded: vec![0x78, 0x0d] });
    staged.push_sample(SampleRow { series: 3, slot: 0, timestamp_ms: 20, value: 2.0 });
    assert_eq!((staged.sample_count(), staged.exemplar_count(), staged.histogram_count()), (2, 2, 1));
    let before = buffer.used_bytes();
    buffer.append(&staged).unwrap();
    assert!(buffer.used_bytes() > before, "exemplar and histogram rows are accounted");
    buffer.seal_all();

    let batch = expect_batch(buffer.subscribe(0, SubscriptionMode::Lossy).try_next());
    assert_eq!(samples_of(&batch), vec![(2, 10, 1.0)]);
    assert_eq!((batch.exemplar_count(), batch.histogram_count()), (2, 1));

    let ex = batch.exemplars.as_ref().unwrap();
    assert_eq!(ex.schema(), *schema::EXEMPLARS);
    assert_eq!(ex.column(0).as_primitive::<UInt64Type>().values().to_vec(), vec![2, 4]);
    assert_eq!(ex.column(1).as_primitive::<TimestampMillisecondType>().values().to_vec(), vec![11, 12]);
    assert_eq!(ex.column(2).as_primitive::<Float64Type>().values().to_vec(), vec![0.25, 2.0]);
    let trace = ex.column_by_name("trace_id").unwrap().as_string::<i32>();
    let span = ex.column_by_name("span_id").unwrap().as_string::<i32>();
    assert_eq!(trace.value(0), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.value(0), "00f067aa0ba902b7");
    assert!(trace.is_null(1) && span.is_null(1), "a missing trace link is null, not empty");
    let stored = ex.column_by_name("labels").unwrap().as_binary::<i32>();
    assert_eq!(stored.value(0), labels.as_slice());
    let names: Vec<_> = decode_label_key(stored.value(0)).map(|p| p.name).collect();
    assert_eq!(names, ["trace_id", "span_id"]);
    assert!(stored.value(1).is_empty());

    let h = batch.histograms.as_ref().unwrap();
    assert_eq!(h.schema(), *schema::HISTOGRAMS);
    assert_eq!(h.column(0).as_primitive::<UInt64Type>().value(0), 6);
    assert_eq!(h.column(1).as_primitive::<TimestampMillisecondType>().value(0), 13);
    assert_eq!(h.column(2).as_binary::<i32>().value(0), [0x78, 0x0d]);

    let other = expect_batch(buffer.subscribe(1, SubscriptionMode::Lossy).try_next());
    assert_eq!(samples_of(&other), vec![(3, 20, 2.0)]);
    assert!(other.exemplars.is_none() && other.histograms.is_none(), "tables without rows are absent");
}

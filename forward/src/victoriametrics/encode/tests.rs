use std::sync::Arc;

use prost::Message;
use vigil_ingest::buffer::{BufferConfig, ExemplarRow, HistogramRow, MetricsBuffer, Next, SampleRow, SubscriptionMode};
use vigil_ingest::series::{SeriesRegistry, SeriesRegistryConfig};
use vigil_proto::prometheus::{Histogram, Label, WriteRequest, histogram};

use super::encode_write_request;

fn key(pairs: &[(&str, &str)]) -> Vec<u8> {
    let ts = vigil_proto::prometheus::TimeSeries {
        labels: pairs.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect(),
        ..Default::default()
    };
    ts.encode_to_vec()
}

#[tokio::test]
async fn sealed_batches_encode_to_a_faithful_write_request() {
    let registry = SeriesRegistry::new(&SeriesRegistryConfig::default());
    let a = registry.resolve(&key(&[("__name__", "up"), ("job", "a")])).unwrap();
    let b = registry.resolve(&key(&[("__name__", "up"), ("job", "b")])).unwrap();
    let buffer = MetricsBuffer::new(BufferConfig { shards: 1, batch_rows: 64, ..BufferConfig::default() });
    let mut sub = buffer.subscribe(0, SubscriptionMode::Lossy);
    let mut staged = buffer.staged_rows();
    staged.push_sample(SampleRow { series: a.id, slot: a.slot, timestamp_ms: 1000, value: 1.0 });
    staged.push_sample(SampleRow { series: a.id, slot: a.slot, timestamp_ms: 2000, value: 2.0 });
    staged.push_sample(SampleRow { series: b.id, slot: b.slot, timestamp_ms: 1000, value: -3.5 });
    let ex_labels = key(&[("trace_id", "abc")]);
    staged.push_exemplar(ExemplarRow {
        series: a.id,
        timestamp_ms: 1500,
        value: 1.5,
        trace_id: Some("abc".into()),
        span_id: None,
        labels: ex_labels,
    });
    let h = Histogram {
        count: Some(histogram::Count::CountInt(3)),
        sum: 4.0,
        schema: 1,
        timestamp: 2000,
        ..Default::default()
    };
    staged.push_histogram(HistogramRow { series: b.id, timestamp_ms: 2000, encoded: h.encode_to_vec() });
    buffer.append(&staged).unwrap();
    buffer.seal_all();
    let Next::Batch(batch) = sub.next().await else { panic!("expected a batch") };

    let (raw, counts) = encode_write_request(&[Arc::clone(&batch)], &registry);
    assert_eq!((counts.samples, counts.exemplars, counts.histograms, counts.unknown_series), (3, 1, 1, 0));
    let req = WriteRequest::decode(raw.as_slice()).unwrap();
    // Consecutive samples of one series share a TimeSeries.
    assert_eq!(req.timeseries[0].labels[1].value, "a");
    assert_eq!(
        req.timeseries[0].samples.iter().map(|s| (s.timestamp, s.value)).collect::<Vec<_>>(),
        vec![(1000, 1.0), (2000, 2.0)]
    );
    assert_eq!(req.timeseries[1].labels[1].value, "b");
    assert_eq!(req.timeseries[1].samples[0].value, -3.5);
    let ex = &req.timeseries[2].exemplars[0];
    assert_eq!(
        (ex.labels[0].name.as_str(), ex.labels[0].value.as_str(), ex.value, ex.timestamp),
        ("trace_id", "abc", 1.5, 1500)
    );
    assert_eq!(req.timeseries[3].histograms[0], h);
}

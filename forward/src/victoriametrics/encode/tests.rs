use std::sync::Arc;

use prost::Message;
use vigil_ingest::buffer::{BufferConfig, ExemplarRow, HistogramRow, MetricsBuffer, Next, SampleRow, SubscriptionMode};
use vigil_ingest::series::{SeriesRegistry, SeriesRegistryConfig};
use vigil_proto::prometheus::{Histogram, Label, WriteRequest, histogram};

use super::encode_write_requests;

fn key(pairs: &[(&str, &str)]) -> Vec<u8> {
    let ts = vigil_proto::prometheus::TimeSeries {
        labels: pairs.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect(),
        ..Default::default()
    };
    ts.encode_to_vec()
}

#[tokio::test]
async fn sealed_batches_encode_to_a_faithful_write_request() {
    let registry = SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous");
    let t = registry.default_tenant();
    let a = registry.resolve(t, &key(&[("__name__", "up"), ("job", "a")])).unwrap();
    let b = registry.resolve(t, &key(&[("__name__", "up"), ("job", "b")])).unwrap();
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

    let requests = encode_write_requests(&[Arc::clone(&batch)], &registry);
    let [super::TenantRequest { tenant: 0, raw, counts }] = &requests[..] else { panic!("one default-tenant request") };
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

#[tokio::test]
async fn each_tenant_gets_its_own_request() {
    let registry = SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous");
    let (t1, t2) = (registry.tenant("one").unwrap(), registry.tenant("two").unwrap());
    let labels = key(&[("__name__", "up")]);
    let (a, b) = (registry.resolve(t1, &labels).unwrap(), registry.resolve(t2, &labels).unwrap());
    let buffer = MetricsBuffer::new(BufferConfig { shards: 1, batch_rows: 64, ..BufferConfig::default() });
    let mut sub = buffer.subscribe(0, SubscriptionMode::Lossy);
    let mut staged = buffer.staged_rows();
    for (i, r) in [a, b, a, b, b].into_iter().enumerate() {
        staged.push_sample(SampleRow { series: r.id, slot: r.slot, timestamp_ms: i as i64, value: i as f64 });
    }
    buffer.append(&staged).unwrap();
    buffer.seal_all();
    let Next::Batch(batch) = sub.next().await else { panic!("expected a batch") };
    let requests = encode_write_requests(&[batch], &registry);
    let by_tenant: Vec<(u32, Vec<f64>)> = requests
        .iter()
        .map(|r| {
            let req = WriteRequest::decode(r.raw.as_slice()).unwrap();
            (r.tenant, req.timeseries.iter().flat_map(|ts| ts.samples.iter().map(|s| s.value)).collect())
        })
        .collect();
    assert_eq!(by_tenant, vec![(t1.index(), vec![0.0, 2.0]), (t2.index(), vec![1.0, 3.0, 4.0])]);
}

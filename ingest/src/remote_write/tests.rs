//! Tests of the remote-write receiver: decoding through [`receive`], the HTTP answers of [`router`] to
//! malformed input, and property tests that no input makes it panic.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType, UInt64Type};
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use proptest::prelude::*;
use prost::Message;
use tower::ServiceExt;
use vigil_proto::prometheus as v1;
use vigil_proto::prometheus::histogram::{Count, ResetHint, ZeroCount};
use vigil_proto::prometheus_v2 as v2;

use super::*;
use crate::buffer::{BufferConfig, MetricsBuffer, SealedBatch, Subscription, SubscriptionMode};
use crate::limits::IngestLimits;
use crate::series::{FamilyMetadata, MetadataStore, SeriesRegistry, SeriesRegistryConfig, Tenant, decode_label_key};
use crate::telemetry::{IngestMetrics, RejectLabels, RequestLabels};

// ---------------------------------------------------------------------------------------------------------
// Fixture builders
// ---------------------------------------------------------------------------------------------------------

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn snappy(raw: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(raw).unwrap()
}

fn v1_labels(pairs: &[(&str, &str)]) -> Vec<v1::Label> {
    pairs.iter().map(|(n, v)| v1::Label { name: (*n).into(), value: (*v).into() }).collect()
}

fn v1_series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        labels: v1_labels(pairs),
        samples: samples.iter().map(|&(timestamp, value)| v1::Sample { value, timestamp }).collect(),
        ..Default::default()
    }
}

fn v1_request(timeseries: Vec<v1::TimeSeries>) -> v1::WriteRequest {
    v1::WriteRequest { timeseries, metadata: Vec::new() }
}

/// The wire body of a 1.0 request: protobuf, then snappy.
fn v1_body(request: &v1::WriteRequest) -> Vec<u8> {
    snappy(&request.encode_to_vec())
}

/// A native histogram as a 1.0 sender writes it.
fn v1_histogram(timestamp: i64) -> v1::Histogram {
    v1::Histogram {
        count: Some(Count::CountInt(5)),
        sum: 12.5,
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: Some(ZeroCount::ZeroCountInt(1)),
        positive_spans: vec![v1::BucketSpan { offset: 0, length: 2 }, v1::BucketSpan { offset: 3, length: 1 }],
        positive_deltas: vec![2, -1, 1],
        negative_spans: vec![v1::BucketSpan { offset: -1, length: 1 }],
        negative_deltas: vec![1],
        reset_hint: ResetHint::No as i32,
        timestamp,
        ..Default::default()
    }
}

/// The same histogram as a 2.0 sender writes it (plus a start timestamp, which 1.0 cannot carry).
fn v2_histogram(timestamp: i64) -> v2::Histogram {
    let h = v1_histogram(timestamp);
    v2::Histogram {
        count: h.count,
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count,
        negative_spans: h.negative_spans,
        negative_deltas: h.negative_deltas,
        negative_counts: h.negative_counts,
        positive_spans: h.positive_spans,
        positive_deltas: h.positive_deltas,
        positive_counts: h.positive_counts,
        reset_hint: h.reset_hint,
        timestamp: h.timestamp,
        custom_values: h.custom_values,
        start_timestamp: timestamp - 60_000,
    }
}

/// Builds the symbol table of a 2.0 request; `symbols[0]` is the empty string.
struct Symbols {
    table: Vec<String>,
    index: HashMap<String, u32>,
}

impl Symbols {
    fn new() -> Self {
        Self { table: vec![String::new()], index: HashMap::from([(String::new(), 0)]) }
    }

    fn get(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as u32;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }

    fn refs(&mut self, pairs: &[(&str, &str)]) -> Vec<u32> {
        pairs.iter().flat_map(|(n, v)| [self.get(n), self.get(v)]).collect()
    }

    fn series(&mut self, pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> v2::TimeSeries {
        v2::TimeSeries {
            labels_refs: self.refs(pairs),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| v2::Sample { value, timestamp, start_timestamp: 0 })
                .collect(),
            ..Default::default()
        }
    }

    fn request(self, timeseries: Vec<v2::TimeSeries>) -> v2::Request {
        v2::Request { symbols: self.table, timeseries }
    }
}

fn v2_body(request: &v2::Request) -> Vec<u8> {
    snappy(&request.encode_to_vec())
}

/// Replaces a placeholder of the same length in an encoded message (prost cannot write invalid UTF-8).
fn replace_bytes(raw: &mut [u8], placeholder: &[u8], with: &[u8]) {
    assert_eq!(placeholder.len(), with.len());
    let at = raw.windows(placeholder.len()).position(|w| w == placeholder).expect("placeholder not in message");
    raw[at..at + with.len()].copy_from_slice(with);
}

/// A label set as owned (name, value) pairs, in order.
type Labels = Vec<(String, String)>;

fn owned(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

// ---------------------------------------------------------------------------------------------------------
// A receiver without HTTP, and what it put in the buffer
// ---------------------------------------------------------------------------------------------------------

struct Env {
    limits: IngestLimits,
    series: SeriesRegistry,
    metadata: MetadataStore,
    buffer: Arc<MetricsBuffer>,
}

#[derive(Debug, Clone, PartialEq)]
struct StoredExemplar {
    series: u64,
    timestamp_ms: i64,
    value: f64,
    trace_id: Option<String>,
    span_id: Option<String>,
    labels: Labels,
}

#[derive(Debug, Default)]
struct Contents {
    samples: Vec<(u64, i64, f64)>,
    exemplars: Vec<StoredExemplar>,
    histograms: Vec<(u64, i64, Vec<u8>)>,
}

impl Contents {
    fn series_ids(&self) -> BTreeSet<u64> {
        let s = self.samples.iter().map(|r| r.0);
        let e = self.exemplars.iter().map(|r| r.series);
        let h = self.histograms.iter().map(|r| r.0);
        s.chain(e).chain(h).collect()
    }

    /// Samples of one series in arrival order (a series always lands in the same shard).
    fn samples_of(&self, id: u64) -> Vec<(i64, f64)> {
        self.samples.iter().filter(|r| r.0 == id).map(|r| (r.1, r.2)).collect()
    }

    fn rows(&self) -> usize {
        self.samples.len() + self.exemplars.len() + self.histograms.len()
    }
}

fn buffer_config() -> BufferConfig {
    BufferConfig {
        max_bytes: 64 << 20,
        shards: 2,
        batch_rows: 1024,
        seal_interval: std::time::Duration::from_secs(3600),
    }
}

impl Env {
    fn new() -> Self {
        Self::with(IngestLimits::default(), SeriesRegistryConfig::default())
    }

    fn with(limits: IngestLimits, series: SeriesRegistryConfig) -> Self {
        Self {
            limits,
            series: SeriesRegistry::new(&series, "anonymous"),
            metadata: MetadataStore::default(),
            buffer: MetricsBuffer::new(buffer_config()),
        }
    }

    fn send(&self, body: &[u8], version: RemoteWriteVersion) -> Result<WriteCounts, RemoteWriteError> {
        receive(body, version, Tenant::DEFAULT, &self.limits, &self.series, &self.metadata, &self.buffer)
    }

    /// Seals everything and reads every shard from its oldest batch through a lossy subscription.
    fn contents(&self) -> Contents {
        self.buffer.seal_all();
        let mut out = Contents::default();
        for shard in 0..self.buffer.shard_count() {
            let mut sub = self.buffer.subscribe(shard, SubscriptionMode::Lossy);
            while let Some(next) = sub.try_next() {
                let crate::buffer::Next::Batch(batch) = next else { panic!("unexpected {next:?}") };
                assert_eq!(batch.shard, shard);
                let mut rows = Contents::default();
                read_batch(&batch, &mut rows);
                let n = self.buffer.shard_count() as u64;
                for id in rows.series_ids() {
                    assert_eq!(id % n, shard as u64, "series {id} is in the wrong shard");
                }
                out.samples.extend(rows.samples);
                out.exemplars.extend(rows.exemplars);
                out.histograms.extend(rows.histograms);
            }
        }
        out
    }

    /// The labels the registry holds for a series id.
    fn labels(&self, id: u64) -> Labels {
        self.series
            .with_labels(id, |it| it.map(|p| (p.name.to_owned(), p.value.to_owned())).collect())
            .unwrap_or_else(|| panic!("series {id} is not in the registry"))
    }

    /// Every series id found in the buffer, by its labels.
    fn ids_by_labels(&self, contents: &Contents) -> HashMap<Labels, u64> {
        contents.series_ids().into_iter().map(|id| (self.labels(id), id)).collect()
    }
}

fn read_batch(batch: &SealedBatch, out: &mut Contents) {
    let s = &batch.samples;
    let (ids, ts, vs) = (
        s.column(0).as_primitive::<UInt64Type>(),
        s.column(1).as_primitive::<TimestampMillisecondType>(),
        s.column(2).as_primitive::<Float64Type>(),
    );
    out.samples.extend((0..s.num_rows()).map(|i| (ids.value(i), ts.value(i), vs.value(i))));
    if let Some(e) = &batch.exemplars {
        let (ids, ts, vs) = (
            e.column(0).as_primitive::<UInt64Type>(),
            e.column(1).as_primitive::<TimestampMillisecondType>(),
            e.column(2).as_primitive::<Float64Type>(),
        );
        let trace = e.column_by_name("trace_id").unwrap().as_string::<i32>();
        let span = e.column_by_name("span_id").unwrap().as_string::<i32>();
        let labels = e.column_by_name("labels").unwrap().as_binary::<i32>();
        let opt = |a: &arrow_array::StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
        out.exemplars.extend((0..e.num_rows()).map(|i| StoredExemplar {
            series: ids.value(i),
            timestamp_ms: ts.value(i),
            value: vs.value(i),
            trace_id: opt(trace, i),
            span_id: opt(span, i),
            labels: decode_label_key(labels.value(i)).map(|p| (p.name.to_owned(), p.value.to_owned())).collect(),
        }));
    }
    if let Some(h) = &batch.histograms {
        let (ids, ts, enc) = (
            h.column(0).as_primitive::<UInt64Type>(),
            h.column(1).as_primitive::<TimestampMillisecondType>(),
            h.column(2).as_binary::<i32>(),
        );
        out.histograms.extend((0..h.num_rows()).map(|i| (ids.value(i), ts.value(i), enc.value(i).to_vec())));
    }
}

// ---------------------------------------------------------------------------------------------------------
// Decoding through `receive`
// ---------------------------------------------------------------------------------------------------------

const REQUESTS: &[(&str, &str)] = &[("__name__", "http_requests_total"), ("job", "api"), ("method", "GET")];
const DURATION: &[(&str, &str)] = &[("__name__", "rpc_duration_seconds"), ("job", "api")];
const UP: &[(&str, &str)] = &[("__name__", "up"), ("instance", "node-1:9100"), ("job", "node")];

fn full_v1_request() -> v1::WriteRequest {
    let mut requests = v1_series(REQUESTS, &[(1_000, 1.0), (2_000, 2.0), (2_000, 2.5)]);
    requests.exemplars = vec![
        v1::Exemplar {
            labels: v1_labels(&[("trace_id", TRACE_ID), ("span_id", SPAN_ID)]),
            value: 1.0,
            timestamp: 1_500,
        },
        v1::Exemplar { labels: v1_labels(&[("user", "bob")]), value: 3.0, timestamp: 1_600 },
    ];
    let mut duration = v1_series(DURATION, &[]);
    duration.histograms = vec![v1_histogram(3_000)];
    let mut request = v1_request(vec![requests, duration, v1_series(UP, &[(5_000, 1.0)])]);
    request.metadata = vec![
        v1::MetricMetadata {
            r#type: v1::MetricType::Counter as i32,
            metric_family_name: "http_requests_total".into(),
            help: "Requests served.".into(),
            unit: String::new(),
        },
        v1::MetricMetadata {
            r#type: v1::MetricType::Histogram as i32,
            metric_family_name: "rpc_duration_seconds".into(),
            help: "RPC latency.".into(),
            unit: "seconds".into(),
        },
    ];
    request
}

fn full_v2_request() -> v2::Request {
    let mut sym = Symbols::new();
    let mut requests = sym.series(REQUESTS, &[(1_000, 1.0), (2_000, 2.0), (2_000, 2.5)]);
    requests.exemplars = vec![
        v2::Exemplar {
            labels_refs: sym.refs(&[("trace_id", TRACE_ID), ("span_id", SPAN_ID)]),
            value: 1.0,
            timestamp: 1_500,
        },
        v2::Exemplar { labels_refs: sym.refs(&[("user", "bob")]), value: 3.0, timestamp: 1_600 },
    ];
    requests.metadata = Some(v2::Metadata {
        r#type: v2::MetricType::Counter as i32,
        help_ref: sym.get("Requests served."),
        unit_ref: 0,
    });
    let mut duration = sym.series(DURATION, &[]);
    duration.histograms = vec![v2_histogram(3_000)];
    duration.metadata = Some(v2::Metadata {
        r#type: v2::MetricType::Histogram as i32,
        help_ref: sym.get("RPC latency."),
        unit_ref: sym.get("seconds"),
    });
    let up = sym.series(UP, &[(5_000, 1.0)]);
    sym.request(vec![requests, duration, up])
}

/// What both [`full_v1_request`] and [`full_v2_request`] must leave behind.
fn check_full_request(env: &Env, counts: WriteCounts) {
    assert_eq!(counts, WriteCounts { samples: 4, histograms: 1, exemplars: 2 });
    let contents = env.contents();
    assert_eq!(env.series.len(), 3);
    let ids = env.ids_by_labels(&contents);
    assert_eq!(ids.len(), 3, "{ids:?}");
    let (requests, duration, up) = (ids[&owned(REQUESTS)], ids[&owned(DURATION)], ids[&owned(UP)]);

    assert_eq!(contents.samples.len(), 4);
    assert_eq!(contents.samples_of(requests), vec![(1_000, 1.0), (2_000, 2.0), (2_000, 2.5)]);
    assert_eq!(contents.samples_of(up), vec![(5_000, 1.0)]);
    assert!(contents.samples_of(duration).is_empty());

    let mut exemplars = contents.exemplars.clone();
    exemplars.sort_by_key(|e| e.timestamp_ms);
    assert_eq!(
        exemplars,
        vec![
            StoredExemplar {
                series: requests,
                timestamp_ms: 1_500,
                value: 1.0,
                trace_id: Some(TRACE_ID.into()),
                span_id: Some(SPAN_ID.into()),
                labels: owned(&[("trace_id", TRACE_ID), ("span_id", SPAN_ID)]),
            },
            StoredExemplar {
                series: requests,
                timestamp_ms: 1_600,
                value: 3.0,
                trace_id: None,
                span_id: None,
                labels: owned(&[("user", "bob")]),
            },
        ]
    );

    assert_eq!(contents.histograms.len(), 1);
    let (id, ts, encoded) = &contents.histograms[0];
    assert_eq!((*id, *ts), (duration, 3_000));
    assert_eq!(
        v1::Histogram::decode(encoded.as_slice()).unwrap(),
        v1_histogram(3_000),
        "histograms are stored in 1.0 encoding"
    );

    assert_eq!(env.metadata.len(), 2);
    assert_eq!(
        env.metadata.get(Tenant::DEFAULT, "http_requests_total"),
        Some(FamilyMetadata { metric_type: 1, help: "Requests served.".into(), unit: String::new() })
    );
    assert_eq!(
        env.metadata.get(Tenant::DEFAULT, "rpc_duration_seconds"),
        Some(FamilyMetadata { metric_type: 3, help: "RPC latency.".into(), unit: "seconds".into() })
    );
    assert_eq!(env.metadata.get(Tenant::DEFAULT, "up"), None);
}

#[test]
fn v1_samples_exemplars_histograms_and_metadata() {
    let env = Env::new();
    let counts = env.send(&v1_body(&full_v1_request()), RemoteWriteVersion::V1).unwrap();
    check_full_request(&env, counts);
}

#[test]
fn v2_symbols_samples_exemplars_histograms_and_metadata() {
    let env = Env::new();
    let counts = env.send(&v2_body(&full_v2_request()), RemoteWriteVersion::V2).unwrap();
    check_full_request(&env, counts);
}

#[test]
fn v2_decodes_fields_in_any_order() {
    // Symbols after the series they serve, and an unknown field, are still read correctly.
    let request = full_v2_request();
    let mut raw = v2::Request { symbols: Vec::new(), timeseries: request.timeseries.clone() }.encode_to_vec();
    raw.extend_from_slice(&[0xa0, 0x06, 0x01]); // field 100, varint 1
    raw.extend(v2::Request { symbols: request.symbols.clone(), timeseries: Vec::new() }.encode_to_vec());
    let env = Env::new();
    let counts = env.send(&snappy(&raw), RemoteWriteVersion::V2).unwrap();
    check_full_request(&env, counts);
}

#[test]
fn same_labels_same_series_id_via_v1_and_v2() {
    let env = Env::new();
    env.send(&v1_body(&v1_request(vec![v1_series(UP, &[(1_000, 1.0)])])), RemoteWriteVersion::V1).unwrap();
    let mut sym = Symbols::new();
    let series = sym.series(UP, &[(2_000, 0.0)]);
    let v2_request = sym.request(vec![series]);
    env.send(&v2_body(&v2_request), RemoteWriteVersion::V2).unwrap();
    assert_eq!(env.series.len(), 1, "one label set, one series");
    let contents = env.contents();
    let ids = contents.series_ids();
    assert_eq!(ids.len(), 1);
    let id = *ids.first().unwrap();
    assert_eq!(contents.samples_of(id), vec![(1_000, 1.0), (2_000, 0.0)]);
    assert_eq!(env.labels(id), owned(UP));

    // The id does not depend on the process or on which protocol saw the series first.
    let other = Env::new();
    other.send(&v2_body(&v2_request), RemoteWriteVersion::V2).unwrap();
    assert_eq!(other.contents().series_ids(), ids);
    // A different label set gets a different id.
    other
        .send(
            &v1_body(&v1_request(vec![v1_series(&[("__name__", "up"), ("job", "x")], &[(1, 1.0)])])),
            RemoteWriteVersion::V1,
        )
        .unwrap();
    assert_eq!(other.series.len(), 2);
    assert_eq!(other.contents().series_ids().len(), 2);
}

#[test]
fn empty_valued_labels_are_dropped() {
    let env = Env::new();
    let with_empty = [("__name__", "up"), ("env", ""), ("job", "a")];
    let without = [("__name__", "up"), ("job", "a")];
    env.send(&v1_body(&v1_request(vec![v1_series(&with_empty, &[(1, 1.0)])])), RemoteWriteVersion::V1).unwrap();
    env.send(&v1_body(&v1_request(vec![v1_series(&without, &[(2, 2.0)])])), RemoteWriteVersion::V1).unwrap();
    let mut sym = Symbols::new();
    let series = sym.series(&with_empty, &[(3, 3.0)]);
    assert_eq!(series.labels_refs[3], 0, "the empty value is symbol 0");
    env.send(&v2_body(&sym.request(vec![series])), RemoteWriteVersion::V2).unwrap();

    assert_eq!(env.series.len(), 1);
    let contents = env.contents();
    let ids = contents.series_ids();
    assert_eq!(ids.len(), 1);
    let id = *ids.first().unwrap();
    assert_eq!(env.labels(id), owned(&without));
    assert_eq!(contents.samples_of(id), vec![(1, 1.0), (2, 2.0), (3, 3.0)]);

    // An empty __name__ is not a name at all.
    let err = env.send(
        &v1_body(&v1_request(vec![v1_series(&[("__name__", ""), ("job", "a")], &[(1, 1.0)])])),
        RemoteWriteVersion::V1,
    );
    assert!(
        matches!(err, Err(RemoteWriteError::InvalidSeries { series: 0, problem: SeriesProblem::MissingName })),
        "{err:?}"
    );
}

#[test]
fn a_refused_request_leaves_nothing_behind() {
    let env = Env::new();
    let mut request = full_v1_request();
    request.timeseries.push(v1_series(&[("job", "a"), ("__name__", "late")], &[(1, 1.0)]));
    let err = env.send(&v1_body(&request), RemoteWriteVersion::V1).unwrap_err();
    assert!(
        matches!(&err, RemoteWriteError::InvalidSeries { series: 3, problem: SeriesProblem::Unsorted { earlier, later } } if earlier == "job" && later == "__name__"),
        "{err:?}"
    );
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);

    let mut request = full_v2_request();
    request
        .timeseries
        .insert(1, v2::TimeSeries { labels_refs: request.timeseries[0].labels_refs.clone(), ..Default::default() });
    let err = env.send(&v2_body(&request), RemoteWriteVersion::V2).unwrap_err();
    assert!(matches!(err, RemoteWriteError::InvalidSeries { series: 1, problem: SeriesProblem::NoData }), "{err:?}");

    assert_eq!(env.contents().rows(), 0, "no row of a refused request reaches the buffer");
    assert!(env.series.is_empty(), "no series of a refused request is registered");
    assert!(env.metadata.is_empty(), "no metadata of a refused request is kept");

    // The worker's reused scratch space does not leak the refused request into the next one.
    let counts = env.send(&v1_body(&v1_request(vec![v1_series(UP, &[(9, 9.0)])])), RemoteWriteVersion::V1).unwrap();
    assert_eq!(counts, WriteCounts { samples: 1, histograms: 0, exemplars: 0 });
    assert_eq!(env.contents().samples.len(), 1);
    assert_eq!(env.series.len(), 1);
}

#[test]
fn v2_histogram_error_names_its_series() {
    // Walks as valid protobuf, but `count_int` (field 1, uint64) is written length-delimited, which the
    // 2.0 → 1.0 re-encoding refuses.
    let mut histogram = vec![0x0a, 0x00];
    histogram.extend(v1::Histogram { timestamp: 7, ..Default::default() }.encode_to_vec());
    let env = Env::new();
    let err = env.send(&snappy(&hand_built_v2_with_histogram(&histogram)), RemoteWriteVersion::V2).unwrap_err();
    assert!(
        matches!(&err, RemoteWriteError::InvalidSeries { series: 1, problem: SeriesProblem::Histogram(_) }),
        "{err:?}: {err}"
    );
    assert!(err.to_string().starts_with("timeseries[1]: histogram:"), "{err}");
    assert_eq!(env.contents().rows(), 0);

    // The same hand encoding with a valid histogram is accepted, so it is the histogram being refused.
    let counts = env
        .send(&snappy(&hand_built_v2_with_histogram(&v2_histogram(7).encode_to_vec())), RemoteWriteVersion::V2)
        .unwrap();
    assert_eq!(counts, WriteCounts { samples: 1, histograms: 1, exemplars: 0 });
}

/// A 2.0 request of two series, the second holding `histogram` as its only histogram, encoded by hand.
fn hand_built_v2_with_histogram(histogram: &[u8]) -> Vec<u8> {
    let mut sym = Symbols::new();
    let good = sym.series(UP, &[(1, 1.0)]);
    let refs = sym.refs(DURATION);
    let mut raw = sym.request(vec![good]).encode_to_vec();
    let mut series = v2::TimeSeries { labels_refs: refs, ..Default::default() }.encode_to_vec();
    prost::encoding::encode_key(3, prost::encoding::WireType::LengthDelimited, &mut series);
    prost::encoding::encode_varint(histogram.len() as u64, &mut series);
    series.extend_from_slice(histogram);
    prost::encoding::encode_key(5, prost::encoding::WireType::LengthDelimited, &mut raw);
    prost::encoding::encode_varint(series.len() as u64, &mut raw);
    raw.extend(series);
    raw
}

// ---------------------------------------------------------------------------------------------------------
// The HTTP receiver and the malformed-input table
// ---------------------------------------------------------------------------------------------------------

const V1_CONTENT_TYPE: &str = "application/x-protobuf";
const V2_CONTENT_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
const WRITTEN: [&str; 3] = [
    "X-Prometheus-Remote-Write-Samples-Written",
    "X-Prometheus-Remote-Write-Histograms-Written",
    "X-Prometheus-Remote-Write-Exemplars-Written",
];

/// Limits of the main server under test: small enough that the table can cross every one of them.
fn table_limits() -> IngestLimits {
    IngestLimits {
        max_body_bytes: 64 << 10,
        max_decompressed_bytes: 256 << 10,
        max_labels_per_series: 8,
        max_label_name_bytes: 32,
        max_label_value_bytes: 64,
        ..IngestLimits::default()
    }
}

fn state(limits: IngestLimits, buffer: BufferConfig, series: SeriesRegistryConfig) -> Arc<RemoteWriteState> {
    limits.validate().unwrap();
    buffer.validate().unwrap();
    Arc::new(RemoteWriteState {
        config: RemoteWriteConfig::default(),
        series: Arc::new(SeriesRegistry::new(&series, "anonymous")),
        metadata: Arc::new(MetadataStore::default()),
        buffer: MetricsBuffer::new(buffer),
        metrics: IngestMetrics::new(&mut Registry::default()),
        wal: None,
        rate_limit: Arc::new(crate::rate_limit::SampleRateLimiter::new(&limits)),
        limits,
    })
}

fn headers(content_type: &str) -> Vec<(&'static str, String)> {
    vec![("content-type", content_type.to_owned()), ("content-encoding", "snappy".to_owned())]
}

fn v1_headers() -> Vec<(&'static str, String)> {
    let mut h = headers(V1_CONTENT_TYPE);
    h.push(("x-prometheus-remote-write-version", "0.1.0".to_owned()));
    h
}

fn v2_headers() -> Vec<(&'static str, String)> {
    let mut h = headers(V2_CONTENT_TYPE);
    h.push(("x-prometheus-remote-write-version", "2.0.0".to_owned()));
    h
}

fn with(mut base: Vec<(&'static str, String)>, name: &'static str, value: &str) -> Vec<(&'static str, String)> {
    base.retain(|(n, _)| *n != name);
    base.push((name, value.to_owned()));
    base
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn post(state: &Arc<RemoteWriteState>, headers: &[(&str, String)], body: Vec<u8>) -> Reply {
    let mut request = Request::builder().method("POST").uri(state.config.path.as_str());
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let response = router(Arc::clone(state)).oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
}

/// The written-counts headers of a 2.0 answer, in [`WRITTEN`] order.
fn written(headers: &HeaderMap) -> Vec<Option<u64>> {
    WRITTEN.iter().map(|h| headers.get(*h).map(|v| v.to_str().unwrap().parse().unwrap())).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The server that must stay up: [`table_limits`], a roomy buffer, no series limit to speak of.
    Main,
    /// A tiny buffer filled with batches a lossless subscriber never commits.
    FullBuffer,
    /// `series.max_series = 1`, already holding one series.
    OneSeries,
}

struct Case {
    name: &'static str,
    target: Target,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: StatusCode,
    message: &'static str,
}

fn case(
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: StatusCode,
    message: &'static str,
) -> Case {
    Case { name, target: Target::Main, headers, body, status, message }
}

fn v1_one(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> Vec<u8> {
    v1_body(&v1_request(vec![v1_series(pairs, samples)]))
}

fn v2_one(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> Vec<u8> {
    let mut sym = Symbols::new();
    let series = sym.series(pairs, samples);
    v2_body(&sym.request(vec![series]))
}

fn v2_with(symbols: &[&str], series: v2::TimeSeries) -> Vec<u8> {
    v2_body(&v2::Request { symbols: symbols.iter().map(|s| (*s).to_owned()).collect(), timeseries: vec![series] })
}

fn v2_refs(refs: &[u32], samples: &[(i64, f64)]) -> v2::TimeSeries {
    v2::TimeSeries {
        labels_refs: refs.to_vec(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| v2::Sample { value, timestamp, start_timestamp: 0 })
            .collect(),
        ..Default::default()
    }
}

fn malformed_cases() -> Vec<Case> {
    use StatusCode as S;
    let ok_v1 = v1_body(&full_v1_request());
    let ok_v1_raw = full_v1_request().encode_to_vec();
    let ok_v2_raw = full_v2_request().encode_to_vec();
    let sample = [(1_000, 1.0)];
    let bad = S::BAD_REQUEST;

    let mut invalid_utf8_value =
        v1_request(vec![v1_series(&[("__name__", "up"), ("job", "@@PLACEHOLDER@@")], &sample)]).encode_to_vec();
    replace_bytes(&mut invalid_utf8_value, b"@@PLACEHOLDER@@", b"ok\xff\xfe\xfdstill-bad!");
    let mut invalid_utf8_name =
        v1_request(vec![v1_series(&[("__name__", "up"), ("j@b", "a")], &sample)]).encode_to_vec();
    replace_bytes(&mut invalid_utf8_name, b"j@b", b"j\xc3b");
    let mut invalid_utf8_symbol = v2_one(&[("__name__", "up"), ("job", "@@PLACEHOLDER@@")], &sample);
    invalid_utf8_symbol = {
        let mut raw = snap::raw::Decoder::new().decompress_vec(&invalid_utf8_symbol).unwrap();
        replace_bytes(&mut raw, b"@@PLACEHOLDER@@", b"\xed\xa0\x80-surrogate--");
        snappy(&raw)
    };

    let mut second_series_bad = full_v1_request();
    second_series_bad.timeseries[1].labels.push(v1::Label { name: "a".into(), value: "after job".into() });

    let too_many_labels: Labels = std::iter::once(("__name__".to_owned(), "wide".to_owned()))
        .chain((0..8).map(|i| (format!("l{i}"), "v".to_owned())))
        .collect();
    let too_many_labels: Vec<(&str, &str)> = too_many_labels.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(too_many_labels.len(), table_limits().max_labels_per_series + 1);
    let long_name = "n".repeat(table_limits().max_label_name_bytes + 1);
    let long_value = "v".repeat(table_limits().max_label_value_bytes + 1);

    // 30 000 identical samples: ~390 KB of protobuf that snappy packs far below max_body_bytes.
    let huge = v1_request(vec![v1_series(UP, &vec![(1_000, 1.0); 30_000])]);
    let huge_raw = huge.encode_to_vec();
    let huge_body = snappy(&huge_raw);
    assert!(huge_raw.len() as u64 > table_limits().max_decompressed_bytes);
    assert!((huge_body.len() as u64) < table_limits().max_body_bytes);
    let oversized = vec![0u8; (table_limits().max_body_bytes + 1) as usize];

    let mut truncated_snappy = ok_v1.clone();
    truncated_snappy.truncate(ok_v1.len() - 5);

    let mut histogram_and_samples = v2_refs(&[1, 2], &sample);
    histogram_and_samples.histograms.push(v2_histogram(1_000));
    let mut exemplar_bad_ref = v2_refs(&[1, 2], &sample);
    exemplar_bad_ref.exemplars.push(v2::Exemplar { labels_refs: vec![3, 40], value: 1.0, timestamp: 1_000 });

    let mut cases = vec![
        // Transport
        case(
            "bad snappy header",
            v1_headers(),
            b"\xff\xff\xff\xff\xff\xff not snappy".to_vec(),
            bad,
            "invalid snappy block",
        ),
        case("truncated snappy block", v1_headers(), truncated_snappy, bad, "invalid snappy block"),
        case("uncompressed protobuf", v1_headers(), ok_v1_raw.clone(), bad, "invalid snappy block"),
        case(
            "tenant id with a slash",
            with(v1_headers(), "x-scope-orgid", "team/a"),
            ok_v1.clone(),
            bad,
            "invalid X-Scope-OrgID: tenant id contains '/'",
        ),
        case(
            "tenant id too long",
            with(v1_headers(), "x-scope-orgid", &"t".repeat(151)),
            ok_v1.clone(),
            bad,
            "invalid X-Scope-OrgID: tenant id must be 1 to 150 bytes",
        ),
        case(
            "json content type",
            with(v1_headers(), "content-type", "application/json"),
            ok_v1.clone(),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Type",
        ),
        case(
            "unknown proto parameter",
            with(v1_headers(), "content-type", "application/x-protobuf;proto=io.prometheus.write.v3.Request"),
            ok_v1.clone(),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Type",
        ),
        case(
            "gzip content encoding",
            with(v1_headers(), "content-encoding", "gzip"),
            ok_v1.clone(),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Encoding \"gzip\"",
        ),
        case(
            "v2 gzip content encoding",
            with(v2_headers(), "content-encoding", "gzip"),
            v2_body(&full_v2_request()),
            S::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Encoding",
        ),
        case(
            "body over max_body_bytes (Content-Length)",
            with(v1_headers(), "content-length", &oversized.len().to_string()),
            oversized.clone(),
            S::PAYLOAD_TOO_LARGE,
            "`limits.max_body_bytes` = 65536",
        ),
        case(
            "body over max_body_bytes (no Content-Length)",
            v1_headers(),
            oversized,
            S::PAYLOAD_TOO_LARGE,
            "`limits.max_body_bytes` = 65536",
        ),
        case(
            "decompressed body over max_decompressed_bytes",
            v1_headers(),
            huge_body,
            S::PAYLOAD_TOO_LARGE,
            "`limits.max_decompressed_bytes` = 262144",
        ),
        // Protobuf
        case(
            "truncated protobuf",
            v1_headers(),
            snappy(&ok_v1_raw[..ok_v1_raw.len() - 1]),
            bad,
            "invalid protobuf: truncated",
        ),
        case(
            "group wire type",
            v1_headers(),
            snappy(&[0x0b, 0x0c]),
            bad,
            "invalid protobuf: unsupported protobuf wire type 3",
        ),
        case("field number 0", v1_headers(), snappy(&[0x02, 0x00]), bad, "invalid protobuf: field number 0"),
        case(
            "timeseries as varint",
            v1_headers(),
            snappy(&[0x08, 0x01]),
            bad,
            "WriteRequest.timeseries has the wrong wire type",
        ),
        case(
            "v2 truncated protobuf",
            v2_headers(),
            snappy(&ok_v2_raw[..ok_v2_raw.len() - 3]),
            bad,
            "invalid protobuf: truncated",
        ),
        case("v2 bad wire type", v2_headers(), snappy(&[0x22, 0x00, 0x2f]), bad, "unsupported protobuf wire type 7"),
        // Series validation, 1.0
        case(
            "missing __name__",
            v1_headers(),
            v1_one(&[("job", "a")], &sample),
            bad,
            "timeseries[0]: missing __name__ label",
        ),
        case("no labels", v1_headers(), v1_one(&[], &sample), bad, "timeseries[0]: no labels"),
        case(
            "empty label name",
            v1_headers(),
            v1_one(&[("", "x"), ("__name__", "up")], &sample),
            bad,
            "empty label name",
        ),
        case(
            "duplicate label name",
            v1_headers(),
            v1_one(&[("__name__", "up"), ("job", "a"), ("job", "b")], &sample),
            bad,
            "duplicate label name \"job\"",
        ),
        case(
            "labels not sorted",
            v1_headers(),
            v1_one(&[("job", "a"), ("__name__", "up")], &sample),
            bad,
            "labels not sorted by name",
        ),
        case(
            "invalid UTF-8 label value",
            v1_headers(),
            snappy(&invalid_utf8_value),
            bad,
            "label value is not valid UTF-8",
        ),
        case(
            "invalid UTF-8 label name",
            v1_headers(),
            snappy(&invalid_utf8_name),
            bad,
            "label name is not valid UTF-8",
        ),
        case(
            "samples out of order",
            v1_headers(),
            v1_one(UP, &[(2_000, 1.0), (1_000, 2.0)]),
            bad,
            "samples out of timestamp order (1000 after 2000)",
        ),
        case(
            "second series invalid",
            v1_headers(),
            v1_body(&second_series_bad),
            bad,
            "timeseries[1]: labels not sorted",
        ),
        case(
            "too many labels",
            v1_headers(),
            v1_one(&too_many_labels, &sample),
            bad,
            "9 labels exceed `limits.max_labels_per_series` = 8",
        ),
        case(
            "label name too long",
            v1_headers(),
            v1_one(&[("__name__", "up"), (&long_name, "x")], &sample),
            bad,
            "`limits.max_label_name_bytes` = 32",
        ),
        case(
            "label value too long",
            v1_headers(),
            v1_one(&[("__name__", "up"), ("job", &long_value)], &sample),
            bad,
            "`limits.max_label_value_bytes` = 64",
        ),
        // Series validation, 2.0
        case(
            "v2 symbols[0] not empty",
            v2_headers(),
            v2_with(&["x", "__name__", "up"], v2_refs(&[1, 2], &sample)),
            bad,
            "symbols[0] must be the empty string",
        ),
        case(
            "v2 label ref out of range",
            v2_headers(),
            v2_with(&["", "__name__", "up"], v2_refs(&[1, 99], &sample)),
            bad,
            "symbol reference 99 out of range (symbols has 3 entries)",
        ),
        case(
            "v2 odd labels_refs",
            v2_headers(),
            v2_with(&["", "__name__", "up"], v2_refs(&[1, 2, 1], &sample)),
            bad,
            "labels_refs has odd length 3",
        ),
        case(
            "v2 samples and histograms",
            v2_headers(),
            v2_with(&["", "__name__", "up"], histogram_and_samples),
            bad,
            "has both samples and histograms",
        ),
        case(
            "v2 neither samples nor histograms",
            v2_headers(),
            v2_with(&["", "__name__", "up"], v2_refs(&[1, 2], &[])),
            bad,
            "has neither samples nor histograms",
        ),
        case("v2 missing __name__", v2_headers(), v2_one(&[("job", "a")], &sample), bad, "missing __name__ label"),
        case("v2 invalid UTF-8 symbol", v2_headers(), invalid_utf8_symbol, bad, "symbols[4] is not valid UTF-8"),
        case(
            "v2 exemplar ref out of range",
            v2_headers(),
            v2_with(&["", "__name__", "up", "trace_id"], exemplar_bad_ref),
            bad,
            "exemplar symbol reference 40 out of range",
        ),
        case(
            "v2 samples out of order",
            v2_headers(),
            v2_one(UP, &[(5, 1.0), (4, 1.0)]),
            bad,
            "samples out of timestamp order",
        ),
        case(
            "v2 unsorted labels",
            v2_headers(),
            v2_one(&[("job", "a"), ("__name__", "up")], &sample),
            bad,
            "labels not sorted by name",
        ),
    ];

    // Capacity: these go to servers already at their limit.
    let fill = |name: &str| {
        v1_one(
            &[("__name__", "filler"), ("job", name)],
            &[(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 1.0), (6, 1.0), (7, 1.0), (8, 1.0)],
        )
    };
    cases.push(Case {
        name: "buffer full",
        target: Target::FullBuffer,
        headers: v1_headers(),
        body: fill("a"),
        status: S::TOO_MANY_REQUESTS,
        message: "buffer is full (`buffer.max_bytes`",
    });
    cases.push(Case {
        name: "v2 buffer full",
        target: Target::FullBuffer,
        headers: v2_headers(),
        body: v2_one(
            &[("__name__", "filler"), ("job", "b")],
            &[(1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 1.0), (6, 1.0), (7, 1.0), (8, 1.0)],
        ),
        status: S::TOO_MANY_REQUESTS,
        message: "buffer is full",
    });
    cases.push(Case {
        name: "series limit",
        target: Target::OneSeries,
        headers: v1_headers(),
        body: v1_one(&[("__name__", "second")], &sample),
        status: S::TOO_MANY_REQUESTS,
        message: "series limit reached: 1 active series (`series.max_series`)",
    });
    cases
}

/// A server whose buffer is full of batches pinned by lossless subscribers that never commit.
fn full_buffer_server() -> (Arc<RemoteWriteState>, Vec<Subscription>) {
    let mut config =
        BufferConfig { max_bytes: 0, shards: 2, batch_rows: 4, seal_interval: std::time::Duration::from_secs(3600) };
    config.max_bytes = config.min_max_bytes() + 64;
    let state = state(table_limits(), config, SeriesRegistryConfig::default());
    let pins = (0..2).map(|s| state.buffer.subscribe(s, SubscriptionMode::Lossless)).collect();
    let mut filled = 0;
    loop {
        // Four samples (one batch) per request; the table then sends eight, which cannot fit either.
        let body = v1_one(
            &[("__name__", "filler"), ("job", "prefill")],
            &[(filled, 1.0), (filled, 1.0), (filled, 1.0), (filled, 1.0)],
        );
        match receive(
            &body,
            RemoteWriteVersion::V1,
            Tenant::DEFAULT,
            &state.limits,
            &state.series,
            &state.metadata,
            &state.buffer,
        ) {
            Ok(_) => filled += 1,
            Err(RemoteWriteError::BufferFull { .. }) => break,
            Err(e) => panic!("prefill failed: {e}"),
        }
        assert!(filled < 100, "the buffer never filled up");
    }
    assert!(filled > 0);
    (state, pins)
}

fn one_series_server() -> Arc<RemoteWriteState> {
    let state = state(
        table_limits(),
        buffer_config(),
        SeriesRegistryConfig { max_series: 1, ..SeriesRegistryConfig::default() },
    );
    receive(
        &v1_one(UP, &[(1, 1.0)]),
        RemoteWriteVersion::V1,
        Tenant::DEFAULT,
        &state.limits,
        &state.series,
        &state.metadata,
        &state.buffer,
    )
    .unwrap();
    state
}

#[tokio::test]
async fn malformed_input_table() {
    let main = state(table_limits(), buffer_config(), SeriesRegistryConfig::default());
    let (full, _pins) = full_buffer_server();
    let one_series = one_series_server();
    let cases = malformed_cases();
    let names: BTreeSet<_> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");

    let mut main_codes: HashMap<u16, u64> = HashMap::new();
    for case in cases {
        let server = match case.target {
            Target::Main => &main,
            Target::FullBuffer => &full,
            Target::OneSeries => &one_series,
        };
        let is_v2 =
            case.headers.iter().any(|(n, v)| *n == "content-type" && v.contains("io.prometheus.write.v2.Request"));
        let reply = post(server, &case.headers, case.body).await;
        let name = case.name;
        assert_eq!(reply.status, case.status, "{name}: {}", reply.body);
        assert!(reply.body.contains(case.message), "{name}: {:?} does not contain {:?}", reply.body, case.message);
        assert!(
            reply.body.ends_with('\n') && reply.body.lines().count() == 1,
            "{name}: one line of text: {:?}",
            reply.body
        );
        if is_v2 {
            assert_eq!(written(&reply.headers), vec![Some(0); 3], "{name}: a refused 2.0 request wrote nothing");
        } else {
            assert_eq!(written(&reply.headers), vec![None; 3], "{name}: no 2.0 headers on a 1.0 answer");
        }
        let retry_after = reply.headers.get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
        if case.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(retry_after.as_deref(), Some("1"), "{name}: 429 tells the client when to retry");
        } else {
            assert_eq!(retry_after, None, "{name}");
        }
        if case.target == Target::Main {
            *main_codes.entry(case.status.as_u16()).or_default() += 1;
        }
    }

    // Nothing of any refused request was kept, and the server counted every answer.
    for (code, n) in &main_codes {
        assert_eq!(
            main.metrics.requests.get_or_create(&RequestLabels { protocol: "remote_write", code: *code }).get(),
            *n,
            "HTTP {code}"
        );
    }
    assert!(main.series.is_empty());
    assert!(main.metadata.is_empty());
    main.buffer.seal_all();
    assert!((0..main.buffer.shard_count()).all(|s| main.buffer.snapshot(s).is_empty()));
    assert_eq!(one_series.series.len(), 1);

    // The same server still takes valid requests.
    let reply = post(&main, &v1_headers(), v1_body(&full_v1_request())).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert!(reply.body.is_empty());
    assert_eq!(written(&reply.headers), vec![None; 3]);
    let reply = post(&main, &v2_headers(), v2_body(&full_v2_request())).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert!(reply.body.is_empty());
    assert_eq!(written(&reply.headers), vec![Some(4), Some(1), Some(2)], "samples, histograms, exemplars written");
    // No Content-Type at all is taken as 1.0, as Prometheus does.
    let reply = post(&main, &[], v1_one(&[("__name__", "bare")], &[(1, 1.0)])).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(main.series.len(), 4);
    main.buffer.seal_all();
    let stored: usize = (0..2).flat_map(|s| main.buffer.snapshot(s)).map(|b| b.sample_count()).sum();
    assert_eq!(stored, 4 + 4 + 1);
    assert_eq!(main.metrics.requests.get_or_create(&RequestLabels { protocol: "remote_write", code: 204 }).get(), 3);
}

// ---------------------------------------------------------------------------------------------------------
// Property tests: no input panics, and valid input is kept exactly
// ---------------------------------------------------------------------------------------------------------

const CASES: u32 = 256;

fn proptest_env() -> Env {
    // Small decompression limit so a lying snappy header costs at most 256 KiB per case.
    Env::with(table_limits(), SeriesRegistryConfig::default())
}

/// Whatever the outcome, the buffer holds exactly what the receiver said it wrote.
fn check_outcome(env: &Env, result: Result<WriteCounts, RemoteWriteError>) -> Result<(), TestCaseError> {
    let contents = env.contents();
    match result {
        Ok(counts) => {
            prop_assert_eq!(contents.samples.len() as u64, counts.samples);
            prop_assert_eq!(contents.exemplars.len() as u64, counts.exemplars);
            prop_assert_eq!(contents.histograms.len() as u64, counts.histograms);
        }
        Err(e) => {
            prop_assert_eq!(contents.rows(), 0, "refused with {} yet rows were kept", e);
            prop_assert!(e.status().is_client_error(), "{} answers {}", e, e.status());
            prop_assert!(!e.to_string().is_empty());
        }
    }
    Ok(())
}

fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("__name__".to_owned()),
        1 => Just(String::new()),
        5 => "[a-z_]{1,8}",
        1 => "[a-z]{31,33}",
        1 => "\\PC{1,3}",
    ]
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(String::new()),
        6 => "[a-zA-Z0-9:._ -]{1,10}",
        1 => "\\PC{0,4}",
        1 => "x{63,65}",
    ]
}

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![4 => (-3i64..4).prop_map(|t| t * 1_000), 1 => any::<i64>()]
}

/// A series that is usually valid (labels cleaned up, sorted, named, within the label count; samples in
/// order) and otherwise anything at all.
fn arb_series() -> impl Strategy<Value = v1::TimeSeries> {
    (
        prop::collection::vec((label_name(), label_value()), 0..10),
        prop::bool::weighted(0.8),
        prop::collection::vec((timestamp(), any::<f64>()), 0..5),
    )
        .prop_map(|(mut labels, normalize, mut samples)| {
            if normalize {
                labels.retain(|(n, v)| !n.is_empty() && (n != "__name__" || !v.is_empty()));
                if !labels.iter().any(|(n, _)| n == "__name__") {
                    labels.push(("__name__".into(), "metric".into()));
                }
                labels.sort_by(|a, b| a.0.cmp(&b.0));
                labels.dedup_by(|a, b| a.0 == b.0);
                while labels.len() > table_limits().max_labels_per_series {
                    let last_other = labels.iter().rposition(|(n, _)| n != "__name__").unwrap();
                    labels.remove(last_other);
                }
                samples.sort_by_key(|s| s.0);
            }
            v1::TimeSeries {
                labels: labels.into_iter().map(|(name, value)| v1::Label { name, value }).collect(),
                samples: samples.into_iter().map(|(timestamp, value)| v1::Sample { value, timestamp }).collect(),
                ..Default::default()
            }
        })
}

/// The rules of the 1.0 spec and of the limits, written independently of `validate.rs`.
fn series_is_valid(s: &v1::TimeSeries, limits: &IngestLimits) -> bool {
    let l = &s.labels;
    !l.is_empty()
        && l.len() <= limits.max_labels_per_series
        && l.iter().all(|x| {
            !x.name.is_empty()
                && x.name.len() <= limits.max_label_name_bytes
                && x.value.len() <= limits.max_label_value_bytes
        })
        && l.windows(2).all(|w| w[0].name.as_bytes() < w[1].name.as_bytes())
        && l.iter().any(|x| x.name == "__name__" && !x.value.is_empty())
        && s.samples.windows(2).all(|w| w[0].timestamp <= w[1].timestamp)
}

fn mutate(mut raw: Vec<u8>, edits: &[(prop::sample::Index, u8)], cut: Option<prop::sample::Index>) -> Vec<u8> {
    if !raw.is_empty() {
        for (at, byte) in edits {
            let i = at.index(raw.len());
            raw[i] = *byte;
        }
    }
    if let Some(cut) = cut {
        raw.truncate(cut.index(raw.len() + 1));
    }
    raw
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        for version in [RemoteWriteVersion::V1, RemoteWriteVersion::V2] {
            // As sent (mostly not snappy at all), and snappy-compressed so the decoders see them.
            for body in [bytes.clone(), snappy(&bytes)] {
                let env = proptest_env();
                let result = env.send(&body, version);
                check_outcome(&env, result)?;
            }
        }
    }

    #[test]
    fn mutated_requests_never_panic(
        v2 in any::<bool>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let (raw, version) = if v2 {
            (full_v2_request().encode_to_vec(), RemoteWriteVersion::V2)
        } else {
            (full_v1_request().encode_to_vec(), RemoteWriteVersion::V1)
        };
        let raw = mutate(raw, &edits, cut);
        let env = proptest_env();
        let result = env.send(&snappy(&raw), version);
        check_outcome(&env, result)?;
        // The compressed stream itself damaged.
        let body = mutate(snappy(&full_v1_request().encode_to_vec()), &edits, cut);
        let env = proptest_env();
        let result = env.send(&body, RemoteWriteVersion::V1);
        check_outcome(&env, result)?;
    }

    #[test]
    fn structured_v1_requests_are_kept_exactly_or_refused(series in prop::collection::vec(arb_series(), 0..5)) {
        let env = proptest_env();
        let raw = v1_request(series).encode_to_vec();
        // What is on the wire (prost drops e.g. the sign of a -0.0 sample value, as a default).
        let request = v1::WriteRequest::decode(raw.as_slice()).unwrap();
        let result = env.send(&snappy(&raw), RemoteWriteVersion::V1);
        let valid = request.timeseries.iter().all(|s| series_is_valid(s, &env.limits));
        prop_assert_eq!(result.is_ok(), valid, "{:?} for {:?}", result, request);
        let contents = env.contents();
        let sent: usize = request.timeseries.iter().map(|s| s.samples.len()).sum();
        match result {
            Ok(counts) => {
                prop_assert_eq!(counts, WriteCounts { samples: sent as u64, histograms: 0, exemplars: 0 });
                prop_assert_eq!(contents.samples.len(), sent);
                // Per label set (empty values dropped), the samples in the order sent.
                let mut expected: HashMap<Labels, Vec<(i64, u64)>> = HashMap::new();
                for s in &request.timeseries {
                    let key = s.labels.iter().filter(|l| !l.value.is_empty()).map(|l| (l.name.clone(), l.value.clone())).collect();
                    expected.entry(key).or_default().extend(s.samples.iter().map(|x| (x.timestamp, x.value.to_bits())));
                }
                prop_assert_eq!(env.series.len(), expected.len() as u64);
                let ids = env.ids_by_labels(&contents);
                for (labels, samples) in expected.iter().filter(|(_, s)| !s.is_empty()) {
                    let id = ids.get(labels);
                    prop_assert!(id.is_some(), "{:?} not in the buffer", labels);
                    let got: Vec<_> = contents.samples_of(*id.unwrap()).into_iter().map(|(t, v)| (t, v.to_bits())).collect();
                    prop_assert_eq!(&got, samples);
                }
            }
            Err(_) => {
                prop_assert_eq!(contents.rows(), 0);
                prop_assert!(env.series.is_empty());
            }
        }
    }
}

#[tokio::test]
async fn tenants_write_separate_series() {
    let server = state(table_limits(), buffer_config(), SeriesRegistryConfig::default());
    let body = || v1_body(&v1_request(vec![v1_series(UP, &[(1_000, 1.0)])]));
    for tenant in [None, Some("team-a"), Some("team-b"), Some("team-a"), Some("anonymous")] {
        let headers = match tenant {
            Some(t) => with(v1_headers(), "x-scope-orgid", t),
            None => v1_headers(),
        };
        let reply = post(&server, &headers, body()).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{tenant:?}: {}", reply.body);
    }
    // Absent header and the default tenant's name are one tenant; team-a twice is one series.
    assert_eq!(server.series.len(), 3);
    server.buffer.seal_all();
    let mut tenants: Vec<String> = (0..server.buffer.shard_count())
        .flat_map(|s| server.buffer.snapshot(s))
        .flat_map(|b| {
            let slots = b.samples.column(3).as_primitive::<arrow_array::types::UInt32Type>().values().to_vec();
            slots.into_iter().map(|slot| {
                let (_, t) = server.series.series_by_slot(slot).unwrap();
                server.series.tenant_name(t).unwrap().to_string()
            })
        })
        .collect();
    tenants.sort();
    assert_eq!(tenants, ["anonymous", "anonymous", "team-a", "team-a", "team-b"], "every row knows its tenant");
}

// ---------------------------------------------------------------------------------------------------------
// Per-tenant limits
// ---------------------------------------------------------------------------------------------------------

/// `n` samples in timestamp order.
fn samples(n: i64) -> Vec<(i64, f64)> {
    (0..n).map(|i| (1_000 + i, i as f64)).collect()
}

#[tokio::test]
async fn a_tenant_over_its_sample_rate_gets_429_with_retry_after_and_others_do_not() {
    // A slow rate, so that the refill while the test runs (real time) cannot change an outcome.
    let limits = IngestLimits { max_samples_per_second_per_tenant: 1, samples_per_second_burst: 20, ..table_limits() };
    let server = state(limits, buffer_config(), SeriesRegistryConfig::default());
    let team_a = with(v1_headers(), "x-scope-orgid", "team-a");
    let reply = post(&server, &team_a, v1_one(&[("__name__", "a")], &samples(18))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);

    // 18 + 5 > 20: refused whole, before anything was registered or buffered.
    let reply = post(&server, &team_a, v1_one(&[("__name__", "b")], &samples(5))).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.body);
    assert_eq!(
        reply.body,
        "tenant \"team-a\" exceeds `limits.max_samples_per_second_per_tenant` = 1 samples/s; retry later\n"
    );
    let retry: u32 = reply.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((2..=3).contains(&retry), "about 3 s until 5 samples fit: {retry}");
    assert_eq!(server.series.len(), 1, "the refused request registered no series");
    // 2.0 is counted in the same budget.
    let reply = post(&server, &with(v2_headers(), "x-scope-orgid", "team-a"), v2_one(UP, &samples(5))).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.body);
    assert_eq!(written(&reply.headers), vec![Some(0); 3]);

    // Another tenant has its own budget, in either version.
    let team_b = with(v2_headers(), "x-scope-orgid", "team-b");
    let reply = post(&server, &team_b, v2_one(UP, &samples(20))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(written(&reply.headers), vec![Some(20), Some(0), Some(0)]);
    let reply = post(&server, &v1_headers(), v1_one(UP, &samples(20))).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "the default tenant: {}", reply.body);

    // More than the burst can never pass, and says so.
    let team_c = with(v1_headers(), "x-scope-orgid", "team-c");
    let reply = post(&server, &team_c, v1_one(UP, &samples(21))).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "not 429: waiting never lets it through; {}", reply.body);
    assert!(reply.body.contains("the request alone has 21 samples"), "{}", reply.body);
    assert!(reply.body.contains("`limits.samples_per_second_burst` = 20"), "{}", reply.body);
    assert!(reply.headers.get(header::RETRY_AFTER).is_none());

    let rate_limited = RejectLabels { protocol: "remote_write", reason: "rate_limited" };
    assert_eq!(server.metrics.rejected.get_or_create(&rate_limited).get(), 3);
    assert_eq!(server.metrics.requests.get_or_create(&RequestLabels { protocol: "remote_write", code: 429 }).get(), 2);
    assert_eq!(server.metrics.requests.get_or_create(&RequestLabels { protocol: "remote_write", code: 413 }).get(), 1);
    server.buffer.seal_all();
    let stored: usize =
        (0..server.buffer.shard_count()).flat_map(|s| server.buffer.snapshot(s)).map(|b| b.sample_count()).sum();
    assert_eq!(stored, 18 + 20 + 20);
}

#[tokio::test]
async fn a_tenant_at_its_series_cap_gets_no_new_series_and_others_do() {
    let series = SeriesRegistryConfig { max_series_per_tenant: 1, ..SeriesRegistryConfig::default() };
    let server = state(table_limits(), buffer_config(), series);
    let team_a = with(v1_headers(), "x-scope-orgid", "team-a");
    let reply = post(&server, &team_a, v1_one(UP, &[(1, 1.0)])).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = post(&server, &team_a, v1_one(&[("__name__", "new")], &[(1, 1.0)])).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.body);
    assert_eq!(
        reply.body,
        "series limit reached: tenant \"team-a\" has 1 series, `series.max_series_per_tenant` = 1\n"
    );
    // Its known series is still taken; another tenant still gets new series.
    let reply = post(&server, &team_a, v1_one(UP, &[(2, 2.0)])).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = post(&server, &with(v1_headers(), "x-scope-orgid", "team-b"), v1_one(UP, &[(1, 1.0)])).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(server.series.len(), 2);
}

//! Decoding one captured remote write 1.0 request (2000 series, one sample each).
//!
//! Three ways through the same payload, in two groups that differ only in the throughput they report
//! (bytes of the snappy body as received, and bytes after decompression):
//!
//! - `vigil_receive`: `vigil_ingest::remote_write::receive`, the whole synchronous path of a request
//!   (decompress, decode to spans, validate, resolve series ids, stage rows, append to the buffer);
//! - `prost_decode`: snappy decompression plus `prost::Message::decode` into `WriteRequest`, the usual way
//!   to read remote write in Rust; it only decodes, with no validation, series lookup or buffering;
//! - `snappy_only`: the decompression both of them start with.
//!
//! The payload is `benches/data/remote_write_v1.snappy`, made by
//! `loadgen --series 2000 --dump-payload benches/data/remote_write_v1.snappy`.

use std::hint::black_box;
use std::sync::atomic::Ordering;

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime};
use prost::Message;
use vigil_ingest::buffer::{BufferConfig, MetricsBuffer};
use vigil_ingest::limits::IngestLimits;
use vigil_ingest::remote_write::{RemoteWriteVersion, receive};
use vigil_ingest::series::{MetadataStore, SeriesRegistry, SeriesRegistryConfig, Tenant};
use vigil_proto::prometheus::WriteRequest;

const PAYLOAD: &[u8] = include_bytes!("../data/remote_write_v1.snappy");

struct Receiver {
    limits: IngestLimits,
    series: SeriesRegistry,
    metadata: MetadataStore,
    buffer: std::sync::Arc<MetricsBuffer>,
}

impl Receiver {
    fn new() -> Self {
        // Nothing subscribes, so every sealed batch is evictable: once `max_bytes` is reached, each append
        // evicts the oldest batches and the buffer stays bounded however long the bench runs, never
        // refusing an append. The budget is kept moderate so that `fill` reaches that steady state quickly.
        let config = BufferConfig { max_bytes: 64 << 20, ..BufferConfig::default() };
        Self {
            limits: IngestLimits::default(),
            series: SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous"),
            metadata: MetadataStore::default(),
            buffer: MetricsBuffer::new(config),
        }
    }

    /// Receives the payload until the buffer has started evicting. Until then every append grows the
    /// buffer into fresh memory (page faults), which a long-running server does not pay; measuring from
    /// the steady state keeps the first group from being slower than the second for that reason alone.
    fn fill(&self, compressed: &[u8]) -> Result<u64, String> {
        let evicted = || self.buffer.stats().evicted_batches.load(Ordering::Relaxed);
        let mut requests = 0;
        // Bounded in case eviction never happens (it must, with no subscribers; the bound is generous).
        while evicted() == 0 && requests < 100_000 {
            self.receive(compressed)?;
            requests += 1;
        }
        if evicted() == 0 {
            return Err(format!("the buffer did not start evicting after {requests} requests"));
        }
        Ok(requests)
    }

    fn receive(&self, compressed: &[u8]) -> Result<u64, String> {
        receive(
            compressed,
            RemoteWriteVersion::V1,
            Tenant::DEFAULT,
            &self.limits,
            &self.series,
            &self.metadata,
            &self.buffer,
        )
        .map(|counts| counts.samples)
        .map_err(|e| e.to_string())
    }
}

fn decompress(compressed: &[u8], out: &mut Vec<u8>) -> Result<usize, snap::Error> {
    out.resize(snap::raw::decompress_len(compressed)?, 0);
    snap::raw::Decoder::new().decompress(compressed, out)
}

fn prost_decode(compressed: &[u8], scratch: &mut Vec<u8>) -> Result<WriteRequest, String> {
    let n = decompress(compressed, scratch).map_err(|e| e.to_string())?;
    WriteRequest::decode(&scratch[..n]).map_err(|e| e.to_string())
}

fn add_functions(group: &mut BenchmarkGroup<'_, WallTime>, receiver: &Receiver) {
    group.bench_function("vigil_receive", |b| b.iter(|| black_box(receiver.receive(black_box(PAYLOAD)))));
    let mut scratch = Vec::new();
    group.bench_function("prost_decode", |b| b.iter(|| black_box(prost_decode(black_box(PAYLOAD), &mut scratch))));
    group.bench_function("snappy_only", |b| b.iter(|| black_box(decompress(black_box(PAYLOAD), &mut scratch))));
}

fn decode(c: &mut Criterion) {
    let receiver = Receiver::new();
    // Make sure every variant measures the success path: a payload that failed to decode would be
    // "fast" for the wrong reason.
    let samples = receiver.receive(PAYLOAD).unwrap_or_else(|e| panic!("receive rejected the payload: {e}"));
    let decoded = prost_decode(PAYLOAD, &mut Vec::new()).unwrap_or_else(|e| panic!("prost rejected the payload: {e}"));
    let uncompressed = decompress(PAYLOAD, &mut Vec::new()).unwrap_or_else(|e| panic!("bad snappy payload: {e}"));
    assert_eq!(samples as usize, decoded.timeseries.len(), "receive and prost disagree on the sample count");
    let filled = receiver.fill(PAYLOAD).unwrap_or_else(|e| panic!("filling the buffer: {e}"));
    eprintln!(
        "payload: {} series, {} bytes snappy, {} bytes uncompressed; buffer evicting after {filled} requests",
        decoded.timeseries.len(),
        PAYLOAD.len(),
        uncompressed
    );

    let mut group = c.benchmark_group("remote_write_v1/compressed_bytes");
    group.throughput(Throughput::Bytes(PAYLOAD.len() as u64));
    add_functions(&mut group, &receiver);
    group.finish();

    let mut group = c.benchmark_group("remote_write_v1/uncompressed_bytes");
    group.throughput(Throughput::Bytes(uncompressed as u64));
    add_functions(&mut group, &receiver);
    group.finish();

    // The timed loops discard results; make sure the buffer was still accepting at the end.
    if let Err(e) = receiver.receive(PAYLOAD) {
        panic!("receive failed after the benchmark ({e}); the figures above measured an error path");
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);

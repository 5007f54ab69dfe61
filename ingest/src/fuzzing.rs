//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`; not part of the API).
//!
//! One function per decoder, each taking the bytes a client (or the disk) hands over and driving them along
//! the path a real request takes: decode, convert and validate, then into a small fresh series registry and
//! buffer. Refusals are expected and dropped; a panic, a hang or a huge allocation is a bug. A few cheap
//! round-trip properties are asserted on the way (a failed one is a finding too).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::buffer::{BufferConfig, LogsBuffer, MetricsBuffer, SpansBuffer};
use crate::limits::IngestLimits;
use crate::loki::LokiReceiverConfig;
use crate::loki::decode::{Stream, decode_json, decode_protobuf};
use crate::loki::labels;
use crate::otlp::DeltaToCumulative;
use crate::otlp::body::{Encoding, decode};
use crate::remote_write::{RemoteWriteVersion, receive};
use crate::series::{MetadataStore, SeriesRegistry, SeriesRegistryConfig, Tenant};
use crate::wal::frame::{self, Parsed};
use crate::wal::{Entry, QueueConfig, Wal, WalConfig, WalRecord};

/// Small buffers: cheap to make per input, and small batches so sealing is reached too.
fn buffer_config() -> BufferConfig {
    BufferConfig { max_bytes: 16 << 20, shards: 2, batch_rows: 64, ..BufferConfig::default() }
}

struct Metrics {
    series: SeriesRegistry,
    metadata: MetadataStore,
    buffer: Arc<MetricsBuffer>,
}

impl Metrics {
    fn new() -> Self {
        Self {
            series: SeriesRegistry::new(&SeriesRegistryConfig::default(), "fuzz"),
            metadata: MetadataStore::default(),
            buffer: MetricsBuffer::new(buffer_config()),
        }
    }
}

/// A leading byte picks the body: even, the rest is compressed here (so the fuzzer mutates the message
/// itself); odd, the rest is taken as the compressed body (so the decompression is fuzzed too).
fn snappy_body(data: &[u8]) -> Option<Vec<u8>> {
    let (&mode, rest) = data.split_first()?;
    if mode & 1 == 1 { Some(rest.to_vec()) } else { snap::raw::Encoder::new().compress_vec(rest).ok() }
}

fn remote_write(data: &[u8], version: RemoteWriteVersion) {
    let Some(body) = snappy_body(data) else { return };
    let m = Metrics::new();
    let limits = IngestLimits::default();
    let _ = receive(&body, version, Tenant::DEFAULT, &limits, &m.series, &m.metadata, &m.buffer);
}

/// Remote write 1.0: a leading mode byte (see [`snappy_body`]), then the body, through
/// [`crate::remote_write::receive`].
pub fn remote_write_v1(data: &[u8]) {
    remote_write(data, RemoteWriteVersion::V1);
}

/// Remote write 2.0, as [`remote_write_v1`].
pub fn remote_write_v2(data: &[u8]) {
    remote_write(data, RemoteWriteVersion::V2);
}

fn otlp_metrics(request: ExportMetricsServiceRequest) {
    let m = Metrics::new();
    let deltas = DeltaToCumulative::new(1024);
    let converted = crate::otlp::metrics::convert_with_deltas(request, &deltas, Tenant::DEFAULT);
    let limits = IngestLimits::default();
    let _ = crate::otlp::sink::append(converted, &limits, &m.series, Tenant::DEFAULT, &m.buffer, None);
}

fn otlp_logs(request: &ExportLogsServiceRequest) {
    let logs = LogsBuffer::new(buffer_config());
    let mut staged = logs.staged_rows();
    let attributes = crate::otlp::logs::default_stream_label_attributes();
    let converted = crate::otlp::logs::convert::convert(request, "fuzz", &attributes, 1, &mut staged);
    if converted.records > 0 {
        let _ = logs.append(&staged);
    }
}

fn otlp_traces(request: &ExportTraceServiceRequest) {
    let spans = SpansBuffer::new(buffer_config());
    let converted = crate::otlp::traces::convert::convert(request, &Arc::from("fuzz"));
    let mut staged = spans.staged_rows();
    for row in converted.rows {
        staged.push(row);
    }
    let _ = spans.append(&staged);
}

/// OTLP/HTTP protobuf: a leading byte picks the signal (`% 3`: metrics, logs, traces), then the request
/// body as the `/v1/*` handlers decode (`otlp::body::decode`), convert and append it.
pub fn otlp_protobuf(data: &[u8]) {
    otlp(Encoding::Protobuf, data);
}

/// OTLP/HTTP JSON, as [`otlp_protobuf`].
pub fn otlp_json(data: &[u8]) {
    otlp(Encoding::Json, data);
}

fn otlp(encoding: Encoding, data: &[u8]) {
    let Some((&signal, body)) = data.split_first() else { return };
    match signal % 3 {
        0 => {
            if let Ok(r) = decode::<ExportMetricsServiceRequest>(encoding, body) {
                otlp_metrics(r);
            }
        }
        1 => {
            if let Ok(r) = decode::<ExportLogsServiceRequest>(encoding, body) {
                otlp_logs(&r);
            }
        }
        _ => {
            if let Ok(r) = decode::<ExportTraceServiceRequest>(encoding, body) {
                otlp_traces(&r);
            }
        }
    }
}

/// What follows a decoded Loki push: validation and staging into the logs buffer. Also checks that every
/// label set the receiver would store reads back unchanged (Vigil forwards it as it formats it).
fn loki_streams(streams: Vec<Stream>, limits: &IngestLimits) {
    for stream in &streams {
        let mut pairs: Vec<(String, String)> = stream.labels.iter().filter(|(_, v)| !v.is_empty()).cloned().collect();
        if pairs.iter().all(|(n, _)| labels::valid_name(n)) {
            let text = labels::format(&mut pairs);
            assert_eq!(labels::parse(&text).ok(), Some(pairs), "a formatted label set must parse back: {text:?}");
        }
    }
    let logs = LogsBuffer::new(buffer_config());
    let mut staged = logs.staged_rows();
    let converted = crate::loki::rows::stage(streams, "fuzz", &LokiReceiverConfig::default(), limits, 1, &mut staged);
    if converted.lines > 0 {
        let _ = logs.append(&staged);
    }
    let _ = converted.messages();
}

/// Loki push protobuf: a leading mode byte (see [`snappy_body`]), then the body, through `decode_protobuf`
/// (which parses each stream's label string) and the staging that follows.
pub fn loki_protobuf(data: &[u8]) {
    let Some(body) = snappy_body(data) else { return };
    let limits = IngestLimits::default();
    if let Ok(streams) = decode_protobuf(&body, &limits) {
        loki_streams(streams, &limits);
    }
}

/// Loki push JSON, through `decode_json` and the staging that follows.
pub fn loki_json(data: &[u8]) {
    let limits = IngestLimits::default();
    if let Ok(streams) = decode_json(data) {
        loki_streams(streams, &limits);
    }
}

/// A log record as start-up replay reads it (`wal::replay`): the entry, then its payload as each log's
/// payload is read back, a metrics one (remote write 1.0), a logs one (Loki push) and a spans one (OTLP
/// traces), with the limits replay uses.
fn replay(body: &Bytes, m: &Metrics) {
    let Ok(entry) = Entry::decode(body) else { return };
    let limits = IngestLimits::for_replay();
    if let Ok(tenant) = m.series.tenant(&entry.tenant) {
        let _ = receive(&entry.payload, RemoteWriteVersion::V1, tenant, &limits, &m.series, &m.metadata, &m.buffer);
    }
    if let Ok(streams) = decode_protobuf(&entry.payload, &limits) {
        let config = LokiReceiverConfig { max_line_bytes: usize::MAX, ..LokiReceiverConfig::default() };
        let logs = LogsBuffer::new(buffer_config());
        let mut staged = logs.staged_rows();
        crate::loki::rows::stage(streams, &entry.tenant, &config, &limits, 1, &mut staged);
        let _ = logs.append(&staged);
    }
    if let Ok(request) = ExportTraceServiceRequest::decode(&entry.payload[..]) {
        otlp_traces(&request);
    }
}

/// Write-ahead log records: the bytes as a segment's contents, walked as the start-up scan walks them
/// (records, resync past damage), each record decoded as an [`Entry`] and replayed.
pub fn wal_records(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let m = Metrics::new();
    let mut at = 0;
    while at < data.len() {
        match frame::parse(data, at) {
            Parsed::Record { body, next } => {
                assert!(next > at && body.end == next, "a record must move the scan forward");
                replay(&bytes.slice(body), &m);
                at = next;
            }
            Parsed::Incomplete => break,
            Parsed::Damaged => {
                let next = frame::resync(data, at).unwrap_or(data.len());
                assert!(next > at, "resync must move forward");
                at = next;
            }
        }
    }
}

/// Intact records in a segment's bytes, stepping over every damaged region (a record cut off or with a
/// length past the end included) to the next intact record, as the frame's magic allows.
fn intact_records(data: &[u8]) -> u64 {
    let (mut at, mut records) = (0, 0);
    while at < data.len() {
        match frame::parse(data, at) {
            Parsed::Record { next, .. } => {
                records += 1;
                at = next;
            }
            Parsed::Incomplete | Parsed::Damaged => match frame::resync(data, at) {
                Some(next) => at = next,
                None => break,
            },
        }
    }
    records
}

/// Write-ahead log start-up: the bytes written as a segment file, the log opened with [`Wal::open`]
/// (scan, torn-tail repair: no intact record may be lost), read to its end by a consumer, then replayed by `wal::replay` as a metrics, a
/// logs and a spans log.
pub fn wal_segment(data: &[u8]) {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    let dir = base.join(format!("vigil-fuzz-wal-{}-{}", std::process::id(), RUN.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() || std::fs::write(dir.join(format!("{:020}.seg", 0)), data).is_err() {
        return;
    }
    let config = WalConfig { segment_bytes: 1 << 20, max_bytes: 1 << 30, ..WalConfig::default() };
    if let Ok((wal, report)) = Wal::open(&dir, "metrics", &config, &QueueConfig::default(), Arc::default()) {
        let m = Metrics::new();
        let mut reader = wal.consumer("fuzz").reader();
        let mut records: Vec<WalRecord> = Vec::new();
        let mut read = 0u64;
        while let Ok(n) = reader.read(&mut records, 1 << 20) {
            if n == 0 {
                break;
            }
            read += n as u64;
            records.clear();
        }
        assert_eq!(report.records, intact_records(data), "start-up must keep every intact record");
        assert_eq!(read, report.records, "the reader must see every record the start-up scan counted");
        // And the real replay of each log kind over the same log.
        let (all, until) = (u64::MAX, wal.head());
        crate::wal::replay::metrics(&wal, all, until, &m.series, &m.metadata, &m.buffer);
        crate::wal::replay::logs(&wal, all, until, &LogsBuffer::new(buffer_config()));
        crate::wal::replay::spans(&wal, all, until, &SpansBuffer::new(buffer_config()));
        wal.close();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! Start-up replay: the recent part of each write-ahead log back into its buffer, so detection and queries
//! see the window they saw before the restart. Forwarders need no replay: each resumes at its own position.
//!
//! Records were checked when they were accepted; limits lowered since must not drop them now, so each is
//! decoded with the limits of the log itself ([`IngestLimits::for_replay`]).

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::{Entry, Wal, WalRecord};
use crate::buffer::{LogsBuffer, MetricsBuffer, SpansBuffer};
use crate::limits::IngestLimits;
use crate::loki::{LokiReceiverConfig, decode::decode_protobuf, rows::stage};
use crate::remote_write::{self, RemoteWriteVersion};
use crate::series::{MetadataStore, SeriesRegistry};

/// What a replay read and kept.
#[derive(Debug, Default, Clone, Copy)]
pub struct Replayed {
    pub records: u64,
    /// Samples, lines or spans put back into the buffer.
    pub rows: u64,
    /// Records that no longer decode or resolve (e.g. a tenant limit lowered since).
    pub skipped: u64,
}

/// Replays the newest `bytes` of the metrics log before position `until` into `buffer`.
pub fn metrics(
    wal: &Wal,
    bytes: u64,
    until: u64,
    series: &SeriesRegistry,
    metadata: &MetadataStore,
    buffer: &MetricsBuffer,
) -> Replayed {
    let limits = IngestLimits::for_replay();
    replay(wal, bytes, until, |entry| {
        let tenant = series.tenant(&entry.tenant).ok()?;
        let counts =
            remote_write::receive(&entry.payload, RemoteWriteVersion::V1, tenant, &limits, series, metadata, buffer)
                .ok()?;
        Some(counts.samples)
    })
}

/// Replays the newest `bytes` of the logs log (snappy Loki pushes) before position `until` into `buffer`.
pub fn logs(wal: &Wal, bytes: u64, until: u64, buffer: &LogsBuffer) -> Replayed {
    let limits = IngestLimits::for_replay();
    let config = LokiReceiverConfig { max_line_bytes: usize::MAX, ..LokiReceiverConfig::default() };
    let mut staged = buffer.staged_rows();
    replay(wal, bytes, until, |entry| {
        let streams = decode_protobuf(&entry.payload, &limits).ok()?;
        staged.reset(buffer.shard_count());
        let converted = stage(streams, &entry.tenant, &config, &limits, crate::loki::now_ns(), &mut staged);
        buffer.append(&staged).ok()?;
        Some(converted.lines)
    })
}

/// Replays the newest `bytes` of the spans log (OTLP trace requests) before position `until` into `buffer`.
pub fn spans(wal: &Wal, bytes: u64, until: u64, buffer: &SpansBuffer) -> Replayed {
    let mut staged = buffer.staged_rows();
    replay(wal, bytes, until, |entry| {
        let request = ExportTraceServiceRequest::decode(&entry.payload[..]).ok()?;
        let tenant: Arc<str> = Arc::from(entry.tenant.as_str());
        let converted = crate::otlp::traces::convert_request(&request, &tenant);
        staged.reset(buffer.shard_count());
        let n = converted.len() as u64;
        for row in converted {
            staged.push(row);
        }
        buffer.append(&staged).ok()?;
        Some(n)
    })
}

/// Feeds every record of the newest `bytes` of `wal` that starts before `until` (the head when the
/// process started: writes accepted since are in the buffer already) to `apply` (`None`: the record was
/// skipped).
fn replay(wal: &Wal, bytes: u64, until: u64, mut apply: impl FnMut(&Entry) -> Option<u64>) -> Replayed {
    let mut reader = wal.reader_from_recent(bytes);
    let mut records: Vec<WalRecord> = Vec::new();
    let mut out = Replayed::default();
    loop {
        records.clear();
        match reader.read(&mut records, 8 << 20) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(log = wal.signal(), error = %e, "Reading the log for replay failed; the buffer starts partly empty.");
                break;
            }
        }
        for r in &records {
            if r.start >= until {
                return out;
            }
            out.records += 1;
            match Entry::decode(&r.body).ok().and_then(|entry| apply(&entry)) {
                Some(rows) => out.rows += rows,
                None => out.skipped += 1,
            }
        }
    }
    out
}

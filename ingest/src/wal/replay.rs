//! Start-up replay: the recent part of each write-ahead log back into its buffer, so detection and queries
//! see the window they saw before the restart. Forwarders need no replay: each resumes at its own position.
//!
//! Records were checked when they were accepted; limits lowered since must not drop them now, so each is
//! decoded with the limits of the log itself ([`IngestLimits::for_replay`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    replay(wal, bytes, until, |entry| {
        let streams = decode_protobuf(&entry.payload, &limits).ok()?;
        let mut staged = buffer.staged_rows();
        let converted = stage(streams, &entry.tenant, &config, &limits, crate::loki::now_ns(), &mut staged);
        buffer.append(&staged).ok()?;
        Some(converted.lines)
    })
}

/// Replays the newest `bytes` of the spans log (OTLP trace requests) before position `until` into `buffer`.
pub fn spans(wal: &Wal, bytes: u64, until: u64, buffer: &SpansBuffer) -> Replayed {
    replay(wal, bytes, until, |entry| {
        let request = ExportTraceServiceRequest::decode(&entry.payload[..]).ok()?;
        let tenant: Arc<str> = Arc::from(entry.tenant.as_str());
        let converted = crate::otlp::traces::convert_request(&request, &tenant);
        let mut staged = buffer.staged_rows();
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
/// skipped), on one worker thread per core: replay is on the way to readiness, and decoding is most of it.
/// Records of one read chunk stay in order on one worker; chunks may interleave, as two clients' requests
/// do at ingest.
fn replay(wal: &Wal, bytes: u64, until: u64, apply: impl Fn(&Entry) -> Option<u64> + Sync) -> Replayed {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let (tx, rx) = crossbeam_channel::bounded::<Vec<WalRecord>>(workers * 2);
    let (records, rows, skipped) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let rx = rx.clone();
            let (apply, records, rows, skipped) = (&apply, &records, &rows, &skipped);
            scope.spawn(move || {
                for chunk in rx {
                    for r in &chunk {
                        records.fetch_add(1, Ordering::Relaxed);
                        match Entry::decode(&r.body).ok().and_then(|entry| apply(&entry)) {
                            Some(n) => rows.fetch_add(n, Ordering::Relaxed),
                            None => skipped.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                }
            });
        }
        drop(rx);
        let mut reader = wal.reader_from_recent(bytes);
        loop {
            let mut chunk: Vec<WalRecord> = Vec::new();
            match reader.read(&mut chunk, 8 << 20) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(log = wal.signal(), error = %e, "Reading the log for replay failed; the buffer starts partly empty.");
                    break;
                }
            }
            let reached_until = chunk.last().is_some_and(|r| r.end >= until);
            chunk.retain(|r| r.start < until);
            if tx.send(chunk).is_err() || reached_until {
                break;
            }
        }
        drop(tx);
    });
    Replayed { records: records.into_inner(), rows: rows.into_inner(), skipped: skipped.into_inner() }
}

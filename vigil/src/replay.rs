//! Start-up replay: the recent part of each write-ahead log back into its buffer, so detection and queries
//! see the window they saw before the restart. Forwarders need no replay: each resumes at its own position.

use vigil_ingest::buffer::MetricsBuffer;
use vigil_ingest::limits::IngestLimits;
use vigil_ingest::remote_write::{self, RemoteWriteVersion};
use vigil_ingest::series::{MetadataStore, SeriesRegistry};
use vigil_ingest::wal::{Entry, MAX_RECORD_BYTES, Wal, WalRecord};

use crate::config::Config;

#[derive(Debug, Default)]
pub(crate) struct Replayed {
    pub(crate) records: u64,
    pub(crate) samples: u64,
    /// Records that no longer decode or resolve (e.g. a tenant limit lowered since).
    pub(crate) skipped: u64,
}

/// Replays the newest `buffer.max_bytes` of the metrics log into `buffer`.
pub(crate) fn metrics(
    wal: &Wal,
    config: &Config,
    series: &SeriesRegistry,
    metadata: &MetadataStore,
    buffer: &MetricsBuffer,
) -> Replayed {
    // Records were checked when they were accepted; limits lowered since must not drop them now.
    let limits = IngestLimits {
        max_body_bytes: MAX_RECORD_BYTES as u64,
        max_decompressed_bytes: MAX_RECORD_BYTES as u64,
        max_labels_per_series: usize::MAX,
        max_label_name_bytes: usize::MAX,
        max_label_value_bytes: usize::MAX,
    };
    let mut reader = wal.reader_from_recent(config.buffer.max_bytes);
    let mut records: Vec<WalRecord> = Vec::new();
    let mut out = Replayed::default();
    loop {
        records.clear();
        match reader.read(&mut records, 8 << 20) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Reading the metrics log for replay failed; the buffer starts partly empty.");
                break;
            }
        }
        for r in &records {
            out.records += 1;
            let Ok(entry) = Entry::decode(&r.body) else {
                out.skipped += 1;
                continue;
            };
            let Ok(tenant) = series.tenant(&entry.tenant) else {
                out.skipped += 1;
                continue;
            };
            match remote_write::receive(
                &entry.payload,
                RemoteWriteVersion::V1,
                tenant,
                &limits,
                series,
                metadata,
                buffer,
            ) {
                Ok(counts) => out.samples += counts.samples,
                Err(_) => out.skipped += 1,
            }
        }
    }
    out
}

//! Vigil's own metrics about ingest, exposed on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::buffer::table::OpenTable;
use crate::buffer::{ColumnarBuffer, MetricsBuffer};
use crate::series::{MetadataStore, SeriesRegistry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub protocol: &'static str,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabels {
    pub signal: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub protocol: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone)]
pub struct IngestMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub rejected: Family<RejectLabels, Counter>,
    pub samples: Family<ProtocolLabels, Counter>,
    pub exemplars: Family<ProtocolLabels, Counter>,
    pub histograms: Family<ProtocolLabels, Counter>,
    pub duration: Family<ProtocolLabels, Histogram>,
    buffer_bytes: Family<SignalLabels, Gauge>,
    buffer_max_bytes: Family<SignalLabels, Gauge>,
    buffer_sealed: Family<SignalLabels, Gauge>,
    buffer_evicted: Family<SignalLabels, Gauge>,
    buffer_evicted_rows: Family<SignalLabels, Gauge>,
    buffer_rejected: Family<SignalLabels, Gauge>,
    active_series: Gauge,
    registry_bytes: Gauge,
    metadata_families: Gauge,
    metadata_dropped: Gauge,
    wal_bytes: Family<SignalLabels, Gauge>,
    wal_head: Family<SignalLabels, Gauge>,
    wal_dropped: Family<SignalLabels, Gauge>,
    wal_skipped: Family<SignalLabels, Gauge>,
}

impl IngestMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            rejected: Family::default(),
            samples: Family::default(),
            exemplars: Family::default(),
            histograms: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_25, 2.0, 16))),
            buffer_bytes: Family::default(),
            buffer_max_bytes: Family::default(),
            buffer_sealed: Family::default(),
            buffer_evicted: Family::default(),
            buffer_evicted_rows: Family::default(),
            buffer_rejected: Family::default(),
            active_series: Gauge::default(),
            registry_bytes: Gauge::default(),
            metadata_families: Gauge::default(),
            metadata_dropped: Gauge::default(),
            wal_bytes: Family::default(),
            wal_head: Family::default(),
            wal_dropped: Family::default(),
            wal_skipped: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("vigil");
        r.register("ingest_requests", "Ingest requests answered, by protocol and HTTP status", m.requests.clone());
        r.register("ingest_rejected_requests", "Ingest requests refused, by protocol and reason", m.rejected.clone());
        r.register("ingest_samples", "Float samples accepted", m.samples.clone());
        r.register("ingest_exemplars", "Exemplars accepted", m.exemplars.clone());
        r.register("ingest_histograms", "Native histogram samples accepted", m.histograms.clone());
        r.register("ingest_request_duration_seconds", "Time to answer an ingest request", m.duration.clone());
        r.register("buffer_bytes", "Memory held by a columnar buffer, by signal", m.buffer_bytes.clone());
        r.register("buffer_max_bytes", "Configured buffer.max_bytes", m.buffer_max_bytes.clone());
        r.register("buffer_sealed_batches", "Batches sealed since start (counter semantics)", m.buffer_sealed.clone());
        r.register(
            "buffer_evicted_batches",
            "Batches evicted for memory since start (counter semantics)",
            m.buffer_evicted.clone(),
        );
        r.register(
            "buffer_evicted_samples",
            "Samples evicted for memory since start (counter semantics)",
            m.buffer_evicted_rows.clone(),
        );
        r.register(
            "buffer_rejected_appends",
            "Appends refused because the buffer was full (counter semantics)",
            m.buffer_rejected.clone(),
        );
        r.register("active_series", "Series known to the registry", m.active_series.clone());
        r.register("series_registry_bytes", "Approximate memory of the series registry", m.registry_bytes.clone());
        r.register(
            "metadata_families",
            "Metric families whose metadata is kept, all tenants",
            m.metadata_families.clone(),
        );
        r.register(
            "metadata_dropped_updates",
            "Metadata of new metric families not kept because the store was full (counter semantics)",
            m.metadata_dropped.clone(),
        );
        r.register("wal_disk_bytes", "Bytes of write-ahead log on disk, by signal", m.wal_bytes.clone());
        r.register(
            "wal_head_position",
            "Log position after the last record written (counter semantics)",
            m.wal_head.clone(),
        );
        r.register(
            "wal_dropped_bytes",
            "Undelivered log bytes given up by wal.full_policy drop_oldest (counter semantics)",
            m.wal_dropped.clone(),
        );
        r.register(
            "wal_damaged_bytes_skipped",
            "Damaged log bytes readers stepped over (counter semantics)",
            m.wal_skipped.clone(),
        );
        m
    }

    /// Copies the metrics buffer's, the registry's and the metadata store's own counters into the exported
    /// gauges; call before each scrape.
    pub fn observe_state(&self, buffer: &MetricsBuffer, series: &SeriesRegistry, metadata: &MetadataStore) {
        self.observe_buffer("metrics", buffer);
        set(&self.active_series, series.len());
        set(&self.registry_bytes, series.memory_bytes());
        set(&self.metadata_families, metadata.len() as u64);
        set(&self.metadata_dropped, metadata.dropped());
    }

    /// Copies one buffer's counters into the exported gauges, labelled with its signal.
    pub fn observe_buffer<O: OpenTable>(&self, signal: &'static str, buffer: &ColumnarBuffer<O>) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = buffer.stats();
        let labels = SignalLabels { signal };
        set(&self.buffer_bytes.get_or_create(&labels), s.used_bytes.load(Relaxed));
        set(&self.buffer_max_bytes.get_or_create(&labels), buffer.config().max_bytes);
        set(&self.buffer_sealed.get_or_create(&labels), s.sealed_batches.load(Relaxed));
        set(&self.buffer_evicted.get_or_create(&labels), s.evicted_batches.load(Relaxed));
        set(&self.buffer_evicted_rows.get_or_create(&labels), s.evicted_rows.load(Relaxed));
        set(&self.buffer_rejected.get_or_create(&labels), s.rejected_appends.load(Relaxed));
    }
}

impl IngestMetrics {
    /// Copies a write-ahead log's state into the exported gauges, labelled with its signal.
    pub fn observe_wal(&self, wal: &crate::wal::Wal) {
        let labels = SignalLabels { signal: wal.signal() };
        set(&self.wal_bytes.get_or_create(&labels), wal.disk_bytes());
        set(&self.wal_head.get_or_create(&labels), wal.head());
        set(&self.wal_dropped.get_or_create(&labels), wal.dropped_bytes());
        set(&self.wal_skipped.get_or_create(&labels), wal.skipped_bytes());
    }
}

fn set(g: &Gauge, v: u64) {
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
}

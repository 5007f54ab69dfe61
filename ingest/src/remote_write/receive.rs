//! The synchronous core of the receiver: compressed body in, rows in the buffer out.

use std::cell::RefCell;

use prost::Message;

use super::decoded::{DecodedWrite, RemoteWriteVersion, span_bytes, span_str};
use super::error::RemoteWriteError;
use super::validate::{check_labels_utf8, check_series_labels};
use super::{decode_v1, decode_v2};
use crate::buffer::{ExemplarRow, HistogramRow, MetricsBuffer, SampleRow, StagedRows};
use crate::limits::IngestLimits;
use crate::rate_limit::SampleRateLimiter;
use crate::series::{KeyHash, Lookup, MetadataStore, SeriesRef, SeriesRegistry, Tenant, push_label};
use crate::wal::metrics as metrics_record;
use crate::wal::{Pending, Wal, WalError};

/// What one accepted request added (the 2.0 `*-Written` headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub samples: u64,
    pub histograms: u64,
    pub exemplars: u64,
}

/// Buffers one worker thread reuses across requests.
#[derive(Default)]
struct Scratch {
    decompressed: Vec<u8>,
    decoded: DecodedWrite,
    key: Vec<u8>,
    ids: Vec<SeriesRef>,
    staged: StagedRows,
    resolve: ResolveScratch,
    wal_encoder: metrics_record::Encoder,
}

thread_local! {
    // Decoding is synchronous, so a tokio worker thread never holds this across an await.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Decodes a snappy-compressed remote-write body of the given version and appends it to the buffer (no
/// write-ahead log: start-up replay, tests, benches).
pub fn receive(
    compressed: &[u8],
    version: RemoteWriteVersion,
    tenant: Tenant,
    limits: &IngestLimits,
    series: &SeriesRegistry,
    metadata: &MetadataStore,
    buffer: &MetricsBuffer,
) -> Result<WriteCounts, RemoteWriteError> {
    let into = Destination { limits, series, metadata, buffer, wal: None, rate_limit: None };
    receive_logged(compressed, version, tenant, &into).map(|r| r.counts)
}

/// Where an accepted request goes, and the limits it must meet.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    pub limits: &'a IngestLimits,
    pub series: &'a SeriesRegistry,
    pub metadata: &'a MetadataStore,
    pub buffer: &'a MetricsBuffer,
    /// When given, the request is appended to it and is acknowledged only once durable.
    pub wal: Option<&'a Wal>,
    /// When given, the request's samples are taken from its tenant's budget once decoded, before anything
    /// is registered or logged; a request over budget is refused whole.
    pub rate_limit: Option<&'a SampleRateLimiter>,
}

/// What an accepted request added, and (with a log) the wait until it is durable.
#[derive(Debug)]
pub struct Received {
    pub counts: WriteCounts,
    pub durable: Option<Pending>,
}

/// [`receive`], also appending the request to `into.wal`.
pub fn receive_logged(
    compressed: &[u8],
    version: RemoteWriteVersion,
    tenant: Tenant,
    into: &Destination<'_>,
) -> Result<Received, RemoteWriteError> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => receive_with(&mut scratch, compressed, version, tenant, into),
        // Only reachable if a caller re-enters from inside `receive`; use fresh buffers rather than panic.
        Err(_) => receive_with(&mut Scratch::default(), compressed, version, tenant, into),
    })
}

fn receive_with(
    scratch: &mut Scratch,
    compressed: &[u8],
    version: RemoteWriteVersion,
    tenant: Tenant,
    into: &Destination<'_>,
) -> Result<Received, RemoteWriteError> {
    let Destination { limits, series, metadata, buffer, wal, rate_limit } = *into;
    let size = snap::raw::decompress_len(compressed).map_err(|e| RemoteWriteError::Snappy(e.to_string()))? as u64;
    if size > limits.max_decompressed_bytes {
        return Err(RemoteWriteError::DecompressedTooLarge { size, limit: limits.max_decompressed_bytes });
    }
    let Scratch { decompressed, decoded, key, ids, staged, resolve, wal_encoder } = scratch;
    // Grow only: zero-filling the whole buffer on every request showed up in profiles.
    let size = size as usize;
    if decompressed.len() < size {
        decompressed.resize(size, 0);
    }
    let n = snap::raw::Decoder::new()
        .decompress(compressed, &mut decompressed[..size])
        .map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    let body = &decompressed[..n];
    match version {
        RemoteWriteVersion::V1 => decode_v1::decode(body, limits, decoded)?,
        RemoteWriteVersion::V2 => decode_v2::decode(body, limits, decoded)?,
    }
    if let Some(limiter) = rate_limit {
        let samples = (decoded.samples.len() + decoded.histograms.len()) as u64;
        limiter.check(series, tenant, samples).map_err(RemoteWriteError::RateLimited)?;
    }
    resolve_series(body, decoded, tenant, limits, resolve, ids, series)?;
    stage_rows(body, decoded, ids, key, staged, buffer.shard_count())?;
    let durable = match wal {
        Some(wal) => {
            let tenant_name = series.tenant_name(tenant.index()).map_or("", |t| &**t);
            // A 1.0 body whose label sets are all canonical already is the record's payload.
            let as_sent = decoded.version == RemoteWriteVersion::V1
                && decoded.series.iter().all(|s| s.canonical_labels.is_some());
            let record = if as_sent {
                metrics_record::record_from_body(tenant_name, staged, compressed)
            } else {
                metrics_record::record_from_rows(wal_encoder, tenant_name, staged, series)
            }
            .map_err(|e| RemoteWriteError::Wal(WalError::Failed(e.to_string())))?;
            Some(wal.append(record).map_err(RemoteWriteError::Wal)?)
        }
        None => None,
    };
    buffer.append(staged).map_err(|full| RemoteWriteError::BufferFull { limit: full.limit })?;
    for md in &decoded.metadata {
        metadata.update(
            tenant,
            span_str(body, md.family),
            md.metric_type,
            span_str(body, md.help),
            span_str(body, md.unit),
        );
    }
    let counts = WriteCounts {
        samples: staged.sample_count() as u64,
        histograms: staged.histogram_count() as u64,
        exemplars: staged.exemplar_count() as u64,
    };
    Ok(Received { counts, durable })
}

/// Where one series' registry key is: already in the body (canonical as sent), or built into `built`.
#[derive(Debug, Clone, Copy)]
enum KeyAt {
    Body(u32, u32),
    Built(u32, u32),
}

impl KeyAt {
    fn bytes<'a>(self, body: &'a [u8], built: &'a [u8]) -> &'a [u8] {
        match self {
            KeyAt::Body(a, b) => span_bytes(body, (a, b)),
            KeyAt::Built(a, b) => built.get(a as usize..b as usize).unwrap_or(&[]),
        }
    }
}

#[derive(Default)]
struct ResolveScratch {
    built: Vec<u8>,
    keys: Vec<KeyAt>,
    hashes: Vec<KeyHash>,
    order: Vec<u32>,
    found: Vec<Lookup>,
}

/// Gives every series its id. Label rules are checked here rather than in the decoders, because a series
/// found in the registry through its canonical bytes was checked when it was registered and needs no second
/// look; every other series is checked (and, if new, its UTF-8 too) before it is accepted.
fn resolve_series(
    body: &[u8],
    decoded: &DecodedWrite,
    tenant: Tenant,
    limits: &IngestLimits,
    scratch: &mut ResolveScratch,
    ids: &mut Vec<SeriesRef>,
    series: &SeriesRegistry,
) -> Result<(), RemoteWriteError> {
    let ResolveScratch { built, keys, hashes, order, found } = scratch;
    built.clear();
    keys.clear();
    hashes.clear();
    for s in &decoded.series {
        let at = match s.canonical_labels {
            // The sender's bytes already are the canonical key: no copy.
            Some((start, end)) => KeyAt::Body(start, end),
            None => {
                let start = built.len() as u32;
                for label in &decoded.labels[s.labels.start as usize..s.labels.end as usize] {
                    let value = span_bytes(body, label.value);
                    if !value.is_empty() {
                        push_label(built, span_bytes(body, label.name), value);
                    }
                }
                KeyAt::Built(start, built.len() as u32)
            }
        };
        hashes.push(KeyHash::of(tenant, at.bytes(body, built)));
        keys.push(at);
    }
    series.lookup_batch(tenant, hashes, order, found);
    ids.clear();
    // Check everything before registering anything, so a refused request leaves no series behind.
    for (index, (s, (at, lookup))) in decoded.series.iter().zip(keys.iter().zip(found.iter())).enumerate() {
        let labels = &decoded.labels[s.labels.start as usize..s.labels.end as usize];
        let invalid = |problem| RemoteWriteError::InvalidSeries { series: index, problem };
        match (at, lookup) {
            (KeyAt::Body(..), Lookup::Found(_)) => {}
            (_, Lookup::Found(_)) => check_series_labels(body, labels, limits).map_err(invalid)?,
            (_, Lookup::Missing) => {
                check_series_labels(body, labels, limits).map_err(invalid)?;
                check_labels_utf8(body, labels).map_err(invalid)?;
            }
        }
    }
    for (at, lookup) in keys.iter().zip(found.iter()) {
        let resolved = match *lookup {
            Lookup::Found(r) => r,
            Lookup::Missing => {
                series.resolve(tenant, at.bytes(body, built)).map_err(|e| RemoteWriteError::Limit(e.to_string()))?
            }
        };
        ids.push(resolved);
    }
    Ok(())
}

fn stage_rows(
    body: &[u8],
    decoded: &DecodedWrite,
    ids: &[SeriesRef],
    key: &mut Vec<u8>,
    staged: &mut StagedRows,
    shards: usize,
) -> Result<(), RemoteWriteError> {
    staged.reset(shards);
    for (index, (s, r)) in decoded.series.iter().zip(ids).enumerate() {
        let id = r.id;
        for sample in &decoded.samples[s.samples.start as usize..s.samples.end as usize] {
            staged.push_sample(SampleRow {
                series: id,
                slot: r.slot,
                timestamp_ms: sample.timestamp_ms,
                value: sample.value,
            });
        }
        for ex in &decoded.exemplars[s.exemplars.start as usize..s.exemplars.end as usize] {
            key.clear();
            let (mut trace_id, mut span_id) = (None, None);
            for label in &decoded.labels[ex.labels.start as usize..ex.labels.end as usize] {
                let (name, value) = (span_str(body, label.name), span_str(body, label.value));
                match name {
                    "trace_id" => trace_id = Some(value.to_owned()),
                    "span_id" => span_id = Some(value.to_owned()),
                    _ => {}
                }
                push_label(key, name.as_bytes(), value.as_bytes());
            }
            staged.push_exemplar(ExemplarRow {
                series: id,
                timestamp_ms: ex.timestamp_ms,
                value: ex.value,
                trace_id,
                span_id,
                labels: key.clone(),
            });
        }
        for h in &decoded.histograms[s.histograms.start as usize..s.histograms.end as usize] {
            let raw = span_bytes(body, h.body);
            let encoded = match decoded.version {
                RemoteWriteVersion::V1 => raw.to_vec(),
                RemoteWriteVersion::V2 => v2_histogram_to_v1(raw, index)?,
            };
            staged.push_histogram(HistogramRow { series: id, timestamp_ms: h.timestamp_ms, encoded });
        }
    }
    Ok(())
}

/// Forwarders speak 1.0 (VictoriaMetrics has no 2.0 receiver), so 2.0 histograms are re-encoded once here.
fn v2_histogram_to_v1(raw: &[u8], series: usize) -> Result<Vec<u8>, RemoteWriteError> {
    use vigil_proto::prometheus::Histogram as V1;
    use vigil_proto::prometheus_v2::Histogram as V2;
    let h = V2::decode(raw).map_err(|e| RemoteWriteError::InvalidSeries {
        series,
        problem: super::SeriesProblem::Histogram(e.to_string()),
    })?;
    let v1 = V1 {
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
    };
    Ok(v1.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::BufferConfig;
    use crate::series::SeriesRegistryConfig;

    /// One `TimeSeries` whose label fields are given as raw bytes, plus one sample.
    fn request(label_fields: &[Vec<u8>]) -> Vec<u8> {
        let mut ts = Vec::new();
        for f in label_fields {
            ts.extend_from_slice(f);
        }
        ts.extend_from_slice(&[0x12, 11, 0x09]);
        ts.extend_from_slice(&1.0f64.to_le_bytes());
        ts.extend_from_slice(&[0x10, 0x01]);
        let mut req = vec![0x0a];
        crate::put_varint(&mut req, ts.len() as u64);
        req.extend_from_slice(&ts);
        snap::raw::Encoder::new().compress_vec(&req).unwrap()
    }

    /// A label field as `push_label` writes it.
    fn canonical(name: &str, value: &str) -> Vec<u8> {
        let mut out = Vec::new();
        push_label(&mut out, name.as_bytes(), value.as_bytes());
        out
    }

    /// Value before name, and the outer length as a two-byte (non-minimal) varint.
    fn odd(name: &str, value: &str) -> Vec<u8> {
        let mut inner = vec![0x12, value.len() as u8];
        inner.extend_from_slice(value.as_bytes());
        inner.extend_from_slice(&[0x0a, name.len() as u8]);
        inner.extend_from_slice(name.as_bytes());
        let mut out = vec![0x0a, (inner.len() as u8) | 0x80, 0x00];
        out.extend_from_slice(&inner);
        out
    }

    #[test]
    fn every_encoding_of_a_label_set_resolves_to_the_same_series() {
        let series = SeriesRegistry::new(&SeriesRegistryConfig::default(), "anonymous");
        let (metadata, limits) = (MetadataStore::default(), IngestLimits::default());
        let buffer = MetricsBuffer::new(BufferConfig::default());
        let long = "v".repeat(300);
        let variants = [
            vec![canonical("__name__", "up"), canonical("job", &long)],
            vec![odd("__name__", "up"), canonical("job", &long)],
            vec![canonical("__name__", "up"), canonical("empty", ""), canonical("job", &long)],
            vec![canonical("__name__", "up"), odd("job", "x")],
            vec![canonical("__name__", "up"), canonical("job", "x")],
        ];
        for v in &variants {
            receive(&request(v), RemoteWriteVersion::V1, Tenant::DEFAULT, &limits, &series, &metadata, &buffer)
                .unwrap();
        }
        // Variants 0-2 name one series (long job value), 3-4 another (job="x").
        assert_eq!(series.len(), 2, "non-canonical encodings must not create duplicate series");
        let mut key = Vec::new();
        push_label(&mut key, b"__name__", b"up");
        push_label(&mut key, b"job", b"x");
        assert!(series.lookup(Tenant::DEFAULT, &key).is_some());
    }
}

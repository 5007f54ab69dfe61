//! The synchronous core of the receiver: compressed body in, rows in the buffer out.

use std::cell::RefCell;

use prost::Message;

use super::decoded::{DecodedWrite, RemoteWriteVersion, span_bytes, span_str};
use super::error::RemoteWriteError;
use super::validate::check_labels_utf8;
use super::{decode_v1, decode_v2};
use crate::buffer::{ExemplarRow, HistogramRow, MetricsBuffer, SampleRow, StagedRows};
use crate::limits::IngestLimits;
use crate::series::{MetadataStore, RegistryError, SeriesRegistry, push_label};

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
    ids: Vec<u64>,
    staged: StagedRows,
}

thread_local! {
    // Decoding is synchronous, so a tokio worker thread never holds this across an await.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Decodes a snappy-compressed remote-write body of the given version and appends it to the buffer.
pub fn receive(
    compressed: &[u8],
    version: RemoteWriteVersion,
    limits: &IngestLimits,
    series: &SeriesRegistry,
    metadata: &MetadataStore,
    buffer: &MetricsBuffer,
) -> Result<WriteCounts, RemoteWriteError> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => receive_with(&mut scratch, compressed, version, limits, series, metadata, buffer),
        // Only reachable if a caller re-enters from inside `receive`; use fresh buffers rather than panic.
        Err(_) => receive_with(&mut Scratch::default(), compressed, version, limits, series, metadata, buffer),
    })
}

fn receive_with(
    scratch: &mut Scratch,
    compressed: &[u8],
    version: RemoteWriteVersion,
    limits: &IngestLimits,
    series: &SeriesRegistry,
    metadata: &MetadataStore,
    buffer: &MetricsBuffer,
) -> Result<WriteCounts, RemoteWriteError> {
    let size = snap::raw::decompress_len(compressed).map_err(|e| RemoteWriteError::Snappy(e.to_string()))? as u64;
    if size > limits.max_decompressed_bytes {
        return Err(RemoteWriteError::DecompressedTooLarge { size, limit: limits.max_decompressed_bytes });
    }
    let Scratch { decompressed, decoded, key, ids, staged } = scratch;
    decompressed.clear();
    decompressed.resize(size as usize, 0);
    let n = snap::raw::Decoder::new()
        .decompress(compressed, decompressed)
        .map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    decompressed.truncate(n);
    let body = decompressed.as_slice();
    match version {
        RemoteWriteVersion::V1 => decode_v1::decode(body, limits, decoded)?,
        RemoteWriteVersion::V2 => decode_v2::decode(body, limits, decoded)?,
    }
    resolve_series(body, decoded, key, ids, series)?;
    stage_rows(body, decoded, ids, key, staged, buffer.shard_count())?;
    buffer.append(staged).map_err(|full| RemoteWriteError::BufferFull { limit: full.limit })?;
    for md in &decoded.metadata {
        metadata.update(span_str(body, md.family), md.metric_type, span_str(body, md.help), span_str(body, md.unit));
    }
    Ok(WriteCounts {
        samples: staged.sample_count() as u64,
        histograms: staged.histogram_count() as u64,
        exemplars: staged.exemplar_count() as u64,
    })
}

fn resolve_series(
    body: &[u8],
    decoded: &DecodedWrite,
    key: &mut Vec<u8>,
    ids: &mut Vec<u64>,
    series: &SeriesRegistry,
) -> Result<(), RemoteWriteError> {
    ids.clear();
    for (index, s) in decoded.series.iter().enumerate() {
        let labels = &decoded.labels[s.labels.start as usize..s.labels.end as usize];
        key.clear();
        for label in labels {
            let value = span_bytes(body, label.value);
            if !value.is_empty() {
                push_label(key, span_bytes(body, label.name), value);
            }
        }
        let id = match series.lookup(key) {
            Some(id) => id,
            None => {
                check_labels_utf8(body, labels)
                    .map_err(|problem| RemoteWriteError::InvalidSeries { series: index, problem })?;
                series.resolve(key).map_err(|e| match e {
                    RegistryError::TooManySeries { .. } => RemoteWriteError::Limit(e.to_string()),
                })?
            }
        };
        ids.push(id);
    }
    Ok(())
}

fn stage_rows(
    body: &[u8],
    decoded: &DecodedWrite,
    ids: &[u64],
    key: &mut Vec<u8>,
    staged: &mut StagedRows,
    shards: usize,
) -> Result<(), RemoteWriteError> {
    staged.reset(shards);
    for (index, (s, &id)) in decoded.series.iter().zip(ids).enumerate() {
        for sample in &decoded.samples[s.samples.start as usize..s.samples.end as usize] {
            staged.push_sample(SampleRow { series: id, timestamp_ms: sample.timestamp_ms, value: sample.value });
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

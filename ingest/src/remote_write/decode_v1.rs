//! Decoder for remote write 1.0 (`prometheus.WriteRequest`) into [`DecodedWrite`] spans.

// `ok_or(error)` builds and drops a `RemoteWriteError` for every field decoded (its drop is not free: other
// variants own strings); profiling showed 8 % of decode time there. Build errors only when they happen.
#![allow(clippy::unnecessary_lazy_evaluations)]

use super::decoded::{
    DecodedWrite, ExemplarRef, HistogramRef, LabelRef, MetadataRef, RemoteWriteVersion, SampleRow, SeriesRef, Span,
};
use super::error::{RemoteWriteError, SeriesProblem};
use super::validate::{check_exemplar_labels, check_sample_order};
use crate::limits::IngestLimits;
use crate::protowire::{FieldValue, WireReader};

fn span((s, e): (usize, usize)) -> Span {
    (s as u32, e as u32)
}

pub(super) fn len_field(v: FieldValue, field: &'static str) -> Result<(usize, usize), RemoteWriteError> {
    v.as_range().ok_or_else(|| RemoteWriteError::WireType { field })
}

/// Decodes a whole request and validates every series. On error nothing is kept (the caller clears `out`
/// before reuse), so a rejected request never reaches the buffer.
pub(crate) fn decode(body: &[u8], limits: &IngestLimits, out: &mut DecodedWrite) -> Result<(), RemoteWriteError> {
    out.clear(RemoteWriteVersion::V1);
    let mut reader = WireReader::new(body);
    while !reader.is_empty() {
        match reader.next_field()? {
            (1, v) => {
                let (s, e) = len_field(v, "WriteRequest.timeseries")?;
                let index = out.series.len();
                decode_series(body, reader.sub(s, e), out)
                    .and_then(|()| check_last_series(body, out, limits))
                    .map_err(|problem| match problem {
                        Problem::Wire(w) => w,
                        Problem::Series(problem) => RemoteWriteError::InvalidSeries { series: index, problem },
                    })?;
            }
            (3, v) => {
                let (s, e) = len_field(v, "WriteRequest.metadata")?;
                decode_metadata(body, reader.sub(s, e), out)?;
            }
            _ => {} // unknown fields are skipped, as protobuf requires
        }
    }
    Ok(())
}

pub(crate) enum Problem {
    Wire(RemoteWriteError),
    Series(SeriesProblem),
}

impl From<crate::protowire::WireError> for Problem {
    fn from(e: crate::protowire::WireError) -> Self {
        Problem::Wire(e.into())
    }
}

impl From<RemoteWriteError> for Problem {
    fn from(e: RemoteWriteError) -> Self {
        Problem::Wire(e)
    }
}

/// Sample order and exemplar labels of the series just decoded; its labels are checked after the registry
/// lookup (see `receive::resolve_series`).
fn check_last_series(body: &[u8], out: &DecodedWrite, limits: &IngestLimits) -> Result<(), Problem> {
    let Some(series) = out.series.last() else { return Ok(()) };
    check_sample_order(&out.samples[series.samples.start as usize..series.samples.end as usize])
        .map_err(Problem::Series)?;
    for ex in &out.exemplars[series.exemplars.start as usize..series.exemplars.end as usize] {
        check_exemplar_labels(body, &out.labels[ex.labels.start as usize..ex.labels.end as usize], limits)
            .map_err(|p| Problem::Series(SeriesProblem::Exemplar(Box::new(p))))?;
    }
    Ok(())
}

fn decode_series(body: &[u8], mut r: WireReader<'_>, out: &mut DecodedWrite) -> Result<(), Problem> {
    // Labels of the series go first in `out.labels`; exemplar labels are appended after the series' own
    // labels are complete, so fields arriving in any order are collected into the right ranges.
    let labels_start = out.labels.len() as u32;
    let samples_start = out.samples.len() as u32;
    let histograms_start = out.histograms.len() as u32;
    let mut exemplar_fields: smallvec_like::Spans = Default::default();
    let mut canonical = CanonicalTracker::default();
    while !r.is_empty() {
        let field_start = r.position();
        match r.next_field()? {
            (1, v) => {
                let (s, e) = len_field(v, "TimeSeries.labels")?;
                let label = decode_label(body, r.sub(s, e))?;
                canonical.label(field_start, s, e, &label);
                out.labels.push(label);
            }
            (2, v) => {
                let (s, e) = len_field(v, "TimeSeries.samples")?;
                out.samples.push(decode_sample(r.sub(s, e))?);
            }
            (3, v) => exemplar_fields.push(len_field(v, "TimeSeries.exemplars")?),
            (4, v) => {
                let range = len_field(v, "TimeSeries.histograms")?;
                out.histograms.push(HistogramRef {
                    body: span(range),
                    timestamp_ms: histogram_timestamp(r.sub(range.0, range.1))?,
                });
            }
            _ => {}
        }
    }
    let labels_end = out.labels.len() as u32;
    let exemplars_start = out.exemplars.len() as u32;
    for (s, e) in exemplar_fields.iter() {
        let ex = decode_exemplar(r.sub(s, e), out)?;
        out.exemplars.push(ex);
    }
    out.series.push(SeriesRef {
        labels: labels_start..labels_end,
        samples: samples_start..out.samples.len() as u32,
        exemplars: exemplars_start..out.exemplars.len() as u32,
        histograms: histograms_start..out.histograms.len() as u32,
        canonical_labels: canonical.span(),
    });
    Ok(())
}

/// Follows a series' label fields to tell whether their bytes are the canonical key as sent.
#[derive(Default)]
struct CanonicalTracker {
    start: usize,
    end: usize,
    seen: bool,
    broken: bool,
}

impl CanonicalTracker {
    fn label(&mut self, field_start: usize, s: usize, e: usize, label: &LabelRef) {
        let contiguous = !self.seen || field_start == self.end;
        // tag 0x0a (one byte) + a minimal length varint
        let minimal_header = s - field_start == 1 + prost::encoding::encoded_len_varint((e - s) as u64);
        // name at s+2, value right after its one-byte header: what `push_label` writes for short strings
        let fast_form = label.name.0 as usize == s + 2 && label.value.1 as usize == e && label.value.0 < label.value.1;
        if !(contiguous && minimal_header && fast_form) {
            self.broken = true;
        }
        if !self.seen {
            self.start = field_start;
            self.seen = true;
        }
        self.end = e;
    }

    fn span(&self) -> Option<Span> {
        (self.seen && !self.broken).then_some((self.start as u32, self.end as u32))
    }
}

/// `Label` as encoders write it: `0x0a len name 0x12 len value` with one-byte lengths. Checked directly,
/// since labels are most of a request's bytes; anything else goes through the general reader.
#[inline]
fn decode_label(body: &[u8], r: WireReader<'_>) -> Result<LabelRef, RemoteWriteError> {
    let (s, e) = (r.position(), r.end());
    if let Some(b) = body.get(s..e)
        && b.len() >= 4
        && b[0] == 0x0a
        && b[1] < 0x80
    {
        let after_name = 2 + b[1] as usize;
        if after_name + 2 <= b.len()
            && b[after_name] == 0x12
            && b[after_name + 1] < 0x80
            && after_name + 2 + b[after_name + 1] as usize == b.len()
        {
            return Ok(LabelRef {
                name: ((s + 2) as u32, (s + after_name) as u32),
                value: ((s + after_name + 2) as u32, e as u32),
            });
        }
    }
    decode_label_general(r)
}

fn decode_label_general(mut r: WireReader<'_>) -> Result<LabelRef, RemoteWriteError> {
    let at = r.position();
    let mut label = LabelRef { name: (at as u32, at as u32), value: (at as u32, at as u32) };
    while !r.is_empty() {
        match r.next_field()? {
            (1, v) => label.name = span(len_field(v, "Label.name")?),
            (2, v) => label.value = span(len_field(v, "Label.value")?),
            _ => {}
        }
    }
    Ok(label)
}

/// `Sample` has the same fields 1 and 2 in both versions (2.0's `start_timestamp`, field 3, is not kept yet).
pub(super) fn decode_sample(mut r: WireReader<'_>) -> Result<SampleRow, RemoteWriteError> {
    // As encoders write it: `0x09 <f64> 0x10 <varint>`, the varint ending the message.
    let b = r.remaining();
    if b.len() >= 11 && b[0] == 0x09 && b[9] == 0x10 {
        let mut value = [0u8; 8];
        value.copy_from_slice(&b[1..9]);
        let mut ts = &b[10..];
        if let Ok(t) = prost::encoding::decode_varint(&mut ts)
            && ts.is_empty()
        {
            return Ok(SampleRow { timestamp_ms: t as i64, value: f64::from_le_bytes(value) });
        }
    }
    let mut sample = SampleRow { timestamp_ms: 0, value: 0.0 };
    while !r.is_empty() {
        match r.next_field()? {
            (1, v) => sample.value = v.as_f64().ok_or_else(|| RemoteWriteError::WireType { field: "Sample.value" })?,
            (2, v) => {
                sample.timestamp_ms =
                    v.as_i64().ok_or_else(|| RemoteWriteError::WireType { field: "Sample.timestamp" })?
            }
            _ => {}
        }
    }
    Ok(sample)
}

fn decode_exemplar(mut r: WireReader<'_>, out: &mut DecodedWrite) -> Result<ExemplarRef, RemoteWriteError> {
    let labels_start = out.labels.len() as u32;
    let mut ex = ExemplarRef { labels: 0..0, timestamp_ms: 0, value: 0.0 };
    while !r.is_empty() {
        match r.next_field()? {
            (1, v) => {
                let (s, e) = len_field(v, "Exemplar.labels")?;
                out.labels.push(decode_label_general(r.sub(s, e))?);
            }
            (2, v) => ex.value = v.as_f64().ok_or_else(|| RemoteWriteError::WireType { field: "Exemplar.value" })?,
            (3, v) => {
                ex.timestamp_ms =
                    v.as_i64().ok_or_else(|| RemoteWriteError::WireType { field: "Exemplar.timestamp" })?
            }
            _ => {}
        }
    }
    ex.labels = labels_start..out.labels.len() as u32;
    Ok(ex)
}

/// Reads only the timestamp (field 15) of a native histogram; the rest is passed through as bytes. The whole
/// message is still walked so a corrupt histogram is rejected here, not by the backend.
pub(crate) fn histogram_timestamp(mut r: WireReader<'_>) -> Result<i64, RemoteWriteError> {
    let mut ts = 0;
    while !r.is_empty() {
        if let (15, v) = r.next_field()? {
            ts = v.as_i64().ok_or_else(|| RemoteWriteError::WireType { field: "Histogram.timestamp" })?;
        }
    }
    Ok(ts)
}

fn decode_metadata(body: &[u8], mut r: WireReader<'_>, out: &mut DecodedWrite) -> Result<(), RemoteWriteError> {
    let at = r.position() as u32;
    let mut md = MetadataRef { family: (at, at), metric_type: 0, help: (at, at), unit: (at, at) };
    while !r.is_empty() {
        match r.next_field()? {
            (1, v) => {
                md.metric_type =
                    v.as_u64().ok_or_else(|| RemoteWriteError::WireType { field: "MetricMetadata.type" })? as i32
            }
            (2, v) => md.family = span(len_field(v, "MetricMetadata.metric_family_name")?),
            (4, v) => md.help = span(len_field(v, "MetricMetadata.help")?),
            (5, v) => md.unit = span(len_field(v, "MetricMetadata.unit")?),
            _ => {}
        }
    }
    let index = out.metadata.len();
    for (what, s) in [("metric_family_name", md.family), ("help", md.help), ("unit", md.unit)] {
        if std::str::from_utf8(super::decoded::span_bytes(body, s)).is_err() {
            return Err(RemoteWriteError::MetadataNotUtf8(index, what));
        }
    }
    out.metadata.push(md);
    Ok(())
}

/// A tiny inline list of spans: exemplars are rare, so this avoids a heap allocation per series.
mod smallvec_like {
    #[derive(Default)]
    pub(crate) struct Spans {
        inline: [(usize, usize); 4],
        len: usize,
        spill: Vec<(usize, usize)>,
    }

    impl Spans {
        pub(crate) fn push(&mut self, s: (usize, usize)) {
            if self.len < self.inline.len() {
                self.inline[self.len] = s;
                self.len += 1;
            } else {
                self.spill.push(s);
            }
        }

        pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
            self.inline[..self.len].iter().copied().chain(self.spill.iter().copied())
        }
    }
}

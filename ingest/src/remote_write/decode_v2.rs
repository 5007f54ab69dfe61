//! Decoder for remote write 2.0 (`io.prometheus.write.v2.Request`) into [`DecodedWrite`] spans.
//!
//! Label references are resolved against the symbol table here, so the rest of the pipeline sees the same
//! name/value spans as for 1.0.

// `ok_or(error)` builds and drops a `RemoteWriteError` for every field decoded (its drop is not free: other
// variants own strings); profiling showed 8 % of decode time there. Build errors only when they happen.
#![allow(clippy::unnecessary_lazy_evaluations)]

use super::decode_v1::{Problem, decode_sample, histogram_timestamp, len_field};
use super::decoded::{
    DecodedWrite, ExemplarRef, HistogramRef, LabelRef, MetadataRef, RemoteWriteVersion, SeriesRef, Span,
};
use super::error::{RemoteWriteError, SeriesProblem};
use super::validate::{check_exemplar_labels, check_sample_order};
use crate::limits::IngestLimits;
use crate::protowire::{FieldValue, WireReader, packed_varints};

pub(crate) fn decode(body: &[u8], limits: &IngestLimits, out: &mut DecodedWrite) -> Result<(), RemoteWriteError> {
    out.clear(RemoteWriteVersion::V2);
    // Pass 1: the symbol table (encoders write it first, but the wire format does not promise that).
    let mut reader = WireReader::new(body);
    while !reader.is_empty() {
        if let (4, v) = reader.next_field()? {
            let (s, e) = len_field(v, "Request.symbols")?;
            if std::str::from_utf8(&body[s..e]).is_err() {
                return Err(RemoteWriteError::SymbolNotUtf8(out.symbols.len()));
            }
            out.symbols.push((s as u32, e as u32));
        }
    }
    if let Some(&(s, e)) = out.symbols.first()
        && s != e
    {
        return Err(RemoteWriteError::FirstSymbolNotEmpty);
    }
    // Pass 2: the series.
    let mut reader = WireReader::new(body);
    while !reader.is_empty() {
        if let (5, v) = reader.next_field()? {
            let (s, e) = len_field(v, "Request.timeseries")?;
            let index = out.series.len();
            decode_series(body, reader.sub(s, e), limits, out).map_err(|p| match p {
                Problem::Wire(w) => w,
                Problem::Series(problem) => RemoteWriteError::InvalidSeries { series: index, problem },
            })?;
        }
    }
    Ok(())
}

fn push_refs(
    refs_field: FieldValue,
    body: &[u8],
    symbols: &[Span],
    labels: &mut Vec<LabelRef>,
    pending: &mut Option<Span>,
) -> Result<(), Problem> {
    let mut push = |r: u64| -> Result<(), Problem> {
        let sym = usize::try_from(r)
            .ok()
            .and_then(|i| symbols.get(i))
            .copied()
            .ok_or_else(|| Problem::Series(SeriesProblem::BadSymbolRef { reference: r, len: symbols.len() }))?;
        match pending.take() {
            None => *pending = Some(sym),
            Some(name) => labels.push(LabelRef { name, value: sym }),
        }
        Ok(())
    };
    match refs_field {
        FieldValue::Varint(r) => push(r),
        FieldValue::Len(s, e) => {
            let mut result = Ok(());
            packed_varints(body, s, e, |r| {
                if let Err(p) = push(r) {
                    result = Err(p);
                }
                Ok(())
            })?;
            result
        }
        _ => Err(Problem::Wire(RemoteWriteError::WireType { field: "labels_refs" })),
    }
}

fn decode_series(
    body: &[u8],
    mut r: WireReader<'_>,
    limits: &IngestLimits,
    out: &mut DecodedWrite,
) -> Result<(), Problem> {
    let labels_start = out.labels.len();
    let samples_start = out.samples.len();
    let histograms_start = out.histograms.len();
    let mut exemplar_fields: Vec<(usize, usize)> = Vec::new();
    let mut pending_name: Option<Span> = None;
    let mut ref_count = 0usize;
    let mut metadata: Option<(usize, usize)> = None;
    while !r.is_empty() {
        match r.next_field()? {
            (1, v) => {
                let before = out.labels.len() * 2 + usize::from(pending_name.is_some());
                push_refs(v, body, &out.symbols, &mut out.labels, &mut pending_name)?;
                ref_count += out.labels.len() * 2 + usize::from(pending_name.is_some()) - before;
            }
            (2, v) => {
                let (s, e) = len_field(v, "TimeSeries.samples")?;
                out.samples.push(decode_sample(r.sub(s, e))?);
            }
            (3, v) => {
                let range = len_field(v, "TimeSeries.histograms")?;
                out.histograms.push(HistogramRef {
                    body: (range.0 as u32, range.1 as u32),
                    timestamp_ms: histogram_timestamp(r.sub(range.0, range.1))?,
                });
            }
            (4, v) => exemplar_fields.push(len_field(v, "TimeSeries.exemplars")?),
            (5, v) => metadata = Some(len_field(v, "TimeSeries.metadata")?),
            _ => {}
        }
    }
    if pending_name.is_some() {
        return Err(Problem::Series(SeriesProblem::OddLabelRefs(ref_count)));
    }
    let labels_end = out.labels.len();
    let series_labels = &out.labels[labels_start..labels_end];
    let has_samples = out.samples.len() > samples_start;
    let has_histograms = out.histograms.len() > histograms_start;
    match (has_samples, has_histograms) {
        (true, true) => return Err(Problem::Series(SeriesProblem::SamplesAndHistograms)),
        (false, false) => return Err(Problem::Series(SeriesProblem::NoData)),
        _ => {}
    }
    check_sample_order(&out.samples[samples_start..]).map_err(Problem::Series)?;
    if let Some((s, e)) = metadata {
        let family = series_labels
            .iter()
            .find(|l| super::decoded::span_bytes(body, l.name) == b"__name__")
            .map(|l| l.value)
            .unwrap_or((0, 0));
        decode_metadata(r.sub(s, e), family, &out.symbols, &mut out.metadata)?;
    }
    let exemplars_start = out.exemplars.len();
    for (s, e) in exemplar_fields {
        let ex_labels_start = out.labels.len();
        let ex = decode_exemplar(body, r.sub(s, e), out)?;
        check_exemplar_labels(body, &out.labels[ex_labels_start..], limits)
            .map_err(|p| Problem::Series(SeriesProblem::Exemplar(Box::new(p))))?;
        out.exemplars.push(ex);
    }
    out.series.push(SeriesRef {
        labels: labels_start as u32..labels_end as u32,
        samples: samples_start as u32..out.samples.len() as u32,
        exemplars: exemplars_start as u32..out.exemplars.len() as u32,
        histograms: histograms_start as u32..out.histograms.len() as u32,
        canonical_labels: None,
    });
    Ok(())
}

fn decode_exemplar(body: &[u8], mut r: WireReader<'_>, out: &mut DecodedWrite) -> Result<ExemplarRef, Problem> {
    let labels_start = out.labels.len() as u32;
    let mut ex = ExemplarRef { labels: 0..0, timestamp_ms: 0, value: 0.0 };
    let mut pending = None;
    while !r.is_empty() {
        match r.next_field()? {
            (1, v) => push_refs(v, body, &out.symbols, &mut out.labels, &mut pending).map_err(|p| match p {
                Problem::Series(s) => Problem::Series(SeriesProblem::Exemplar(Box::new(s))),
                w => w,
            })?,
            (2, v) => ex.value = v.as_f64().ok_or_else(|| RemoteWriteError::WireType { field: "Exemplar.value" })?,
            (3, v) => {
                ex.timestamp_ms =
                    v.as_i64().ok_or_else(|| RemoteWriteError::WireType { field: "Exemplar.timestamp" })?
            }
            _ => {}
        }
    }
    if pending.is_some() {
        return Err(Problem::Series(SeriesProblem::Exemplar(Box::new(SeriesProblem::OddLabelRefs(0)))));
    }
    ex.labels = labels_start..out.labels.len() as u32;
    Ok(ex)
}

fn decode_metadata(
    mut r: WireReader<'_>,
    family: Span,
    symbols: &[Span],
    out: &mut Vec<MetadataRef>,
) -> Result<(), Problem> {
    let empty = (family.0, family.0);
    let mut md = MetadataRef { family, metric_type: 0, help: empty, unit: empty };
    let lookup = |v: FieldValue| -> Result<Span, Problem> {
        let r = v.as_u64().ok_or_else(|| Problem::Wire(RemoteWriteError::WireType { field: "Metadata.*_ref" }))?;
        usize::try_from(r)
            .ok()
            .and_then(|i| symbols.get(i))
            .copied()
            .ok_or_else(|| Problem::Series(SeriesProblem::BadSymbolRef { reference: r, len: symbols.len() }))
    };
    while !r.is_empty() {
        match r.next_field()? {
            (1, v) => {
                md.metric_type = v.as_u64().ok_or_else(|| RemoteWriteError::WireType { field: "Metadata.type" })? as i32
            }
            (3, v) => md.help = lookup(v)?,
            (4, v) => md.unit = lookup(v)?,
            _ => {}
        }
    }
    out.push(md);
    Ok(())
}

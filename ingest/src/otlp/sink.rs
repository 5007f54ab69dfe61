//! Converted OTLP metric series → series ids → buffer rows.

use prost::Message;

use super::metrics::{Converted, PromSeries};
use crate::buffer::{ExemplarRow, HistogramRow, MetricsBuffer, SampleRow, StagedRows};
use crate::limits::IngestLimits;
use crate::series::{SeriesRegistry, Tenant, push_label};
pub(crate) use crate::wal::Refused;
use crate::wal::metrics as metrics_record;
use crate::wal::{Pending, Wal, log_and_buffer};

/// What was kept, and what was refused with why (for `partial_success`).
#[derive(Debug, Default)]
pub(crate) struct Appended {
    pub(crate) samples: u64,
    pub(crate) histograms: u64,
    pub(crate) exemplars: u64,
    pub(crate) rejected_points: u64,
    pub(crate) problems: Vec<String>,
}

impl From<Refused> for super::body::OtlpError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::BufferFull(full) => Self::BufferFull { limit: full.limit },
            Refused::Wal(e) => Self::Wal(e),
        }
    }
}

fn points(s: &PromSeries) -> u64 {
    (s.samples.len() + s.histograms.len()) as u64
}

/// Series over a limit are refused one by one (partial success); the rest is appended all at once. Only a
/// full buffer refuses the whole request, so the client retries it.
pub(crate) fn append(
    converted: Converted,
    limits: &IngestLimits,
    registry: &SeriesRegistry,
    tenant: Tenant,
    buffer: &MetricsBuffer,
    wal: Option<&Wal>,
) -> Result<(Appended, Option<Pending>), Refused> {
    let mut out =
        Appended { rejected_points: converted.rejected_points, problems: converted.problems, ..Appended::default() };
    let mut staged = StagedRows::default();
    staged.reset(buffer.shard_count());
    let mut key = Vec::new();
    for series in &converted.series {
        if let Some(problem) = over_limits(series, limits) {
            out.rejected_points += points(series);
            push_unique(&mut out.problems, problem);
            continue;
        }
        key.clear();
        for (name, value) in &series.labels {
            if !value.is_empty() {
                push_label(&mut key, name.as_bytes(), value.as_bytes());
            }
        }
        let r = match registry.resolve(tenant, &key) {
            Ok(r) => r,
            Err(e) => {
                out.rejected_points += points(series);
                push_unique(&mut out.problems, e.to_string());
                continue;
            }
        };
        for &(timestamp_ms, value) in &series.samples {
            staged.push_sample(SampleRow { series: r.id, slot: r.slot, timestamp_ms, value });
        }
        for (timestamp_ms, h) in &series.histograms {
            staged.push_histogram(HistogramRow {
                series: r.id,
                timestamp_ms: *timestamp_ms,
                encoded: h.encode_to_vec(),
            });
        }
        for ex in &series.exemplars {
            let mut labels = Vec::new();
            let (mut trace_id, mut span_id) = (None, None);
            for (name, value) in &ex.labels {
                match name.as_str() {
                    "trace_id" => trace_id = Some(value.clone()),
                    "span_id" => span_id = Some(value.clone()),
                    _ => {}
                }
                push_label(&mut labels, name.as_bytes(), value.as_bytes());
            }
            staged.push_exemplar(ExemplarRow {
                series: r.id,
                timestamp_ms: ex.timestamp_ms,
                value: ex.value,
                trace_id,
                span_id,
                labels,
            });
        }
    }
    let total = staged.sample_count() + staged.histogram_count() + staged.exemplar_count();
    let record = || {
        let tenant_name = registry.tenant_name(tenant.index()).map_or("", |t| &**t);
        metrics_record::record_from_rows(&mut Default::default(), tenant_name, &staged, registry)
    };
    let durable = log_and_buffer(wal.filter(|_| total > 0), record, buffer, &staged)?;
    out.samples = staged.sample_count() as u64;
    out.histograms = staged.histogram_count() as u64;
    out.exemplars = staged.exemplar_count() as u64;
    Ok((out, durable))
}

fn over_limits(series: &PromSeries, limits: &IngestLimits) -> Option<String> {
    let name = series.labels.iter().find(|(n, _)| n == "__name__").map_or("", |(_, v)| v.as_str());
    if series.labels.len() > limits.max_labels_per_series {
        return Some(format!(
            "metric {name:?}: {} labels exceed `limits.max_labels_per_series` = {}",
            series.labels.len(),
            limits.max_labels_per_series
        ));
    }
    for (n, v) in &series.labels {
        if n.len() > limits.max_label_name_bytes {
            return Some(format!("metric {name:?}: a label name exceeds `limits.max_label_name_bytes`"));
        }
        if v.len() > limits.max_label_value_bytes {
            return Some(format!("metric {name:?}: the value of label {n:?} exceeds `limits.max_label_value_bytes`"));
        }
    }
    None
}

fn push_unique(problems: &mut Vec<String>, problem: String) {
    if !problems.contains(&problem) {
        problems.push(problem);
    }
}

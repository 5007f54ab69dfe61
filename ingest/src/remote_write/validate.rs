//! Checks every series must pass, whichever protocol version carried it.

use super::decoded::{LabelRef, span_bytes};
use super::error::SeriesProblem;
use crate::limits::IngestLimits;

/// Labels must have non-empty unique names, be sorted by name, carry `__name__`, and stay within the
/// configured limits. Empty values are allowed here and dropped when the key is built (an empty label value
/// means "no such label" in Prometheus). UTF-8 is checked by [`check_labels_utf8`], only for series the
/// registry does not know: a known series' label bytes equal a stored key that was checked when it was new.
pub(crate) fn check_series_labels(
    body: &[u8],
    labels: &[LabelRef],
    limits: &IngestLimits,
) -> Result<(), SeriesProblem> {
    if labels.is_empty() {
        return Err(SeriesProblem::NoLabels);
    }
    if labels.len() > limits.max_labels_per_series {
        return Err(SeriesProblem::TooManyLabels { count: labels.len(), limit: limits.max_labels_per_series });
    }
    let mut has_name = false;
    let mut previous: &[u8] = &[];
    for (i, label) in labels.iter().enumerate() {
        let name = span_bytes(body, label.name);
        let value = span_bytes(body, label.value);
        if name.is_empty() {
            return Err(SeriesProblem::EmptyLabelName);
        }
        if name.len() > limits.max_label_name_bytes {
            return Err(SeriesProblem::NameTooLong { len: name.len(), limit: limits.max_label_name_bytes });
        }
        if value.len() > limits.max_label_value_bytes {
            return Err(SeriesProblem::ValueTooLong {
                name: String::from_utf8_lossy(name).into_owned(),
                len: value.len(),
                limit: limits.max_label_value_bytes,
            });
        }
        if i > 0 {
            match previous.cmp(name) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(SeriesProblem::DuplicateLabel(String::from_utf8_lossy(name).into_owned()));
                }
                std::cmp::Ordering::Greater => {
                    return Err(SeriesProblem::Unsorted {
                        earlier: String::from_utf8_lossy(previous).into_owned(),
                        later: String::from_utf8_lossy(name).into_owned(),
                    });
                }
            }
        }
        has_name |= name == b"__name__" && !value.is_empty();
        previous = name;
    }
    if !has_name {
        return Err(SeriesProblem::MissingName);
    }
    Ok(())
}

/// Names and values must be UTF-8 (protobuf `string`).
pub(crate) fn check_labels_utf8(body: &[u8], labels: &[LabelRef]) -> Result<(), SeriesProblem> {
    for label in labels {
        if std::str::from_utf8(span_bytes(body, label.name)).is_err() {
            return Err(SeriesProblem::NotUtf8("name"));
        }
        if std::str::from_utf8(span_bytes(body, label.value)).is_err() {
            return Err(SeriesProblem::NotUtf8("value"));
        }
    }
    Ok(())
}

/// Exemplar labels carry the trace link; they need valid UTF-8 and non-empty names only.
pub(crate) fn check_exemplar_labels(
    body: &[u8],
    labels: &[LabelRef],
    limits: &IngestLimits,
) -> Result<(), SeriesProblem> {
    if labels.len() > limits.max_labels_per_series {
        return Err(SeriesProblem::TooManyLabels { count: labels.len(), limit: limits.max_labels_per_series });
    }
    for label in labels {
        let name = span_bytes(body, label.name);
        if name.is_empty() {
            return Err(SeriesProblem::EmptyLabelName);
        }
        if std::str::from_utf8(name).is_err() || std::str::from_utf8(span_bytes(body, label.value)).is_err() {
            return Err(SeriesProblem::NotUtf8("name or value"));
        }
    }
    Ok(())
}

pub(crate) fn check_sample_order(samples: &[super::decoded::SampleRow]) -> Result<(), SeriesProblem> {
    for pair in samples.windows(2) {
        if pair[1].timestamp_ms < pair[0].timestamp_ms {
            return Err(SeriesProblem::OutOfOrder { earlier: pair[0].timestamp_ms, later: pair[1].timestamp_ms });
        }
    }
    Ok(())
}

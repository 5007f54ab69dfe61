//! OTLP exemplars → Prometheus exemplars.
//!
//! The spec keeps exemplars of histograms and monotonic sums and drops the others; the callers decide
//! which points keep theirs. Like Prometheus' translator, the `filtered_attributes` are left out when
//! the exemplar's labels would exceed OpenMetrics' 128 characters, while `trace_id` and `span_id` stay.
//! Unlike it, attribute names are sanitised like any label name, so an exemplar never carries a label
//! name a backend refuses.

use opentelemetry_proto::tonic::metrics::v1::{Exemplar, exemplar};

use super::PromExemplar;
use super::labels::{LabelMap, hex, insert_joined, label_name, value_text};
use super::ms;

/// OpenMetrics' limit on the characters of an exemplar's label names and values together.
const MAX_EXEMPLAR_RUNES: usize = 128;

/// The Prometheus form of each exemplar that has a value (one without is skipped: there is nothing to
/// plot).
pub(super) fn convert_all(exemplars: &[Exemplar]) -> Vec<PromExemplar> {
    exemplars.iter().filter_map(convert).collect()
}

fn convert(e: &Exemplar) -> Option<PromExemplar> {
    let value = match e.value? {
        exemplar::Value::AsDouble(d) => d,
        exemplar::Value::AsInt(i) => i as f64,
    };

    let mut labels = LabelMap::new();
    let mut runes = 0;
    // Ids of the wrong length cannot be real W3C ids; an all-zero id means "none" (pdata's `IsEmpty`).
    let ids = [("trace_id", &e.trace_id, 16), ("span_id", &e.span_id, 8)];
    let ids = ids.into_iter().filter(|(_, id, len)| id.len() == *len && id.iter().any(|b| *b != 0));
    let ids: Vec<(&str, String)> = ids.map(|(key, id, _)| (key, hex(id))).collect();
    for (key, id) in &ids {
        runes += key.len() + id.len();
    }

    let mut attrs = Vec::with_capacity(e.filtered_attributes.len());
    for kv in &e.filtered_attributes {
        let value = value_text(kv.value.as_ref());
        runes += kv.key.chars().count() + value.chars().count();
        // An attribute whose name cannot be a label name is left out rather than losing the exemplar.
        if let Some(name) = label_name(&kv.key).filter(|_| !value.is_empty()) {
            attrs.push((kv.key.as_str(), name, value));
        }
    }
    if runes <= MAX_EXEMPLAR_RUNES {
        // Sorted by original key so that colliding names join in the same order as point labels.
        attrs.sort_by(|a, b| a.0.cmp(b.0));
        for (_, name, value) in attrs {
            insert_joined(&mut labels, name, value);
        }
    }
    // The ids win over attributes of the same name (spec: exemplars MUST use these keys).
    for (key, id) in ids {
        labels.insert(key.to_owned(), id);
    }

    Some(PromExemplar { labels: labels.into_iter().collect(), timestamp_ms: ms(e.time_unix_nano), value })
}

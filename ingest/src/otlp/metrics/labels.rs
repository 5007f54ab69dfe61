//! Labels: attribute names → label names, attribute values → text, and the merge of resource, scope and
//! point labels into one sorted label set.
//!
//! Label names follow Prometheus' OTLP receiver with its default settings (`NormalizeLabel`:
//! `label_name_underscore_sanitization` and `label_name_preserve_multiple_underscores` both on), which
//! differs from the spec text in keeping runs of `_` and names starting with `__`.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

/// Label name → value while a label set is being built; a `BTreeMap` so that the result comes out sorted
/// by name, as Prometheus wants it.
pub(super) type LabelMap = BTreeMap<String, String>;

/// Resource attributes that become `job` and `instance` instead of plain labels.
pub(super) const SERVICE_NAME: &str = "service.name";
pub(super) const SERVICE_NAMESPACE: &str = "service.namespace";
pub(super) const SERVICE_INSTANCE_ID: &str = "service.instance.id";

/// The labels every point of one resource and scope carries.
#[derive(Debug, Default)]
pub(super) struct Base {
    /// `service.namespace/service.name`, or `service.name`; `None` without `service.name`.
    pub(super) job: Option<String>,
    /// `service.instance.id`, if the resource has one.
    pub(super) instance: Option<String>,
    pub(super) scope_name: String,
    pub(super) scope_version: String,
}

impl Base {
    /// `job` and `instance` from a resource's attributes (the first attribute of a key wins, as in
    /// pdata's `Map.Get`).
    pub(super) fn for_resource(attrs: &[KeyValue]) -> Self {
        let get = |key: &str| attrs.iter().find(|kv| kv.key == key).map(|kv| value_text(kv.value.as_ref()));
        // The spec: `<service.namespace>/<service.name>`, or `<service.name>` if the namespace is empty.
        let job = get(SERVICE_NAME).map(|name| match get(SERVICE_NAMESPACE) {
            Some(namespace) if !namespace.is_empty() => format!("{namespace}/{name}"),
            _ => name,
        });
        Self { job, instance: get(SERVICE_INSTANCE_ID), ..Self::default() }
    }

    /// Puts scope, `job` and `instance` over `labels`, in the translator's order: a point attribute of the
    /// same name loses to them.
    pub(super) fn apply(&self, labels: &mut LabelMap) {
        if !self.scope_name.is_empty() {
            labels.insert("otel_scope_name".to_owned(), self.scope_name.clone());
        }
        if !self.scope_version.is_empty() {
            labels.insert("otel_scope_version".to_owned(), self.scope_version.clone());
        }
        if let Some(job) = &self.job {
            labels.insert("job".to_owned(), job.clone());
        }
        if let Some(instance) = &self.instance {
            labels.insert("instance".to_owned(), instance.clone());
        }
    }
}

/// Attributes as labels. Keys are taken in sorted order so that values of keys that collide once
/// sanitised are joined with `;` in the order of the original keys (spec). Empty values count as absent.
/// `Err` carries the first key that gives no valid label name.
pub(super) fn attribute_labels<'a>(attrs: impl IntoIterator<Item = &'a KeyValue>) -> Result<LabelMap, &'a str> {
    let mut sorted: Vec<&KeyValue> = attrs.into_iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut labels = LabelMap::new();
    for kv in sorted {
        let Some(name) = label_name(&kv.key) else {
            return Err(&kv.key);
        };
        let value = value_text(kv.value.as_ref());
        if value.is_empty() {
            continue;
        }
        insert_joined(&mut labels, name, value);
    }
    Ok(labels)
}

/// Adds a label; when sanitising made two attribute names collide, their values are joined with `;`
/// (spec), in the order the caller inserts them.
pub(super) fn insert_joined(labels: &mut LabelMap, name: String, value: String) {
    labels
        .entry(name)
        .and_modify(|joined| {
            joined.push(';');
            joined.push_str(&value);
        })
        .or_insert(value);
}

/// The final label set of one series: `base` plus `__name__` and at most one extra label (`le`,
/// `quantile`), which win over attributes, minus empty values.
pub(super) fn series_labels(base: &LabelMap, name: &str, extra: Option<(&str, String)>) -> Vec<(String, String)> {
    let mut labels = base.clone();
    labels.insert("__name__".to_owned(), name.to_owned());
    if let Some((key, value)) = extra {
        labels.insert(key.to_owned(), value);
    }
    labels.into_iter().filter(|(_, value)| !value.is_empty()).collect()
}

/// Prometheus' `NormalizeLabel`: characters outside `[a-zA-Z0-9_]` become `_`; a leading digit gets
/// `key_`, a single leading `_` gets `key`; names starting with `__` are left reserved. `None` for an
/// empty name or one that is only underscores.
pub(super) fn label_name(key: &str) -> Option<String> {
    let mut name: String = key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if name.bytes().all(|b| b == b'_') {
        return None;
    }
    if name.as_bytes()[0].is_ascii_digit() {
        name.insert_str(0, "key_");
    } else if name.starts_with('_') && !name.starts_with("__") {
        name.insert_str(0, "key");
    }
    Some(name)
}

/// An attribute value as label text, the way pdata's `Value.AsString` renders it: strings as they are,
/// numbers and booleans as text, bytes as base64, arrays and maps as JSON.
pub(super) fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => js_number(*d),
        Some(Value::BytesValue(bytes)) => crate::otlp::any_value::base64(bytes),
        Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => {
            let mut out = String::new();
            write_json(&mut out, value);
            out
        }
        // A string-table index only means something inside a profiles dictionary; metrics have none.
        Some(Value::StringValueStrindex(_)) | None => String::new(),
    }
}

/// A float the way JavaScript (and Go's `encoding/json`, and so pdata) prints it: shortest digits, an
/// exponent only below 1e-6 or from 1e21 on.
pub(super) fn js_number(f: f64) -> String {
    if !f.is_finite() {
        return float_text(f);
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        // JavaScript writes the sign of a positive exponent: 1e+21.
        return match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        };
    }
    format!("{f}")
}

/// A float the way Go's `strconv.FormatFloat(f, 'f', -1, 64)` prints it, which Prometheus uses for `le`
/// and `quantile`: shortest digits that read back the same, never an exponent, `+Inf`/`-Inf`/`NaN`.
pub(super) fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f == f64::INFINITY {
        "+Inf".to_owned()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{f}")
    }
}

/// JSON for array and map values, as Go's `encoding/json` writes pdata's raw values: map keys sorted (a
/// repeated key keeps its last value), bytes as base64, and `<`, `>`, `&` escaped.
fn write_json(out: &mut String, value: Option<&AnyValue>) {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => write_json_string(out, s),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::IntValue(i)) => out.push_str(&i.to_string()),
        // JSON has no NaN or infinities.
        Some(Value::DoubleValue(d)) if !d.is_finite() => out.push_str("null"),
        Some(Value::DoubleValue(d)) => out.push_str(&js_number(*d)),
        Some(Value::BytesValue(bytes)) => write_json_string(out, &crate::otlp::any_value::base64(bytes)),
        Some(Value::ArrayValue(array)) => {
            out.push('[');
            for (i, item) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, Some(item));
            }
            out.push(']');
        }
        Some(Value::KvlistValue(list)) => {
            let map: BTreeMap<&str, Option<&AnyValue>> =
                list.values.iter().map(|kv| (kv.key.as_str(), kv.value.as_ref())).collect();
            out.push('{');
            for (i, (key, item)) in map.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
        Some(Value::StringValueStrindex(_)) | None => out.push_str("null"),
    }
}

fn write_json_string(out: &mut String, s: &str) {
    let quoted = serde_json::Value::String(s.to_owned()).to_string();
    // Go's encoder escapes these for embedding in HTML; pdata's text has them escaped, so ours does too.
    for c in quoted.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// Lower-case hex, as Prometheus writes exemplar trace and span ids.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

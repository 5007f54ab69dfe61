//! OTLP values and attributes → JSON, for the `attributes` columns of logs and spans and for structured log
//! bodies.
//!
//! Values keep their OTLP/JSON shapes where JSON has one (strings, booleans, numbers, arrays, maps), so a
//! query reads them naturally. Bytes are standard base64 as in OTLP/JSON; a float JSON cannot hold (NaN,
//! infinities) is written as the string OTLP/JSON uses for it.

use opentelemetry_proto::tonic::common::v1::any_value::Value as Otlp;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use serde_json::{Map, Value};

/// The attributes as one JSON object; a repeated key keeps its last value.
pub(crate) fn attributes_json(attributes: &[KeyValue]) -> String {
    Value::Object(object(attributes)).to_string()
}

fn object(attributes: &[KeyValue]) -> Map<String, Value> {
    attributes.iter().map(|kv| (kv.key.clone(), value_json(kv.value.as_ref()))).collect()
}

/// One value as JSON.
pub(crate) fn value_json(v: Option<&AnyValue>) -> Value {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Otlp::StringValue(s)) => Value::String(s.clone()),
        Some(Otlp::BoolValue(b)) => Value::Bool(*b),
        Some(Otlp::IntValue(i)) => Value::from(*i),
        Some(Otlp::DoubleValue(d)) => match serde_json::Number::from_f64(*d) {
            Some(n) => Value::Number(n),
            None if d.is_nan() => Value::String("NaN".into()),
            None if *d > 0.0 => Value::String("Infinity".into()),
            None => Value::String("-Infinity".into()),
        },
        Some(Otlp::BytesValue(b)) => Value::String(base64(b)),
        Some(Otlp::ArrayValue(a)) => Value::Array(a.values.iter().map(|v| value_json(Some(v))).collect()),
        Some(Otlp::KvlistValue(l)) => Value::Object(object(&l.values)),
        // A string-table index only means something inside a profiles dictionary; logs and spans have none.
        Some(Otlp::StringValueStrindex(_)) | None => Value::Null,
    }
}

/// Standard base64 with padding (RFC 4648 §4), as OTLP/JSON writes bytes.
pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    use super::*;

    fn kv(key: &str, v: Otlp) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
    }

    #[test]
    fn every_value_kind_maps_to_json() {
        let attrs = vec![
            kv("s", Otlp::StringValue("x\"y".into())),
            kv("b", Otlp::BoolValue(true)),
            kv("i", Otlp::IntValue(-9_007_199_254_740_993)),
            kv("d", Otlp::DoubleValue(1.5)),
            kv("nan", Otlp::DoubleValue(f64::NAN)),
            kv("inf", Otlp::DoubleValue(f64::NEG_INFINITY)),
            kv("bytes", Otlp::BytesValue(b"hello".to_vec())),
            kv("arr", Otlp::ArrayValue(ArrayValue { values: vec![AnyValue { value: Some(Otlp::IntValue(1)) }] })),
            kv("map", Otlp::KvlistValue(KeyValueList { values: vec![kv("in", Otlp::BoolValue(false))] })),
            KeyValue { key: "empty".into(), value: None, ..Default::default() },
        ];
        let got: Value = serde_json::from_str(&attributes_json(&attrs)).unwrap();
        let want = serde_json::json!({
            "s": "x\"y", "b": true, "i": -9_007_199_254_740_993i64, "d": 1.5, "nan": "NaN", "inf": "-Infinity",
            "bytes": "aGVsbG8=", "arr": [1], "map": {"in": false}, "empty": null
        });
        assert_eq!(got, want);
    }

    #[test]
    fn base64_pads_like_rfc_4648() {
        for (input, want) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }
}

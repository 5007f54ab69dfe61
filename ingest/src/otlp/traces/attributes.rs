//! OTLP attributes → a JSON object, for the `attributes` column.
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
    attributes.iter().map(|kv| (kv.key.clone(), value(kv.value.as_ref()))).collect()
}

fn value(v: Option<&AnyValue>) -> Value {
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
        Some(Otlp::ArrayValue(a)) => Value::Array(a.values.iter().map(|v| value(Some(v))).collect()),
        Some(Otlp::KvlistValue(l)) => Value::Object(object(&l.values)),
        // A string-table index only means something inside a profiles dictionary; spans have none.
        Some(Otlp::StringValueStrindex(_)) | None => Value::Null,
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
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

//! Prometheus' JSON answer format, written by hand because two of its rules are not serde's: timestamps are
//! Unix seconds as a JSON number with at most three decimals (`marshalTimestamp`), and sample values are
//! strings in Go's shortest decimal form with `+Inf`, `-Inf` and `NaN` (`strconv.FormatFloat(v, 'f', -1)`).

use std::fmt::Write;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::own_series::Labels;
use crate::promql::{RangeSeries, Sample, Value};

/// `1700000000.123`: milliseconds as seconds, trailing zeros of the fraction kept as Prometheus writes them.
pub(crate) fn write_time(out: &mut String, ms: i64) {
    if ms < 0 {
        out.push('-');
    }
    let ms = ms.unsigned_abs();
    let _ = write!(out, "{}", ms / 1000);
    let fraction = ms % 1000;
    if fraction != 0 {
        let _ = write!(out, ".{fraction:03}");
    }
}

/// A sample value as Prometheus' string.
pub(crate) fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // Rust's `Display` for floats is the shortest round-trip form, without exponent: Go's 'f', -1.
        v.to_string()
    }
}

/// A JSON string literal.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `[<item>,…]`, each item written by `write`.
pub(crate) fn write_list<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut String, T),
) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(out, item);
    }
    out.push(']');
}

pub(crate) fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_str(out, v);
    }
    out.push('}');
}

/// `[<time>,"<value>"]`
fn write_point(out: &mut String, ms: i64, value: &str) {
    out.push('[');
    write_time(out, ms);
    out.push(',');
    write_str(out, value);
    out.push(']');
}

fn write_vector(out: &mut String, v: &[Sample], t_ms: i64) {
    out.push_str(r#"{"resultType":"vector","result":"#);
    write_list(out, v, |out, s| {
        out.push_str(r#"{"metric":"#);
        write_labels(out, &s.labels);
        out.push_str(r#","value":"#);
        write_point(out, t_ms, &format_value(s.value));
        out.push('}');
    });
    out.push('}');
}

pub(crate) fn write_matrix(out: &mut String, m: &[RangeSeries]) {
    out.push_str(r#"{"resultType":"matrix","result":"#);
    write_list(out, m, |out, s| {
        out.push_str(r#"{"metric":"#);
        write_labels(out, &s.labels);
        out.push_str(r#","values":"#);
        write_list(out, &s.points, |out, &(ts, v)| write_point(out, ts, &format_value(v)));
        out.push('}');
    });
    out.push('}');
}

/// An instant query's `data`.
pub(crate) fn write_value(out: &mut String, v: &Value, t_ms: i64) {
    match v {
        Value::Scalar(x) => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            write_point(out, t_ms, &format_value(*x));
            out.push('}');
        }
        Value::Str(s) => {
            out.push_str(r#"{"resultType":"string","result":"#);
            write_point(out, t_ms, s);
            out.push('}');
        }
        Value::Vector(v) => write_vector(out, v, t_ms),
        Value::Matrix(m) => write_matrix(out, m),
    }
}

/// `{"status":"success","data":<data>}` with `warnings` when there are any.
pub(crate) fn success(data: &str, warnings: &[String]) -> Response {
    let mut out = String::with_capacity(data.len() + 64);
    out.push_str(r#"{"status":"success","data":"#);
    out.push_str(data);
    if !warnings.is_empty() {
        out.push_str(r#","warnings":"#);
        write_list(&mut out, warnings, |out, w| write_str(out, w));
    }
    out.push('}');
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(ms: i64) -> String {
        let mut s = String::new();
        write_time(&mut s, ms);
        s
    }

    #[test]
    fn timestamps_as_prometheus_writes_them() {
        assert_eq!(time(1_700_000_000_000), "1700000000");
        assert_eq!(time(1_700_000_000_050), "1700000000.050");
        assert_eq!(time(1_700_000_000_123), "1700000000.123");
        assert_eq!(time(-1500), "-1.500");
        assert_eq!(time(0), "0");
    }

    #[test]
    fn values_as_go_formats_them() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_value(-2.5), "-2.5");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(1e-7), "0.0000001");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        write_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        assert_eq!(serde_json::from_str::<String>(&s).ok().as_deref(), Some("a\"b\\c\nd\u{1}é"));
    }
}

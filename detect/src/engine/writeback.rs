//! Scores as remote-write 1.0 `WriteRequest`s, one body per tenant, encoded by hand from the registry's
//! label bytes (no per-label `String`).
//!
//! Each scored sample becomes four series: `anomaly_score`, `anomaly_expected`, `anomaly_lower`,
//! `anomaly_upper`, each with the source series' labels (without `__name__`) plus `for="<metric name>"`, at
//! the sample's timestamp. A source label called `for` is replaced. Labels are written sorted, so the
//! receiver takes its fast path for canonical label sets.

use std::collections::HashMap;

use bytes::Bytes;
use prost::encoding::{encode_varint, encoded_len_varint};
use vigil_ingest::series::decode_label_key;

use crate::verdict::Verdict;

/// A body is handed on once it reaches this size, well under `limits.max_decompressed_bytes`' default.
pub(crate) const FLUSH_BYTES: usize = 4 << 20;

pub(crate) const NAMES: [&str; 4] = ["anomaly_score", "anomaly_expected", "anomaly_lower", "anomaly_upper"];

/// The label `for` names the scored series' metric (vmanomaly's convention).
const FOR: &str = "for";
const NAME: &str = "__name__";

/// Field 1 (length-delimited) of `WriteRequest`, `TimeSeries` and `Label`; field 2 of `TimeSeries` and
/// `Label`.
const FIELD_1_LEN: u8 = 0x0a;
const FIELD_2_LEN: u8 = 0x12;
/// `Sample`: field 1 double, field 2 varint.
const SAMPLE_VALUE: u8 = 0x09;
const SAMPLE_TIMESTAMP: u8 = 0x10;

/// One tenant's body being built.
#[derive(Debug, Default)]
pub(crate) struct Body {
    pub(crate) raw: Vec<u8>,
    /// Scored samples in it (each is four series).
    pub(crate) samples: u64,
}

/// Per-shard encoder; its buffers are reused from batch to batch.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    bodies: HashMap<u32, Body>,
    /// Bodies that reached [`FLUSH_BYTES`] before the batch ended.
    full: Vec<(u32, Body)>,
    series: Vec<u8>,
    /// One sample's labels as `Label` fields, encoded once for its four series: those sorting before
    /// `__name__`, and the others with `for`.
    before: Vec<u8>,
    after: Vec<u8>,
}

impl Encoder {
    /// Appends the four score series of one sample of the series whose canonical key is `key`, to the body
    /// of tenant `tenant`.
    ///
    /// The key is sorted by name (`LabelSetKey`), and `__name__` sorts before `for`, so one pass over it
    /// encodes the labels in their output order: the four series differ only in `__name__`'s value, which
    /// goes between the labels before it and the others.
    pub(crate) fn push(&mut self, tenant: u32, key: &[u8], timestamp_ms: i64, verdict: &Verdict) {
        let Self { bodies, full, series, before, after } = self;
        before.clear();
        after.clear();
        let (mut metric, mut for_written) = ("", false);
        for pair in decode_label_key(key) {
            match pair.name {
                NAME => metric = pair.value,
                FOR => {}
                _ if metric.is_empty() => encode_label(before, pair.name, pair.value),
                _ => {
                    if !for_written && pair.name > FOR {
                        encode_label(after, FOR, metric);
                        for_written = true;
                    }
                    encode_label(after, pair.name, pair.value);
                }
            }
        }
        if metric.is_empty() {
            return;
        }
        if !for_written {
            encode_label(after, FOR, metric);
        }
        let body = bodies.entry(tenant).or_default();
        let values = [verdict.score, verdict.expected, verdict.lower, verdict.upper];
        for (name, value) in NAMES.into_iter().zip(values) {
            series.clear();
            series.extend_from_slice(before);
            encode_label(series, NAME, name);
            series.extend_from_slice(after);
            encode_sample(series, timestamp_ms, value);
            body.raw.push(FIELD_1_LEN);
            encode_varint(series.len() as u64, &mut body.raw);
            body.raw.extend_from_slice(series);
        }
        body.samples += 1;
        if body.raw.len() >= FLUSH_BYTES {
            let taken = std::mem::take(body);
            full.push((tenant, taken));
        }
    }

    /// Every non-empty body, by tenant; the encoder is empty afterwards.
    pub(crate) fn drain(&mut self) -> Vec<(u32, Body)> {
        let mut out = std::mem::take(&mut self.full);
        out.extend(self.bodies.iter_mut().filter(|(_, b)| b.samples > 0).map(|(t, b)| (*t, std::mem::take(b))));
        out
    }
}

/// A `TimeSeries` message's fields: the labels, then one sample.
pub(crate) fn encode_series(out: &mut Vec<u8>, labels: &[(&str, &str)], timestamp_ms: i64, value: f64) {
    for (name, value) in labels {
        encode_label(out, name, value);
    }
    encode_sample(out, timestamp_ms, value);
}

/// One `TimeSeries.labels` field.
fn encode_label(out: &mut Vec<u8>, name: &str, value: &str) {
    let inner = 2 + encoded_len_varint(name.len() as u64) + name.len() + encoded_len_varint(value.len() as u64);
    out.push(FIELD_1_LEN);
    encode_varint((inner + value.len()) as u64, out);
    out.push(FIELD_1_LEN);
    encode_varint(name.len() as u64, out);
    out.extend_from_slice(name.as_bytes());
    out.push(FIELD_2_LEN);
    encode_varint(value.len() as u64, out);
    out.extend_from_slice(value.as_bytes());
}

/// One `TimeSeries.samples` field.
fn encode_sample(out: &mut Vec<u8>, timestamp_ms: i64, value: f64) {
    // Negative timestamps are varints of their two's complement, as protobuf's int64 is.
    let ts = timestamp_ms as u64;
    out.push(FIELD_2_LEN);
    encode_varint((1 + 8 + 1 + encoded_len_varint(ts)) as u64, out);
    out.push(SAMPLE_VALUE);
    out.extend_from_slice(&value.to_le_bytes());
    out.push(SAMPLE_TIMESTAMP);
    encode_varint(ts, out);
}

/// Snappy-compresses a body for the remote-write receiver.
pub(crate) fn compress(raw: &[u8]) -> Result<Bytes, snap::Error> {
    snap::raw::Encoder::new().compress_vec(raw).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use prost::Message;
    use vigil_proto::prometheus::{Label, WriteRequest};

    use super::*;
    use crate::verdict::Contributions;

    fn key(labels: &[(&str, &str)]) -> Vec<u8> {
        let labels = labels.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect();
        vigil_proto::prometheus::TimeSeries { labels, ..Default::default() }.encode_to_vec()
    }

    #[test]
    fn four_sorted_series_per_sample_with_for_and_the_source_labels() {
        let mut e = Encoder::default();
        let v = Verdict {
            score: 3.5,
            alert: 3.5,
            expected: 10.0,
            lower: 8.0,
            upper: 12.0,
            contributions: Contributions::default(),
        };
        let src = key(&[("Zone", "eu"), ("__name__", "latency"), ("for", "x"), ("job", "api")]);
        e.push(7, &src, -5, &v);
        e.push(7, &src, 1_700_000_000_000, &v);
        let bodies = e.drain();
        assert_eq!(bodies.len(), 1);
        let (tenant, body) = &bodies[0];
        assert_eq!((*tenant, body.samples), (7, 2));
        let req = WriteRequest::decode(body.raw.as_slice()).unwrap();
        assert_eq!(req.timeseries.len(), 8);
        let first = &req.timeseries[0];
        let labels: Vec<_> = first.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        assert_eq!(labels, [("Zone", "eu"), ("__name__", "anomaly_score"), ("for", "latency"), ("job", "api")]);
        assert_eq!((first.samples[0].value, first.samples[0].timestamp), (3.5, -5));
        let got: Vec<_> =
            req.timeseries[4..].iter().map(|t| (t.labels[1].value.as_str(), t.samples[0].value)).collect();
        assert_eq!(
            got,
            [("anomaly_score", 3.5), ("anomaly_expected", 10.0), ("anomaly_lower", 8.0), ("anomaly_upper", 12.0)]
        );
        assert_eq!(req.timeseries[4].samples[0].timestamp, 1_700_000_000_000);
        assert!(e.drain().is_empty(), "drained bodies are empty");
    }

    /// What `push` writes for one sample, built the plain way: every label of the four series sorted and
    /// encoded for each.
    fn reference(key: &[u8], timestamp_ms: i64, v: &Verdict) -> Vec<u8> {
        let metric = decode_label_key(key).find(|p| p.name == NAME).map(|p| p.value).unwrap();
        let mut out = Vec::new();
        for (name, value) in NAMES.into_iter().zip([v.score, v.expected, v.lower, v.upper]) {
            let mut labels: Vec<(&str, &str)> =
                decode_label_key(key).filter(|p| p.name != NAME && p.name != FOR).map(|p| (p.name, p.value)).collect();
            labels.extend([(NAME, name), (FOR, metric)]);
            labels.sort_unstable();
            let mut series = Vec::new();
            encode_series(&mut series, &labels, timestamp_ms, value);
            out.push(FIELD_1_LEN);
            encode_varint(series.len() as u64, &mut out);
            out.extend_from_slice(&series);
        }
        out
    }

    #[test]
    fn labels_encoded_once_per_sample_give_the_bytes_of_sorting_each_series() {
        let v = Verdict {
            score: 2.5,
            alert: 2.5,
            expected: 1.0,
            lower: -1.0,
            upper: 3.0,
            contributions: Contributions::default(),
        };
        let long = "v".repeat(300);
        // Keys as the registry writes them (sorted by name): labels before `__name__`, between it and
        // `for`, after `for`, with and without a source `for`.
        let keys = [
            vec![("__name__", "m")],
            vec![("A", "1"), ("Zone", "eu"), ("__name__", "m")],
            vec![("__name__", "m"), ("_x", "1"), ("a", "2"), ("fo", "3")],
            vec![("__name__", "m"), ("for", "x")],
            vec![("B", "0"), ("__name__", "latency"), ("env", "p"), ("for", "x"), ("fp", "y"), ("job", "api")],
            vec![("__name__", "m"), ("forty", "1"), ("z", long.as_str())],
        ];
        let mut e = Encoder::default();
        for (i, labels) in keys.iter().enumerate() {
            let src = key(labels);
            e.push(1, &src, 1_700_000_000_000 + i as i64, &v);
            let bodies = e.drain();
            assert_eq!(bodies[0].1.raw, reference(&src, 1_700_000_000_000 + i as i64, &v), "{labels:?}");
        }
        e.push(1, &key(&[("job", "api")]), 0, &v);
        assert!(e.drain().is_empty(), "no metric name: nothing written");
    }

    #[test]
    fn a_full_body_is_handed_back() {
        let mut e = Encoder::default();
        let v = Verdict {
            score: 0.1,
            alert: 0.1,
            expected: 1.0,
            lower: 0.0,
            upper: 2.0,
            contributions: Contributions::default(),
        };
        let src = key(&[("__name__", "m"), ("pad", &"x".repeat(1000))]);
        for i in 0..1200 {
            e.push(0, &src, i, &v);
        }
        let bodies = e.drain();
        assert_eq!(bodies.len(), 2, "one full body and the rest");
        assert!(bodies[0].1.raw.len() >= FLUSH_BYTES);
        assert_eq!(bodies.iter().map(|(_, b)| b.samples).sum::<u64>(), 1200);
        for (_, b) in &bodies {
            assert_eq!(WriteRequest::decode(b.raw.as_slice()).unwrap().timeseries.len() as u64, b.samples * 4);
        }
    }
}

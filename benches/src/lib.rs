//! Shared pieces of Vigil's load tools: realistic Prometheus series and a cheap remote write 1.0 encoder.
//!
//! The load generator has to produce hundreds of thousands of samples per second on a machine that is also
//! running the receiver under test, so it must cost as little CPU as possible. Building `WriteRequest`
//! structs and encoding them with prost for every request would spend most of that budget on allocation and
//! re-encoding the same label strings. Instead, each series' labels are encoded once with prost
//! ([`EncodedSeries::new`]), and every request is written by hand around those bytes ([`encode_request`]):
//! only the sample (value and timestamp) changes between requests.

pub mod series;

use prost::Message;
use prost::encoding::{encode_varint, encoded_len_varint};
use vigil_proto::prometheus::{Label, TimeSeries};

/// One series with its labels already in wire form.
#[derive(Debug, Clone)]
pub struct EncodedSeries {
    /// The `TimeSeries.labels` fields (field 1, repeated), exactly as prost writes them.
    labels: Box<[u8]>,
}

impl EncodedSeries {
    /// Encodes `labels` once. They must already be sorted by name, as the remote write spec requires.
    pub fn new(labels: Vec<Label>) -> Self {
        // A `TimeSeries` with nothing but labels encodes to exactly the repeated label fields, so prost does
        // the label encoding and the hand-written part below only adds the sample.
        let labels = TimeSeries { labels, ..Default::default() }.encode_to_vec().into_boxed_slice();
        Self { labels }
    }

    pub fn label_bytes(&self) -> &[u8] {
        &self.labels
    }
}

/// Tag of `WriteRequest.timeseries` (field 1, length-delimited).
const TAG_WRITE_REQUEST_TIMESERIES: u8 = 1 << 3 | 2;
/// Tag of `TimeSeries.samples` (field 2, length-delimited).
const TAG_TIMESERIES_SAMPLES: u8 = 2 << 3 | 2;
/// Tag of `Sample.value` (field 1, fixed 64-bit).
const TAG_SAMPLE_VALUE: u8 = 1 << 3 | 1;
/// Tag of `Sample.timestamp` (field 2, varint).
const TAG_SAMPLE_TIMESTAMP: u8 = 2 << 3;

/// Appends to `out` the uncompressed body of a `prometheus.WriteRequest` holding one sample per series.
///
/// `value(i)` gives the value of the `i`-th series of `series`. The bytes are identical to what prost would
/// write for the same message, except that a `0.0` value is written explicitly (prost omits it); both
/// decode the same.
pub fn encode_request<'a>(
    out: &mut Vec<u8>,
    series: impl IntoIterator<Item = &'a EncodedSeries>,
    timestamp_ms: i64,
    mut value: impl FnMut(usize) -> f64,
) {
    // Negative timestamps are pre-1970 and never produced here; the cast keeps protobuf's int64 encoding.
    let ts = timestamp_ms as u64;
    let sample_len = 1 + 8 + 1 + encoded_len_varint(ts);
    for (i, s) in series.into_iter().enumerate() {
        let series_len = s.labels.len() + 1 + encoded_len_varint(sample_len as u64) + sample_len;
        out.push(TAG_WRITE_REQUEST_TIMESERIES);
        encode_varint(series_len as u64, out);
        out.extend_from_slice(&s.labels);
        out.push(TAG_TIMESERIES_SAMPLES);
        encode_varint(sample_len as u64, out);
        out.push(TAG_SAMPLE_VALUE);
        out.extend_from_slice(&value(i).to_le_bytes());
        out.push(TAG_SAMPLE_TIMESTAMP);
        encode_varint(ts, out);
    }
}

/// Snappy block-compresses `body` (remote write uses the raw block format, not the framed one).
/// Nearest-rank percentile of sorted microseconds, in milliseconds (both load generators report with it).
pub fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

pub fn compress(encoder: &mut snap::raw::Encoder, body: &[u8]) -> Result<Vec<u8>, snap::Error> {
    encoder.compress_vec(body)
}

/// CPU time a thread of this process has run, in nanoseconds, from the scheduler's own accounting
/// (`/proc/self/task/<tid>/schedstat`; the calling thread's for `None`). The machine is shared, so wall time
/// alone would charge the code measured for time other processes held the core. The kernel brings the
/// figure up to date at context switches and scheduler ticks: a span read with it is right to within a tick
/// or two, so time spans of 100 ms or more.
pub fn thread_cpu_ns(tid: Option<u32>) -> std::io::Result<u64> {
    let path =
        tid.map_or_else(|| "/proc/thread-self/schedstat".to_owned(), |t| format!("/proc/self/task/{t}/schedstat"));
    let text = std::fs::read_to_string(path)?;
    text.split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("schedstat {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::prometheus::{Sample, WriteRequest};

    #[test]
    fn hand_written_request_matches_prost() {
        let generated = series::generate(150);
        let encoded: Vec<EncodedSeries> = generated.iter().map(|l| EncodedSeries::new(l.clone())).collect();
        let ts = 1_700_000_000_123;
        let value = |i: usize| i as f64 * 1.5 + 0.25;
        let mut body = Vec::new();
        encode_request(&mut body, &encoded, ts, value);

        let expected = WriteRequest {
            timeseries: generated
                .iter()
                .enumerate()
                .map(|(i, labels)| TimeSeries {
                    labels: labels.clone(),
                    samples: vec![Sample { value: value(i), timestamp: ts }],
                    ..Default::default()
                })
                .collect(),
            metadata: Vec::new(),
        };
        // Byte-identical when no value is 0.0, and decodes to the same message.
        assert_eq!(body, expected.encode_to_vec());
        assert_eq!(WriteRequest::decode(body.as_slice()).unwrap(), expected);

        let mut encoder = snap::raw::Encoder::new();
        let compressed = compress(&mut encoder, &body).unwrap();
        assert_eq!(snap::raw::Decoder::new().decompress_vec(&compressed).unwrap(), body);
    }

    #[test]
    fn zero_value_decodes_like_prost() {
        let encoded = [EncodedSeries::new(series::generate(1).remove(0))];
        let mut body = Vec::new();
        encode_request(&mut body, &encoded, 5, |_| 0.0);
        let decoded = WriteRequest::decode(body.as_slice()).unwrap();
        assert_eq!(decoded.timeseries[0].samples, vec![Sample { value: 0.0, timestamp: 5 }]);
    }
}

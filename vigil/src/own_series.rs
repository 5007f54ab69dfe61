//! Vigil's own series on their way to the store behind the Prometheus API.
//!
//! Everything Vigil computes itself — the engine's `anomaly_*` scores, span RED and service-graph series,
//! incident counts — reaches the metrics path as write-back bodies (snappy remote-write 1.0, one tenant
//! each) through `topology::write_back_scores`; that loop also hands each body, decoded here, to the
//! [`OwnSeriesSink`]. So one tee catches every producer, and no producer depends on the store.

use prost::Message;
use vigil_ingest::own_series::OwnSeries;
use vigil_proto::prometheus::WriteRequest;

#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("write-back body: {0}")]
    Snappy(#[from] snap::Error),
    #[error("write-back body decompresses to {0} bytes, more than {1}")]
    TooLarge(usize, usize),
    #[error("write-back body: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

/// The series of one write-back body. Bodies come from Vigil's own encoders, so an error is a bug; the
/// size check keeps even that from costing more than `max_bytes`.
pub(crate) fn decode_write_back(body: &[u8], max_bytes: usize) -> Result<Vec<OwnSeries>, DecodeError> {
    let len = snap::raw::decompress_len(body)?;
    if len > max_bytes {
        return Err(DecodeError::TooLarge(len, max_bytes));
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    let request = WriteRequest::decode(raw.as_slice())?;
    Ok(request
        .timeseries
        .into_iter()
        .map(|ts| OwnSeries {
            labels: ts.labels.into_iter().map(|l| (l.name, l.value)).collect(),
            samples: ts.samples.into_iter().map(|s| (s.timestamp, s.value)).collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use vigil_proto::prometheus::{Label, Sample, TimeSeries};

    use super::*;

    type Series<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

    fn body(series: &[Series<'_>]) -> Vec<u8> {
        let timeseries = series
            .iter()
            .map(|(labels, samples)| TimeSeries {
                labels: labels.iter().map(|(n, v)| Label { name: (*n).into(), value: (*v).into() }).collect(),
                samples: samples.iter().map(|&(timestamp, value)| Sample { value, timestamp }).collect(),
                ..Default::default()
            })
            .collect();
        let raw = WriteRequest { timeseries, metadata: vec![] }.encode_to_vec();
        snap::raw::Encoder::new().compress_vec(&raw).unwrap()
    }

    #[test]
    fn a_write_back_body_becomes_own_series() {
        let b = body(&[
            (&[("__name__", "anomaly_score"), ("for", "latency")], &[(1000, 4.5)]),
            (&[("__name__", "anomaly_expected"), ("for", "latency")], &[(1000, 0.1), (2000, 0.2)]),
        ]);
        let got = decode_write_back(&b, 1 << 20).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].labels,
            [("__name__".to_owned(), "anomaly_score".to_owned()), ("for".into(), "latency".into())]
        );
        assert_eq!(got[0].samples, [(1000, 4.5)]);
        assert_eq!(got[1].samples, [(1000, 0.1), (2000, 0.2)]);
        assert!(matches!(decode_write_back(&b, 10), Err(DecodeError::TooLarge(_, 10))));
        assert!(decode_write_back(b"\x05nope", 1 << 20).is_err());
    }
}

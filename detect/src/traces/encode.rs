//! Derived series (RED, service graph) as remote-write 1.0 bodies, one per tenant, for the metrics path:
//! the same way the engine's scores go back in (`engine/writeback.rs`), encoded by hand from borrowed
//! strings.

use std::collections::HashMap;
use std::sync::Arc;

use prost::encoding::{encode_varint, encoded_len_varint};

use crate::engine::WriteBack;

/// A body is handed on at this size, well under `limits.max_decompressed_bytes`' default.
const FLUSH_BYTES: usize = 4 << 20;

const FIELD_1_LEN: u8 = 0x0a;
const FIELD_2_LEN: u8 = 0x12;
const SAMPLE_VALUE: u8 = 0x09;
const SAMPLE_TIMESTAMP: u8 = 0x10;

#[derive(Debug, Default)]
struct Body {
    raw: Vec<u8>,
    samples: u64,
}

/// Bodies being built, per tenant; drained into [`WriteBack`]s.
#[derive(Debug, Default)]
pub(crate) struct Bodies {
    open: HashMap<Arc<str>, Body>,
    full: Vec<(Arc<str>, Body)>,
    series: Vec<u8>,
    labels: Vec<(&'static str, String)>,
}

impl Bodies {
    /// One sample of the series `name{labels}`. Labels with empty values are left out (Prometheus' rule).
    pub(crate) fn push(&mut self, tenant: &Arc<str>, name: &str, labels: &[(&'static str, &str)], ts_ms: i64, v: f64) {
        self.labels.clear();
        self.labels.push(("__name__", name.to_owned()));
        self.labels.extend(labels.iter().filter(|(_, v)| !v.is_empty()).map(|(n, v)| (*n, (*v).to_owned())));
        self.labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
        self.series.clear();
        for (n, v) in &self.labels {
            let inner = 2 + encoded_len_varint(n.len() as u64) + n.len() + encoded_len_varint(v.len() as u64) + v.len();
            self.series.push(FIELD_1_LEN);
            encode_varint(inner as u64, &mut self.series);
            self.series.push(FIELD_1_LEN);
            encode_varint(n.len() as u64, &mut self.series);
            self.series.extend_from_slice(n.as_bytes());
            self.series.push(FIELD_2_LEN);
            encode_varint(v.len() as u64, &mut self.series);
            self.series.extend_from_slice(v.as_bytes());
        }
        let ts = ts_ms as u64;
        self.series.push(FIELD_2_LEN);
        encode_varint((1 + 8 + 1 + encoded_len_varint(ts)) as u64, &mut self.series);
        self.series.push(SAMPLE_VALUE);
        self.series.extend_from_slice(&v.to_le_bytes());
        self.series.push(SAMPLE_TIMESTAMP);
        encode_varint(ts, &mut self.series);
        let body = self.open.entry(Arc::clone(tenant)).or_default();
        body.raw.push(FIELD_1_LEN);
        encode_varint(self.series.len() as u64, &mut body.raw);
        body.raw.extend_from_slice(&self.series);
        body.samples += 1;
        if body.raw.len() >= FLUSH_BYTES {
            let full = std::mem::take(body);
            self.full.push((Arc::clone(tenant), full));
        }
    }

    /// Every non-empty body, snappy-compressed; empty afterwards. Bodies that fail to compress (a bug) are
    /// returned as their sample count in the second value.
    pub(crate) fn drain(&mut self) -> (Vec<WriteBack>, u64) {
        let mut bodies = std::mem::take(&mut self.full);
        bodies.extend(self.open.drain().filter(|(_, b)| b.samples > 0));
        let mut out = Vec::with_capacity(bodies.len());
        let mut failed = 0;
        for (tenant, body) in bodies {
            match snap::raw::Encoder::new().compress_vec(&body.raw) {
                Ok(c) => out.push(WriteBack { tenant, body: c.into(), samples: body.samples }),
                Err(e) => {
                    tracing::error!(error = %e, "Compressing derived series failed. This is a bug.");
                    failed += body.samples;
                }
            }
        }
        (out, failed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use prost::Message;
    use vigil_proto::prometheus::WriteRequest;

    use super::*;

    #[test]
    fn samples_become_sorted_series_per_tenant() {
        let mut b = Bodies::default();
        let (a, c): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("c"));
        b.push(&a, "traces_spanmetrics_error_ratio", &[("span_name", "GET /"), ("service", "api"), ("x", "")], 5, 0.25);
        b.push(&a, "m", &[], -1, 1.0);
        b.push(&c, "m", &[("service", "db")], 7, 2.0);
        let (mut out, failed) = b.drain();
        assert_eq!(failed, 0);
        out.sort_by(|x, y| x.tenant.cmp(&y.tenant));
        assert_eq!(out.len(), 2);
        assert_eq!((&*out[0].tenant, out[0].samples), ("a", 2));
        let raw = snap::raw::Decoder::new().decompress_vec(&out[0].body).unwrap();
        let req = WriteRequest::decode(raw.as_slice()).unwrap();
        let labels: Vec<(&str, &str)> =
            req.timeseries[0].labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
        assert_eq!(
            labels,
            [("__name__", "traces_spanmetrics_error_ratio"), ("service", "api"), ("span_name", "GET /")],
            "sorted, the empty label left out"
        );
        assert_eq!((req.timeseries[0].samples[0].timestamp, req.timeseries[0].samples[0].value), (5, 0.25));
        assert_eq!(req.timeseries[1].samples[0].timestamp, -1);
        assert!(b.drain().0.is_empty());
    }
}

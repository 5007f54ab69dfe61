//! Derived series (RED, service graph) as remote-write 1.0 bodies, one per tenant, for the metrics path:
//! the same way the engine's scores go back in, with its encoder (`engine/writeback.rs`), from borrowed
//! strings.

use std::collections::HashMap;
use std::sync::Arc;

use prost::encoding::encode_varint;

use crate::engine::WriteBack;
use crate::engine::writeback::{FLUSH_BYTES, compress, encode_series};

/// Field 1 (length-delimited) of `WriteRequest`: one `TimeSeries`.
const TIMESERIES: u8 = 0x0a;

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
}

impl Bodies {
    /// One sample of the series `name{labels}`. Labels with empty values are left out (Prometheus' rule).
    pub(crate) fn push(&mut self, tenant: &Arc<str>, name: &str, labels: &[(&'static str, &str)], ts_ms: i64, v: f64) {
        let mut sorted: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 1);
        sorted.push(("__name__", name));
        sorted.extend(labels.iter().filter(|(_, v)| !v.is_empty()).copied());
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        self.series.clear();
        encode_series(&mut self.series, &sorted, ts_ms, v);
        let body = self.open.entry(Arc::clone(tenant)).or_default();
        body.raw.push(TIMESERIES);
        encode_varint(self.series.len() as u64, &mut body.raw);
        body.raw.extend_from_slice(&self.series);
        body.samples += 1;
        if body.raw.len() >= FLUSH_BYTES {
            let full = std::mem::take(body);
            self.full.push((Arc::clone(tenant), full));
        }
    }

    /// Forgets every body (nothing is to be sent: not even compressed).
    pub(crate) fn clear(&mut self) {
        self.full.clear();
        self.open.clear();
    }

    /// Every non-empty body, snappy-compressed; empty afterwards. Bodies that fail to compress (a bug) are
    /// returned as their sample count in the second value.
    pub(crate) fn drain(&mut self) -> (Vec<WriteBack>, u64) {
        let mut bodies = std::mem::take(&mut self.full);
        bodies.extend(self.open.drain().filter(|(_, b)| b.samples > 0));
        let mut out = Vec::with_capacity(bodies.len());
        let mut failed = 0;
        for (tenant, body) in bodies {
            match compress(&body.raw) {
                Ok(compressed) => out.push(WriteBack { tenant, body: compressed, samples: body.samples }),
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

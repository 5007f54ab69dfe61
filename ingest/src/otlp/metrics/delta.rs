//! Delta temporality → cumulative, before conversion (Prometheus series are cumulative).
//!
//! The OpenTelemetry spec lets a Prometheus-bound pipeline turn delta sums and histograms into cumulative
//! ones; this keeps, per stream (resource + scope + metric name + point attributes), the running total and
//! the stream's start time — what the collector's `deltatocumulative` processor does. A point older than
//! the last one seen for its stream cannot be added in order and is rejected. Exponential histograms with
//! delta temporality are left for the converter to reject (merging differing scales is not done).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, HistogramDataPoint, NumberDataPoint};
use parking_lot::Mutex;
use prost::Message;

/// Streams not updated for this long are forgotten (their next point starts a new running total).
const IDLE: Duration = Duration::from_secs(3600);

#[derive(Debug)]
enum Total {
    Int(i64),
    Double(f64),
    Histogram { bounds: Vec<f64>, counts: Vec<u64>, count: u64, sum: Option<f64> },
}

#[derive(Debug)]
struct Stream {
    start_unix_nano: u64,
    last_unix_nano: u64,
    total: Total,
    touched: Instant,
}

/// Running totals of delta streams, shared by the OTLP/HTTP and OTLP/gRPC metrics receivers.
#[derive(Debug)]
pub struct DeltaToCumulative {
    streams: Mutex<HashMap<u128, Stream>>,
    max_streams: usize,
}

/// What could not be accumulated.
#[derive(Debug, Default)]
pub(crate) struct Refused {
    pub(crate) points: u64,
    pub(crate) problems: Vec<String>,
}

impl DeltaToCumulative {
    /// Keeps at most `max_streams` running totals; points of new streams beyond that are rejected.
    pub fn new(max_streams: usize) -> Self {
        Self { streams: Mutex::new(HashMap::new()), max_streams }
    }

    /// Rewrites every delta sum and histogram in `request` as cumulative, in place. Running totals are
    /// kept per tenant (`tenant` is its registry index): one tenant's deltas never add to another's.
    pub(crate) fn accumulate(&self, request: &mut ExportMetricsServiceRequest, tenant: u32) -> Refused {
        let mut refused = Refused::default();
        let mut streams = self.streams.lock();
        if streams.len() >= self.max_streams {
            streams.retain(|_, s| s.touched.elapsed() < IDLE);
        }
        let delta = AggregationTemporality::Delta as i32;
        let cumulative = AggregationTemporality::Cumulative as i32;
        for rm in &mut request.resource_metrics {
            let resource = rm.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
            let mut prefix = tenant.to_le_bytes().to_vec();
            encode_attributes(resource, &mut prefix);
            for sm in &mut rm.scope_metrics {
                let mut scope_prefix = prefix.clone();
                if let Some(scope) = &sm.scope {
                    scope_prefix.extend_from_slice(scope.name.as_bytes());
                    scope_prefix.push(0xff);
                    scope_prefix.extend_from_slice(scope.version.as_bytes());
                }
                for metric in &mut sm.metrics {
                    let mut ctx = Ctx { streams: &mut streams, max: self.max_streams, refused: &mut refused };
                    let name = metric.name.clone();
                    match &mut metric.data {
                        Some(Data::Sum(sum)) if sum.aggregation_temporality == delta => {
                            sum.data_points.retain_mut(|p| ctx.number(&scope_prefix, &name, p));
                            sum.aggregation_temporality = cumulative;
                        }
                        Some(Data::Histogram(h)) if h.aggregation_temporality == delta => {
                            h.data_points.retain_mut(|p| ctx.histogram(&scope_prefix, &name, p));
                            h.aggregation_temporality = cumulative;
                        }
                        _ => {}
                    }
                }
            }
        }
        refused
    }
}

struct Ctx<'a> {
    streams: &'a mut HashMap<u128, Stream>,
    max: usize,
    refused: &'a mut Refused,
}

impl Ctx<'_> {
    fn stream_key(prefix: &[u8], name: &str, attributes: &[KeyValue]) -> u128 {
        let mut key = prefix.to_vec();
        key.push(0xfe);
        key.extend_from_slice(name.as_bytes());
        key.push(0xfe);
        encode_attributes(attributes, &mut key);
        xxhash_rust::xxh3::xxh3_128(&key)
    }

    fn refuse(&mut self, name: &str, why: &str) -> bool {
        self.refused.points += 1;
        let problem = format!("metric {name:?}: {why}");
        if !self.refused.problems.contains(&problem) {
            self.refused.problems.push(problem);
        }
        false
    }

    /// Finds the stream's state, or makes room for a new one. `None`: out of order or no room.
    fn stream(&mut self, key: u128, start: u64, time: u64, fresh: Total) -> Result<&mut Stream, &'static str> {
        let full = self.streams.len() >= self.max;
        match self.streams.get(&key) {
            Some(s) if time <= s.last_unix_nano => return Err("delta point older than the last one of its stream"),
            None if full => return Err("too many delta streams to accumulate"),
            _ => {}
        }
        let s = self.streams.entry(key).or_insert(Stream {
            start_unix_nano: start,
            last_unix_nano: 0,
            total: fresh,
            touched: Instant::now(),
        });
        s.last_unix_nano = time;
        s.touched = Instant::now();
        Ok(s)
    }

    fn number(&mut self, prefix: &[u8], name: &str, p: &mut NumberDataPoint) -> bool {
        let key = Self::stream_key(prefix, name, &p.attributes);
        let zero = match p.value {
            Some(Value::AsInt(_)) => Total::Int(0),
            _ => Total::Double(0.0),
        };
        let (start, time) = (p.start_time_unix_nano, p.time_unix_nano);
        let s = match self.stream(key, start, time, zero) {
            Ok(s) => s,
            Err(why) => return self.refuse(name, why),
        };
        s.total = match (&s.total, p.value) {
            (Total::Int(t), Some(Value::AsInt(v))) => Total::Int(t.saturating_add(v)),
            (Total::Int(t), Some(Value::AsDouble(v))) => Total::Double(*t as f64 + v),
            (Total::Double(t), Some(Value::AsInt(v))) => Total::Double(t + v as f64),
            (Total::Double(t), Some(Value::AsDouble(v))) => Total::Double(t + v),
            (_, None) => return true, // no value: left for the converter to judge
            (Total::Histogram { .. }, _) => Total::Double(0.0),
        };
        p.value = match s.total {
            Total::Int(t) => Some(Value::AsInt(t)),
            Total::Double(t) => Some(Value::AsDouble(t)),
            Total::Histogram { .. } => None,
        };
        p.start_time_unix_nano = s.start_unix_nano;
        true
    }

    fn histogram(&mut self, prefix: &[u8], name: &str, p: &mut HistogramDataPoint) -> bool {
        let key = Self::stream_key(prefix, name, &p.attributes);
        let fresh = Total::Histogram {
            bounds: p.explicit_bounds.clone(),
            counts: vec![0; p.bucket_counts.len()],
            count: 0,
            sum: Some(0.0),
        };
        let s = match self.stream(key, p.start_time_unix_nano, p.time_unix_nano, fresh) {
            Ok(s) => s,
            Err(why) => return self.refuse(name, why),
        };
        let Total::Histogram { bounds, counts, count, sum } = &mut s.total else {
            return self.refuse(name, "stream changed type");
        };
        if *bounds != p.explicit_bounds || counts.len() != p.bucket_counts.len() {
            // New bucket layout: the running total restarts from this point.
            *bounds = p.explicit_bounds.clone();
            *counts = vec![0; p.bucket_counts.len()];
            *count = 0;
            *sum = Some(0.0);
            s.start_unix_nano = p.start_time_unix_nano;
        }
        for (total, delta) in counts.iter_mut().zip(&p.bucket_counts) {
            *total = total.saturating_add(*delta);
        }
        *count = count.saturating_add(p.count);
        *sum = match (*sum, p.sum) {
            (Some(t), Some(v)) => Some(t + v),
            _ => None,
        };
        p.bucket_counts.clone_from(counts);
        p.count = *count;
        p.sum = *sum;
        // min and max of a delta point are not those of the whole stream; Prometheus does not use them.
        p.min = None;
        p.max = None;
        p.start_time_unix_nano = s.start_unix_nano;
        true
    }
}

/// Attributes in a canonical order, so the same set always makes the same stream key.
fn encode_attributes(attributes: &[KeyValue], out: &mut Vec<u8>) {
    let mut sorted: Vec<&KeyValue> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for kv in sorted {
        kv.encode(out).unwrap_or_default();
    }
}

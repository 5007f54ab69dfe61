//! OTLP exponential histogram points → Prometheus native histograms (remote write 1.0 `Histogram`).
//!
//! A port of Prometheus' `exponentialToNativeHistogram` and `convertBucketsLayout` (storage/remote/
//! otlptranslator/prometheusremotewrite/histograms.go), so that spans and deltas come out exactly as
//! Prometheus' own receiver makes them. Two choices differ, both from the spec text: `zero_threshold` is
//! taken from the point when set (Prometheus always sends the default), and index arithmetic is done in
//! 64 bits with a refusal instead of Go's silent 32-bit wrap-around.

use opentelemetry_proto::tonic::metrics::v1::ExponentialHistogramDataPoint;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use vigil_proto::prometheus::histogram::{Count, ResetHint, ZeroCount};
use vigil_proto::prometheus::{BucketSpan, Histogram};

use super::{STALE_NAN_BITS, is_stale, ms, stale_nan};

/// Native histogram schemas Prometheus accepts (exponential ones; -53 is custom buckets).
const MIN_SCHEMA: i32 = -4;
const MAX_SCHEMA: i32 = 8;
/// The spec's zero threshold when the point does not give one.
const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;

/// The native histogram for one point, or why it cannot be one.
pub(super) fn native_histogram(p: &ExponentialHistogramDataPoint) -> Result<Histogram, String> {
    if p.scale < MIN_SCHEMA {
        return Err(format!("exponential histogram scale {} is below {MIN_SCHEMA}", p.scale));
    }
    // Above schema 8, 2^(scale-8) neighbouring buckets are merged into one (downscaling).
    let (schema, scale_down) =
        if p.scale > MAX_SCHEMA { (MAX_SCHEMA, p.scale.abs_diff(MAX_SCHEMA)) } else { (p.scale, 0) };

    let (positive_spans, positive_deltas) = buckets_layout(p.positive.as_ref(), scale_down)?;
    let (negative_spans, negative_deltas) = buckets_layout(p.negative.as_ref(), scale_down)?;

    // A point without a recorded value is a staleness marker: Prometheus puts the stale NaN's bits into
    // the integer count and the NaN itself into the sum.
    let (count, sum) = if is_stale(p.flags) { (STALE_NAN_BITS, stale_nan()) } else { (p.count, p.sum.unwrap_or(0.0)) };
    let zero_threshold = if p.zero_threshold > 0.0 { p.zero_threshold } else { DEFAULT_ZERO_THRESHOLD };

    Ok(Histogram {
        count: Some(Count::CountInt(count)),
        sum,
        schema,
        zero_threshold,
        zero_count: Some(ZeroCount::ZeroCountInt(p.zero_count)),
        negative_spans,
        negative_deltas,
        negative_counts: Vec::new(),
        positive_spans,
        positive_deltas,
        positive_counts: Vec::new(),
        // Whether this point is a counter reset is unknown here; UNKNOWN is always safe (Prometheus does
        // the same: a wrong NO could make it miss a reset).
        reset_hint: ResetHint::Unknown as i32,
        timestamp: ms(p.time_unix_nano),
        custom_values: Vec::new(),
    })
}

/// Dense OTLP buckets (offset + counts) → sparse Prometheus spans and deltas.
///
/// OTLP bucket `i` covers `(base^i, base^(i+1)]`, Prometheus bucket `i` covers `(base^(i-1), base^i]`, so
/// indexes shift by one. Gaps of up to two empty buckets are filled with zero deltas, longer gaps start a
/// new span (client_golang's rule). A run of empty buckets at the start is not trimmed and may leave a
/// first span of length 0, exactly as Prometheus does.
fn buckets_layout(buckets: Option<&Buckets>, scale_down: u32) -> Result<(Vec<BucketSpan>, Vec<i64>), String> {
    let Some(buckets) = buckets.filter(|b| !b.bucket_counts.is_empty()) else {
        return Ok((Vec::new(), Vec::new()));
    };
    let offset = i64::from(buckets.offset);
    // The Prometheus index of OTLP bucket `i` (counted from the offset) after downscaling.
    let index = |i: usize| -> Result<i64, String> {
        let i = i64::try_from(i).map_err(|_| too_many())?;
        Ok(shift_right(i + offset, scale_down) + 1)
    };

    let mut layout = Layout::default();
    let mut bucket_idx = index(0)?;
    layout.spans.push(BucketSpan { offset: span_offset(bucket_idx)?, length: 0 });
    let mut count: i64 = 0;
    for (i, &c) in buckets.bucket_counts.iter().enumerate() {
        let c = i64::try_from(c).map_err(|_| too_large())?;
        let next = index(i)?;
        if next == bucket_idx {
            // Still inside the same (merged) bucket.
            count = count.checked_add(c).ok_or_else(too_large)?;
            continue;
        }
        if count == 0 {
            count = c;
            continue;
        }
        layout.gap(next - bucket_idx - 1)?;
        layout.append(count)?;
        count = c;
        bucket_idx = next;
    }
    layout.gap(index(buckets.bucket_counts.len() - 1)? - bucket_idx)?;
    layout.append(count)?;
    Ok((layout.spans, layout.deltas))
}

#[derive(Default)]
struct Layout {
    spans: Vec<BucketSpan>,
    deltas: Vec<i64>,
    previous: i64,
}

impl Layout {
    /// Skips `gap` empty buckets: more than two start a new span, fewer are written as zero counts.
    fn gap(&mut self, gap: i64) -> Result<(), String> {
        if gap > 2 {
            self.spans.push(BucketSpan { offset: span_offset(gap)?, length: 0 });
        } else {
            for _ in 0..gap {
                self.append(0)?;
            }
        }
        Ok(())
    }

    /// Adds a bucket of `count` to the current span.
    fn append(&mut self, count: i64) -> Result<(), String> {
        if let Some(span) = self.spans.last_mut() {
            span.length = span.length.checked_add(1).ok_or_else(too_many)?;
        }
        self.deltas.push(count - self.previous);
        self.previous = count;
        Ok(())
    }
}

/// `x >> n` for any `n`, as Go defines it for signed integers (no overflow panic for `n >= 64`).
fn shift_right(x: i64, n: u32) -> i64 {
    x.checked_shr(n).unwrap_or(if x < 0 { -1 } else { 0 })
}

fn span_offset(offset: i64) -> Result<i32, String> {
    i32::try_from(offset).map_err(|_| "exponential histogram bucket index out of range".to_owned())
}

fn too_many() -> String {
    "exponential histogram has too many buckets".to_owned()
}

fn too_large() -> String {
    "exponential histogram bucket counts are too large".to_owned()
}
